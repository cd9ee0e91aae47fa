"""Where everything sits on a printed page, in points (1/72 in), origin at the top-left of the MediaBox, y down.

Contract:
- ``page_geometry(book, index, bleed=True)`` → ``PageGeometry``: MediaBox = trim + bleed; ``trim`` (TrimBox),
  ``bleed`` per edge, ``margins``, ``live`` (trim minus margins: where the layout's slots go) and ``safe`` (trim
  minus ``SAFE_IN``: keep text and faces inside). ``book`` is any object with ``BookSettings``' attributes.
- Bleed per edge: covers and non-interior books bleed on all four edges. Interiors bleed on top, bottom and the
  outer edge only — never on the spine edge. Page 0 is a right-hand page (spine on its left); with facing pages,
  odd pages are left-hand pages (spine on their right); without, every page is a right-hand page.
- ``bleed=False`` gives the screen page: media = trim, no bleed anywhere.
- ``slot_rects(geometry, template, gutter_in)``: each template box in points; edges shared with other boxes are
  inset by half the gutter; an edge the template marks as bleeding runs to the media edge (trim on the spine).
- ``place_image(px_w, px_h, slot, focus_x, focus_y, zoom)``: the panel image is scaled uniformly to cover its
  slot (× zoom ≥ 1) and shifted so the focus point is as central as the image allows — never stretched, never
  letterboxed. The whole image keeps its native pixels; renderers clip it to the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .layouts import LayoutBox, LayoutTemplate
from .page_presets import POINTS_PER_INCH, trim_size
from .project_model import BOOK_INCHES

__all__ = ["Rect", "Edges", "PageGeometry", "ImagePlacement", "SAFE_IN", "page_geometry", "slot_rects",
           "text_area_rects", "place_image", "GeometryError"]

SAFE_IN = 0.25
_EPS = 1e-4


class GeometryError(ValueError):
    user_message = True


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def inset(self, top: float, right: float, bottom: float, left: float) -> "Rect":
        return Rect(self.x + left, self.y + top, self.w - left - right, self.h - top - bottom)


@dataclass(frozen=True)
class Edges:
    top: float
    right: float
    bottom: float
    left: float


@dataclass(frozen=True)
class PageGeometry:
    index: int
    right_hand: bool
    media_w: float
    media_h: float
    trim: Rect
    bleed: Edges
    margins: Edges
    live: Rect
    safe: Rect

    def pdf_box(self, r: Rect) -> tuple[float, float, float, float]:
        """``r`` as a PDF box (x0, y0, x1, y1), y up from the bottom of the MediaBox."""
        return (r.x, self.media_h - r.bottom, r.right, self.media_h - r.y)

    @property
    def media(self) -> Rect:
        return Rect(0.0, 0.0, self.media_w, self.media_h)

    def from_trim(self, fx: float, fy: float) -> tuple[float, float]:
        """A point given in trim fractions (top-left origin) in media points."""
        return self.trim.x + fx * self.trim.w, self.trim.y + fy * self.trim.h


def page_geometry(book: Any, index: int, bleed: bool = True) -> PageGeometry:
    tw, th = trim_size(book.page_preset, book.orientation)
    for name, most in BOOK_INCHES.items():  # the project file's own limits: a book that opens can be composed
        v = getattr(book, name)
        if not isinstance(v, (int, float)) or v < 0 or v > most:
            raise GeometryError(f"The book's {name.removesuffix('_in')} {v!r} in must be between 0 and {most:g} "
                                "inches.")
    right_hand = index % 2 == 0 or not book.facing_pages
    b = book.bleed_in * POINTS_PER_INCH if bleed else 0.0
    if book.interior:
        edges = Edges(b, 0.0 if not right_hand else b, b, 0.0 if right_hand else b)
    else:
        edges = Edges(b, b, b, b)
    m = book.margin_in * POINTS_PER_INCH
    if 2 * m >= min(tw, th) - 36:
        raise GeometryError(f"Margins of {book.margin_in:g} in leave no room on a {tw / 72:g} × {th / 72:g} in "
                            f"page; use smaller margins.")
    trim = Rect(edges.left, edges.top, tw, th)
    s = SAFE_IN * POINTS_PER_INCH
    return PageGeometry(index=index, right_hand=right_hand, media_w=tw + edges.left + edges.right,
                        media_h=th + edges.top + edges.bottom, trim=trim, bleed=edges,
                        margins=Edges(m, m, m, m), live=trim.inset(m, m, m, m), safe=trim.inset(s, s, s, s))


def _box_rect(g: PageGeometry, box: LayoutBox, gutter: float, bleeds: bool) -> Rect:
    live = g.live
    x0, y0 = live.x + box.x * live.w, live.y + box.y * live.h
    x1, y1 = live.x + (box.x + box.w) * live.w, live.y + (box.y + box.h) * live.h
    half = gutter / 2
    on = {"left": box.x <= _EPS, "top": box.y <= _EPS,
          "right": box.x + box.w >= 1 - _EPS, "bottom": box.y + box.h >= 1 - _EPS}
    out = {"left": 0.0, "top": 0.0, "right": g.media_w, "bottom": g.media_h}
    if not on["left"]:
        x0 += half
    elif bleeds and "left" in box.bleed:
        x0 = out["left"]
    if not on["top"]:
        y0 += half
    elif bleeds and "top" in box.bleed:
        y0 = out["top"]
    if not on["right"]:
        x1 -= half
    elif bleeds and "right" in box.bleed:
        x1 = out["right"]
    if not on["bottom"]:
        y1 -= half
    elif bleeds and "bottom" in box.bleed:
        y1 = out["bottom"]
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise GeometryError(f"A gutter of {gutter / 72:g} in leaves no room for the panels; use a smaller gutter.")
    return Rect(x0, y0, x1 - x0, y1 - y0)


def slot_rects(g: PageGeometry, template: LayoutTemplate, gutter_in: float) -> tuple[Rect, ...]:
    if not isinstance(gutter_in, (int, float)) or gutter_in < 0 or gutter_in > 2:
        raise GeometryError(f"The gutter {gutter_in!r} in must be between 0 and 2 inches.")
    gutter = gutter_in * POINTS_PER_INCH
    return tuple(_box_rect(g, box, gutter, True) for box in template.slots)


def text_area_rects(g: PageGeometry, template: LayoutTemplate, gutter_in: float) -> tuple[Rect, ...]:
    gutter = gutter_in * POINTS_PER_INCH
    return tuple(_box_rect(g, box, gutter, False) for box in template.text_areas)


@dataclass(frozen=True)
class ImagePlacement:
    """The whole image drawn at ``draw`` (points), clipped to ``clip``; ``src`` = visible pixels (l, t, r, b)."""

    clip: Rect
    draw: Rect
    src: tuple[float, float, float, float]
    px_w: int
    px_h: int

    @property
    def dpi(self) -> float:
        """Effective resolution on paper: image pixels per placed inch (same on both axes: no stretching)."""
        return self.px_w / (self.draw.w / POINTS_PER_INCH)


def _clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def place_image(px_w: int, px_h: int, slot: Rect, focus_x: float = 0.5, focus_y: float = 0.5,
                zoom: float = 1.0) -> ImagePlacement:
    if px_w <= 0 or px_h <= 0:
        raise GeometryError(f"An image of {px_w} × {px_h} pixels cannot be placed; regenerate the panel.")
    zoom = max(1.0, float(zoom))
    scale = max(slot.w / px_w, slot.h / px_h) * zoom  # points per pixel, same on both axes
    cw, ch = slot.w / scale, slot.h / scale
    cx = _clamp(_clamp(focus_x, 0.0, 1.0) * px_w, cw / 2, px_w - cw / 2)
    cy = _clamp(_clamp(focus_y, 0.0, 1.0) * px_h, ch / 2, px_h - ch / 2)
    left, top = cx - cw / 2, cy - ch / 2
    draw = Rect(slot.x - left * scale, slot.y - top * scale, px_w * scale, px_h * scale)
    return ImagePlacement(clip=slot, draw=draw, src=(left, top, left + cw, top + ch), px_w=px_w, px_h=px_h)
