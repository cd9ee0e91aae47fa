"""One call for every generation: plain when ``spec.consistory`` is None (or all parts off), ConsiStory otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .request import GenerationResult, GenerationSpec, StepCallback

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .model_loader import LoadedModel

__all__ = ["generate"]


def generate(model: "LoadedModel", spec: GenerationSpec, *, on_step: StepCallback | None = None,
             should_cancel: Callable[[], bool] | None = None, noise: "torch.Tensor | None" = None,
             preview_every: int = 0) -> GenerationResult:
    """Generate ``spec`` on ``model``. Runs on the caller's thread; raises ``engine.errors.EngineError`` subclasses
    (``Cancelled`` when ``should_cancel()`` turns true, checked at every step boundary)."""
    if spec.consistory is None:
        from .denoise_loop import generate_plain

        return generate_plain(model, spec, on_step=on_step, should_cancel=should_cancel, noise=noise,
                              preview_every=preview_every)
    from .consistory.pipeline import generate_consistent

    return generate_consistent(model, spec, on_step=on_step, should_cancel=should_cancel, noise=noise,
                               preview_every=preview_every)
