"""Balloon outlines, tails and text layout: auto-fit, wrapping, centring, and text that never leaves its balloon."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.balloon_geometry import (LEADING, MAX_SIZE, MIN_SIZE, balloon_shape, flatten, layout_text)
from app.fonts import font_metrics, string_width
from app.page_geometry import Rect
from app.project_model import Balloon

TRIM = Rect(9, 9, 477, 738)


def inside(poly, x, y) -> bool:
    n, c = len(poly), False
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            c = not c
    return c


def test_speech_is_an_ellipse_filling_the_box_with_a_tail_to_the_tip():
    s = balloon_shape(Balloon("b", "speech", "Hi", 0.1, 0.1, 0.4, 0.1, 0.3, 0.4), TRIM)
    assert s.body == Rect(9 + 47.7, 9 + 73.8, 190.8, 73.8)
    tip = (9 + 0.3 * 477, 9 + 0.4 * 738)
    segs = s.outline[0].segments
    assert segs[-2][3] == tip  # the tail: out to the tip and back to the start, both sides gently curved
    assert segs[-1][3] == s.outline[0].start
    body = flatten(type(s.outline[0])(s.outline[0].start, segs[:-2]), 32)
    cx, cy, a, b = s.body.x + s.body.w / 2, s.body.y + s.body.h / 2, s.body.w / 2, s.body.h / 2
    assert max(abs(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 - 1) for x, y in body) < 1e-3
    assert all(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 >= 1 - 1e-3 for x, y in flatten(s.outline[0], 32))


def test_no_tail_when_the_tip_is_missing_or_inside_and_captions_have_none():
    a = balloon_shape(Balloon("b", "speech", "Hi", 0.1, 0.1, 0.4, 0.1), TRIM)
    b = balloon_shape(Balloon("b", "speech", "Hi", 0.1, 0.1, 0.4, 0.1, 0.3, 0.15), TRIM)
    assert a.outline == b.outline
    cap = balloon_shape(Balloon("c", "caption", "Meanwhile", 0.1, 0.1, 0.4, 0.05, 0.9, 0.9), TRIM)
    assert [seg[0] for seg in cap.outline[0].segments] == ["L", "L", "L"]
    assert cap.outline[0].start == (cap.body.x, cap.body.y)


def test_thought_has_trailing_circles_and_shout_a_spike_to_the_tip():
    t = balloon_shape(Balloon("t", "thought", "Hmm", 0.1, 0.1, 0.4, 0.15, 0.3, 0.5), TRIM)
    assert len(t.outline) == 4
    radii = [max(math.dist(p, q) for p in flatten(c, 16) for q in flatten(c, 16)) for c in t.outline[1:]]
    assert radii == sorted(radii, reverse=True)
    assert len(balloon_shape(Balloon("t", "thought", "Hmm", 0.1, 0.1, 0.4, 0.15), TRIM).outline) == 1
    s = balloon_shape(Balloon("s", "shout", "BOOM", 0.1, 0.1, 0.4, 0.15, 0.3, 0.5), TRIM)
    assert s.outline[0].segments[-1][0] == "L"
    assert (9 + 0.3 * 477, 9 + 0.5 * 738) in flatten(s.outline[0])
    assert s.text.font == "comic-bold"
    again = balloon_shape(Balloon("s", "shout", "BOOM", 0.1, 0.1, 0.4, 0.15, 0.3, 0.5), TRIM)
    assert again.outline == s.outline  # jagged but deterministic (seeded by the balloon id)


def test_text_is_wrapped_centred_and_the_largest_size_that_fits():
    box = Rect(0, 0, 100, 60)
    t = layout_text("the quick brown fox jumps", "comic", box)
    assert MIN_SIZE < t.size < MAX_SIZE and not t.overflow
    asc, desc = font_metrics("comic")
    block = (len(t.lines) - 1) * LEADING * t.size + (asc - desc) * t.size
    assert t.lines[0].baseline - asc * t.size == pytest.approx((60 - block) / 2)
    for line in t.lines:
        assert line.width == pytest.approx(string_width(line.text, "comic", t.size))
        assert line.x == pytest.approx((100 - line.width) / 2)
    assert " ".join(x.text for x in t.lines) == "the quick brown fox jumps"
    bigger = layout_text("the quick brown fox jumps", "comic", box, t.size + 0.05)
    assert bigger.overflow and bigger.lines == ()


def test_explicit_newlines_and_fixed_sizes():
    t = layout_text("One\nTwo", "comic", Rect(0, 0, 200, 100), 10)
    assert [x.text for x in t.lines] == ["One", "Two"] and t.size == 10
    assert t.lines[1].baseline - t.lines[0].baseline == pytest.approx(10 * LEADING)


def test_text_that_cannot_fit_is_hidden_and_reported():
    t = layout_text("Supercalifragilisticexpialidocious", "comic", Rect(0, 0, 30, 40))
    assert t.overflow and t.lines == () and t.size == MIN_SIZE
    s = balloon_shape(Balloon("b", "speech", "word " * 300, 0.1, 0.1, 0.1, 0.05), TRIM)
    assert s.text.overflow and s.text.lines == ()
    assert not layout_text("   ", "comic", Rect(0, 0, 30, 40)).overflow


words = st.text(alphabet=st.characters(codec="latin-1", categories=("L", "N", "P")), min_size=1, max_size=14)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["speech", "thought", "shout", "caption"]), st.lists(words, min_size=1, max_size=40),
       st.floats(0.05, 0.9), st.floats(0.03, 0.5), st.one_of(st.none(), st.floats(4, 40)))
def test_text_never_leaves_its_balloon(kind, ws, w, h, size):
    b = Balloon("b", kind, " ".join(ws), 0.05, 0.05, w, h, 0.9, 0.95, size)
    s = balloon_shape(b, TRIM)
    t = s.text
    box = s.text_box
    body = flatten(s.outline[0], 24)
    for x, y in ((box.x, box.y), (box.right, box.y), (box.x, box.bottom), (box.right, box.bottom)):
        if box.w > 0 and box.h > 0:
            assert inside(body, x, y), (kind, box)
    if t.overflow:
        assert t.lines == ()
        return
    assert t.size == size if size is not None else MIN_SIZE <= t.size <= MAX_SIZE
    for line in t.lines:
        assert line.x >= box.x - 1e-6 and line.x + line.width <= box.right + 1e-6
        assert line.baseline - t.ascent * t.size >= box.y - 1e-6
        assert line.baseline - t.descent * t.size <= box.bottom + 1e-6
        assert line.width == pytest.approx(string_width(line.text, t.font, t.size))
    assert " ".join(x.text for x in t.lines).split() == " ".join(ws).split()
