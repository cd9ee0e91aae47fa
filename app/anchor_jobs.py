"""A character's anchors: the queue job that makes its identity, and the character sheet read back from it.

Contract:
- There is one way to make anchors: a ``CharacterJob`` run by the ordinary worker (``app.job_queue``, through
  ``app.job_runner.run_job``), which calls ``app.character_identity.create_character_identity`` on the worker
  thread: the anchors are generated as one consistent set from the character's anchor prompts and seeds (as it
  was when the job was planned: ``job.project`` is that snapshot), the identity goes into the character library
  and is copied into the project as ``characters/<library id>.character``. ``run_job`` returns
  ``[identity_file]`` (project-relative); the GUI then sets the character's ``identity_file``. The project file
  itself is not written by the job. A cancel raises ``engine.errors.Cancelled`` with nothing written.
- ``plan_character_job(project, character_id, size, steps)`` checks the character (subject word, anchor prompts)
  and raises ``ProjectError`` with one sentence when it cannot be drawn.
- ``read_sheet(folder, identity_file) -> CharacterSheet | None`` reads a saved identity's anchor PNGs and recipe
  straight from the zip (no torch), for the character sheet; ``None`` when the file is missing or unreadable.
  ``sheet_matches(sheet, character)`` tells whether the identity still shows the character as it is now.
The engine is imported inside functions only.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .project_model import Character, Project, ProjectError

if TYPE_CHECKING:  # pragma: no cover
    from engine.model_loader import LoadedModel
    from engine.request import StepInfo

__all__ = ["CharacterJob", "CharacterSheet", "plan_character_job", "run_character_job", "read_sheet",
           "sheet_matches", "anchor_prompt"]

_MAX_PNG = 32 * 1024 * 1024


@dataclass(frozen=True)
class CharacterJob:
    """Make (or re-make) a character's identity. Shaped like ``app.job_plan.Job`` where the queue looks."""

    id: str
    character_id: str
    project: Project
    size: tuple[int, int]
    steps: int
    kind: str = "character"
    panel_ids: tuple[str, ...] = ()
    image_index: tuple[int, ...] = (0,)

    @property
    def character(self) -> Character:
        return self.project.character(self.character_id)

    @property
    def title(self) -> str:
        return f"Anchors of {self.character.name or 'character'}"


@dataclass(frozen=True)
class CharacterSheet:
    """What a saved identity shows: its anchor pictures (PNG bytes) and the recipe they were made from."""

    name: str
    subjects: tuple[str, ...]
    anchor_prompts: tuple[str, ...]
    anchor_seeds: tuple[int, ...]
    anchor_pngs: tuple[bytes, ...]
    width: int
    height: int
    steps: int
    model_source: str
    model_fingerprint: str


def anchor_prompt(prompt: str, subjects: tuple[str, ...]) -> str:
    """An anchor prompt completed with the subject words it lacks (as ``create_character_identity`` does)."""
    from .character_identity import _with_subjects

    return _with_subjects(prompt, subjects)


def plan_character_job(project: Project, character_id: str, *, size: tuple[int, int], steps: int) -> CharacterJob:
    from .character_identity import character_ready_for_anchors

    character_ready_for_anchors(project, character_id)
    return CharacterJob(id=f"job-{uuid.uuid4().hex[:12]}", character_id=character_id, project=project,
                        size=size, steps=steps)


def run_character_job(job: CharacterJob, folder: str | Path, model: "LoadedModel",
                      on_step: "Callable[[StepInfo], None] | None" = None,
                      should_cancel: Callable[[], bool] | None = None) -> list[str]:
    from .character_identity import create_character_identity

    project = create_character_identity(job.project, folder, job.character_id, model, size=job.size,
                                        steps=job.steps, on_step=on_step, should_cancel=should_cancel)
    return [project.character(job.character_id).identity_file or ""]


def read_sheet(folder: str | Path | None, identity_file: str | None) -> CharacterSheet | None:
    if folder is None or not identity_file:
        return None
    from .assets import resolve_inside

    try:
        path = resolve_inside(folder, identity_file, what="identity file")
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("identity.json").decode("utf-8"))
            pngs = []
            for k in range(len(meta["anchor_prompts"])):
                info = zf.getinfo(f"anchors/anchor_{k}.png")
                pngs.append(zf.read(info) if info.file_size <= _MAX_PNG else b"")
        model = meta.get("model") or {}
        return CharacterSheet(
            name=str(meta.get("name", "")), subjects=tuple(meta["subjects"]),
            anchor_prompts=tuple(meta["anchor_prompts"]), anchor_seeds=tuple(int(s) for s in meta["anchor_seeds"]),
            anchor_pngs=tuple(pngs), width=int(meta["width"]), height=int(meta["height"]),
            steps=int(meta["steps"]), model_source=str(model.get("source", "")),
            model_fingerprint=str(model.get("fingerprint", "")))
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, ProjectError):
        return None


def sheet_matches(sheet: CharacterSheet, character: Character) -> bool:
    """True when the identity was made from the character's current subjects, anchor prompts and seeds."""
    prompts = tuple(anchor_prompt(p, character.subjects) for p in character.anchor_prompts)
    return (sheet.subjects, sheet.anchor_prompts, sheet.anchor_seeds) == \
        (tuple(character.subjects), prompts, tuple(character.anchor_seeds))
