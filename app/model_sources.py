"""What a user can name as a model, checked before any model work (no torch, no network unless asked).

Contract:
- ``SourceKind``: built_in, hub, folder, safetensors.
- ``classify(source) -> SourceKind``; ``check_source(source) -> str | None``: ``None`` when the source looks usable,
  else one sentence saying what is wrong and what to do.
- ``built_in_sources() -> list[tuple[str, str]]``: (source, label) of the models that need no download.
- ``free_disk_bytes(path)``, ``hub_cache_dir()``, ``format_bytes(n)``.
- ``hub_download_size(repo_id, device, precision) -> int``: bytes the model loader would still download for that
  device and precision; needs the network (and imports the engine), so callers run it off the GUI thread and show
  its ``OSError`` message.
"""

from __future__ import annotations

import os
import re
import shutil
from enum import Enum
from pathlib import Path

from app.model_choice import default_model_source

__all__ = ["SourceKind", "classify", "check_source", "built_in_sources", "free_disk_bytes", "hub_cache_dir",
           "format_bytes", "hub_download_size", "BUILT_IN"]

_ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = ("toy", "tiny", "tiny-sd15", "sdxl-random")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class SourceKind(Enum):
    built_in = "built_in"
    hub = "hub"
    folder = "folder"
    safetensors = "safetensors"


def classify(source: str) -> SourceKind:
    source = source.strip()
    if source in BUILT_IN:
        return SourceKind.built_in
    if source.lower().endswith(".safetensors"):
        return SourceKind.safetensors
    if os.path.isabs(source) or source.startswith((".", "~")) or os.path.isdir(source):
        return SourceKind.folder
    return SourceKind.hub


def built_in_sources() -> list[tuple[str, str]]:
    out = []
    if default_model_source() == "toy":
        out.append(("toy", "Built-in storybook model (offline, small)"))
    out.append(("tiny", "Tiny test model (random weights: noise pictures, for checks)"))
    return out


def check_source(source: str) -> str | None:
    source = source.strip()
    if not source:
        return "No model is chosen. Pick the built-in model or name a hub id, folder or .safetensors file."
    if source.lower().endswith((".ckpt", ".pt", ".pth", ".bin")):
        return (f"{source} is a pickle checkpoint, which can run code when it is opened. Convert it to "
                ".safetensors, or choose a diffusers model folder.")
    kind = classify(source)
    if kind is SourceKind.built_in:
        if source == "toy" and default_model_source() != "toy":
            return "The built-in storybook model is not installed. Choose the tiny model or another source."
        return None
    path = Path(source).expanduser()
    if kind is SourceKind.safetensors:
        if not path.is_file():
            return f"The file {path} does not exist. Choose an existing .safetensors checkpoint."
        return None
    if kind is SourceKind.folder:
        if not path.is_dir():
            return f"The folder {path} does not exist. Choose a diffusers model folder."
        if not (path / "model_index.json").is_file():
            return (f"The folder {path} is not a diffusers model (it has no model_index.json). "
                    "Choose the folder that holds model_index.json, or a single .safetensors file.")
        return None
    if not _HUB_ID.match(source):
        return (f"'{source}' is not a Hugging Face model id. Write it as owner/name, "
                "e.g. stabilityai/stable-diffusion-xl-base-1.0.")
    return None


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def free_disk_bytes(path: str | Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def hub_download_size(repo_id: str, device: str | None = None, precision: str | None = None) -> int:
    """Bytes still to download for ``repo_id`` as the model loader fetches it on ``device`` in ``precision`` (the
    one weight set it picks, e.g. the fp16 files for a GPU; files already in the cache not counted): the engine's
    own estimate. Network; off the GUI thread. ``OSError`` with one sentence when it cannot be known."""
    from engine.errors import ModelLoadError
    from engine.hub_download import hub_download_size as still_to_download
    from engine.model_loader import pick_device

    try:
        _, dtype = pick_device(None if device in (None, "auto") else device,
                               None if precision in (None, "auto") else precision)
    except ModelLoadError as exc:
        raise OSError(str(exc)) from exc
    size = still_to_download(repo_id, dtype)
    if size is None:
        raise OSError(f"Could not ask the hub about '{repo_id}'. Check the id and your network connection (downloads "
                      "are off while HF_HUB_OFFLINE is set).")
    return size
