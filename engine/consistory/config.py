"""ConsiStory settings: one dataclass with the method's defaults, every part switchable for ablations.

Step ranges are fractions of the run so they scale with the step count: with 50 steps they give the reference
schedule (query blending on steps 1-5, feature injection on steps 5-16, DIFT at t = 261 = step 36).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InvalidRequestError

__all__ = ["ConsistoryConfig"]


@dataclass(frozen=True)
class ConsistoryConfig:
    anchors: int = 2                 # 0: every anchor comes from saved identities (see engine.identity)
    share: bool = True               # subject-driven shared self-attention (SDSA)
    dropout: float = 0.5             # attention dropout on other images' subject patches
    query_blend: bool = True         # vanilla-query blending on the first steps
    nu_start: float = 0.9            # ν falls linearly from nu_start toward nu_floor over the whole run ...
    nu_floor: float = 0.1
    query_blend_until: float = 0.1   # ... and blending is applied on steps ≤ floor(steps * this) (0..5 of 50)
    inject: bool = True              # correspondence-based feature injection (run 2)
    inject_alpha: float = 0.8
    inject_start: float = 0.1        # injection on steps floor(steps*start) .. floor(steps*end) inclusive (5..16 of 50)
    inject_end: float = 1 / 3
    dift_timestep: int = 261         # DIFT features at the first step whose timestep ≤ this
    mask_window: int = 20            # steps of cross-attention averaged for the masks
    freeu: bool | None = None        # None: on for SDXL, off for SD 1.x
    freeu_params: tuple[float, float, float, float] = (0.6, 0.4, 1.1, 1.2)  # s1, s2, b1, b2
    masks: bool = True               # subject masks from cross-attention; off = share all patches

    def validate(self, n_images: int) -> None:
        if not isinstance(self.anchors, int) or self.anchors < 0:
            raise InvalidRequestError(f"The number of anchors {self.anchors!r} must be a whole number ≥ 0.")
        if self.anchors > n_images:
            raise InvalidRequestError(
                f"The set has {n_images} images but asks for {self.anchors} anchors; use at most {n_images}.")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidRequestError(f"The attention dropout {self.dropout!r} must be in [0, 1).")
        if not 0.0 <= self.inject_alpha <= 1.0:
            raise InvalidRequestError(f"The injection strength {self.inject_alpha!r} must be in [0, 1].")
        if self.mask_window < 1:
            raise InvalidRequestError("The mask window must be at least one step.")

    @property
    def enabled(self) -> bool:
        """False when every part is off: the run is then exactly the plain loop."""
        return self.share or self.inject or self.query_blend

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["freeu_params"] = list(self.freeu_params)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConsistoryConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRequestError(f"Unknown ConsiStory setting(s): {', '.join(unknown)}.")
        defaults = cls()
        d = dict(data)
        for name, value in d.items():  # a hand-edited or damaged file: one sentence, not a TypeError later
            default = getattr(defaults, name)
            if name == "freeu":
                ok = value is None or isinstance(value, bool)
            elif name == "freeu_params":
                ok = isinstance(value, (list, tuple)) and len(value) == 4 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise InvalidRequestError(f"The ConsiStory setting {name!r} has the wrong type: {value!r}.")
        if "freeu_params" in d:
            d["freeu_params"] = tuple(float(x) for x in d["freeu_params"])
        return cls(**d)

    @classmethod
    def off(cls) -> "ConsistoryConfig":
        """Every part switched off (for ablations and the parity test)."""
        return cls(share=False, query_blend=False, inject=False, freeu=False)
