"""Content-addressed, immutable image assets inside a project folder, plus files copied into it.

Contract:
- An asset is ``assets/<sha256>.png`` (the id is the sha256 hex of the PNG bytes) with a JSON sidecar
  ``assets/<sha256>.json`` holding its full generation recipe. Writing the same bytes twice is a no-op (the first
  sidecar is kept); files are never rewritten or deleted by the app.
- Every write is atomic: a temp file in the same folder, fsync, ``os.replace``, fsync of the folder. A crash or a
  cancel leaves either nothing or the complete file (plus at worst a ``.*.tmp`` file the next write removes).
- ``resolve_inside(folder, rel)`` is the one gate for project-relative paths: absolute paths, ``..`` and links
  that lead out of the folder are refused with ``ProjectError`` before anything is read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .project_codec import ASSET_ID_RE, check_relative_path
from .project_model import ProjectError

__all__ = ["ASSETS_DIR", "PNG_SIGNATURE", "asset_id_of", "asset_path", "sidecar_path", "write_asset",
           "write_image_asset", "read_sidecar", "check_asset", "resolve_inside", "atomic_write_bytes",
           "fsync_dir", "import_file", "remove_stale_temps"]

ASSETS_DIR = "assets"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` to read it would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the complete new one.
    The file gets the old file's permissions, or the usual ones for a new file (not mkstemp's 0600)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def asset_id_of(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


def _check_id(asset_id: str) -> None:
    if not isinstance(asset_id, str) or not ASSET_ID_RE.match(asset_id):
        raise ProjectError(f"{asset_id!r} is not an asset id (64 lowercase hex digits).")


def asset_path(folder: str | Path, asset_id: str) -> Path:
    _check_id(asset_id)
    return Path(folder) / ASSETS_DIR / f"{asset_id}.png"


def sidecar_path(folder: str | Path, asset_id: str) -> Path:
    _check_id(asset_id)
    return Path(folder) / ASSETS_DIR / f"{asset_id}.json"


def resolve_inside(folder: str | Path, rel: str, *, what: str = "file", path: str | None = None) -> Path:
    """``folder/rel`` after checking that it stays inside ``folder`` (also through symlinks). Does not need the
    file to exist; raises ``ProjectError`` otherwise."""
    check_relative_path(rel, path or rel)
    root = Path(folder).resolve()
    target = (root / rel).resolve()
    try:
        target.relative_to(root)
    except ValueError:
        raise ProjectError(f"the {what} {rel!r} is a link that leads out of the project folder",
                           path=path or rel, hint="Replace the link with a copy of the file.") from None
    return root / rel


def check_asset(folder: str | Path, asset_id: str, *, path: str | None = None) -> Path:
    """The asset's PNG path if it exists as a file inside the project (links out of it are refused)."""
    rel = f"{ASSETS_DIR}/{asset_id}.png"
    _check_id(asset_id)
    p = resolve_inside(folder, rel, what="image", path=path)
    if not p.is_file():
        raise ProjectError(f"the image {rel} is missing", path=path or rel)
    return p


def write_asset(folder: str | Path, png: bytes, recipe: dict[str, Any]) -> str:
    """Store PNG bytes and their sidecar; returns the asset id. Same bytes again: nothing is written."""
    if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(PNG_SIGNATURE):
        raise ProjectError("only PNG images can be stored as assets")
    png = bytes(png)
    asset_id = asset_id_of(png)
    adir = Path(folder) / ASSETS_DIR
    if adir.is_symlink() and not adir.resolve().is_relative_to(Path(folder).resolve()):
        raise ProjectError("the assets folder is a link that leads out of the project folder", path=ASSETS_DIR)
    adir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(adir)
    side = sidecar_path(folder, asset_id)
    if not side.exists():
        body = {"format": "consistory-studio-asset", "asset_id": asset_id, **recipe}
        atomic_write_bytes(side, json.dumps(body, indent=1, sort_keys=True, default=str).encode("utf-8"))
    png_path = asset_path(folder, asset_id)
    if png_path.is_symlink() or (png_path.exists() and not png_path.is_file()):
        raise ProjectError(f"{ASSETS_DIR}/{asset_id}.png is not a plain file", path=f"{ASSETS_DIR}/{asset_id}.png",
                           hint="Remove it; it will be written again.")
    if not png_path.exists():
        # Image last: a sidecar without its image is harmless, an image without its recipe is not.
        atomic_write_bytes(png_path, png)
    return asset_id


def write_image_asset(folder: str | Path, image: Any, recipe: dict[str, Any]) -> str:
    """Encode a PIL image as PNG (deterministic bytes for the same pixels) and store it."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return write_asset(folder, buf.getvalue(), recipe)


def read_sidecar(folder: str | Path, asset_id: str) -> dict[str, Any] | None:
    """The asset's recipe dict, or None when the sidecar is missing, unreadable or not an object."""
    try:
        data = json.loads(sidecar_path(folder, asset_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def import_file(folder: str | Path, source: str | Path, rel: str) -> str:
    """Copy an outside file (e.g. a character identity from the library) to ``folder/rel`` atomically; returns
    ``rel``. An existing file with the same bytes is left alone."""
    dest = resolve_inside(folder, rel)
    data = Path(source).read_bytes()
    if dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data:
        return rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)
    return rel


def remove_stale_temps(adir: Path) -> None:
    """Delete ``.*.tmp`` files a killed writer left in ``adir`` (older than a minute, so a live one is never hit)."""
    import time

    now = time.time()
    try:
        entries = list(adir.iterdir())
    except OSError:
        return
    for p in entries:
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            try:
                if now - p.stat().st_mtime > 60:
                    p.unlink()
            except OSError:
                pass
