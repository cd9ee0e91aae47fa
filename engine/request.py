"""What a generation needs (``GenerationSpec``) and what it returns (``GenerationResult``): plain data only.

A spec is built and validated before any model work (``validate``), so a bad request fails at the door with one
sentence naming the field, never halfway through a run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import InvalidRequestError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .consistory.config import ConsistoryConfig

__all__ = ["GenerationSpec", "GenerationResult", "StepInfo", "StepCallback", "SCHEDULERS"]

SCHEDULERS = ("ddim", "euler")


@dataclass(frozen=True)
class GenerationSpec:
    """One batch of images generated together.

    ``prompts[i]`` is drawn from its own generator seeded with ``seeds[i]`` (CPU generator: portable noise).
    ``consistory`` is ``None`` for plain generation; with a config, the first ``consistory.anchors`` prompts are the
    anchors and every prompt must contain each of ``subjects``' words.
    """

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    width: int = 1024
    height: int = 1024
    steps: int = 50
    guidance: float = 5.0
    scheduler: str = "ddim"
    negative_prompt: str = ""
    subjects: tuple[str, ...] = ()
    consistory: "ConsistoryConfig | None" = None

    def validate(self, vae_scale_factor: int = 8) -> None:
        """Raise ``InvalidRequestError`` naming the bad field. ``vae_scale_factor`` is the loaded model's."""
        if not self.prompts:
            raise InvalidRequestError("There is nothing to generate: the request has no prompts.")
        for i, p in enumerate(self.prompts):
            if not isinstance(p, str) or not p.strip():
                raise InvalidRequestError(f"Prompt {i + 1} is empty.", hint="Write what the picture should show.")
        if len(self.seeds) != len(self.prompts):
            raise InvalidRequestError(
                f"There are {len(self.prompts)} prompts but {len(self.seeds)} seeds; give one seed per prompt.")
        for s in self.seeds:
            if not isinstance(s, int) or s < 0 or s >= 2**63:
                raise InvalidRequestError(f"The seed {s!r} is not a whole number between 0 and 2^63-1.")
        multiple = 8 * vae_scale_factor
        for name, v in (("width", self.width), ("height", self.height)):
            if not isinstance(v, int) or v <= 0 or v % multiple:
                raise InvalidRequestError(
                    f"The {name} {v!r} is not a positive multiple of {multiple} pixels.",
                    hint=f"Use for example {max(multiple, round(v / multiple) * multiple if isinstance(v, (int, float)) and v > 0 else multiple)}.")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise InvalidRequestError(f"The number of steps {self.steps!r} must be between 1 and 1000.")
        if not isinstance(self.guidance, (int, float)) or not math.isfinite(self.guidance) or self.guidance < 0:
            raise InvalidRequestError(f"The guidance scale {self.guidance!r} must be a number ≥ 0.")
        if self.scheduler not in SCHEDULERS:
            raise InvalidRequestError(
                f"Unknown scheduler {self.scheduler!r}.", hint=f"Choose one of: {', '.join(SCHEDULERS)}.")
        if self.consistory is not None:
            self.consistory.validate(n_images=len(self.prompts))
            if not self.subjects:
                raise InvalidRequestError(
                    "A consistent set needs at least one subject word (for example 'fox').")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompts"] = list(self.prompts)
        d["seeds"] = list(self.seeds)
        d["subjects"] = list(self.subjects)
        d["consistory"] = None if self.consistory is None else self.consistory.to_dict()
        return d


@dataclass(frozen=True)
class StepInfo:
    """Progress of a run: ``step`` of ``total`` UNet steps done (1-based), with a cheap RGB preview of image 0..N-1."""

    step: int
    total: int
    preview: "list[Image.Image] | None" = None
    phase: str = "denoise"


StepCallback = Callable[[StepInfo], None]


@dataclass
class GenerationResult:
    """Images in prompt order, the recipe that made them, and (ConsiStory) the subject masks per image."""

    images: "list[Image.Image]"
    recipe: dict[str, Any]
    masks: "list[Any] | None" = None  # per image: bool tensor (H_lat/2, W_lat/2) of the fine-resolution subject mask
    extras: dict[str, Any] = field(default_factory=dict)
