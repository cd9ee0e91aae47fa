"""The toy world's renderer and captions: deterministic pictures, true masks, one token per word."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from engine.toyworld.captions import VOCABULARY, caption, random_caption, underspecified
from engine.toyworld.render import (BODY_COLOURS, HAT_COLOURS, MARK_COLOUR, MARKINGS, SCENES, Creature,
                                    random_creature, random_twins, render)


def _creature(**kw) -> Creature:
    base = dict(colour="red", shape="round", hat=None, scene="snow", cx=0.5, bottom=0.86, width=0.48)
    return Creature(**{**base, **kw})


def test_same_creature_same_pixels_and_masks():
    c = random_creature(random.Random(5))
    a, b = render(c), render(c)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.mask == b.mask).all() and (a.body_mask == b.body_mask).all()
    assert random_creature(random.Random(5)) == c


def test_every_attribute_changes_the_picture():
    base = render(_creature()).image.tobytes()
    for change in ({"colour": "blue"}, {"shape": "square"}, {"hat": "pink"}, {"scene": "night"}, {"cx": 0.4},
                   {"markings": "spotted"}, {"markings": "striped"}):
        assert render(_creature(**change)).image.tobytes() != base, change


def test_mask_is_body_plus_hat_and_background_is_the_scene():
    plain, hatted = render(_creature()), render(_creature(hat="yellow"))
    assert (plain.mask == plain.body_mask).all()
    assert (hatted.body_mask == plain.body_mask).all()
    hat_only = hatted.mask & ~hatted.body_mask
    assert hat_only.sum() > 60
    assert hat_only.nonzero()[0].max() <= plain.body_mask.nonzero()[0].min() + 2  # the hat sits on top
    px = np.asarray(hatted.image).astype(int)
    assert (np.abs(px[hat_only] - HAT_COLOURS["yellow"]).sum(1) < 40).mean() > 0.8
    assert (np.abs(px[hatted.body_mask] - BODY_COLOURS["red"]).sum(1) < 40).mean() > 0.7  # eyes are the rest
    sky, ground, _ = SCENES["snow"]
    outside = ~np.asarray(hatted.mask)
    assert (np.abs(px[:30][outside[:30]] - sky).max(1) <= 8).mean() > 0.95
    assert (np.abs(px[45:][outside[45:]] - ground).max(1) <= 8).mean() > 0.95


@pytest.mark.parametrize("shape", ["round", "square", "triangle"])
def test_markings_lie_inside_the_lower_body_and_leave_the_outline(shape):
    plain = render(_creature(shape=shape, hat="pink"))
    rows = plain.body_mask.nonzero()[0]
    top, height = rows.min(), rows.max() - rows.min() + 1
    for kind in ("spotted", "striped"):
        marked = render(_creature(shape=shape, hat="pink", markings=kind))
        assert (marked.mask == plain.mask).all() and (marked.body_mask == plain.body_mask).all()
        px = np.asarray(marked.image).astype(int)
        dark = (np.abs(px - MARK_COLOUR).sum(-1) < 60) & ~(np.asarray(plain.image).astype(int).sum(-1) < 150)
        assert dark.sum() > 15, kind
        assert plain.body_mask[dark].all()  # inside the silhouette ...
        assert dark.nonzero()[0].min() >= top + 0.5 * height  # ... below the eyes
    stripes = render(_creature(shape=shape, markings="striped"))
    spots = render(_creature(shape=shape, markings="spotted"))
    assert stripes.image.tobytes() != spots.image.tobytes()
    assert random_creature(random.Random(1)).markings in MARKINGS
    assert {random_creature(random.Random(i)).markings for i in range(40)} == set(MARKINGS)


def test_twins_are_two_identical_creatures_side_by_side():
    alone = _creature(colour="green", shape="square", hat="pink", markings="spotted", cx=0.25, width=0.4)
    c = replace(alone, twin_cx=0.75)
    one, two = render(alone), render(c)
    assert render(c).image.tobytes() == two.image.tobytes()  # deterministic
    assert (two.mask[:, :32] == one.mask[:, :32]).all()  # the left creature is the one creature drawn alone ...
    assert not one.mask[:, 32:].any() and two.mask[:, 32:].any()  # ... and the twin stands on the right
    # the twin is the same creature moved by half the side (32 px): the same mask and, on it, the same pixels
    assert (np.roll(one.mask, 32, axis=1)[:, 32:] == two.mask[:, 32:]).all()
    px = np.asarray(two.image).astype(int)
    assert np.abs(px[:, :32][two.mask[:, :32]] - px[:, 32:][two.mask[:, 32:]]).max() <= 3
    left, right = px[:, :32][two.body_mask[:, :32]], px[:, 32:][two.body_mask[:, 32:]]
    for colour in (BODY_COLOURS["green"], MARK_COLOUR):
        near = [(np.abs(side - colour).sum(1) < 60).mean() for side in (left, right)]
        assert near[0] > 0.04 and abs(near[0] - near[1]) < 0.03, (colour, near)
    assert caption(c) == "two green spotted square creatures with pink hats in the snow"
    assert caption(replace(c, hat=None)) == "two green spotted square creatures with no hats in the snow"
    rng = random.Random(2)
    said = [random_caption(c, rng) for _ in range(2000)]
    caps = set(said)
    assert {x.split()[0] for x in caps if x} == {"two"}
    assert {"two creatures in the snow", "two creatures with hats in the snow", "two green creatures"} <= caps
    # twins leave their look open more often than one creature does (copying, not words, must match them)
    assert 0.38 < sum("green" in x for x in said) / len(said) < 0.52
    assert 0.38 < sum("spotted" in x for x in said) / len(said) < 0.52
    assert all(w in VOCABULARY for x in caps for w in x.split())


def test_twin_draws_keep_the_one_creature_stream():
    from engine.toyworld.dataset import make_creatures

    rng = random.Random(4)
    assert make_creatures(50, 4) == make_creatures(50, 4, twins=0.0) == tuple(random_creature(rng) for _ in range(50))
    mixed = make_creatures(2000, 4, twins=0.3)
    twins = [c for c in mixed if c.twin_cx is not None]
    assert 0.25 < len(twins) / len(mixed) < 0.35
    assert all(c.cx < 0.35 and c.twin_cx > 0.65 and c.width <= 0.42 for c in twins)
    assert {c.markings for c in twins} == set(MARKINGS) and random_twins(random.Random(1)).twin_cx is not None


def test_unknown_attribute_is_refused():
    with pytest.raises(ValueError, match="Unknown toy-world attributes"):
        render(_creature(colour="mauve"))
    with pytest.raises(ValueError, match="Unknown toy-world attributes"):
        render(_creature(markings="tartan"))


def test_captions_say_what_is_drawn():
    c = _creature(colour="blue", shape="triangle", hat="white", scene="beach", markings="striped")
    assert caption(c) == "a blue striped triangle creature with a white hat on the beach"
    assert caption(_creature(scene="night")) == "a red plain round creature with no hat at night"
    assert underspecified("desert") == "a creature in the desert"
    assert underspecified("desert", "square") == "a square creature in the desert"
    rng = random.Random(0)
    caps = [random_caption(c, rng) for _ in range(2000)]
    assert 0.07 < caps.count("") / len(caps) < 0.13
    said = [x for x in caps if x]
    assert all("creature" in x for x in said)
    assert 0.65 < sum("blue" in x for x in said) / len(said) < 0.85
    assert 0.65 < sum("striped" in x for x in said) / len(said) < 0.85
    assert any(x.endswith("creature") for x in said)  # everything dropped but the subject


def test_every_caption_word_is_one_token():
    from engine.toyworld.architecture import MAX_TOKENS, build_tokenizer

    tok = build_tokenizer()
    for word in VOCABULARY:
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    longest = caption(_creature(colour="green", shape="triangle", hat="yellow", scene="desert", markings="spotted"))
    assert len(tok(longest).input_ids) <= MAX_TOKENS
