"""Opening and saving project folders without ever losing work.

A project folder holds ``project.json`` (current schema), ``project.json.bak`` (the file as it was before the last
save), ``project.autosave.json`` (unsaved edits, written on a timer) and ``assets/``.

Contract:
- ``open_project(folder)`` reads, migrates and checks; it never writes. Corrupt JSON, wrong types, a newer
  schema, missing images or identity files, and references leading out of the folder raise ``ProjectError``
  (one sentence naming the file/field, and a hint).
- ``save_project`` is atomic: the new text goes to a temp file in the same folder, is fsynced, the previous
  ``project.json`` is copied to ``project.json.bak`` (atomically too), then ``os.replace`` and an fsync of the
  folder. Killed at any instant, the folder holds the old or the new ``project.json``, both complete.
  A normal save discards the autosave (its edits are now saved).
- ``autosave`` writes ``project.autosave.json`` the same way; ``recovery_available`` is true when it exists, is
  at least as new as ``project.json`` and differs from it; ``recover`` reads it (never writes).
- ``update_project(folder, fn)`` is the read-modify-write used by the job runner: under a per-folder lock it
  applies ``fn`` to the saved project and, when an autosave exists, to the autosave too, so finished images are
  referenced whichever file the user reopens. The GUI's own saves take the same lock (threads of one process;
  two processes saving one folder at once are not supported).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable

from .assets import atomic_write_bytes, check_asset, remove_stale_temps, resolve_inside
from .project_codec import project_from_dict, project_to_dict, validate_project
from .project_model import Project, ProjectError

__all__ = ["PROJECT_FILE", "BACKUP_FILE", "AUTOSAVE_FILE", "DECLINED_AUTOSAVE_FILE", "open_project", "open_backup",
           "save_project", "autosave", "recovery_available", "recover", "discard_autosave", "set_aside_autosave",
           "update_project", "project_bytes", "read_project_file", "folder_lock", "new_folder_problem"]

PROJECT_FILE = "project.json"
BACKUP_FILE = "project.json.bak"
AUTOSAVE_FILE = "project.autosave.json"
DECLINED_AUTOSAVE_FILE = "project.autosave.declined.json"  # unsaved edits the user chose not to recover, kept aside

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def new_folder_problem(folder: str | Path) -> str | None:
    """Why a new project (or a copy saved with "Save as") cannot go into ``folder``, in words; ``None`` when it is
    missing (it will be made) or an empty folder. A folder that holds anything is refused: another project's files
    there would be replaced or mixed with this one's."""
    folder = Path(folder)
    try:
        if not folder.exists():
            return None
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        if any(folder.iterdir()):
            return f"{folder} is not empty"
    except OSError as exc:
        return f"{folder} cannot be read ({exc.strerror or exc})"
    return None


def folder_lock(folder: str | Path) -> threading.RLock:
    """The lock every writer of ``folder``'s project files holds (re-entrant)."""
    key = os.path.realpath(folder)
    with _locks_guard:
        return _locks.setdefault(key, threading.RLock())


def project_bytes(project: Project) -> bytes:
    """The exact bytes ``save_project`` writes (validated first: nothing unopenable is ever written)."""
    validate_project(project)
    return (json.dumps(project_to_dict(project), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_project_file(path: str | Path, *, name: str | None = None) -> Project:
    """Parse one project file (no asset checks). Raises ``ProjectError`` naming the file."""
    path = Path(path)
    name = name or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError(f"there is no {name} in {path.parent}", path=name,
                           hint="Choose the folder of a Consistory Studio project.") from None
    except OSError as exc:
        raise ProjectError(f"{name} cannot be read ({exc.strerror or exc})", path=name) from None
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ProjectError("the file is damaged: it is not UTF-8 text", path=name, hint=_backup_hint(path)) from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"the file is damaged: {exc.msg} (line {exc.lineno}, column {exc.colno})", path=name,
                           hint=_backup_hint(path)) from None
    except (ValueError, RecursionError) as exc:
        raise ProjectError(f"the file is damaged: {exc}", path=name, hint=_backup_hint(path)) from None
    try:
        return project_from_dict(data)
    except ProjectError as exc:
        if name != PROJECT_FILE:
            exc.message = f"{exc.message} (in {name})"
        raise


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a valid number")


def _backup_hint(path: Path) -> str:
    if path.name != BACKUP_FILE and (path.parent / BACKUP_FILE).is_file():
        return (f"The previous version is in {BACKUP_FILE}: the app offers to open it when you open the project "
                f"(or copy it over {PROJECT_FILE}), or fix the file.")
    return "Nothing was changed on disk; restore the file from a copy."


def _check_files(project: Project, folder: Path) -> None:
    """Every referenced image and identity file exists inside the folder; report all that are missing."""
    missing: list[str] = []
    for i, c in enumerate(project.characters):
        if c.identity_file is not None:
            p = resolve_inside(folder, c.identity_file, what="identity file", path=f"characters[{i}].identity_file")
            if not p.is_file():
                missing.append(f"{c.identity_file} (characters[{i}].identity_file)")
    for i, panel in enumerate(project.panels):
        for j, a in enumerate(panel.alternates):
            try:
                check_asset(folder, a, path=f"panels[{i}].alternates[{j}]")
            except ProjectError as exc:
                if "missing" not in exc.message:
                    raise
                missing.append(f"assets/{a}.png (panels[{i}].alternates[{j}])")
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ProjectError(f"{len(missing)} file(s) the project uses are missing: {shown}", path="assets",
                           hint="Copy the missing files back into the project folder, or open it anyway "
                                "(the panels then show no image).")


def open_project(folder: str | Path, *, allow_missing: bool = False) -> Project:
    """Read ``folder/project.json`` (migrating older versions). Writes nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProjectError(f"the project folder {folder} does not exist", hint="Choose an existing project folder.")
    return _read_checked(folder, PROJECT_FILE, "project file", allow_missing)


def _read_checked(folder: Path, name: str, what: str, allow_missing: bool) -> Project:
    """Read one of the folder's project files and check the files it references (all three readers share this).

    With ``allow_missing`` missing files are tolerated, but references leading out of the folder are still refused.
    """
    project = read_project_file(resolve_inside(folder, name, what=what))
    if not allow_missing:
        _check_files(project, folder)
    else:
        for i, c in enumerate(project.characters):
            if c.identity_file is not None:
                resolve_inside(folder, c.identity_file, what="identity file", path=f"characters[{i}].identity_file")
    return project


def open_backup(folder: str | Path, *, allow_missing: bool = False) -> Project:
    """Read ``project.json.bak`` (the file as it was before the last save). Writes nothing."""
    return _read_checked(Path(folder), BACKUP_FILE, "backup", allow_missing)


def save_project(project: Project, folder: str | Path, *, discard_autosave: bool = True) -> None:
    """Atomically write ``project`` to ``folder/project.json`` keeping the previous file as the backup."""
    folder = Path(folder)
    data = project_bytes(project)
    with folder_lock(folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "assets").mkdir(exist_ok=True)
        remove_stale_temps(folder)
        path = resolve_inside(folder, PROJECT_FILE, what="project file")
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = None
        if old != data:
            if old is not None:
                atomic_write_bytes(folder / BACKUP_FILE, old)
            atomic_write_bytes(path, data)
        if discard_autosave:
            discard_autosave_file(folder)


def discard_autosave_file(folder: Path) -> None:
    try:
        (folder / AUTOSAVE_FILE).unlink()
    except FileNotFoundError:
        pass


def discard_autosave(folder: str | Path) -> None:
    """Forget unsaved edits (the user chose not to recover them)."""
    with folder_lock(folder):
        discard_autosave_file(Path(folder))


def set_aside_autosave(folder: str | Path) -> Path | None:
    """Keep unsaved edits the user chose not to recover out of the next autosave's way: the autosave file becomes
    ``DECLINED_AUTOSAVE_FILE`` (replacing an older one). Returns its path, or None when there was no autosave."""
    folder = Path(folder)
    with folder_lock(folder):
        try:
            os.replace(folder / AUTOSAVE_FILE, folder / DECLINED_AUTOSAVE_FILE)
        except FileNotFoundError:
            return None
    return folder / DECLINED_AUTOSAVE_FILE


def autosave(project: Project, folder: str | Path) -> None:
    """Atomically write ``project.autosave.json`` (project.json is left alone)."""
    folder = Path(folder)
    data = project_bytes(project)
    with folder_lock(folder):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(resolve_inside(folder, AUTOSAVE_FILE, what="autosave"), data)


def recovery_available(folder: str | Path) -> bool:
    """True when the autosave holds edits newer than ``project.json`` (and can be read)."""
    folder = Path(folder)
    auto, main = folder / AUTOSAVE_FILE, folder / PROJECT_FILE
    try:
        auto_stat = auto.stat()
    except OSError:
        return False
    try:
        recovered = read_project_file(auto)
    except ProjectError:
        return False
    try:
        main_stat = main.stat()
    except OSError:
        return True
    if auto_stat.st_mtime_ns < main_stat.st_mtime_ns:
        return False
    try:
        return read_project_file(main) != recovered
    except ProjectError:
        return True


def recover(folder: str | Path, *, allow_missing: bool = False) -> Project:
    """The autosaved project (save it with ``save_project`` to keep it). Writes nothing."""
    return _read_checked(Path(folder), AUTOSAVE_FILE, "autosave", allow_missing)


def update_project(folder: str | Path, fn: Callable[[Project], Project], *,
                   fallback: Project | None = None) -> Project:
    """Apply ``fn`` to the saved project (``fallback`` when the folder has none yet) and save; also to a pending
    autosave so it stays the newer, complete file. Returns the new saved project."""
    folder = Path(folder)
    with folder_lock(folder):
        if (folder / PROJECT_FILE).exists() or fallback is None:
            current = open_project(folder, allow_missing=True)
        else:
            current = fallback
        new = fn(current)
        save_project(new, folder, discard_autosave=False)
        if (folder / AUTOSAVE_FILE).exists():
            try:
                pending = read_project_file(folder / AUTOSAVE_FILE)
            except ProjectError:
                pending = None
            if pending is not None:
                autosave(fn(pending), folder)
        return new
