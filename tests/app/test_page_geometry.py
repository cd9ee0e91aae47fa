"""Page presets, print boxes, per-edge mirrored bleed, slot rectangles with gutters and bleed, image cropping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.layouts import load_layout
from app.page_geometry import GeometryError, Rect, page_geometry, place_image, slot_rects, text_area_rects
from app.page_presets import PRESETS, PresetError, trim_size
from app.project_model import BookSettings


def book(**kw) -> BookSettings:
    return BookSettings(title="t", **kw)


def test_preset_sizes_in_points():
    assert trim_size("us-comic") == (477.0, 738.0)
    assert trim_size("square-8.5") == (612.0, 612.0)
    assert trim_size("8x10") == (576.0, 720.0)
    assert trim_size("us-letter") == (612.0, 792.0)
    w, h = trim_size("a4")
    assert (round(w, 2), round(h, 2)) == (595.28, 841.89)
    w, h = trim_size("a5")
    assert (round(w, 2), round(h, 2)) == (419.53, 595.28)


def test_landscape_turns_portrait_presets_and_keeps_landscape_ones():
    assert trim_size("us-letter", "landscape") == (792.0, 612.0)
    assert trim_size("a4-landscape") == trim_size("a4", "landscape")
    assert trim_size("10x8", "portrait") == (720.0, 576.0)
    assert all(p.landscape for k, p in PRESETS.items() if k.endswith("landscape") or k == "10x8")


def test_unknown_preset_and_orientation_say_what_to_choose():
    with pytest.raises(PresetError, match="Unknown page size 'b5'; choose one of: us-comic, a4"):
        trim_size("b5")
    with pytest.raises(PresetError, match="use 'portrait' or 'landscape'"):
        trim_size("a4", "sideways")


def test_interior_bleed_is_mirrored_and_never_on_the_spine():
    b = book()
    right, left = page_geometry(b, 0), page_geometry(b, 1)
    assert right.right_hand and not left.right_hand
    assert (right.bleed.top, right.bleed.right, right.bleed.bottom, right.bleed.left) == (9, 9, 9, 0)
    assert (left.bleed.top, left.bleed.right, left.bleed.bottom, left.bleed.left) == (9, 0, 9, 9)
    assert (right.media_w, right.media_h) == (477 + 9, 738 + 18)
    assert right.trim == Rect(0, 9, 477, 738) and left.trim == Rect(9, 9, 477, 738)
    assert right.pdf_box(right.trim) == (0, 9, 477, 747)
    assert left.pdf_box(left.trim) == (9, 9, 486, 747)
    assert page_geometry(b, 2).bleed == right.bleed


def test_cover_bleeds_all_round_and_single_sided_pages_are_all_right_hand():
    g = page_geometry(book(interior=False), 1)
    assert (g.bleed.top, g.bleed.right, g.bleed.bottom, g.bleed.left) == (9, 9, 9, 9)
    assert (g.media_w, g.media_h) == (495, 756)
    g = page_geometry(book(facing_pages=False), 1)
    assert g.right_hand and g.bleed.left == 0 and g.bleed.right == 9


def test_screen_page_has_no_bleed_and_margins_make_live_and_safe_areas():
    g = page_geometry(book(margin_in=0.5), 1, bleed=False)
    assert (g.media_w, g.media_h) == (477, 738) and g.trim == Rect(0, 0, 477, 738)
    assert g.live == Rect(36, 36, 405, 666)
    assert g.safe == Rect(18, 18, 441, 702)


def test_bad_book_values_are_refused_with_a_sentence():
    with pytest.raises(GeometryError, match="bleed -1 in must be between 0 and 1 inches"):
        page_geometry(book(bleed_in=-1), 0)
    with pytest.raises(GeometryError, match="margin 3.5 in must be between 0 and 3 inches"):
        page_geometry(book(margin_in=3.5), 0)
    assert page_geometry(book(margin_in=2.5), 0).live.w > 0  # what a project file accepts is composed
    with pytest.raises(GeometryError, match="Margins of 3 in leave no room"):
        page_geometry(book(page_preset="a5", margin_in=3.0), 0)


def test_two_by_two_slots_are_split_by_the_gutter():
    g = page_geometry(book(margin_in=0.5, gutter_in=0.25), 0)  # live: x 36..441, y 45..711
    r = slot_rects(g, load_layout("2x2"), 0.25)
    assert r[0] == Rect(36, 45, 405 / 2 - 9, 333 - 9)
    assert r[1].x == pytest.approx(36 + 405 / 2 + 9) and r[1].right == pytest.approx(441)
    assert r[2].y == pytest.approx(45 + 333 + 9) and r[2].bottom == pytest.approx(711)
    assert r[1].x - r[0].right == pytest.approx(18)  # the gutter
    zero = slot_rects(g, load_layout("2x2"), 0.0)
    assert zero[0].right == pytest.approx(zero[1].x)


def test_bleeding_slots_run_to_the_media_edge_but_stop_at_the_spine():
    b = book()
    right = slot_rects(page_geometry(b, 0), load_layout("splash"), 0.125)[0]
    left = slot_rects(page_geometry(b, 1), load_layout("splash"), 0.125)[0]
    assert right == Rect(0, 0, 486, 756)  # spine (left) edge: trim = media edge, no bleed
    assert left == Rect(0, 0, 486, 756)
    g = page_geometry(b, 0)
    pb = slot_rects(g, load_layout("picture-book"), 0.125)[0]
    assert (pb.x, pb.y, pb.right) == (0, 0, 486)
    assert pb.bottom == pytest.approx(g.live.y + 0.7 * g.live.h - 4.5)
    text = text_area_rects(g, load_layout("picture-book"), 0.125)[0]
    assert text.y == pytest.approx(pb.bottom + 9) and text.bottom == pytest.approx(g.live.bottom)


def test_too_wide_a_gutter_is_refused():
    g = page_geometry(book(), 0)
    with pytest.raises(GeometryError, match="gutter of 2 in leaves no room"):
        slot_rects(g, load_layout("strip-4"), 2.0)
    with pytest.raises(GeometryError, match="gutter -1 in must be between 0 and 2"):
        slot_rects(g, load_layout("2x2"), -1)


def test_image_is_cropped_by_focus_not_stretched():
    slot = Rect(10, 20, 100, 50)  # 2:1 slot, 512x512 image
    p = place_image(512, 512, slot, 0.5, 0.5, 1.0)
    assert p.src == (0.0, 128.0, 512.0, 384.0)
    assert p.draw == Rect(10, 20 - 128 * 100 / 512, 100, 100)
    top = place_image(512, 512, slot, 0.5, 0.0, 1.0)
    assert top.src == (0.0, 0.0, 512.0, 256.0)
    zoomed = place_image(512, 512, slot, 1.0, 1.0, 2.0)
    assert zoomed.src == (256.0, 384.0, 512.0, 512.0)  # the focus is clamped: the crop stays inside
    assert zoomed.dpi == pytest.approx(512 / (200 / 72))
    with pytest.raises(GeometryError, match="0 × 5 pixels cannot be placed"):
        place_image(0, 5, slot)


@settings(max_examples=200, deadline=None)
@given(st.integers(16, 4096), st.integers(16, 4096), st.floats(5, 900), st.floats(5, 900), st.floats(0, 1),
       st.floats(0, 1), st.floats(0.2, 4))
def test_placement_covers_the_slot_with_one_scale_inside_the_image(pw, ph, sw, sh, fx, fy, zoom):
    slot = Rect(3, 4, sw, sh)
    p = place_image(pw, ph, slot, fx, fy, zoom)
    l, t, r, b = p.src
    assert -1e-6 <= l < r <= pw + 1e-6 and -1e-6 <= t < b <= ph + 1e-6
    sx, sy = sw / (r - l), sh / (b - t)
    assert sx == pytest.approx(sy, rel=1e-9)  # never stretched
    assert p.draw.w / pw == pytest.approx(sx) and p.draw.h / ph == pytest.approx(sy)
    assert p.draw.x + l * sx == pytest.approx(slot.x) and p.draw.y + t * sy == pytest.approx(slot.y)


def test_a_page_gutter_overrides_the_books(tmp_path):
    from app.page_composition import compose_page
    from app.project_model import Page, SlotFill

    b = book(gutter_in=0.25)
    default = compose_page(b, Page("a", "2-tiers", slots=(SlotFill(None), SlotFill(None))), 0, {}, tmp_path)
    tight = compose_page(b, Page("a", "2-tiers", gutter_in=0.0, slots=(SlotFill(None),)), 0, {}, tmp_path)
    top, bottom = (h.clip for h in default.placeholders)
    assert bottom.y - top.bottom == pytest.approx(18)
    t_top, t_bottom = (h.clip for h in tight.placeholders)
    assert t_bottom.y == pytest.approx(t_top.bottom)
    assert [h.label for h in tight.placeholders] == ["Empty slot", "Empty slot"]  # missing fills are empty slots
