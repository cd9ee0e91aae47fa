"""Page (trim) sizes a book can use. Sizes are in PostScript points (1/72 in), width × height as printed.

Contract: ``PRESETS`` maps a preset id (``BookSettings.page_preset``) to a ``PagePreset``; ``trim_size(preset_id,
orientation)`` gives the trim size in points for a book, turning a portrait preset sideways for "landscape"
(landscape presets stay landscape). Unknown ids raise ``PresetError`` with the list of known ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PagePreset", "PRESETS", "PresetError", "trim_size", "POINTS_PER_INCH", "MM"]

POINTS_PER_INCH = 72.0
MM = POINTS_PER_INCH / 25.4


class PresetError(ValueError):
    user_message = True


@dataclass(frozen=True)
class PagePreset:
    id: str
    name: str
    width_pt: float
    height_pt: float

    @property
    def landscape(self) -> bool:
        return self.width_pt > self.height_pt


def _inch(pid: str, name: str, w: float, h: float) -> PagePreset:
    return PagePreset(pid, name, w * POINTS_PER_INCH, h * POINTS_PER_INCH)


def _mm(pid: str, name: str, w: float, h: float) -> PagePreset:
    return PagePreset(pid, name, w * MM, h * MM)


_ALL = (
    _inch("us-comic", "US comic (6.625 × 10.25 in)", 6.625, 10.25),
    _mm("a4", "A4 (210 × 297 mm)", 210, 297),
    _mm("a5", "A5 (148 × 210 mm)", 148, 210),
    _inch("us-letter", "US Letter (8.5 × 11 in)", 8.5, 11),
    _inch("square-8.5", "Square picture book (8.5 × 8.5 in)", 8.5, 8.5),
    _inch("square-8", "Square picture book (8 × 8 in)", 8, 8),
    _inch("8x10", "8 × 10 in", 8, 10),
    _mm("a4-landscape", "A4 landscape (297 × 210 mm)", 297, 210),
    _mm("a5-landscape", "A5 landscape (210 × 148 mm)", 210, 148),
    _inch("us-letter-landscape", "US Letter landscape (11 × 8.5 in)", 11, 8.5),
    _inch("10x8", "10 × 8 in landscape", 10, 8),
)

PRESETS: dict[str, PagePreset] = {p.id: p for p in _ALL}


def trim_size(preset_id: str, orientation: str = "portrait") -> tuple[float, float]:
    """Trim (width, height) in points. "landscape" turns a portrait preset sideways; "portrait" keeps the preset."""
    preset = PRESETS.get(preset_id)
    if preset is None:
        raise PresetError(f"Unknown page size {preset_id!r}; choose one of: {', '.join(PRESETS)}.")
    if orientation not in ("portrait", "landscape"):
        raise PresetError(f"Unknown orientation {orientation!r}; use 'portrait' or 'landscape'.")
    w, h = preset.width_pt, preset.height_pt
    if orientation == "landscape" and w < h:
        w, h = h, w
    return w, h
