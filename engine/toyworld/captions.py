"""Captions for toy-world creatures, their vocabulary (one token per word) and the scene phrases.

``caption(c)`` is the fully specified sentence ("a red spotted round creature with a pink hat in the desert");
``random_caption(c, rng)`` drops attributes at random (the training distribution); ``underspecified(scene)`` is
the subject-only prompt used by the consistency benchmark ("a creature in the snow"; with ``shape``, the kind of
creature is named and its look left open: "a round creature in the snow"). Twins are captioned in the plural ("two
red spotted round creatures with yellow hats in the forest").
"""

from __future__ import annotations

import random

from .render import BODY_COLOURS, HAT_COLOURS, MARKINGS, SCENES, SHAPES, Creature

__all__ = ["SUBJECT", "SCENE_PHRASES", "VOCABULARY", "caption", "random_caption", "underspecified"]

SUBJECT = "creature"
SCENE_PHRASES: dict[str, str] = {
    "snow": "in the snow", "beach": "on the beach", "forest": "in the forest", "night": "at night",
    "desert": "in the desert"}
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(
    ["a", SUBJECT, "with", "no", "hat", "two", "creatures", "hats", *BODY_COLOURS, *SHAPES, *HAT_COLOURS,
     *MARKINGS, *" ".join(SCENE_PHRASES.values()).split()]))
assert set(SCENE_PHRASES) == set(SCENES)


def _compose(colour: str | None, shape: str | None, hat: str | None, scene: str | None,
             markings: str | None = None, twins: bool = False) -> str:
    words = ["two" if twins else "a"]
    if colour:
        words.append(colour)
    if markings:
        words.append(markings)
    if shape:
        words.append(shape)
    words.append("creatures" if twins else SUBJECT)
    if hat is not None and twins:
        words.append("with no hats" if hat == "none" else ("with hats" if hat == "any" else f"with {hat} hats"))
    elif hat is not None:
        words.append("with no hat" if hat == "none" else ("with a hat" if hat == "any" else f"with a {hat} hat"))
    if scene:
        words.append(SCENE_PHRASES[scene])
    return " ".join(words)


def caption(c: Creature) -> str:
    """Every attribute said."""
    return _compose(c.colour, c.shape, c.hat or "none", c.scene, c.markings, c.twin_cx is not None)


def random_caption(c: Creature, rng: random.Random) -> str:
    """Training caption: empty 10 % of the time, else each attribute dropped on its own."""
    if rng.random() < 0.10:
        return ""
    twins = c.twin_cx is not None
    say = 0.5 if twins else 0.75  # twins leave their look open more often: copying, not words, must match them
    colour = c.colour if rng.random() < say else None
    shape = c.shape if rng.random() < 0.75 else None
    r, unsaid = rng.random(), 1 - say + 0.05  # the hat goes unsaid that often, and is "a hat" 8 % more
    hat: str | None = None if r < unsaid else ("any" if (c.hat and r < unsaid + 0.08) else (c.hat or "none"))
    scene = c.scene if rng.random() < 0.85 else None
    markings = c.markings if rng.random() < say else None
    return _compose(colour, shape, hat, scene, markings, twins)


def underspecified(scene: str, shape: str | None = None) -> str:
    """Subject and scene only, or with ``shape`` also the kind of creature: colour, markings and hat left open."""
    return _compose(None, shape, None, scene)
