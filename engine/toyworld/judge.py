"""The toy world's judge: a deterministic palette analyser reading scene, creature region and attributes back.

``judge(image)`` (a 64x64 RGB PIL image or uint8 array; other sizes are resized) returns a ``Judgement``:

1. scene: every pixel is compared with each scene's palette (sky above the horizon, ground below, the scene's
   extra element anywhere), distances capped so the creature counts the same for every scene; lowest mean wins;
2. creature region: pixels far from the judged scene's palette, main 4-connected components, holes filled;
3. body colour: the body colour most region pixels are nearest to (within ``MAX_DIST``);
4. shape from the silhouette's row widths (the region below the body colour's first row: eyes and markings
   included, the hat cut off): triangle when the upper rows are much narrower than the lower ones, square when it
   fills its box, round otherwise;
5. hat: hat-coloured region pixels above the top fifth of the body, enough of them (else ``None``);
6. markings: pixels nearer the marking colour than the body colour in the body's marking rows (``MARK_TOP`` down):
   few → plain; rows crossed by one long run of them → striped; else spotted.

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


def _main_components(mask: np.ndarray, keep: float = 0.15, diagonal: bool = False) -> np.ndarray:
    """The largest 4-connected (``diagonal``: 8-connected) component and every other one at least ``keep`` of its
    size (specks dropped)."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1)) + (((1, 1), (1, -1), (-1, 1), (-1, -1)) if diagonal else ())
    comps: list[list[tuple[int, int]]] = []
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
        comps.append(comp)
    out = np.zeros_like(mask)
    if comps:
        big = max(len(c) for c in comps)
        for comp in comps:
            if len(comp) >= max(4, keep * big):
                ys, xs = zip(*comp)
                out[list(ys), list(xs)] = True
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


def _shape(body: np.ndarray) -> str | None:
    rows = np.nonzero(body.any(1))[0]
    if len(rows) < 4:
        return None
    top, bottom = rows[0], rows[-1]
    widths = []
    for y in range(top, bottom + 1):
        xs = np.nonzero(body[y])[0]
        widths.append(xs[-1] - xs[0] + 1 if len(xs) else 0)
    widths_a = np.asarray(widths, np.float32)
    n = len(widths_a)
    upper = widths_a[int(0.15 * n):max(int(0.35 * n), int(0.15 * n) + 1)].mean()
    lower = widths_a[int(0.65 * n):max(int(0.85 * n), int(0.65 * n) + 1)].mean()
    if upper < 0.62 * lower:
        return "triangle"
    cols = np.nonzero(body.any(0))[0]
    fill = body.sum() / float(n * (cols[-1] - cols[0] + 1))
    return "square" if fill > 0.87 else "round"


def _markings(body: np.ndarray, dark: np.ndarray, shape: str | None) -> str:
    """Dark pixels between the body's left and right edge on its marking rows (markings may touch the outline)."""
    rows = np.nonzero(body.any(1))[0]
    top, height = rows[0], rows[-1] - rows[0] + 1
    start = top + int(round(MARK_TOP[shape or "round"] * height))
    spans = np.zeros_like(body)
    for y in range(start, rows[-1] + 1):
        xs = np.nonzero(body[y])[0]
        if len(xs) >= 4:
            spans[y, xs[0]:xs[-1] + 1] = True
    marks = dark & spans
    if spans.sum() == 0 or marks.sum() < max(4, 0.07 * spans.sum()):
        return "plain"
    # a stripe is one long run of marked pixels across the row; spots make short runs (at most 0.3 of the width)
    runs = np.array([_longest_run(row) for row in marks], np.float32)
    cover = runs / np.maximum(spans.sum(1), 1)
    return "striped" if (cover >= 0.45).sum() >= 2 else "spotted"


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
    colour = None
    counts = [int((region & known & (nearest == i)).sum()) for i in range(len(BODY_COLOURS))]
    if max(counts) >= 12:
        colour = names[int(np.argmax(counts))]
    shape, hat, markings = None, None, None
    if colour is not None:
        body = region & known & (nearest == names.index(colour))
        body = _fill_holes(_main_components(body, keep=1.0, diagonal=True))
        # the silhouette: the creature's region from the body's first row down (the hat cut off), so that eyes and
        # markings (blurred by a model, they can split the body's own colour in parts) count as body
        rows = np.nonzero(body.sum(1) >= 2)[0]
        silhouette = region.copy()
        silhouette[:rows[0] if len(rows) else 0] = False
        silhouette = _fill_holes(_main_components(silhouette | body, keep=1.0, diagonal=True))
        shape = _shape(silhouette)
        # a marking pixel is nearer the marking colour than the body's (blurred edges count half-way)
        dark = _dist(px, MARK_COLOUR) < _dist(px, BODY_COLOURS[colour])
        markings = _markings(silhouette, dark, shape)
        rows = np.nonzero(silhouette.any(1))[0]
        top, height = rows[0], rows[-1] - rows[0] + 1
        above = region & known & (np.arange(64)[:, None] < top + 0.2 * height)
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
