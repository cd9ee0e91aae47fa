"""From a project to the list of generations it needs (``plan_jobs``): which panels, grouped how, with what spec.

Contract:
- A panel needs generating when it has no ``current`` image (missing) or, with ``only_missing=False``, when the
  recipe of its current image no longer matches the panel (stale: the ``panel_recipe_hash`` stored in the
  image's sidecar differs from ``panel_recipe_hash(...)`` now; needs ``folder``). ``panel_ids`` forces a list.
- Panels with characters become ConsiStory jobs. All panels showing the same *set* of characters share one anchor
  set (the set's anchor prompts and seeds, identical in every batch, so every batch renders the same anchors).
  A batch is ``prompts = anchor prompts + panel prompts`` with ``ConsistoryConfig(anchors=len(anchor prompts))``
  and ``subjects`` = the characters' subject words; ``Job.image_index`` says which result image belongs to which
  panel (anchors are not panels). Batches hold at most ``max_batch`` images, anchors included.
- Panels whose characters ALL have an ``identity_file`` (a saved identity copied into the project) become
  "identity" jobs: no anchors in the batch (``anchor_count == 0``, ``image_index`` = 0..n-1); the runner reads
  ``Job.identity_files`` from the project folder and draws the panels against those identities' anchor caches.
  Their size is the panel's; steps, guidance, scheduler, dropout and negative prompt come from the identities
  (``spec`` carries the panel prompts, seeds and size; its other settings are nominal). Batches are grouped by
  character set and size. The recipe of such a panel names its identity files (whose names carry a content
  hash, see ``app.character_identity``), so a re-created identity makes its panels stale.
- Panels without characters become plain jobs. A batch shares size, negative prompt and (ConsiStory) dropout,
  since a ``GenerationSpec`` has one of each.
- A panel's prompt is its style, then its text; a character whose subject word is not in the text gets its
  description appended (the engine needs the word in every prompt of a consistent set).
The engine is imported inside functions only (``engine.request`` is light: no torch).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .project_model import Character, Panel, Project, ProjectError

if TYPE_CHECKING:  # pragma: no cover
    from engine.request import GenerationSpec

__all__ = ["Job", "plan_jobs", "panel_prompt", "anchor_set", "uses_identities", "panel_recipe", "panel_recipe_hash",
           "stale_panels", "max_batch_for_memory"]

GIB = 1024**3


@dataclass(frozen=True)
class Job:
    """One engine call. ``spec.prompts[image_index[k]]`` is panel ``panel_ids[k]``'s prompt; the first
    ``anchor_count`` images are anchors (not saved as panel images)."""

    id: str
    kind: str  # "consistent", "identity" or "plain"
    panel_ids: tuple[str, ...]
    character_ids: tuple[str, ...]
    spec: "GenerationSpec"
    image_index: tuple[int, ...]
    recipe_hashes: tuple[str, ...]
    anchor_count: int = 0
    identity_files: tuple[str, ...] = ()  # "identity" jobs: project-relative .character files, character order

    @property
    def title(self) -> str:
        n = len(self.panel_ids)
        return f"{n} panel{'s' if n != 1 else ''}: {', '.join(self.panel_ids)}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.lower()))


def panel_prompt(project: Project, panel: Panel) -> str:
    """Style, then text, then the description of any character whose subject word the text lacks."""
    prompt = ", ".join(p.strip() for p in (panel.style, panel.text) if p.strip())
    for cid in panel.character_ids:
        c = project.character(cid)
        if not all(s.lower() in _words(prompt) for s in c.subjects):
            extra = c.description.strip() if all(s.lower() in _words(c.description) for s in c.subjects) \
                else " ".join(c.subjects)
            prompt = f"{prompt}, {extra}" if prompt else extra
    return prompt


def anchor_set(characters: tuple[Character, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(anchor prompts, anchor seeds) of a character set. One character: its own. Several: anchor ``i`` joins
    each character's anchor prompt ``i`` (cycling) with " and ", its seed hashes their seeds ``i``."""
    if len(characters) == 1:
        return characters[0].anchor_prompts, characters[0].anchor_seeds
    n = max(len(c.anchor_prompts) for c in characters)
    prompts, seeds = [], []
    for i in range(n):
        prompts.append(" and ".join(c.anchor_prompts[i % len(c.anchor_prompts)] for c in characters))
        key = "|".join(f"{c.id}:{c.anchor_seeds[i % len(c.anchor_seeds)]}" for c in characters)
        seeds.append(int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big"))
    return tuple(prompts), tuple(seeds)


def _characters(project: Project, panel: Panel) -> tuple[Character, ...]:
    """The panel's characters in project order (so {bo, mira} and {mira, bo} are one set)."""
    ids = set(panel.character_ids)
    return tuple(c for c in project.characters if c.id in ids)


def uses_identities(chars: tuple[Character, ...]) -> bool:
    """True when a panel with these characters is drawn against saved identities (every one has a file)."""
    return bool(chars) and all(c.identity_file for c in chars)


def _dropout(panel: Panel, chars: tuple[Character, ...]) -> float:
    return panel.dropout if panel.dropout is not None else min(c.dropout for c in chars)


def panel_recipe(project: Project, panel: Panel, *, size: tuple[int, int] | None = None, steps: int | None = None,
                 max_anchors: int | None = None) -> dict[str, Any]:
    """Everything that decides the panel's image (what the stale check compares)."""
    chars = _characters(project, panel)
    width, height = size or (panel.width, panel.height)
    if uses_identities(chars):
        return {"prompt": panel_prompt(project, panel), "seed": panel.seed, "width": width, "height": height,
                "model_source": project.model_source, "identity_files": [c.identity_file for c in chars]}
    recipe: dict[str, Any] = {
        "prompt": panel_prompt(project, panel), "negative_prompt": panel.negative_prompt, "seed": panel.seed,
        "width": width, "height": height, "steps": steps or project.generation.steps,
        "guidance": project.generation.guidance, "scheduler": project.generation.scheduler,
        "model_source": project.model_source, "anchors": None}
    if chars:
        prompts, seeds = anchor_set(chars)
        if max_anchors is not None:
            prompts, seeds = prompts[:max_anchors], seeds[:max_anchors]
        recipe.update(anchors={"prompts": list(prompts), "seeds": list(seeds)},
                      subjects=[s for c in chars for s in c.subjects], dropout=_dropout(panel, chars))
    return recipe


def panel_recipe_hash(project: Project, panel: Panel, **kwargs: Any) -> str:
    data = json.dumps(panel_recipe(project, panel, **kwargs), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def stale_panels(project: Project, folder: str | Path, *, size: tuple[int, int] | None = None,
                 steps: int | None = None, max_batch: int | None = None) -> tuple[str, ...]:
    """Panels whose current image was made from another recipe (or whose sidecar is missing/unreadable).
    ``max_batch``: the batch the jobs will have, which caps a character's anchors at ``max_batch - 1`` as
    ``plan_jobs`` does (without it, a character with more anchors than fit would always read as out of date)."""
    from .assets import read_sidecar

    cap = max(1, max_batch - 1) if max_batch is not None else None
    out = []
    for panel in project.panels:
        if panel.current is None:
            continue
        side = read_sidecar(folder, panel.current) or {}
        if side.get("panel_recipe_hash") != panel_recipe_hash(project, panel, size=size, steps=steps,
                                                              max_anchors=cap):
            out.append(panel.id)
    return tuple(out)


def max_batch_for_memory(device_free_bytes: int, width: int, height: int, *, consistory: bool = True) -> int:
    """How many images one batch may hold, from the device memory free after the model is loaded.

    Estimate (SDXL, fp16, per image, scaled by pixel count from 1024²): 1.8 GiB for plain generation (UNet
    activations with classifier-free guidance at 1024²) and 2.5 GiB with ConsiStory (the 1.3× memory target over
    plain, for the shared-attention keys/values and stored features), plus 1.5 GiB kept free for the VAE decode
    and allocator fragmentation. Deliberately generous: an out-of-memory error costs a whole batch. At least 1,
    at most 16.
    """
    per_image = (2.5 if consistory else 1.8) * GIB * (width * height) / (1024 * 1024)
    usable = device_free_bytes - 1.5 * GIB
    return max(1, min(16, int(usable // per_image) if usable > 0 else 1))


def _job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def _chunks(items: list[Panel], size: int) -> Iterable[list[Panel]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def plan_jobs(project: Project, *, max_batch: int, only_missing: bool = True, folder: str | Path | None = None,
              panel_ids: Iterable[str] | None = None, size: tuple[int, int] | None = None,
              steps: int | None = None) -> list["Job"]:
    """The jobs that bring the chosen panels up to date, in project panel order. ``size``/``steps`` override
    every panel's size and the step count (e.g. tiny models in headless renders). Raises ``ProjectError``."""
    from engine.consistory.config import ConsistoryConfig
    from engine.request import GenerationSpec

    if not isinstance(max_batch, int) or max_batch < 1:
        raise ProjectError(f"The batch size must be at least 1, got {max_batch!r}.")
    if panel_ids is not None:
        wanted = list(dict.fromkeys(panel_ids))
        for pid in wanted:
            project.panel(pid)
        chosen = [p for p in project.panels if p.id in set(wanted)]
    else:
        stale: set[str] = set()
        if not only_missing:
            if folder is None:
                raise ProjectError("Finding out-of-date panels needs the project folder.")
            stale = set(stale_panels(project, folder, size=size, steps=steps, max_batch=max_batch))
        chosen = [p for p in project.panels if p.current is None or p.id in stale]
    for panel in chosen:
        if not panel_prompt(project, panel).strip():
            i = project.panels.index(panel)
            raise ProjectError("the panel has no text to generate from", path=f"panels[{i}].text",
                               hint="Write what the panel shows.")
    groups: dict[tuple, list[Panel]] = {}
    for panel in chosen:
        chars = _characters(project, panel)
        w, h = size or (panel.width, panel.height)
        if uses_identities(chars):  # the identities decide negative prompt and dropout
            key = (True, tuple(c.id for c in chars), w, h, "", None)
        else:
            key = (False, tuple(c.id for c in chars), w, h, panel.negative_prompt,
                   _dropout(panel, chars) if chars else None)
        groups.setdefault(key, []).append(panel)
    gen = project.generation
    jobs: list[Job] = []
    for (by_identity, char_ids, w, h, negative, dropout), panels in groups.items():
        common = dict(width=w, height=h, steps=steps or gen.steps, guidance=gen.guidance, scheduler=gen.scheduler,
                      negative_prompt=negative)
        if not char_ids:
            for chunk in _chunks(panels, max_batch):
                jobs.append(Job(
                    id=_job_id(), kind="plain", panel_ids=tuple(p.id for p in chunk), character_ids=(),
                    spec=GenerationSpec(prompts=tuple(panel_prompt(project, p) for p in chunk),
                                        seeds=tuple(p.seed for p in chunk), **common),
                    image_index=tuple(range(len(chunk))),
                    recipe_hashes=tuple(panel_recipe_hash(project, p, size=size, steps=steps) for p in chunk)))
            continue
        chars = tuple(project.character(c) for c in char_ids)
        subjects = tuple(dict.fromkeys(s for c in chars for s in c.subjects))
        if by_identity:
            for chunk in _chunks(panels, max_batch):
                jobs.append(Job(
                    id=_job_id(), kind="identity", panel_ids=tuple(p.id for p in chunk), character_ids=char_ids,
                    spec=GenerationSpec(prompts=tuple(panel_prompt(project, p) for p in chunk),
                                        seeds=tuple(p.seed for p in chunk), subjects=subjects,
                                        consistory=ConsistoryConfig(anchors=0), **common),
                    image_index=tuple(range(len(chunk))),
                    recipe_hashes=tuple(panel_recipe_hash(project, p, size=size, steps=steps) for p in chunk),
                    identity_files=tuple(c.identity_file or "" for c in chars)))
            continue
        if max_batch < 2:
            raise ProjectError("A panel with characters needs room for at least one anchor and the panel in one "
                               "batch (2 images), but the batch size is 1.",
                               hint="Free GPU memory, use smaller panels, or turn on CPU offload.")
        a_prompts, a_seeds = anchor_set(chars)
        n_anchors = min(len(a_prompts), max_batch - 1)
        a_prompts, a_seeds = a_prompts[:n_anchors], a_seeds[:n_anchors]
        config = ConsistoryConfig(anchors=n_anchors, dropout=dropout)
        for chunk in _chunks(panels, max_batch - n_anchors):
            jobs.append(Job(
                id=_job_id(), kind="consistent", panel_ids=tuple(p.id for p in chunk), character_ids=char_ids,
                spec=GenerationSpec(prompts=a_prompts + tuple(panel_prompt(project, p) for p in chunk),
                                    seeds=a_seeds + tuple(p.seed for p in chunk), subjects=subjects,
                                    consistory=config, **common),
                image_index=tuple(range(n_anchors, n_anchors + len(chunk))),
                recipe_hashes=tuple(panel_recipe_hash(project, p, size=size, steps=steps, max_anchors=n_anchors)
                                    for p in chunk),
                anchor_count=n_anchors))
    order = {p.id: i for i, p in enumerate(project.panels)}
    jobs.sort(key=lambda j: order[j.panel_ids[0]])
    return jobs
