"""Re-create a saved identity's anchors alone and record their anchor cache (what later panels attend to)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..consistory.config import ConsistoryConfig
from ..request import GenerationSpec, StepCallback
from .anchor_cache import AnchorRecorder
from .identity_file import Identity, IdentityError

if TYPE_CHECKING:  # pragma: no cover
    from ..model_loader import LoadedModel

__all__ = ["anchor_spec", "build_anchor_cache"]


def anchor_spec(identity: Identity) -> GenerationSpec:
    cfg = ConsistoryConfig.from_dict({**identity.config, "anchors": len(identity.anchor_prompts)})
    return GenerationSpec(prompts=identity.anchor_prompts, seeds=identity.anchor_seeds, width=identity.width,
                          height=identity.height, steps=identity.steps, guidance=identity.guidance,
                          scheduler=identity.scheduler, negative_prompt=identity.negative_prompt,
                          subjects=identity.subjects, consistory=cfg)


def build_anchor_cache(model: "LoadedModel", identity: Identity, *, on_step: StepCallback | None = None,
                       should_cancel: Callable[[], bool] | None = None):
    """Run the identity's anchors alone and record their cache. Returns (cache, max pixel drift vs the saved
    anchor images, 0–255)."""
    from ..consistory.pipeline import generate_consistent

    recorder = AnchorRecorder(identity.subjects)
    result = generate_consistent(model, anchor_spec(identity), noise=identity.noise, bank=recorder,
                                 on_step=on_step, should_cancel=should_cancel)
    if recorder.cache is None:  # every part of the method off: the plain loop ran and recorded nothing
        raise IdentityError(f"The character {identity.name!r} has sharing, injection and query blending all off, "
                            "so its anchors cannot guide other pictures.",
                            hint="Make its anchors again with the method on.")
    drift = 0
    for new, old in zip(result.images, identity.anchor_images):
        drift = max(drift, int(np.abs(np.asarray(new, np.int16) - np.asarray(old, np.int16)).max()))
    return recorder.cache, drift
