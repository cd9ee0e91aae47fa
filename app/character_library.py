"""The character library: saved identities (``.character`` files) in the user data dir, shared by all projects.

Contract:
- The library is the folder ``app.user_dirs.library_dir()`` (honours ``CONSISTORY_STUDIO_HOME``); each character
  is ``<id>.character`` there, deleted ones are in ``.trash/<id>.character`` until the trash is emptied.
- An id is ``<slug of the name>-<first 8 hex of the sha256 of the file's bytes when it entered the library>``
  (plus ``-2``, ``-3``… if taken); it never changes, also not on rename. Ids are unique over library and trash.
- Names are unique in the library (case-insensitive): importing or restoring a clashing name gets a free one
  ("Mira (2)"); ``rename`` to a taken name is refused. Importing the very same bytes twice returns the entry
  already there. Nothing is ever overwritten: every write is a temp file + rename in the same folder.
- Every file entering the library is validated with ``engine.identity.read_identity`` (no pickles, no path
  traversal, known format version). Every error a user can cause raises ``LibraryError`` with one sentence.
- The library accepts characters made with any model; ``check_model`` tells whether one can be used with the
  loaded model, and ``recreate`` re-creates its anchors on that model (the old file goes to the trash).
The engine is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import user_dirs
from .assets import atomic_write_bytes
from .project_model import MAX_CHARACTER_NAME

if TYPE_CHECKING:  # pragma: no cover
    from engine.identity import Identity
    from engine.model_loader import LoadedModel
    from engine.request import StepInfo

__all__ = ["LibraryError", "LibraryEntry", "CharacterLibrary", "SUFFIX", "TRASH_DIR", "slugify"]

SUFFIX = ".character"
TRASH_DIR = ".trash"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


class LibraryError(Exception):
    """Something the user asked of the character library cannot be done. ``str(err)`` is one line for the user."""

    user_message = True  # lets app.cli print it as a one-line error

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


@dataclass(frozen=True)
class LibraryEntry:
    """One library file as listed. ``error`` is set (and the other fields are guesses) when it cannot be read."""

    id: str
    name: str
    description: str
    subjects: tuple[str, ...]
    model_source: str
    model_fingerprint: str
    path: Path
    size_bytes: int
    anchors: int
    thumbnail_png: bytes | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "subjects": list(self.subjects),
                "model_source": self.model_source, "model_fingerprint": self.model_fingerprint,
                "path": str(self.path), "size_bytes": self.size_bytes, "anchors": self.anchors,
                "error": self.error}


def slugify(name: str) -> str:
    """A file-name-safe lowercase ASCII slug of a name ("Mira the Fox!" → "mira-the-fox"), "character" if empty."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40].strip("-")
    return slug or "character"


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise LibraryError("A character needs a name.", hint="Type at least one letter.")
    name = " ".join(name.split())
    if len(name) > MAX_CHARACTER_NAME:
        raise LibraryError(f"The name is too long ({len(name)} characters).",
                           hint=f"Use at most {MAX_CHARACTER_NAME} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise LibraryError("The name contains control characters.", hint="Use letters, digits and punctuation.")
    return name


def _disk_error(action: str, path: Path, exc: OSError,
                hint: str = "Check that the disk has room and the folder is writable.") -> LibraryError:
    return LibraryError(f"Could not {action} {path}: {exc.strerror or exc}.", hint=hint)


def _read(path: Path) -> "Identity":
    from engine.identity import read_identity

    return read_identity(path)


class CharacterLibrary:
    """The library in ``folder`` (default: ``app.user_dirs.library_dir()`` at construction time)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else user_dirs.library_dir()

    # Paths and ids ------------------------------------------------------------------------------------------
    @property
    def trash_folder(self) -> Path:
        return self.folder / TRASH_DIR

    def _ensure(self) -> None:
        try:
            self.trash_folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk_error("create the character library folder", self.folder, exc) from exc

    def _files(self, folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file()
                          and _ID_RE.match(p.stem))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _disk_error("read the character library folder", folder, exc,
                              "Check that it is a folder you can read.") from exc

    def _path(self, entry_id: str, *, trashed: bool = False) -> Path:
        if not isinstance(entry_id, str) or not _ID_RE.match(entry_id):
            raise LibraryError(f"{entry_id!r} is not a character id.",
                               hint="Use an id shown by 'consistory-studio character list'.")
        folder = self.trash_folder if trashed else self.folder
        path = folder / f"{entry_id}{SUFFIX}"
        if not path.is_file():
            where = "in the trash" if trashed else "in the library"
            raise LibraryError(f"There is no character {entry_id!r} {where}.",
                               hint="Use an id shown by 'consistory-studio character "
                                    f"{'trash' if trashed else 'list'}'.")
        return path

    def path(self, entry_id: str) -> Path:
        """The library file of a live character (``LibraryError`` if there is none)."""
        return self._path(entry_id)

    def _taken_ids(self) -> set[str]:
        return {p.stem for p in self._files(self.folder) + self._files(self.trash_folder)}

    def _new_id(self, name: str, data: bytes) -> str:
        base = f"{slugify(name)}-{hashlib.sha256(data).hexdigest()[:8]}"
        taken = self._taken_ids()
        entry_id, n = base, 1
        while entry_id in taken:
            n += 1
            entry_id = f"{base}-{n}"
        return entry_id

    def _names(self, exclude: str | None = None) -> set[str]:
        return {e.name.casefold() for e in self.list() if e.id != exclude}

    def _free_name(self, name: str, exclude: str | None = None) -> str:
        taken = self._names(exclude)
        if name.casefold() not in taken:
            return name
        n = 2
        while f"{name} ({n})".casefold() in taken:
            n += 1
        return f"{name} ({n})"

    # Reading ------------------------------------------------------------------------------------------------
    def _entry(self, path: Path) -> LibraryEntry:
        from engine.identity import IdentityError, read_identity

        size = path.stat().st_size if path.exists() else 0
        try:
            ident = read_identity(path)
        except IdentityError as exc:
            return LibraryEntry(path.stem, path.stem, "", (), "", "", path, size, 0, None, str(exc))
        thumb = None
        try:
            with zipfile.ZipFile(path) as zf:
                thumb = zf.read("anchors/anchor_0.png")
        except (KeyError, OSError, zipfile.BadZipFile):
            pass
        return LibraryEntry(path.stem, ident.name, ident.description, ident.subjects,
                            str(ident.model.get("source", "")), str(ident.model.get("fingerprint", "")), path,
                            size, len(ident.anchor_prompts), thumb)

    def list(self) -> list[LibraryEntry]:
        """Every character in the library, sorted by name (unreadable files too, with ``error`` set)."""
        return sorted((self._entry(p) for p in self._files(self.folder)), key=lambda e: (e.name.casefold(), e.id))

    def trash(self) -> list[LibraryEntry]:
        """Every deleted character that can still be restored."""
        return sorted((self._entry(p) for p in self._files(self.trash_folder)),
                      key=lambda e: (e.name.casefold(), e.id))

    def entry(self, entry_id: str) -> LibraryEntry:
        return self._entry(self._path(entry_id))

    def find(self, name_or_id: str) -> LibraryEntry:
        """The character with this id, else the one with this name (case-insensitive)."""
        if isinstance(name_or_id, str) and _ID_RE.match(name_or_id) and (self.folder / f"{name_or_id}{SUFFIX}"
                                                                           ).is_file():
            return self.entry(name_or_id)
        matches = [e for e in self.list() if isinstance(name_or_id, str) and e.name.casefold() ==
                   " ".join(name_or_id.split()).casefold()]
        if not matches:
            raise LibraryError(f"There is no character named or with id {name_or_id!r} in the library.",
                               hint="Use a name or id shown by 'consistory-studio character list'.")
        return matches[0]

    def load(self, entry_id: str) -> "Identity":
        """The identity of a live character (``LibraryError`` when it is missing or damaged)."""
        from engine.identity import IdentityError, read_identity

        path = self._path(entry_id)
        try:
            return read_identity(path)
        except IdentityError as exc:
            raise LibraryError(f"The character {entry_id!r} cannot be read: {exc}") from exc

    def check_model(self, entry_id: str, model: "LoadedModel") -> None:
        """Raise ``LibraryError`` if the character was made with another model than ``model``."""
        from engine.identity import IdentityError
        from engine.identity.identities import check_model

        try:
            check_model(self.load(entry_id), model)
        except IdentityError as exc:
            raise LibraryError(exc.message, hint="Switch back to that model, or re-create the character's anchors "
                               f"on the current model ('consistory-studio character recreate {entry_id}').") from exc

    # Writing ------------------------------------------------------------------------------------------------
    def _store_bytes(self, data: bytes, name: str) -> LibraryEntry:
        self._ensure()
        entry_id = self._new_id(name, data)
        dest = self.folder / f"{entry_id}{SUFFIX}"
        try:
            atomic_write_bytes(dest, data)
        except OSError as exc:
            raise _disk_error("write", dest, exc) from exc
        return self._entry(dest)

    def _identity_bytes(self, identity: "Identity") -> bytes:
        from engine.identity import write_identity

        self._ensure()
        tmp = self.trash_folder / f".writing-{os.getpid()}-{id(identity)}{SUFFIX}"
        try:
            write_identity(identity, tmp)
            return tmp.read_bytes()
        except OSError as exc:
            raise _disk_error("write", tmp, exc) from exc
        finally:
            for p in (tmp, tmp.with_name(tmp.name + ".tmp")):
                try:
                    p.unlink()
                except OSError:
                    pass

    def add(self, identity: "Identity") -> LibraryEntry:
        """Store an identity just made (a clashing name gets a free one)."""
        name = self._free_name(_clean_name(identity.name))
        return self._store_bytes(self._identity_bytes(identity.renamed(name)), name)

    def import_file(self, path: str | Path) -> LibraryEntry:
        """Copy a ``.character`` file into the library after validating it; returns its entry."""
        from engine.identity import IdentityError, read_identity

        path = Path(path)
        if not path.exists():
            raise LibraryError(f"The file {path} does not exist.", hint="Check the path and try again.")
        if not path.is_file():
            raise LibraryError(f"{path} is not a file.", hint="Choose a .character file.")
        try:
            ident = read_identity(path)
            data = path.read_bytes()
        except IdentityError as exc:
            raise LibraryError(f"{path.name} cannot be imported: {exc}") from exc
        except OSError as exc:
            raise _disk_error("read", path, exc) from exc
        for p in self._files(self.folder):
            try:
                if p.stat().st_size == len(data) and p.read_bytes() == data:
                    return self._entry(p)  # the very same file is already there
            except OSError:
                continue
        name = _clean_name(ident.name)
        free = self._free_name(name)
        if free != ident.name:
            return self._store_bytes(self._identity_bytes(ident.renamed(free)), free)
        return self._store_bytes(data, name)

    def export(self, name_or_id: str, dest: str | Path, *, overwrite: bool = False) -> Path:
        """Copy a character's file to ``dest`` (a file path, or a folder: ``<folder>/<slug>.character``)."""
        entry = self.find(name_or_id)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"{slugify(entry.name)}{SUFFIX}"
        if not dest.parent.is_dir():
            raise LibraryError(f"The folder {dest.parent} does not exist.", hint="Create it or choose another place.")
        if dest.exists() and not overwrite:
            raise LibraryError(f"{dest} already exists.", hint="Choose another file name, or pass --force.")
        try:
            atomic_write_bytes(dest, entry.path.read_bytes())
        except OSError as exc:
            raise _disk_error("write", dest, exc) from exc
        return dest

    def rename(self, entry_id: str, new_name: str) -> LibraryEntry:
        """Give a character a new name (its id and file stay)."""
        path = self._path(entry_id)
        name = _clean_name(new_name)
        if name.casefold() in self._names(exclude=entry_id):
            raise LibraryError(f"There is already a character named {name!r} in the library.",
                               hint="Choose another name.")
        data = self._identity_bytes(self.load(entry_id).renamed(name))
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise _disk_error("write", path, exc) from exc
        return self._entry(path)

    def delete(self, entry_id: str) -> LibraryEntry:
        """Move a character to the trash (``restore`` brings it back)."""
        path = self._path(entry_id)
        self._ensure()
        dest = self.trash_folder / path.name
        try:
            os.replace(path, dest)
        except OSError as exc:
            raise _disk_error("move to the trash", path, exc) from exc
        return self._entry(dest)

    def restore(self, entry_id: str) -> LibraryEntry:
        """Bring a character back from the trash (a name taken meanwhile gets a free one)."""
        src = self._path(entry_id, trashed=True)
        dest = self.folder / src.name
        entry = self._entry(src)
        free = self._free_name(entry.name) if entry.error is None else entry.name
        try:
            if free != entry.name:
                atomic_write_bytes(dest, self._identity_bytes(_read(src).renamed(free)))
                src.unlink()
            else:
                os.replace(src, dest)
        except OSError as exc:
            raise _disk_error("restore", src, exc) from exc
        return self._entry(dest)

    def empty_trash(self) -> int:
        """Delete every character in the trash for good; returns how many."""
        n = 0
        for p in self._files(self.trash_folder):
            try:
                p.unlink()
                n += 1
            except OSError as exc:
                raise _disk_error("delete", p, exc) from exc
        return n

    def recreate(self, entry_id: str, model: "LoadedModel", *, steps: int | None = None,
                 size: tuple[int, int] | None = None, on_step: "Callable[[StepInfo], None] | None" = None,
                 should_cancel: Callable[[], bool] | None = None) -> LibraryEntry:
        """Re-create a character's anchors on ``model`` (same prompts, seeds, negative prompt, settings, name and
        description; at ``size``, by default the old size; either rounded up to the model's multiple). The old file
        is kept in the trash as ``<id>-old-<hash>``."""
        from engine.consistory.config import ConsistoryConfig
        from engine.identity.identities import create_identity

        path = self._path(entry_id)
        old = self.load(entry_id)
        multiple = 8 * model.vae_scale_factor
        up = lambda v: max(multiple, -(-v // multiple) * multiple)  # noqa: E731
        width, height = size or (old.width, old.height)
        new = create_identity(
            model, name=old.name, description=old.description, subjects=old.subjects,
            anchor_prompts=old.anchor_prompts, anchor_seeds=old.anchor_seeds,
            config=ConsistoryConfig.from_dict(old.config), width=up(width), height=up(height),
            steps=steps or old.steps, guidance=old.guidance, scheduler=old.scheduler,
            negative_prompt=old.negative_prompt, on_step=on_step,
            should_cancel=should_cancel)
        data = self._identity_bytes(new)
        old_bytes = path.read_bytes()
        backup = self.trash_folder / f"{entry_id}-old-{hashlib.sha256(old_bytes).hexdigest()[:8]}{SUFFIX}"
        try:
            if not backup.exists():
                atomic_write_bytes(backup, old_bytes)
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise _disk_error("write", path, exc) from exc
        return self._entry(path)
