"""Anchor pictures of a character: the job that draws them, and finding the drawn ones again on disk.

Contract:
- ``plan_anchor_job(project, character_id, size, steps) -> Job``: a ConsiStory job whose images are all anchors
  (``anchors == len(prompts)``: the anchors share one identity), using the character's anchor prompts and seeds
  exactly as ``app.job_plan.anchor_set`` gives them to panel jobs, so the candidates a user picks are the anchors
  the panels are drawn with. It runs through the ordinary worker (``app.job_runner.run_job``): its
  ``panel_ids`` are ``anchor:<character id>:<i>`` pseudo-ids, so the runner writes each anchor as an immutable
  asset (sidecar with prompt, seed, size) and ``apply_results`` ignores them (no such panel).
- ``find_anchor_assets(folder, character)``: for each anchor ``i``, the newest asset whose sidecar names an
  anchor of this character with anchor ``i``'s prompt and seed, else ``None``. Nothing is stored in the project file:
  re-rolling a seed or editing a prompt makes the old picture stop matching.
- ``is_anchor_job(job)``, ``anchor_character(job)``.
The engine is imported inside functions only.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from .job_plan import Job
from .project_model import Character, Project, ProjectError

__all__ = ["ANCHOR_PREFIX", "plan_anchor_job", "find_anchor_assets", "is_anchor_job", "anchor_character"]

ANCHOR_PREFIX = "anchor:"


def plan_anchor_job(project: Project, character_id: str, *, size: tuple[int, int], steps: int) -> Job:
    from engine.consistory.config import ConsistoryConfig
    from engine.request import GenerationSpec

    c = project.character(character_id)
    index = project.characters.index(c)
    if not c.subjects:
        raise ProjectError("the character has no subject word", path=f"characters[{index}].subjects",
                           hint="Write the word panels use for it, e.g. “fox”.")
    if not c.anchor_prompts:
        raise ProjectError("the character has no description or anchor prompt",
                           path=f"characters[{index}].description", hint="Describe how the character looks.")
    prompts = tuple(_with_subject(p, c) for p in c.anchor_prompts)
    gen = project.generation
    spec = GenerationSpec(prompts=prompts, seeds=tuple(c.anchor_seeds), width=size[0], height=size[1], steps=steps,
                          guidance=gen.guidance, scheduler=gen.scheduler, subjects=tuple(c.subjects),
                          consistory=ConsistoryConfig(anchors=len(prompts), dropout=c.dropout))
    n = len(prompts)
    return Job(id=f"job-{uuid.uuid4().hex[:12]}", kind="consistent",
               panel_ids=tuple(f"{ANCHOR_PREFIX}{c.id}:{i}" for i in range(n)), character_ids=(c.id,),
               spec=spec, image_index=tuple(range(n)), recipe_hashes=tuple("" for _ in range(n)), anchor_count=n)


def _with_subject(prompt: str, c: Character) -> str:
    missing = [s for s in c.subjects if s.lower() not in prompt.lower()]
    return f"{prompt}, {' '.join(missing)}" if missing else prompt


def is_anchor_job(job: Job) -> bool:
    return bool(job.panel_ids) and all(p.startswith(ANCHOR_PREFIX) for p in job.panel_ids)


def anchor_character(job: Job) -> str:
    return job.panel_ids[0][len(ANCHOR_PREFIX):].rsplit(":", 1)[0]


def find_anchor_assets(folder: str | Path | None, character: Character) -> tuple[str | None, ...]:
    n = len(character.anchor_prompts)
    found: list[tuple[float, str] | None] = [None] * n
    if folder is None:
        return tuple(None for _ in range(n))
    adir = Path(folder) / "assets"
    prefix = f"{ANCHOR_PREFIX}{character.id}:"
    wanted: dict[tuple[str, int], list[int]] = {}
    for i, (prompt, seed) in enumerate(zip(character.anchor_prompts, character.anchor_seeds)):
        wanted.setdefault((_with_subject(prompt, character), seed), []).append(i)
    for side in adir.glob("*.json") if adir.is_dir() else ():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            pid = str(meta.get("panel_id", ""))
            if not pid.startswith(prefix):
                continue
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        key = (meta.get("prompt"), meta.get("seed"))
        if key not in wanted or not (adir / f"{side.stem}.png").is_file():
            continue
        stamp = side.stat().st_mtime
        for i in wanted[key]:
            if found[i] is None or stamp > found[i][0]:
                found[i] = (stamp, side.stem)
    return tuple(f[1] if f else None for f in found)
