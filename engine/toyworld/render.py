"""Deterministic procedural renderer of the toy world: one creature in one scene, with its true mask.

``render(attrs)`` draws ``attrs`` (a frozen ``Creature``) at ``size`` px (64 by default) by drawing at 4x and
downsampling (soft edges, easy to encode); the same attributes always give the same pixels. ``random_creature(rng)``
draws attributes from a ``random.Random``. The palette constants are shared with the judge: body colours, shapes,
hat colours and scenes were chosen far apart in RGB so that a palette analyser can read them back. Markings
(``plain``, ``spotted``, ``striped``) are dark patches inside the lower body, away from the eyes: an appearance
attribute, drawn inside the silhouette, like a character's fur pattern.

A creature with ``twin_cx`` set is drawn twice: a second, identical creature (same look, size and ground line) stands
at ``twin_cx``. Training pictures of identical twins teach the model's self-attention to copy a creature's look from
one region of a picture to another, which is what ConsiStory's shared attention asks of it across pictures (see
``random_twins``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["BODY_COLOURS", "SHAPES", "MARKINGS", "HAT_COLOURS", "SCENES", "EYE_WHITE", "EYE_BLACK", "MARK_COLOUR",
           "MARK_TOP", "Creature", "Render", "render", "random_creature", "random_twins"]

BODY_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40), "blue": (40, 70, 210), "green": (60, 190, 70)}
SHAPES: tuple[str, ...] = ("round", "square", "triangle")
MARKINGS: tuple[str, ...] = ("plain", "spotted", "striped")
MARK_COLOUR = (34, 28, 28)
# where the markings' rows begin, per shape (fraction of the body's height from its top; they run to its bottom, and
# the eyes are above)
MARK_TOP: dict[str, float] = {"round": 0.52, "square": 0.52, "triangle": 0.75}
HAT_COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (250, 225, 40), "pink": (230, 60, 200), "white": (255, 255, 255)}
# scene -> (sky, ground, extra element colour or None)
SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int] | None]] = {
    "snow": ((176, 196, 222), (248, 250, 252), None),
    "beach": ((110, 180, 240), (236, 212, 150), None),
    "forest": ((34, 90, 50), (110, 78, 44), (20, 60, 30)),
    "night": ((18, 22, 58), (40, 50, 44), (240, 236, 190)),
    "desert": ((250, 200, 150), (205, 140, 75), None),
}
EYE_WHITE = (255, 255, 255)
EYE_BLACK = (20, 20, 20)
HORIZON = 0.6  # fraction of the height where sky meets ground
SS = 4  # supersampling factor


@dataclass(frozen=True)
class Creature:
    """Everything that decides a render. Geometry is in fractions of the image side."""

    colour: str
    shape: str
    hat: str | None  # a HAT_COLOURS key or None
    scene: str
    cx: float = 0.5      # body centre x
    bottom: float = 0.86  # body bottom y
    width: float = 0.48  # body width
    markings: str = "plain"  # a MARKINGS value
    twin_cx: float | None = None  # an identical second creature's centre x, or None for one creature


@dataclass(frozen=True)
class Render:
    image: Image.Image   # RGB, size x size
    mask: np.ndarray     # bool (size, size): body, eyes and hat (of both twins)
    body_mask: np.ndarray  # bool (size, size): body and eyes only (of both twins)
    creature: Creature


def random_creature(rng: random.Random) -> Creature:
    """Uniform attributes (no hat in one case of four), position and size jittered."""
    hats: list[str | None] = [None, *HAT_COLOURS]
    return Creature(
        colour=rng.choice(list(BODY_COLOURS)), shape=rng.choice(SHAPES), hat=rng.choice(hats),
        scene=rng.choice(list(SCENES)), cx=rng.uniform(0.36, 0.64), bottom=rng.uniform(0.80, 0.92),
        width=rng.uniform(0.40, 0.54), markings=rng.choice(MARKINGS))


def random_twins(rng: random.Random) -> Creature:
    """Identical twins: one look (as ``random_creature`` draws it), a narrower body, one creature on each side."""
    c = random_creature(rng)
    return replace(c, cx=rng.uniform(0.24, 0.30), twin_cx=rng.uniform(0.70, 0.76), width=rng.uniform(0.36, 0.42))


def _scene(draw: ImageDraw.ImageDraw, scene: str, s: int) -> None:
    sky, ground, extra = SCENES[scene]
    h = int(HORIZON * s)
    draw.rectangle([0, 0, s, h], fill=sky)
    draw.rectangle([0, h, s, s], fill=ground)
    if scene == "night":  # a moon in the top-left corner
        draw.ellipse([int(0.06 * s), int(0.06 * s), int(0.22 * s), int(0.22 * s)], fill=extra)
    elif scene == "forest":  # two dark trees at the edges
        for x0 in (-0.04, 0.86):
            draw.polygon([(int((x0) * s), h), (int((x0 + 0.09) * s), int(0.12 * s)), (int((x0 + 0.18) * s), h)],
                         fill=extra)


def _box(c: Creature, s: int) -> tuple[float, float, float, float]:
    """The body's box (x0, y0, x1, y1) in canvas px."""
    w = c.width * s
    h = w if c.shape != "triangle" else w * 1.05
    y1 = c.bottom * s
    return c.cx * s - w / 2, y1 - h, c.cx * s + w / 2, y1


def _body(draw: ImageDraw.ImageDraw, c: Creature, s: int, fill) -> None:
    x0, y0, x1, y1 = _box(c, s)
    if c.shape == "round":
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    elif c.shape == "square":
        draw.rounded_rectangle([x0, y0, x1, y1], radius=(x1 - x0) * 0.08, fill=fill)
    else:
        draw.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=fill)


def _eyes(draw: ImageDraw.ImageDraw, c: Creature, s: int) -> None:
    x0, y0, x1, y1 = _box(c, s)
    w = x1 - x0
    ey = y0 + (0.62 if c.shape == "triangle" else 0.38) * (y1 - y0)
    dx = 0.15 * w if c.shape == "triangle" else 0.2 * w
    r, rp = 0.11 * w, 0.055 * w
    for ex in ((x0 + x1) / 2 - dx, (x0 + x1) / 2 + dx):
        draw.ellipse([ex - r, ey - r, ex + r, ey + r], fill=EYE_WHITE)
        draw.ellipse([ex - rp, ey - rp + r * 0.2, ex + rp, ey + rp + r * 0.2], fill=EYE_BLACK)


def _half_width(c: Creature, s: int, f: float) -> float:
    """Half the body's width (canvas px) at ``f`` of its height from the top."""
    x0, y0, x1, y1 = _box(c, s)
    half = (x1 - x0) / 2
    if c.shape == "round":
        return half * max(0.0, 1 - (2 * f - 1) ** 2) ** 0.5
    if c.shape == "triangle":
        return half * f
    return half


def _markings(draw: ImageDraw.ImageDraw, c: Creature, s: int) -> None:
    """Two stripes or three spots inside the lower body (inset from its outline), or nothing."""
    if c.markings == "plain":
        return
    x0, y0, x1, y1 = _box(c, s)
    w, h, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    tri = c.shape == "triangle"
    if c.markings == "striped":
        bands = ((0.76, 0.845), (0.88, 0.965)) if tri else ((0.56, 0.67), (0.76, 0.87))
        for a, b in bands:
            half = (0.7 if tri else 0.8) * min(_half_width(c, s, a), _half_width(c, s, b))
            draw.rectangle([cx - half, y0 + a * h, cx + half, y0 + b * h], fill=MARK_COLOUR)
    else:
        r = (0.075 if tri else 0.085) * w
        spots = ((0.0, 0.80), (-0.21, 0.905), (0.21, 0.905)) if tri else ((-0.2, 0.66), (0.2, 0.66), (0.0, 0.82))
        for dx, fy in spots:
            x, y = cx + dx * w, y0 + fy * h
            draw.ellipse([x - r, y - r, x + r, y + r], fill=MARK_COLOUR)


def _hat(draw: ImageDraw.ImageDraw, c: Creature, s: int, fill) -> None:
    x0, y0, x1, y1 = _box(c, s)
    w = x1 - x0
    cx = (x0 + x1) / 2
    top_y = y0 + (0.08 * w if c.shape == "triangle" else 0.02 * w)  # sits on the apex / the top edge
    brim_h, crown_h = 0.09 * w, 0.30 * w
    brim_w, crown_w = 0.80 * w, 0.50 * w
    draw.rectangle([cx - brim_w / 2, top_y - brim_h, cx + brim_w / 2, top_y], fill=fill)
    draw.rectangle([cx - crown_w / 2, top_y - brim_h - crown_h, cx + crown_w / 2, top_y - brim_h + 1], fill=fill)


def render(c: Creature, size: int = 64) -> Render:
    """Draw ``c``; deterministic (no randomness inside). Raises ``ValueError`` on unknown attributes."""
    if c.colour not in BODY_COLOURS or c.shape not in SHAPES or c.scene not in SCENES or (
            c.hat is not None and c.hat not in HAT_COLOURS) or c.markings not in MARKINGS:
        raise ValueError(f"Unknown toy-world attributes: {c}.")
    s = size * SS
    img = Image.new("RGB", (s, s))
    draw = ImageDraw.Draw(img)
    _scene(draw, c.scene, s)
    body = Image.new("L", (s, s))
    full = Image.new("L", (s, s))
    for one in (c,) if c.twin_cx is None else (c, replace(c, cx=c.twin_cx, twin_cx=None)):
        _body(draw, one, s, BODY_COLOURS[one.colour])
        _markings(draw, one, s)
        _eyes(draw, one, s)
        _body(ImageDraw.Draw(body), one, s, 255)
        _body(ImageDraw.Draw(full), one, s, 255)
        if one.hat:
            _hat(draw, one, s, HAT_COLOURS[one.hat])
            _hat(ImageDraw.Draw(full), one, s, 255)

    def small(m: Image.Image) -> np.ndarray:
        return np.array(m.resize((size, size), Image.BOX)) >= 128

    return Render(image=img.resize((size, size), Image.LANCZOS), mask=small(full), body_mask=small(body), creature=c)
