"""Render a composed page to a PIL image at a chosen DPI, from the same geometry as the PDF and the Qt view.

Contract: ``render_page(pc, dpi)`` → RGB ``PIL.Image`` of the page's MediaBox at ``dpi`` (1 pt = dpi/72 px):
panel images cropped by their placement's source box and resized (Lanczos) to the slot's pixels, grey labelled
placeholders, 1 pt slot borders, balloons (Bézier outlines flattened to polygons, filled and stroked, drawn 4×
supersampled for smooth edges) and their text with Pillow on the same TTF at each line's computed baseline.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .balloon_geometry import BalloonShape, TextLayout, flatten
from .fonts import font_path
from .page_composition import BORDER_PT, PageComposition
from .page_geometry import Rect

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["render_page", "MIN_DPI", "MAX_DPI"]

MIN_DPI = 36
MAX_DPI = 1200
_SS = 4  # balloon supersampling
_GREY = (209, 209, 209)
_LABEL = (77, 77, 77)


@lru_cache(maxsize=64)
def _font(name: str, px: float) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(name)), size=px)


def _px(r: Rect, s: float) -> tuple[int, int, int, int]:
    return round(r.x * s), round(r.y * s), round(r.right * s), round(r.bottom * s)


def _text(draw: Any, t: TextLayout, s: float, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    if not t.lines:
        return
    f = _font(t.font, t.size * s)
    for line in t.lines:
        draw.text((line.x * s, line.baseline * s), line.text, font=f, fill=colour, anchor="ls")


def _balloon(page: "Image.Image", b: BalloonShape, s: float) -> None:
    from PIL import Image, ImageDraw

    polys = [flatten(sp, 16) for sp in b.outline]
    pad = b.stroke
    xs = [p[0] for poly in polys for p in poly]
    ys = [p[1] for poly in polys for p in poly]
    x0, y0 = math.floor((min(xs) - pad) * s), math.floor((min(ys) - pad) * s)
    x1, y1 = math.ceil((max(xs) + pad) * s), math.ceil((max(ys) + pad) * s)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    k = s * _SS
    layer = Image.new("RGBA", (w * _SS, h * _SS), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    fill = tuple(round(c * 255) for c in b.fill) + (255,)
    width = max(1, round(b.stroke * k))
    for poly in reversed(polys):
        pts = [(x * k - x0 * _SS, y * k - y0 * _SS) for x, y in poly]
        d.polygon(pts, fill=fill)
        d.line(pts + [pts[0], pts[1]], fill=(0, 0, 0, 255), width=width, joint="curve")
    layer = layer.resize((w, h), Image.Resampling.BOX)
    page.paste(layer, (x0, y0), layer)


def render_page(pc: PageComposition, dpi: float = 150) -> "Image.Image":
    from PIL import Image, ImageDraw

    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"The resolution {dpi!r} dpi is out of range; choose between {MIN_DPI} and {MAX_DPI}.")
    s = dpi / 72.0
    g = pc.geometry
    page = Image.new("RGB", (max(1, round(g.media_w * s)), max(1, round(g.media_h * s))), "white")
    draw = ImageDraw.Draw(page)
    opened: dict[object, Image.Image] = {}
    for im in pc.images:
        src = opened.get(im.path)
        if src is None:
            with Image.open(im.path) as f:
                src = opened[im.path] = f.convert("RGB")
        x0, y0, x1, y1 = _px(im.placement.clip, s)
        if x1 > x0 and y1 > y0:
            # The source box that maps exactly onto the rounded pixel rectangle (no stretch, sub-pixel exact).
            pl = im.placement
            sc = pl.draw.w / pl.px_w * s  # pixels per source pixel
            box = ((x0 - pl.draw.x * s) / sc, (y0 - pl.draw.y * s) / sc, (x1 - pl.draw.x * s) / sc,
                   (y1 - pl.draw.y * s) / sc)
            box = (max(0.0, box[0]), max(0.0, box[1]), min(float(pl.px_w), box[2]), min(float(pl.px_h), box[3]))
            page.paste(src.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box), (x0, y0))
    for ph in pc.placeholders:
        draw.rectangle(_px(ph.clip, s), fill=_GREY)
        _text(draw, ph.text, s, _LABEL)
    bw = max(1, round(BORDER_PT * s))
    for r in [i.placement.clip for i in pc.images if i.border] + [p.clip for p in pc.placeholders if p.border]:
        x0, y0, x1, y1 = r.x * s, r.y * s, r.right * s, r.bottom * s
        draw.line([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], fill=(0, 0, 0), width=bw, joint="curve")
    for b in pc.balloons:
        _balloon(page, b, s)
        _text(draw, b.text, s)
    return page
