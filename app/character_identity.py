"""A project character's saved identity: make it, store it in the project and the library, or bring one in.

Contract:
- ``save_character_identity(project, folder, character_id, identity, library=None) -> Project`` stores the
  identity in the character library (``app.character_library``; a clashing name gets a free one) and copies the
  very same file into the project as ``characters/<library id>.character`` (the id carries a hash of the file, so
  a re-made identity gets a new path and the character's panels become stale). Returns the project with the
  character's ``identity_file`` set; the caller saves it (or applies it as an undoable edit).
- ``create_character_identity(project, folder, character_id, model, ...) -> Project`` generates the anchors from
  the character's anchor prompts (each completed with the subject words it lacks, as ``app.anchor_jobs`` does),
  seeds and dropout and the project's steps, guidance and scheduler, at ``size`` (default: the model's native
  size) rounded to a multiple of ``8 * model.vae_scale_factor``, then saves it as above. Cancel raises the engine's
  ``Cancelled`` with nothing written.
- ``add_library_character(project, folder, entry_id, library=None) -> Project`` adds a character from the library
  to the project (name, description, subjects, anchors, dropout from the identity; the file copied in).
- ``character_identity(project, folder, character_id)`` reads a character's identity from the project folder.
The engine is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .assets import import_file, resolve_inside
from .character_library import CharacterLibrary, slugify
from .project_codec import validate_project
from .project_model import Character, Project, ProjectError

if TYPE_CHECKING:  # pragma: no cover
    from engine.identity import Identity
    from engine.model_loader import LoadedModel
    from engine.request import StepInfo

__all__ = ["CHARACTERS_DIR", "save_character_identity", "create_character_identity", "character_ready_for_anchors",
           "add_library_character",
           "character_identity", "identity_size"]

CHARACTERS_DIR = "characters"


def _identity_rel(entry_id: str) -> str:
    """Where a library character's identity file lives in a project folder."""
    return f"{CHARACTERS_DIR}/{entry_id}.character"


def _copy_into_project(folder: str | Path, library_path: Path, entry_id: str) -> str:
    """Copy a library file into the project; returns its project-relative path. A file already in the project under
    that name with other bytes (the library entry was renamed or re-created since it was added) is never
    overwritten: a character that uses it would silently draw with the new anchors, and its pictures would not
    show as out of date. The copy then gets a name with its content hash."""
    rel = _identity_rel(entry_id)
    try:
        data = library_path.read_bytes()
        dest = resolve_inside(folder, rel, what="identity file")
        if dest.exists() and not (dest.is_file() and dest.read_bytes() == data):
            rel = f"{CHARACTERS_DIR}/{entry_id}-{hashlib.sha256(data).hexdigest()[:8]}.character"
        return import_file(folder, library_path, rel)
    except OSError as exc:
        raise ProjectError(f"could not copy the character's identity into the project: {exc.strerror or exc}",
                           path=rel, hint="Check that the disk has room and the folder is writable.") from exc


def save_character_identity(project: Project, folder: str | Path, character_id: str, identity: "Identity", *,
                            library: CharacterLibrary | None = None) -> Project:
    character = project.character(character_id)
    entry = (library or CharacterLibrary()).add(identity)
    rel = _copy_into_project(folder, entry.path, entry.id)
    return project.with_character(replace(character, identity_file=rel))


def identity_size(model: "LoadedModel", size: tuple[int, int] | None = None) -> tuple[int, int]:
    """``size`` (default: the model's native size) rounded to the nearest positive multiple of 8 × the VAE scale."""
    multiple = 8 * model.vae_scale_factor
    if size is None:
        native = int(model.pipe.unet.config.sample_size) * model.vae_scale_factor
        size = (native, native)
    return tuple(max(multiple, round(v / multiple) * multiple) for v in size)  # type: ignore[return-value]


def _with_subjects(prompt: str, subjects: tuple[str, ...]) -> str:
    words = set(re.findall(r"[\w'-]+", prompt.lower()))
    missing = [s for s in subjects if s.lower() not in words]
    return f"{prompt}, {' '.join(missing)}" if missing else prompt


def character_ready_for_anchors(project: Project, character_id: str):
    """The character, if it has what anchors need (a subject word and an anchor prompt); else ``ProjectError``."""
    c = project.character(character_id)
    index = project.characters.index(c)
    if not c.subjects:
        raise ProjectError("the character has no subject word", path=f"characters[{index}].subjects",
                           hint="Write the word panels use for it, e.g. “fox”.")
    if not c.anchor_prompts:
        raise ProjectError("the character has no description or anchor prompt",
                           path=f"characters[{index}].description", hint="Describe how the character looks.")
    return c


def create_character_identity(project: Project, folder: str | Path, character_id: str, model: "LoadedModel", *,
                              size: tuple[int, int] | None = None, steps: int | None = None,
                              on_step: "Callable[[StepInfo], None] | None" = None,
                              should_cancel: Callable[[], bool] | None = None,
                              library: CharacterLibrary | None = None) -> Project:
    from engine.consistory.config import ConsistoryConfig
    from engine.identity.identities import create_identity

    c = character_ready_for_anchors(project, character_id)
    width, height = identity_size(model, size)
    gen = project.generation
    identity = create_identity(
        model, name=c.name, description=c.description, subjects=tuple(c.subjects),
        anchor_prompts=tuple(_with_subjects(p, c.subjects) for p in c.anchor_prompts),
        anchor_seeds=tuple(c.anchor_seeds), config=ConsistoryConfig(dropout=c.dropout), width=width, height=height,
        steps=steps or gen.steps, guidance=gen.guidance, scheduler=gen.scheduler, on_step=on_step,
        should_cancel=should_cancel)
    return save_character_identity(project, folder, character_id, identity, library=library)


def _free_character_id(project: Project, base: str) -> str:
    taken = {c.id for c in project.characters}
    cid, n = base, 1
    while cid in taken:
        n += 1
        cid = f"{base}-{n}"
    return cid


def add_library_character(project: Project, folder: str | Path, entry_id: str, *,
                          library: CharacterLibrary | None = None) -> Project:
    """The project with the library character ``entry_id`` added (its identity file copied into the project).
    A character the project's rules refuse (a subject of two words, say, which the engine allows) is refused
    before anything is copied."""
    library = library or CharacterLibrary()
    identity = library.load(entry_id)
    path = library.path(entry_id)

    cid = _free_character_id(project, slugify(identity.name))
    dropout = identity.config.get("dropout", 0.5)
    character = Character(id=cid, name=identity.name, description=identity.description,
                          subjects=tuple(identity.subjects), anchor_prompts=tuple(identity.anchor_prompts),
                          anchor_seeds=tuple(identity.anchor_seeds), identity_file=_identity_rel(entry_id),
                          dropout=float(dropout) if isinstance(dropout, (int, float)) else 0.5)
    added = replace(project, characters=project.characters + (character,))
    try:
        validate_project(added)
    except ProjectError as exc:
        raise ProjectError(f"{identity.name!r} cannot be added to a project: {exc}") from None
    rel = _copy_into_project(folder, path, entry_id)
    return added.with_character(replace(character, identity_file=rel))


def character_identity(project: Project, folder: str | Path, character_id: str) -> "Identity":
    """The identity saved for a character, read from the project folder (``ProjectError`` if it has none)."""
    from engine.identity import read_identity

    c = project.character(character_id)
    if not c.identity_file:
        raise ProjectError(f"the character {c.name!r} has no saved identity",
                           hint="Generate its anchors and save them as its identity first.")
    path = resolve_inside(folder, c.identity_file, what="identity file")
    if not path.is_file():
        raise ProjectError(f"the identity file {c.identity_file} is missing", path=c.identity_file)
    return read_identity(path)
