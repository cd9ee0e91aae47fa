"""Create identities, keep their anchor caches, and generate new panels for saved characters.

``create_identity`` generates a character's anchors as a consistent set; ``identity_from_set`` keeps the anchors
of a set that was just generated. ``generate_with_identities`` makes new panels (any number, any size) that attend
to one or more saved characters' anchors through their anchor caches (``AnchorCacheStore``: built once per identity
and model, kept in memory, optionally on disk).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import torch

from ..consistory.config import ConsistoryConfig
from ..errors import InvalidRequestError
from ..request import GenerationResult, GenerationSpec, StepCallback
from .anchor_build import anchor_spec, build_anchor_cache
from .anchor_cache import IdentityBank
from .cache_store import AnchorCacheStore
from .identity_file import Identity, IdentityError

if TYPE_CHECKING:  # pragma: no cover
    from ..model_loader import LoadedModel

__all__ = ["create_identity", "identity_from_set", "check_model", "anchor_spec", "build_anchor_cache",
           "generate_with_identities"]


def _versions() -> dict[str, str]:
    import diffusers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__}


def identity_from_set(model: "LoadedModel", spec: GenerationSpec, result: GenerationResult, *, name: str,
                      description: str = "") -> Identity:
    """The anchors (first ``spec.consistory.anchors`` images) of a consistent set just generated."""
    if spec.consistory is None or spec.consistory.anchors < 1:
        raise InvalidRequestError("Only a consistent set with anchors can be saved as a character.")
    if not spec.consistory.enabled:
        raise InvalidRequestError("A set drawn with sharing, injection and query blending all off has no anchors "
                                  "to save as a character.", hint="Turn at least one of them on.")
    a = spec.consistory.anchors
    noise = result.extras.get("noise")
    return Identity(
        name=name, description=description, subjects=tuple(spec.subjects), anchor_prompts=tuple(spec.prompts[:a]),
        anchor_seeds=tuple(spec.seeds[:a]), config=spec.consistory.to_dict(), scheduler=spec.scheduler,
        steps=spec.steps, width=spec.width, height=spec.height, guidance=float(spec.guidance),
        model=model.describe(), versions=_versions(), anchor_images=tuple(result.images[:a]),
        noise=None if noise is None else noise[:a].detach().to("cpu", torch.float32),
        negative_prompt=spec.negative_prompt)


def create_identity(model: "LoadedModel", *, name: str, description: str, subjects: tuple[str, ...],
                    anchor_prompts: tuple[str, ...], anchor_seeds: tuple[int, ...],
                    config: ConsistoryConfig | None = None, width: int = 1024, height: int = 1024, steps: int = 50,
                    guidance: float = 5.0, scheduler: str = "ddim", negative_prompt: str = "",
                    on_step: StepCallback | None = None,
                    should_cancel: Callable[[], bool] | None = None) -> Identity:
    cfg = dataclasses.replace(config or ConsistoryConfig(), anchors=len(anchor_prompts))
    spec = GenerationSpec(prompts=tuple(anchor_prompts), seeds=tuple(anchor_seeds), width=width, height=height,
                          steps=steps, guidance=guidance, scheduler=scheduler, subjects=tuple(subjects),
                          negative_prompt=negative_prompt, consistory=cfg)
    from ..consistory.pipeline import generate_consistent

    result = generate_consistent(model, spec, on_step=on_step, should_cancel=should_cancel)
    return identity_from_set(model, spec, result, name=name, description=description)


def check_model(identity: Identity, model: "LoadedModel") -> None:
    made_with = identity.model.get("fingerprint")
    if made_with != model.fingerprint:
        raise IdentityError(
            f"The character '{identity.name}' was made with another model ({identity.model.get('source', '?')}, "
            f"fingerprint {made_with}); the current model is {model.source} ({model.fingerprint}).",
            hint="Switch back to that model, or re-create the character's anchors on the current model.")


def generate_with_identities(model: "LoadedModel", *, prompts: tuple[str, ...], seeds: tuple[int, ...],
                             identities: list[Identity], width: int | None = None, height: int | None = None,
                             store: AnchorCacheStore | None = None, negative_prompt: str | None = None,
                             on_step: StepCallback | None = None, preview_every: int = 0,
                             should_cancel: Callable[[], bool] | None = None) -> GenerationResult:
    """New panels attending to saved characters. Every prompt must contain every character's subject word(s).

    ``negative_prompt`` (default: the first identity's) only conditions the panels; the anchors replay from their
    cache as they were made. Attention dropout is the anchors' own (it selects which anchor patches are shared).
    """
    from ..consistory.pipeline import generate_consistent

    if not identities:
        raise InvalidRequestError("Choose at least one saved character.")
    first = identities[0]
    for ident in identities:
        check_model(ident, model)
        if (ident.steps, ident.scheduler, ident.guidance) != (first.steps, first.scheduler, first.guidance):
            raise InvalidRequestError(
                f"The characters '{first.name}' and '{ident.name}' were made with different steps, scheduler or "
                "guidance and cannot share a panel.", hint="Re-create one of them with the other's settings.")
    subjects = tuple(dict.fromkeys(s for ident in identities for s in ident.subjects))
    cfg = ConsistoryConfig.from_dict({**first.config, "anchors": 0})
    spec = GenerationSpec(prompts=tuple(prompts), seeds=tuple(seeds), width=width or first.width,
                          height=height or first.height, steps=first.steps, guidance=first.guidance,
                          scheduler=first.scheduler, subjects=subjects,
                          negative_prompt=first.negative_prompt if negative_prompt is None else negative_prompt,
                          consistory=cfg)
    spec.validate(model.vae_scale_factor)
    from ..consistory.subject_tokens import subject_token_positions

    subject_token_positions(model.pipe.tokenizer, list(spec.prompts), list(subjects))  # refused before any anchor
    store = store or AnchorCacheStore.default()
    anchor_steps = None if on_step is None else (  # an anchor cache built first shows as its own phase
        lambda info: on_step(dataclasses.replace(info, preview=None, phase="anchors")))
    caches = [store.get(model, ident, should_cancel=should_cancel, on_step=anchor_steps) for ident in identities]
    bank = IdentityBank(caches, subjects)
    result = generate_consistent(model, spec, bank=bank, on_step=on_step, should_cancel=should_cancel,
                                 preview_every=preview_every)
    result.recipe["identities"] = [{"name": i.name, "fingerprint": store.key(model, i)} for i in identities]
    return result
