"""One geometry for balloons and captions, shared by the PDF, the PNG export and the Qt page view.

Contract: ``balloon_shape(balloon, trim)`` takes a ``Balloon`` (body box and tail tip in trim fractions, top-left
origin) and the page's trim rectangle in points (media coordinates, y down) and returns a ``BalloonShape``:
- ``outline``: closed subpaths of move/line/cubic-Bézier segments in points, y down. Speech = ellipse filling
  the body box with a tail; thought = cloud of circle arcs round an inner ellipse plus shrinking circles toward
  the tail; shout = jagged star (bold text) whose nearest spike reaches the tail tip; caption = rectangle, no tail.
  No tail is drawn when the tip is missing or inside the body.
- ``text``: a ``TextLayout`` inside ``text_box`` (a rectangle inscribed in the body, padded; for the round kinds
  the one of five corner angles that gives the largest text, so one short line fits a flat balloon): font size
  (given, or the largest that fits, by bisection between ``MIN_SIZE`` and ``MAX_SIZE``), wrapped lines centred
  horizontally and as a block vertically, each with its left x, baseline y and width. Widths come from
  ``app.fonts.string_width`` (reportlab metrics of the shipped TTF), the same numbers on screen and in print.
  Text never leaves ``text_box``: if it does not fit even at ``MIN_SIZE`` (or at the given size), the layout has
  ``overflow=True`` and no lines — it is hidden and reported, never spilled.
- ``flatten(subpath, steps)`` turns a subpath into a polygon for raster renderers.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

from .fonts import font_for_kind, font_metrics, string_width
from .page_geometry import Rect

__all__ = ["Point", "Segment", "SubPath", "TextLine", "TextLayout", "BalloonShape", "balloon_shape", "layout_text",
           "flatten", "MIN_SIZE", "MAX_SIZE", "LEADING", "STROKE_PT"]

Point = tuple[float, float]
Segment = tuple  # ("L", (x, y)) | ("C", (x1, y1), (x2, y2), (x, y))

MIN_SIZE = 6.0
MAX_SIZE = 24.0
LEADING = 1.15  # line pitch as a multiple of the font size
STROKE_PT = 1.2
PAD_PT = 2.0
WHITE = (1.0, 1.0, 1.0)
CAPTION_FILL = (1.0, 0.97, 0.84)


@dataclass(frozen=True)
class SubPath:
    """A closed contour: start at ``start``, follow ``segments``, close back to ``start``."""

    start: Point
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class TextLine:
    text: str
    x: float
    baseline: float
    width: float


@dataclass(frozen=True)
class TextLayout:
    font: str
    size: float
    leading: float
    ascent: float
    descent: float
    lines: tuple[TextLine, ...]
    box: Rect
    overflow: bool


@dataclass(frozen=True)
class BalloonShape:
    id: str
    kind: str
    outline: tuple[SubPath, ...]
    body: Rect
    text_box: Rect
    text: TextLayout
    stroke: float
    fill: tuple[float, float, float]


# Paths --------------------------------------------------------------------------------------------------------

def _arc(cx: float, cy: float, a: float, b: float, t0: float, t1: float) -> list[Segment]:
    """Elliptic arc from parameter t0 to t1 as cubic Béziers (≤ 90° each, error < 0.03 % of the radius)."""
    n = max(1, math.ceil(abs(t1 - t0) / (math.pi / 2) - 1e-9))
    d = (t1 - t0) / n
    k = 4.0 / 3.0 * math.tan(d / 4)
    out: list[Segment] = []
    for i in range(n):
        s, e = t0 + i * d, t0 + (i + 1) * d
        p0 = (cx + a * math.cos(s), cy + b * math.sin(s))
        p3 = (cx + a * math.cos(e), cy + b * math.sin(e))
        c1 = (p0[0] - k * a * math.sin(s), p0[1] + k * b * math.cos(s))
        c2 = (p3[0] + k * a * math.sin(e), p3[1] - k * b * math.cos(e))
        out.append(("C", c1, c2, p3))
    return out


def _circle(cx: float, cy: float, r: float) -> SubPath:
    return SubPath((cx + r, cy), tuple(_arc(cx, cy, r, r, 0.0, 2 * math.pi)))


def _inside_ellipse(p: Point, cx: float, cy: float, a: float, b: float, margin: float = 1.05) -> bool:
    return ((p[0] - cx) / a) ** 2 + ((p[1] - cy) / b) ** 2 <= margin


def _speech(cx: float, cy: float, a: float, b: float, tip: Point | None) -> tuple[SubPath, ...]:
    if tip is None or _inside_ellipse(tip, cx, cy, a, b):
        return (SubPath((cx + a, cy), tuple(_arc(cx, cy, a, b, 0.0, 2 * math.pi))),)
    t0 = math.atan2((tip[1] - cy) / b, (tip[0] - cx) / a)
    base = max(6.0, 0.35 * min(a, b))
    delta = min(0.45, max(0.1, base / (a + b)))
    start = (cx + a * math.cos(t0 + delta), cy + b * math.sin(t0 + delta))
    end = (cx + a * math.cos(t0 - delta), cy + b * math.sin(t0 - delta))
    segs = _arc(cx, cy, a, b, t0 + delta, t0 + 2 * math.pi - delta)
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    segs.append(_tail_side(end, tip, mid))
    segs.append(_tail_side(tip, start, mid))
    return (SubPath(start, tuple(segs)),)


def _tail_side(p: Point, q: Point, base_mid: Point) -> Segment:
    """One side of a tail: a gentle curve bowing in toward the tail's centre line (a quadratic as a cubic)."""
    tip_side = q if math.dist(q, base_mid) > math.dist(p, base_mid) else p
    centre = ((base_mid[0] + tip_side[0]) / 2, (base_mid[1] + tip_side[1]) / 2)
    half = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
    c = (half[0] + 0.35 * (centre[0] - half[0]), half[1] + 0.35 * (centre[1] - half[1]))
    return ("C", (p[0] + 2 / 3 * (c[0] - p[0]), p[1] + 2 / 3 * (c[1] - p[1])),
            (q[0] + 2 / 3 * (c[0] - q[0]), q[1] + 2 / 3 * (c[1] - q[1])), q)


def _thought(cx: float, cy: float, a: float, b: float, tip: Point | None) -> tuple[tuple[SubPath, ...], float]:
    """Cloud round an inner ellipse (returned factor) and trailing circles toward the tip."""
    f = 0.8
    ia, ib = a * f, b * f
    perim = math.pi * (ia + ib)
    n = max(8, min(18, round(perim / max(8.0, 0.55 * min(ia, ib)))))
    pts = [(cx + ia * math.cos(2 * math.pi * i / n), cy + ib * math.sin(2 * math.pi * i / n)) for i in range(n)]
    segs: list[Segment] = []
    for i in range(n):
        p, q = pts[i], pts[(i + 1) % n]
        mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
        r = math.hypot(q[0] - p[0], q[1] - p[1]) / 2
        s = math.atan2(p[1] - my, p[0] - mx)
        mid = s + math.pi / 2
        sign = 1.0 if math.cos(mid) * (mx - cx) + math.sin(mid) * (my - cy) > 0 else -1.0
        segs += _arc(mx, my, r, r, s, s + sign * math.pi)
    paths = [SubPath(pts[0], tuple(segs))]
    if tip is not None and not _inside_ellipse(tip, cx, cy, a, b):
        t0 = math.atan2((tip[1] - cy) / b, (tip[0] - cx) / a)
        edge = (cx + a * math.cos(t0), cy + b * math.sin(t0))
        unit = min(a, b)
        for frac, rf in ((0.25, 0.16), (0.6, 0.11), (0.92, 0.07)):
            px, py = edge[0] + (tip[0] - edge[0]) * frac, edge[1] + (tip[1] - edge[1]) * frac
            paths.append(_circle(px, py, max(1.5, rf * unit)))
    return tuple(paths), f


def _shout(cx: float, cy: float, a: float, b: float, tip: Point | None, seed: str) -> tuple[SubPath, ...]:
    rng = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    n = max(10, min(18, round(math.pi * (a + b) / max(10.0, 0.45 * min(a, b)))))
    verts: list[Point] = []
    outer_idx: list[int] = []
    for i in range(2 * n):
        t = math.pi * i / n
        r = rng.uniform(0.9, 1.0) if i % 2 == 0 else rng.uniform(0.7, 0.76)
        if i % 2 == 0:
            outer_idx.append(len(verts))
        verts.append((cx + a * r * math.cos(t), cy + b * r * math.sin(t)))
    if tip is not None and not _inside_ellipse(tip, cx, cy, a, b):
        t0 = math.atan2((tip[1] - cy) / b, (tip[0] - cx) / a)
        best = min(outer_idx, key=lambda j: abs(math.remainder(math.pi * j / n - t0, 2 * math.pi)))
        verts[best] = tip
    return (SubPath(verts[0], tuple(("L", v) for v in verts[1:])),)


def flatten(path: SubPath, steps: int = 12) -> list[Point]:
    """The subpath as a polygon (each cubic sampled at ``steps`` points), closing point not repeated."""
    pts = [path.start]
    cur = path.start
    for seg in path.segments:
        if seg[0] == "L":
            cur = seg[1]
            pts.append(cur)
        else:
            (x1, y1), (x2, y2), (x3, y3) = seg[1], seg[2], seg[3]
            x0, y0 = cur
            for i in range(1, steps + 1):
                t = i / steps
                u = 1 - t
                pts.append((u * u * u * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t * t * t * x3,
                            u * u * u * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y3))
            cur = (x3, y3)
    if len(pts) > 1 and math.dist(pts[0], pts[-1]) < 1e-9:
        pts.pop()
    return pts


# Text ---------------------------------------------------------------------------------------------------------

def _wrap(text: str, font: str, size: float, width: float) -> list[tuple[str, float]] | None:
    """Greedy word wrap honouring newlines; None when a single word is wider than ``width``."""
    lines: list[tuple[str, float]] = []
    for para in text.split("\n"):
        words = para.split()
        cur = ""
        cur_w = 0.0
        for w in words:
            cand = f"{cur} {w}" if cur else w
            cw = string_width(cand, font, size)
            if cw <= width:
                cur, cur_w = cand, cw
                continue
            if not cur:
                return None
            lines.append((cur, cur_w))
            ww = string_width(w, font, size)
            if ww > width:
                return None
            cur, cur_w = w, ww
        lines.append((cur, cur_w))
    return lines


def _fit(text: str, font: str, size: float, box: Rect) -> list[tuple[str, float]] | None:
    if box.w <= 0 or box.h <= 0:
        return None
    asc, desc = font_metrics(font)
    lines = _wrap(text, font, size, box.w)
    if lines is None:
        return None
    block = (len(lines) - 1) * LEADING * size + (asc - desc) * size
    return lines if block <= box.h else None


def layout_text(text: str, font: str, box: Rect, size: float | None = None) -> TextLayout:
    """Lay ``text`` out in ``box`` at ``size`` pt, or at the largest size that fits when ``size`` is None."""
    asc, desc = font_metrics(font)
    text = text.strip()

    def empty(sz: float, overflow: bool) -> TextLayout:
        return TextLayout(font, sz, LEADING * sz, asc, desc, (), box, overflow)

    if not text:
        return empty(size or 12.0, False)
    if size is not None:
        lines = _fit(text, font, size, box)
        if lines is None:
            return empty(size, True)
    else:
        lines = _fit(text, font, MIN_SIZE, box)
        if lines is None:
            return empty(MIN_SIZE, True)
        size = MIN_SIZE
        top = _fit(text, font, MAX_SIZE, box)
        if top is not None:
            size, lines = MAX_SIZE, top
        else:
            lo, hi = MIN_SIZE, MAX_SIZE
            for _ in range(14):
                mid = (lo + hi) / 2
                got = _fit(text, font, mid, box)
                if got is None:
                    hi = mid
                else:
                    lo, lines = mid, got
            size = lo
    block = (len(lines) - 1) * LEADING * size + (asc - desc) * size
    first = box.y + (box.h - block) / 2 + asc * size
    out = tuple(TextLine(t, box.x + (box.w - w) / 2, first + i * LEADING * size, w) for i, (t, w) in enumerate(lines))
    return TextLayout(font, size, LEADING * size, asc, desc, out, box, False)


# Balloons -----------------------------------------------------------------------------------------------------

_ANGLES = (45.0, 35.0, 55.0, 25.0, 65.0)  # corner angles of the candidate text boxes, the classic 45° first


def _inscribed(cx: float, cy: float, a: float, b: float, pad: float, angle: float = 45.0) -> Rect:
    """The rectangle whose corners lie on the ellipse at ``angle`` degrees (parametric), shrunk by ``pad``."""
    t = math.radians(angle)
    hw, hh = a * math.cos(t) - pad, b * math.sin(t) - pad
    return Rect(cx - hw, cy - hh, max(0.0, 2 * hw), max(0.0, 2 * hh))


def _best_layout(text: str, font: str, boxes: list[Rect], size: float | None) -> tuple[Rect, TextLayout]:
    """The candidate box giving the largest text (or the first that fits a fixed size); ties keep the earlier."""
    best: tuple[Rect, TextLayout] | None = None
    for box in boxes:
        t = layout_text(text, font, box, size)
        if t.overflow:
            continue
        if size is not None:
            return box, t
        if best is None or t.size > best[1].size + 1e-6:
            best = (box, t)
    return best if best is not None else (boxes[0], layout_text(text, font, boxes[0], size))


def balloon_shape(balloon: Any, trim: Rect) -> BalloonShape:
    x, y = trim.x + balloon.x * trim.w, trim.y + balloon.y * trim.h
    w, h = balloon.w * trim.w, balloon.h * trim.h
    body = Rect(x, y, w, h)
    cx, cy, a, b = x + w / 2, y + h / 2, max(w / 2, 0.5), max(h / 2, 0.5)
    tip = None
    if balloon.tail_x is not None and balloon.tail_y is not None:
        tip = (trim.x + balloon.tail_x * trim.w, trim.y + balloon.tail_y * trim.h)
    pad = STROKE_PT / 2 + PAD_PT
    fill = WHITE
    kind = balloon.kind
    if kind == "speech":
        outline, f = _speech(cx, cy, a, b, tip), 1.0
    elif kind == "thought":
        outline, f = _thought(cx, cy, a, b, tip)
    elif kind == "shout":
        outline, f = _shout(cx, cy, a, b, tip, balloon.id), 0.68
    elif kind == "caption":
        outline = (SubPath((x, y), (("L", (x + w, y)), ("L", (x + w, y + h)), ("L", (x, y + h)))),)
        p = pad + min(4.0, 0.08 * min(w, h))
        fill = CAPTION_FILL
    else:
        raise ValueError(f"Unknown balloon kind {kind!r}; use speech, thought, shout or caption.")
    if kind == "caption":
        boxes = [Rect(x + p, y + p, max(0.0, w - 2 * p), max(0.0, h - 2 * p))]
    else:
        boxes = [_inscribed(cx, cy, a * f, b * f, pad, ang) for ang in _ANGLES]
    font = font_for_kind(balloon.font, kind)
    box, text = _best_layout(balloon.text, font, boxes, balloon.font_size_pt)
    return BalloonShape(balloon.id, kind, outline, body, box, text, STROKE_PT, fill)
