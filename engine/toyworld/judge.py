"""The toy world's judge: a deterministic palette analyser reading scene, creature region and attributes back.

``judge(image)`` (a 64x64 RGB PIL image or uint8 array; other sizes are resized) returns a ``Judgement``:

1. scene: every pixel is compared with each scene's palette (sky above the horizon, ground below, the scene's
   extra element anywhere), distances capped so the creature counts the same for every scene; lowest mean wins;
2. creature region: pixels far from the judged scene's palette, main 4-connected components, holes filled;
3. body colour: the body colour most pixels around the eyes are nearest to (within ``MAX_DIST``; a glow or a
   ground of another body colour beside the creature may outweigh it in the region); the region's commonest when
   no eyes are found;
4. silhouette: the region from the body colour's first row down (the hat cut off; eyes drawn as wide as the body
   do not cut its top off), inside the box of the body's colour, each row within the body's colour, eyes and
   markings (a smear touching its side is not body), with the dark markings it encloses. Two creatures drawn
   touching (twins, or a creature and a smeared copy) are cut apart at the valley between them or between their
   two pairs of eyes (even with no valley, one in front of the other), and the larger is read, its cut side
   mirrored from its outer side; a piece of it below two empty rows (a glow under the body) is dropped;
5. shape from the silhouette's row widths: triangle when the upper rows are much narrower than the lower ones,
   square when it fills its box (the box's width is the 80th percentile of the rows', so a stray row or smear
   on one side does not widen it) and stands on a bottom nearly as wide, round otherwise;
6. hat: hat-coloured region pixels above the top fifth of the body and over it, enough of them (else ``None``);
7. markings: pixels nearer the marking colour than the body colour inside the body (its outline peeled), below
   the eyes (``MARK_TOP`` of the height when no eyes are found): few → plain; rows crossed by one long run of them
   (0.35 of the body's width) → striped; else spotted.

A model's drawings are not renders: steps 4-7 are built to read them as a person does (twins that touch, a smear
beside the body, a ground off the palette, stripes drawn shorter or higher than the renderer's), and
``tests/bench/bench_judge.py`` measures that on renders, their VAE reconstructions, twins pictures and drawings
that a person read.

No learning, no randomness: the same picture always gets the same judgement. ``judge_twins(image)`` reads a picture
of twins (one creature in each half) as two judgements: each half is judged with the other half painted over in the
scene's sky and ground.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .render import BODY_COLOURS, EYE_BLACK, EYE_WHITE, HAT_COLOURS, HORIZON, MARK_COLOUR, MARK_TOP, SCENES

__all__ = ["Judgement", "judge", "judge_twins", "iou", "MAX_DIST"]

MAX_DIST = 100.0   # a pixel farther than this from every palette colour is "unknown"
REGION_DIST = 55.0  # a pixel farther than this from its scene's palette belongs to the creature
CAP = 80.0


@dataclass(frozen=True, eq=False)
class Judgement:
    """What the judge read (compare ``identity``, ``scene`` and ``region`` yourself: arrays have no ``==``)."""

    scene: str
    colour: str | None
    shape: str | None
    hat: str | None          # a hat colour, or None for no hat
    region: np.ndarray       # bool (64, 64): the creature
    scene_score: float       # mean capped palette distance of the chosen scene (lower = cleaner)
    markings: str | None = None  # plain / spotted / striped (None when no body was found)

    @property
    def identity(self) -> tuple[str | None, str | None, str | None, str | None]:
        """Every creature attribute: colour, markings, shape, hat."""
        return self.colour, self.markings, self.shape, self.hat

    @property
    def look(self) -> tuple[str | None, str | None, str | None]:
        """What must agree between two pictures of the same character: colour, markings and shape (the body).
        A hat is a prop: a panel may show the character with or without one (reported apart)."""
        return self.colour, self.markings, self.shape


def _as_array(image) -> np.ndarray:
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if image.size != (64, 64):
        image = image.resize((64, 64), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _dist(px: np.ndarray, colour) -> np.ndarray:
    return np.sqrt(((px - np.asarray(colour, np.float32)) ** 2).sum(-1))


def _scene_distance(px: np.ndarray, scene: str) -> np.ndarray:
    sky, ground, extra = SCENES[scene]
    h = px.shape[0]
    horizon = int(round(HORIZON * h))
    d = np.empty(px.shape[:2], np.float32)
    d[:horizon] = _dist(px[:horizon], sky)
    d[horizon:] = _dist(px[horizon:], ground)
    # the horizon line itself may be blended
    d[horizon - 1:horizon + 1] = np.minimum(_dist(px[horizon - 1:horizon + 1], sky),
                                            _dist(px[horizon - 1:horizon + 1], ground))
    if extra is not None:  # the moon lives in the top-left corner, the trees at the sides
        w = px.shape[1]
        area = (slice(0, int(0.3 * h)), slice(0, int(0.3 * w))) if scene == "night" else None
        if area is not None:
            d[area] = np.minimum(d[area], _dist(px[area], extra))
        else:
            for cols in (slice(0, int(0.2 * w)), slice(int(0.8 * w), w)):
                d[:horizon, cols] = np.minimum(d[:horizon, cols], _dist(px[:horizon, cols], extra))
    return d


def _components(mask: np.ndarray, diagonal: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 4-connected (``diagonal``: 8-connected) components of a mask, each as its (rows, columns)."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1)) + (((1, 1), (1, -1), (-1, 1), (-1, -1)) if diagonal else ())
    comps = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        comp = []
        q = deque([(y0, x0)])
        seen[y0, x0] = True
        while q:
            y, x = q.popleft()
            comp.append((y, x))
            for ny, nx in ((y + dy, x + dx) for dy, dx in steps):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    q.append((ny, nx))
        ys, xs = zip(*comp)
        comps.append((np.asarray(ys), np.asarray(xs)))
    return comps


def _main_components(mask: np.ndarray, keep: float = 0.15, diagonal: bool = False) -> np.ndarray:
    """The largest 4-connected (``diagonal``: 8-connected) component and every other one at least ``keep`` of its
    size (specks dropped)."""
    comps = _components(mask, diagonal)
    out = np.zeros_like(mask)
    if comps:
        big = max(len(ys) for ys, _ in comps)
        for ys, xs in comps:
            if len(ys) >= max(4, keep * big):
                out[ys, xs] = True
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background pixels not 4-connected to the border become foreground."""
    outside = ~mask
    border = np.zeros_like(mask)
    border[0, :], border[-1, :], border[:, 0], border[:, -1] = outside[0, :], outside[-1, :], outside[:, 0], outside[:, -1]
    reach = border.copy()
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= outside
        if (grown == reach).all():
            return ~reach
        reach = grown


def _row_widths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows a mask covers and each one's width from its first to its last pixel."""
    rows = np.nonzero(mask.any(1))[0]
    widths = []
    for y in rows:
        xs = np.nonzero(mask[y])[0]
        widths.append(xs[-1] - xs[0] + 1)
    return rows, np.asarray(widths, np.float32)


def _typical_width(widths: np.ndarray) -> float:
    """The body's width without the few rows a model's drawing makes too wide (a stray blob or smear on one
    side): 80th percentile of the row widths (0.98 of a disc's diameter, a square's width)."""
    return float(np.percentile(widths, 80))


def _shape(body: np.ndarray) -> str | None:
    rows, widths_a = _row_widths(body)
    if len(rows) < 4:
        return None
    n = len(widths_a)
    upper = widths_a[int(0.15 * n):max(int(0.35 * n), int(0.15 * n) + 1)].mean()
    lower = widths_a[int(0.65 * n):max(int(0.85 * n), int(0.65 * n) + 1)].mean()
    if upper < 0.62 * lower:
        return "triangle"
    box = _typical_width(widths_a)
    fill = np.minimum(widths_a, box).sum() / float(n * box)
    # a square stands on a flat bottom as wide as itself; a round body narrows to its bottom even when a hat
    # drawn low, or a smear beside it, fills its upper corners (at 85-95 % of the height a disc is 0.6-0.7 of
    # its width, the renders' squares 0.94 or more)
    bottom = widths_a[int(0.85 * n):max(int(0.95 * n), int(0.85 * n) + 1)].mean()
    return "square" if fill > 0.87 and bottom >= 0.77 * box else "round"


def _tallest_piece(mask: np.ndarray, gap: int = 2) -> np.ndarray:
    """The mask's rows cut where ``gap`` or more rows in a row are empty, the piece with the most pixels kept: a
    glow of the body's colour drawn under it, apart from it, is not part of it."""
    counts = np.convolve(mask.sum(1), np.ones(gap), "full")[gap - 1:]  # pixels in each row and the gap-1 below
    best, start = (0, 0, 0), None
    for y, n in enumerate([*counts, 0]):
        if n and start is None:
            start = y
        elif not n and start is not None:
            best = max(best, (int(mask[start:y].sum()), start, y))
            start = None
    out = np.zeros_like(mask)
    out[best[1]:best[2]] = mask[best[1]:best[2]]
    return out


def _row_spans(mask: np.ndarray) -> np.ndarray:
    """Each row of a mask filled from its first pixel to its last."""
    return np.maximum.accumulate(mask, axis=1) & np.maximum.accumulate(mask[:, ::-1], axis=1)[:, ::-1]


def _widen(mask: np.ndarray) -> np.ndarray:
    """The mask and one pixel more on each side of every row."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    """3x3 erosion (the border counts as outside)."""
    out = mask.copy()
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = False
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out[1:-1, 1:-1] &= mask[1 + dy:mask.shape[0] - 1 + dy, 1 + dx:mask.shape[1] - 1 + dx]
    return out


def _one_creature(silhouette: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """The larger of two creatures drawn touching side by side (twins, or a creature and a smeared copy), cut at
    the lowest column of the silhouette between them: a deep valley of the column heights, or a shallower one
    between two pairs of eyes. The silhouette itself when it has neither (one body of any shape rises to one
    peak, or stays flat, and has one pair of eyes)."""
    heights = silhouette.sum(0).astype(np.float32)
    cols = np.nonzero(heights)[0]
    if len(cols) < 8:
        return silhouette
    x0, x1 = cols[0], cols[-1]

    def depth(x: int) -> float:
        return heights[x] / max(min(heights[x0:x].max(), heights[x + 1:x1 + 1].max()), 1.0)

    inner = range(x0 + 3, x1 - 2)
    cut = min(inner, key=depth, default=None)
    if cut is not None and depth(cut) > 0.7:
        cut = None
        # two pairs of eyes: four, or three with one gap far wider than the other
        centres = _eye_columns(silhouette, eyes)
        gaps = np.diff(centres)
        i = 1 if len(gaps) == 3 else int(np.argmax(gaps)) if len(gaps) == 2 else None
        if i is not None and gaps[i] >= 6 and (len(gaps) == 3 or gaps[i] >= 1.5 * gaps[1 - i]):
            best = min((x for x in inner if centres[i] < x < centres[i + 1]), key=depth, default=None)
            # two whole pairs of eyes, the widest gap between the pairs, are two creatures even where one stands
            # in front of the other and leaves no valley between them
            pairs = len(gaps) == 3 and gaps[1] >= max(gaps[0], gaps[2])
            cut = best if best is not None and (depth(best) <= 0.9 or pairs) else None
    if cut is None:
        return silhouette
    left, right = silhouette.copy(), silhouette.copy()
    left[:, cut:] = False
    right[:, :cut + 1] = False
    keep = left if left.sum() >= right.sum() else right
    # the cut edge is straight where the bodies overlap: mirror the outer side about the creature's middle (its
    # eyes' centre, else halfway from its outer edge to the cut)
    xs = np.nonzero(keep.any(0))[0]
    outer = xs[0] if keep is left else xs[-1]
    own_eyes = _eye_columns(keep, eyes)
    middle = float(np.mean(own_eyes)) if len(own_eyes) == 2 else (outer + cut) / 2
    columns = np.arange(keep.shape[1])
    outer_side = columns <= middle if keep is left else columns >= middle
    return np.where(outer_side[None, :], keep, _mirror(keep, middle))


def _mirror(mask: np.ndarray, middle: float) -> np.ndarray:
    """The mask reflected left to right about column ``middle`` (what falls outside the picture is dropped)."""
    src = np.round(2 * middle - np.arange(mask.shape[1])).astype(int)
    inside = (src >= 0) & (src < mask.shape[1])
    out = np.zeros_like(mask)
    out[:, inside] = mask[:, src[inside]]
    return out


def _symmetric_core(silhouette: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """The part of the silhouette that its mirror image about the eyes' centre also covers. Every creature is
    symmetric about the middle of its eyes, so this drops a smear or glow a model drew on one side of it; without
    exactly two eyes the silhouette is kept as it is."""
    centres = _eye_columns(silhouette, eyes)
    xs = np.nonzero(silhouette.any(0))[0]
    if len(centres) != 2 or not 4 <= centres[1] - centres[0] <= 0.7 * (xs[-1] - xs[0] + 1):
        return silhouette
    return silhouette & _mirror(silhouette, (centres[0] + centres[1]) / 2)


def _close_markings(silhouette: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """The silhouette with the dark pixels it encloses on the left, the right and above: markings that reach the
    body's bottom edge (they leave a hole open to the ground, which hole filling misses)."""
    above = np.maximum.accumulate(silhouette, axis=0)
    return silhouette | (dark & _row_spans(silhouette) & above)


def _eye_boxes(whites: np.ndarray, pupils: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The boxes (top, bottom, left, right; ends excluded) of the eyes: small white blobs with a pupil in or beside
    them."""
    boxes = []
    for ys, xs in _components(whites, diagonal=True):
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        if 3 <= len(ys) <= 40 and pupils[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1].any():
            boxes.append((y0, y1, x0, x1))
    return boxes


def _around(boxes: list[tuple[int, int, int, int]], shape: tuple[int, int], reach: int) -> np.ndarray:
    """The boxes grown by ``reach`` pixels on every side, as a mask."""
    out = np.zeros(shape, bool)
    for y0, y1, x0, x1 in boxes:
        out[max(y0 - reach, 0):y1 + reach, max(x0 - reach, 0):x1 + reach] = True
    return out


def _eye_blobs(silhouette: np.ndarray, eyes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """White blobs of at least 4 pixels inside the body (off its outline, where a snowy ground blurs in), in the
    upper three quarters of its height: the eyes."""
    rows = np.nonzero(silhouette.any(1))[0]
    if not len(rows):
        return []
    limit = rows[0] + 0.75 * (rows[-1] - rows[0] + 1)
    return [(ys, xs) for ys, xs in _components(eyes & _erode(silhouette), diagonal=True)
            if len(ys) >= 4 and ys.mean() < limit]


def _eye_columns(silhouette: np.ndarray, eyes: np.ndarray) -> list[float]:
    """The eyes' centre columns, left to right; blobs closer than 6 pixels are one eye (an eye in two pieces, or an
    eye and a white brim)."""
    groups: list[list[float]] = []
    for x in sorted(float(xs.mean()) for _, xs in _eye_blobs(silhouette, eyes)):
        if groups and x - groups[-1][-1] < 6:
            groups[-1].append(x)
        else:
            groups.append([x])
    return [float(np.mean(g)) for g in groups]


def _marking_start(silhouette: np.ndarray, eyes: np.ndarray, shape: str | None) -> int:
    """The first row where markings may be: below the eyes' whites (pupils sit inside them), or, when no eyes are
    found, ``MARK_TOP`` of the body's height (a model may draw the markings higher than the renderer does)."""
    blobs = _eye_blobs(silhouette, eyes)
    if blobs:
        return int(max(ys.max() for ys, _ in blobs)) + 1
    rows = np.nonzero(silhouette.any(1))[0]
    top, height = rows[0], rows[-1] - rows[0] + 1
    return top + int(round(MARK_TOP[shape or "round"] * height))


def _markings(body: np.ndarray, dark: np.ndarray, start: int) -> str:
    """Dark pixels inside the body (its outline peeled, where a dark ground blurs in) from row ``start`` down:
    few → plain; rows crossed by one long run of them → striped; else spotted."""
    rows, widths = _row_widths(body)
    box = _typical_width(widths)
    spans = np.zeros_like(body)
    span_w = np.zeros(body.shape[0], np.float32)
    for y, w in zip(rows, widths):
        xs = np.nonzero(body[y])[0]
        if y >= start and len(xs) >= 4:
            spans[y, xs[0]:xs[-1] + 1] = True
            span_w[y] = min(w, box)
    marks = dark & spans & _erode(body)
    if spans.sum() == 0 or marks.sum() < max(4, 0.05 * spans.sum()):
        return "plain"
    # a stripe is one long run of marked pixels across the row; spots make short runs (at most 0.27 of the width)
    runs = np.array([_longest_run(row) for row in marks], np.float32)
    cover = runs / np.maximum(span_w, 1)
    return "striped" if (cover >= 0.35).sum() >= 2 else "spotted"


def _longest_run(row: np.ndarray) -> int:
    best = cur = 0
    for v in row:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def judge(image) -> Judgement:
    px = _as_array(image)
    scene_d = {s: _scene_distance(px, s) for s in SCENES}
    scores = {s: float(np.minimum(d, CAP).mean()) for s, d in scene_d.items()}
    scene = min(scores, key=scores.get)
    fg = scene_d[scene] > REGION_DIST
    region = _fill_holes(_main_components(fg)) if fg.any() else fg
    names = [*BODY_COLOURS, *(f"hat:{k}" for k in HAT_COLOURS), "eye", "pupil"]
    cols = [*BODY_COLOURS.values(), *HAT_COLOURS.values(), EYE_WHITE, EYE_BLACK]
    d = np.stack([_dist(px, c) for c in cols], -1)
    nearest = d.argmin(-1)
    known = d.min(-1) <= MAX_DIST
    eyes = known & np.isin(nearest, (names.index("eye"), names.index("hat:white")))  # white is white
    colour = None
    counts = [int((region & known & (nearest == i)).sum()) for i in range(len(BODY_COLOURS))]
    if max(counts) >= 12:
        whites = eyes & region
        boxes = _eye_boxes(whites, known & (nearest == names.index("pupil")))
        # the colour around the eyes (a band 3 pixels wide) is the body's own
        around = _around(boxes, region.shape, reach=3)
        near_eyes = [int((around & region & known & (nearest == i)).sum()) for i in range(len(BODY_COLOURS))]
        # (the whole region's may be a glow or a ground of another body colour beside it)
        best = near_eyes if max(near_eyes) >= 8 else counts
        colour = names[int(np.argmax(best))]
    shape, hat, markings = None, None, None
    if colour is not None:
        coloured = region & known & (nearest == names.index(colour))
        # (the eyes join the body's colour above and below them: eyes drawn wide can split it in two)
        joined = coloured | _around(boxes, region.shape, reach=0)
        body = _fill_holes(_main_components(joined, keep=1.0, diagonal=True))
        # the silhouette: the creature's region from the body's first row down (the hat cut off), so that eyes and
        # markings (blurred by a model, they can split the body's own colour in parts) count as body; within the
        # box of the body's colour below and beside its largest part (a model may draw an off-palette ground
        # under it)
        silhouette = np.zeros_like(region)
        if body.sum(1).max() >= 2:
            bcols = np.nonzero(body.any(0))[0]
            parts = [(ys, xs) for ys, xs in _components(coloured, diagonal=True)
                     if len(ys) >= 4 and xs.max() >= bcols[0] and xs.min() <= bcols[-1]]
            top = int(np.nonzero(body.sum(1) >= 2)[0][0])
            bottom = max(int(ys.max()) for ys, _ in parts)
            left = max(min(int(xs.min()) for _, xs in parts) - 1, 0)
            right = max(int(xs.max()) for _, xs in parts) + 2
            silhouette[top:bottom + 1, left:right] = region[top:bottom + 1, left:right]
        # a marking pixel is nearer the marking colour than the body's (blurred edges count half-way)
        dark = _dist(px, MARK_COLOUR) < _dist(px, BODY_COLOURS[colour])
        # each row of the silhouette within the body's colour, eyes and markings (one blurred pixel beyond them):
        # a smear or a glow of another colour that touches the body's side is not the body
        # (the eyes are the eye blobs, or white with the body's colour above and below it in its column, as eyes
        # drawn out to the body's edges are: a snowy or pale ground drawn beside the body is white too, and
        # counted as eyes it widened the lower rows to the box, a disc to a square)
        eye_whites = whites & (_around(boxes, region.shape, reach=0) | _row_spans(coloured.T).T)
        silhouette &= _widen(_row_spans(coloured | eye_whites | (dark & region)))
        silhouette = _fill_holes(_main_components(silhouette | body, keep=1.0, diagonal=True))
        silhouette = _tallest_piece(_symmetric_core(_one_creature(_close_markings(silhouette, dark), eyes), eyes))
        shape = _shape(silhouette)
        markings = _markings(silhouette, dark, _marking_start(silhouette, eyes, shape))
        rows = np.nonzero(silhouette.any(1))[0]
        top, height = rows[0], rows[-1] - rows[0] + 1
        xs = np.nonzero(silhouette.any(0))[0]
        margin = int(0.2 * (xs[-1] - xs[0] + 1))
        above = region & known & (np.arange(64)[:, None] < top + 0.2 * height)
        above[:, :max(xs[0] - margin, 0)] = False  # the hat of this creature, not of a twin beside it
        above[:, xs[-1] + margin + 1:] = False
        hat_counts = [int((above & (nearest == len(BODY_COLOURS) + i)).sum()) for i in range(len(HAT_COLOURS))]
        if max(hat_counts) >= max(6, 0.06 * silhouette.sum()):
            hat = list(HAT_COLOURS)[int(np.argmax(hat_counts))]
    return Judgement(scene=scene, colour=colour, shape=shape, hat=hat, region=region, scene_score=scores[scene],
                     markings=markings)


def judge_twins(image) -> tuple[Judgement, Judgement]:
    """The left and the right creature of a twins picture (``render.random_twins``), each judged on its own."""
    px = _as_array(image).astype(np.uint8)
    sky, ground, _ = SCENES[judge(px).scene]
    horizon = int(HORIZON * px.shape[0])
    halves = []
    for cover in (slice(32, 64), slice(0, 32)):  # keep the left half, then the right one
        one = px.copy()
        one[:horizon, cover] = sky
        one[horizon:, cover] = ground
        halves.append(judge(one))
    return halves[0], halves[1]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks of one size (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
