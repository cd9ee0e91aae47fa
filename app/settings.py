"""Typed application settings over ``QSettings`` (INI file): window state, recent projects, model choice.

Contract:
- ``Settings(path=None)``: a ``QObject``; each setting in ``SETTINGS`` is a Python property of the same name with a
  ``<name>_changed`` signal emitted only when the value really changes. Values are written through immediately.
- Values read from disk are checked against the declared type (and choices); a bad or missing value falls back to
  the default, so a hand-edited or older settings file never breaks start-up.
- The file is ``settings.ini`` in ``app.user_dirs.config_dir()`` (under ``$CONSISTORY_STUDIO_HOME`` in tests).
- Only QtCore is used (layer rule for ``app``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QSettings, Signal

__all__ = ["Setting", "SETTINGS", "Settings", "MAX_RECENT"]

MAX_RECENT = 8


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    description: str
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("model_source", "", "Model source: '' for the built-in default, a name, hub id, folder or .safetensors"),
    Setting("device", "auto", "Device the engine runs on", ("auto", "cpu", "cuda", "mps")),
    Setting("precision", "auto", "Number precision of the weights", ("auto", "float32", "float16", "bfloat16")),
    Setting("cpu_offload", False, "Keep model parts in CPU memory until needed (slower; NVIDIA GPUs only)"),
    Setting("vae_tiling", False, "Decode pictures in tiles (less memory for large panels, a little slower)"),
    Setting("steps", 30, "Denoising steps per image", minimum=1, maximum=200),
    Setting("max_batch", 4, "Most images generated together in one job", minimum=1, maximum=16),
    Setting("max_size", 1024, "Longest side of a generated panel in pixels (the page slot gives the aspect)",
            minimum=16, maximum=2048),
    Setting("preview_every", 1, "Show a live preview every N steps (0: never)", minimum=0, maximum=50),
    Setting("autosave_seconds", 120, "Autosave interval in seconds (0: off)", minimum=0, maximum=3600),
    Setting("recent_projects", [], "Recently opened project folders, newest first"),
    Setting("first_run_done", False, "The sample project was offered once"),
    Setting("window_geometry", b"", "Main window geometry"),
    Setting("window_state", b"", "Main window docks and toolbars"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _default_path() -> Path:
    from app.user_dirs import config_dir

    return config_dir() / "settings.ini"


def _coerce(setting: Setting, raw: Any) -> Any:
    """Turn what QSettings gives back (INI files keep strings) into the declared type; ``ValueError`` if impossible."""
    default = setting.default
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "1", "yes"):
            return True
        if str(raw).lower() in ("false", "0", "no"):
            return False
        raise ValueError(raw)
    if isinstance(default, int):
        value = int(raw)
        if setting.minimum is not None and value < setting.minimum:
            raise ValueError(raw)
        if setting.maximum is not None and value > setting.maximum:
            raise ValueError(raw)
        return value
    if isinstance(default, bytes):
        if isinstance(raw, QByteArray):
            return bytes(raw.data())
        if isinstance(raw, (bytes, bytearray)):
            return bytes(raw)
        raise ValueError(raw)
    if isinstance(default, list):
        if raw in (None, ""):
            return []
        if isinstance(raw, str):
            return [raw]
        return [str(x) for x in raw]
    value = str(raw)
    if setting.choices and value not in setting.choices:
        raise ValueError(raw)
    return value


class Settings(QObject):
    """Typed, observable settings. Lives on the GUI thread."""

    model_source_changed = Signal(str)
    device_changed = Signal(str)
    precision_changed = Signal(str)
    cpu_offload_changed = Signal(bool)
    vae_tiling_changed = Signal(bool)
    steps_changed = Signal(int)
    max_batch_changed = Signal(int)
    max_size_changed = Signal(int)
    preview_every_changed = Signal(int)
    autosave_seconds_changed = Signal(int)
    recent_projects_changed = Signal(list)
    first_run_done_changed = Signal(bool)
    window_geometry_changed = Signal(bytes)
    window_state_changed = Signal(bytes)

    def __init__(self, path: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        path = Path(path) if path is not None else _default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(path), QSettings.Format.IniFormat)
        self._values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = self._qs.value(s.name, None)
            try:
                self._values[s.name] = s.default if raw is None else _coerce(s, raw)
            except (ValueError, TypeError):
                self._values[s.name] = s.default

    @property
    def file_path(self) -> str:
        return self._qs.fileName()

    def get(self, name: str) -> Any:
        value = self._values[name]
        return list(value) if isinstance(value, list) else value

    def set(self, name: str, value: Any) -> None:
        """Validate, store and announce a change; ``ValueError`` with one sentence if the value does not fit."""
        setting = _BY_NAME[name]
        try:
            value = _coerce(setting, value)
        except (ValueError, TypeError):
            allowed = f" (one of {', '.join(map(str, setting.choices))})" if setting.choices else ""
            bounds = (f" (between {setting.minimum} and {setting.maximum})"
                      if setting.minimum is not None else "")
            raise ValueError(f"{value!r} is not a valid value for '{name}'{allowed}{bounds}.") from None
        if self._values[name] == value:
            return
        self._values[name] = value
        self._qs.setValue(name, QByteArray(value) if isinstance(value, bytes) else value)
        getattr(self, f"{name}_changed").emit(value)

    def sync(self) -> None:
        self._qs.sync()

    def add_recent_project(self, folder: str | Path) -> None:
        folder = str(Path(folder).resolve())
        recent = [folder] + [p for p in self.get("recent_projects") if p != folder]
        self.set("recent_projects", recent[:MAX_RECENT])

    def forget_recent_project(self, folder: str | Path) -> None:
        folder = str(Path(folder).resolve())
        self.set("recent_projects", [p for p in self.get("recent_projects") if p != folder])


def _make_property(name: str) -> property:
    return property(lambda self: self.get(name), lambda self, value: self.set(name, value),
                    doc=_BY_NAME[name].description)


for _s in SETTINGS:
    setattr(Settings, _s.name, _make_property(_s.name))
del _s
