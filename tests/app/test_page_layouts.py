"""Layout templates are data: every shipped one loads; bad files fail with a sentence naming file, box and fix."""

from __future__ import annotations

import json

import pytest

from app.layouts import LayoutError, all_layouts, layout_ids, load_layout, parse_layout

SHIPPED = ["2-tiers", "2x2", "2x3", "3-tiers", "picture-book", "splash", "strip-3", "strip-4"]


def test_every_shipped_layout_loads_and_tiles_the_live_area():
    assert list(layout_ids()) == SHIPPED
    counts = {t.id: len(t.slots) for t in all_layouts()}
    assert counts == {"2-tiers": 2, "2x2": 4, "2x3": 6, "3-tiers": 3, "picture-book": 1, "splash": 1,
                      "strip-3": 3, "strip-4": 4}
    for t in all_layouts():
        area = sum(b.w * b.h for b in t.slots + t.text_areas)
        assert area == pytest.approx(1.0, abs=1e-4), t.id
    assert load_layout("splash").slots[0].bleed == {"top", "right", "bottom", "left"}
    pb = load_layout("picture-book")
    assert pb.slots[0].bleed == {"top", "left", "right"} and len(pb.text_areas) == 1


def good(**over):
    d = {"format": "consistory-studio-layout", "version": 1, "id": "x", "name": "X",
         "slots": [{"rect": [0, 0, 0.5, 1]}, {"rect": [0.5, 0, 0.5, 1], "bleed": ["right"]}]}
    d.update(over)
    return d


@pytest.mark.parametrize("over, message", [
    ({"format": "other"}, "\"format\" must be 'consistory-studio-layout'"),
    ({"version": 2}, "layout version 2 is not supported"),
    ({"slots": []}, "\"slots\" must list at least one slot"),
    ({"slots": [{"rect": [0, 0, 1]}]}, "slot 1 has rect \\[0, 0, 1\\]; write four numbers"),
    ({"slots": [{"rect": [0, 0, 0, 1]}]}, "slot 1 has width 0 and height 1; both must be greater than 0"),
    ({"slots": [{"rect": [0.5, 0, 0.6, 1]}]}, "slot 1 rect \\[0.5, 0, 0.6, 1\\] leaves the live area"),
    ({"slots": [{"rect": [0, 0, 0.6, 1]}, {"rect": [0.5, 0, 0.5, 1]}]}, "slot 1 and slot 2 overlap"),
    ({"slots": [{"rect": [0, 0, 0.5, 1], "bleed": ["right"]}]},
     "slot 1 bleeds on its right edge, which is not on the page edge"),
    ({"slots": [{"rect": [0, 0, 1, 1], "bleed": ["north"]}]}, "slot 1 has bleed \\['north'\\]; list edges"),
    ({"text_areas": [{"rect": [0, 0, 1, 0.2], "bleed": ["top"]}]}, "text area 1 is a text area and cannot bleed"),
])
def test_bad_layouts_are_refused_with_the_reason(over, message):
    with pytest.raises(LayoutError, match=f"^mine.json: {message}"):
        parse_layout(good(**over), "mine.json")


def test_a_good_layout_parses():
    t = parse_layout(good(), "mine.json")
    assert [(b.x, b.w, sorted(b.bleed)) for b in t.slots] == [(0, 0.5, []), (0.5, 0.5, ["right"])]


def test_files_are_checked_for_json_and_matching_id(tmp_path):
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(LayoutError, match="broken.json: not valid JSON"):
        load_layout("broken", tmp_path)
    (tmp_path / "named.json").write_text(json.dumps(good(id="other")), encoding="utf-8")
    with pytest.raises(LayoutError, match="named.json: its id 'other' differs from the file name"):
        load_layout("named", tmp_path)
    with pytest.raises(LayoutError, match="Unknown page layout 'nope'; choose one of: broken, named"):
        load_layout("nope", tmp_path)
    with pytest.raises(LayoutError, match="Unknown page layout '../x'"):
        load_layout("../x")
