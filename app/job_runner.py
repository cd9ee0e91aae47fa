"""Run one planned job through the engine and commit its images to the project folder (synchronous).

Contract (used by the CLI on the main thread and by ``app.job_queue``'s worker on its thread):
- ``run_job`` calls ``engine.generate.generate(model, job.spec, on_step=..., should_cancel=...)``. Only after the
  engine returns are files written: each panel's image goes to ``assets/`` (atomic, content-addressed, sidecar
  with the engine's recipe and the panel recipe hash), then the project is updated and saved
  (``app.project_store.update_project``) before ``run_job`` returns, so a finished job's images are on disk and
  referenced in ``project.json`` before the next job starts. Anchor images are not panel images and are not saved.
- A cancel (``engine.errors.Cancelled``) or any error in the engine leaves the folder untouched (no half-written
  file, project unchanged); the exception propagates to the caller.
- An "identity" job (``job.identity_files``) reads those ``.character`` files from the project folder (inside it
  only) and calls ``engine.identity.identities.generate_with_identities`` with the process-wide anchor cache
  store (``anchor_cache_store()``: in memory, plus safetensors files in ``user_dirs.cache_dir()/anchor-cache``).
  A character made with another model raises the engine's ``IdentityError`` before anything is generated.
- A "character" job (``app.anchor_jobs.CharacterJob``) makes a character's identity instead and returns
  ``[identity_file]`` (see ``app.anchor_jobs``); nothing is written to ``project.json``.
- Each panel image of a ConsiStory or identity job gets its subject mask saved as a small PNG asset (RGBA at the
  image's size, transparent where no subject was seen, one colour per subject in ``MASK_COLOURS`` order of the
  job's subject words) and named in the image's sidecar as ``mask_asset``; plain jobs have none.
- Results are merged into the *saved* project (re-read under the folder lock), so edits saved meanwhile are kept;
  ``project`` is used only when the folder has no ``project.json`` yet. The caller applies the same change to its
  in-memory copy with ``apply_results``.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .assets import write_asset, write_image_asset
from .job_plan import Job
from .project_model import Project
from .project_store import update_project

if TYPE_CHECKING:  # pragma: no cover
    from engine.model_loader import LoadedModel
    from engine.request import StepInfo

__all__ = ["run_job", "apply_results", "anchor_cache_store", "read_job_identities", "mask_png", "APP_VERSION",
           "MASK_COLOURS"]

APP_VERSION = "0.1.0"
MASK_COLOURS = ((230, 60, 60), (40, 120, 235), (40, 185, 90), (235, 170, 20), (170, 70, 220), (20, 190, 200))
_STORE: Any = None
_STORE_LOCK = threading.Lock()


def anchor_cache_store() -> Any:
    """The process-wide ``engine.identity.cache_store.AnchorCacheStore``; its disk folder follows
    ``app.user_dirs.cache_dir()`` (read on every call, so a changed ``CONSISTORY_STUDIO_HOME`` is honoured)."""
    global _STORE
    from engine.identity.cache_store import AnchorCacheStore

    from .user_dirs import cache_dir

    with _STORE_LOCK:
        disk = cache_dir() / "anchor-cache"
        if _STORE is None:
            _STORE = AnchorCacheStore(disk_dir=disk)
        elif _STORE.disk_dir != disk:
            _STORE.disk_dir = disk
        return _STORE


def read_job_identities(job: Job, folder: str | Path) -> list[Any]:
    """The identities of an "identity" job, read from the project folder. Raises ``ProjectError`` (missing file,
    path leading out of the folder) or ``engine.identity.IdentityError`` (damaged file)."""
    from engine.identity import read_identity

    from .assets import resolve_inside
    from .project_model import ProjectError

    identities = []
    for cid, rel in zip(job.character_ids, job.identity_files):
        path = resolve_inside(folder, rel, what="identity file")
        if not path.is_file():
            raise ProjectError(f"the identity file of character {cid!r} is missing", path=rel,
                               hint="Save the character's identity again or import it from the library.")
        identities.append(read_identity(path))
    return identities


def apply_results(project: Project, job: Job, asset_ids: list[str] | tuple[str, ...]) -> Project:
    """Reference each new image on its panel (appended to ``alternates``, made ``current``). Panels deleted in the
    meantime are skipped (their images stay in ``assets/``). Idempotent."""
    by_id = dict(zip(job.panel_ids, asset_ids))
    panels = []
    for panel in project.panels:
        asset = by_id.get(panel.id)
        if asset is None:
            panels.append(panel)
            continue
        alternates = panel.alternates if asset in panel.alternates else panel.alternates + (asset,)
        panels.append(replace(panel, alternates=alternates, current=asset))
    return replace(project, panels=tuple(panels))


def mask_png(result: Any, index: int, size: tuple[int, int]) -> bytes | None:
    """The subject-mask overlay of image ``index`` of an engine result as PNG bytes (``None`` without masks)."""
    import io

    import numpy as np
    from PIL import Image

    masks = result.masks
    if masks is None or index >= len(masks) or masks[index] is None:
        return None
    base = masks[index].detach().cpu().numpy().astype(bool)
    per_subject = [base]
    subject_masks = (result.extras or {}).get("subject_masks")
    if subject_masks is not None and subject_masks.shape[1] > index:
        per_subject = [m.reshape(base.shape) for m in subject_masks[:, index].detach().cpu().numpy().astype(bool)]
    rgba = np.zeros(base.shape + (4,), np.uint8)
    for s, m in reversed(list(enumerate(per_subject))):  # the first subject wins where masks overlap
        rgba[m] = (*MASK_COLOURS[s % len(MASK_COLOURS)], 255)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").resize(size, Image.Resampling.NEAREST).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def run_job(job: Job, project: Project, folder: str | Path, model: "LoadedModel",
            on_progress: "Callable[[StepInfo], None] | None" = None,
            should_cancel: Callable[[], bool] | None = None, *, preview_every: int = 0) -> list[str]:
    """Generate ``job`` and commit its panel images; returns their asset ids in ``job.panel_ids`` order."""
    if job.kind == "character":
        from .anchor_jobs import run_character_job

        return run_character_job(job, folder, model, on_progress, should_cancel)  # type: ignore[arg-type]
    if job.kind == "identity":
        from engine.identity.identities import generate_with_identities

        result = generate_with_identities(
            model, prompts=job.spec.prompts, seeds=job.spec.seeds, identities=read_job_identities(job, folder),
            width=job.spec.width, height=job.spec.height, store=anchor_cache_store(), on_step=on_progress,
            should_cancel=should_cancel, preview_every=preview_every)
    else:
        from engine import generate as engine_generate

        result = engine_generate.generate(model, job.spec, on_step=on_progress, should_cancel=should_cancel,
                                          preview_every=preview_every)
    folder = Path(folder)
    asset_ids: list[str] = []
    for panel_id, index, recipe_hash in zip(job.panel_ids, job.image_index, job.recipe_hashes):
        sidecar: dict[str, Any] = {
            "panel_id": panel_id, "panel_recipe_hash": recipe_hash, "image_index": index, "job_id": job.id,
            "prompt": job.spec.prompts[index], "seed": job.spec.seeds[index],
            "job_kind": job.kind, "anchor_count": job.anchor_count, "character_ids": list(job.character_ids),
            "identity_files": list(job.identity_files),
            "app_version": APP_VERSION, "recipe": result.recipe}
        image = result.images[index]
        overlay = mask_png(result, index, image.size)
        if overlay is not None:
            sidecar["mask_asset"] = write_asset(folder, overlay, {
                "kind": "subject_mask", "panel_id": panel_id, "subjects": list(job.spec.subjects),
                "colours": [list(MASK_COLOURS[s % len(MASK_COLOURS)]) for s in range(len(job.spec.subjects))]})
        asset_ids.append(write_image_asset(folder, result.images[index], sidecar))
    update_project(folder, lambda p: apply_results(p, job, asset_ids), fallback=project)
    return asset_ids
