"""Every edit command does one change, undoes exactly it (even after unrelated changes), and refuses bad edits."""

from __future__ import annotations

from dataclasses import replace

import pytest

import app.commands as C
from app.project_model import (Balloon, BookSettings, Character, GenerationSettings, Page, Panel, Project,
                               ProjectError, SlotFill)

A1, A2, A3 = "a" * 64, "b" * 64, "c" * 64


def base() -> Project:
    mira = Character("mira", "Mira", "a red fox", ("fox",))
    bo = Character("bo", "Bo", "a brown bear", ("bear",))
    panels = (Panel("p1", "a fox", ("mira", "bo"), alternates=(A1, A2), current=A1),
              Panel("p2", "a bear", ("bo",)), Panel("p3", "a lake"))
    pages = (Page("pg1", "2x2", slots=(SlotFill("p1"), SlotFill("p2"), SlotFill(), SlotFill("p1")),
                  balloons=(Balloon("b1", "speech", "Hi", 0.1, 0.1, 0.2, 0.1, 0.2, 0.3),
                            Balloon("b2", "caption", "Later", 0.0, 0.9, 0.4, 0.08))),
             Page("pg2", "splash", slots=(SlotFill("p3"),)))
    return Project(title="T", book=BookSettings(title="B"), characters=(mira, bo), panels=panels, pages=pages)


OWL = Character("owl", "Hoot", "a white owl", ("owl",))
# (command factory, check of the edited project)
CASES = {
    "AddCharacter": (lambda: C.AddCharacter(OWL, 1), lambda p: [c.id for c in p.characters] == ["mira", "owl", "bo"]),
    "RemoveCharacter": (lambda: C.RemoveCharacter("mira"),
                        lambda p: [c.id for c in p.characters] == ["bo"] and p.panel("p1").character_ids == ("bo",)),
    "EditCharacter": (lambda: C.EditCharacter("bo", description="a big brown bear", dropout=0.2),
                      lambda p: p.character("bo").anchor_prompts == ("a big brown bear", "a big brown bear standing")
                      and p.character("bo").dropout == 0.2),
    "AddPanel": (lambda: C.AddPanel(Panel("p9", "a moon"), 0), lambda p: p.panels[0].id == "p9"),
    "RemovePanel": (lambda: C.RemovePanel("p1"),
                    lambda p: [x.id for x in p.panels] == ["p2", "p3"]
                    and [s.panel_id for s in p.page("pg1").slots] == [None, "p2", None, None]),
    "EditPanel": (lambda: C.EditPanel("p2", text="a bear and a fox", character_ids=["bo", "mira"], seed=9,
                                      seed_locked=True, dropout=0.1, width=768, style="ink", negative_prompt="x"),
                  lambda p: p.panel("p2") == replace(base().panel("p2"), text="a bear and a fox",
                                                     character_ids=("bo", "mira"), seed=9, seed_locked=True,
                                                     dropout=0.1, width=768, style="ink", negative_prompt="x")),
    "ChooseAlternate": (lambda: C.ChooseAlternate("p1", A2),
                        lambda p: p.panel("p1").current == A2 and p.panel("p1").alternates == (A1, A2)),
    "AddAlternates": (lambda: C.AddAlternates("p1", [A3]),
                      lambda p: p.panel("p1").alternates == (A1, A2, A3) and p.panel("p1").current == A3),
    "EditBook": (lambda: C.EditBook(page_preset="a4", orientation="landscape", bleed_in=0.25),
                 lambda p: (p.book.page_preset, p.book.orientation, p.book.bleed_in) == ("a4", "landscape", 0.25)),
    "EditProject": (lambda: C.EditProject(title="New", model_source="toy", generation=GenerationSettings(steps=4)),
                    lambda p: (p.title, p.model_source, p.generation.steps) == ("New", "toy", 4)),
    "AddPage": (lambda: C.AddPage(Page("pg3", "3-tiers", slots=(SlotFill(),) * 3), 1),
                lambda p: [x.id for x in p.pages] == ["pg1", "pg3", "pg2"]),
    "RemovePage": (lambda: C.RemovePage("pg1"), lambda p: [x.id for x in p.pages] == ["pg2"] and len(p.panels) == 3),
    "MovePage": (lambda: C.MovePage("pg2", 0), lambda p: [x.id for x in p.pages] == ["pg2", "pg1"]),
    "SetLayout": (lambda: C.SetLayout("pg1", "strip-3", 3),
                  lambda p: p.page("pg1").layout == "strip-3"
                  and [s.panel_id for s in p.page("pg1").slots] == ["p1", "p2", None]),
    "EditPage": (lambda: C.EditPage("pg2", gutter_in=0.3), lambda p: p.page("pg2").gutter_in == 0.3),
    "AssignPanel": (lambda: C.AssignPanel("pg1", 2, "p3"), lambda p: p.page("pg1").slots[2] == SlotFill("p3")),
    "SetFraming": (lambda: C.SetFraming("pg1", 0, focus_x=0.2, zoom=2.0),
                   lambda p: p.page("pg1").slots[0] == SlotFill("p1", focus_x=0.2, zoom=2.0)),
    "AddBalloon": (lambda: C.AddBalloon("pg2", Balloon("b1", "shout", "Run!", 0.5, 0.5, 0.2, 0.1)),
                   lambda p: p.page("pg2").balloon("b1").text == "Run!"),
    "RemoveBalloon": (lambda: C.RemoveBalloon("pg1", "b1"), lambda p: [b.id for b in p.page("pg1").balloons] == ["b2"]),
    "EditBalloon": (lambda: C.EditBalloon("pg1", "b1", kind="caption", text="Meanwhile"),
                    lambda p: p.page("pg1").balloon("b1") == replace(base().page("pg1").balloon("b1"), kind="caption",
                                                                      text="Meanwhile", tail_x=None, tail_y=None)),
    "MoveBalloon": (lambda: C.MoveBalloon("pg1", "b1", 0.4, 0.5, w=0.3),
                    lambda p: (lambda b: (b.x, b.y, b.w, b.h) == (0.4, 0.5, 0.3, 0.1))(p.page("pg1").balloon("b1"))),
    "MoveTail": (lambda: C.MoveTail("pg1", "b1", None, None),
                 lambda p: p.page("pg1").balloon("b1").tail_x is None),
}


def test_every_command_has_a_case():
    assert set(CASES) == set(C.__all__) - {"Command", "FieldEdit"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_do_undo_redo(name):
    make, check = CASES[name]
    p0 = base()
    cmd = make()
    p1 = cmd.do(p0)
    assert p1 != p0 and check(p1)
    assert p0 == base()  # the original is untouched (immutable)
    assert cmd.undo(p1) == p0
    assert cmd.do(p0) == p1  # redo


def test_undo_keeps_changes_made_in_between():
    """A finished job adds an image (outside the undo stack) between an edit and its undo."""
    p0 = base()
    edit = C.EditPanel("p2", text="a bear reading")
    p1 = edit.do(p0)
    job = C.AddAlternates("p2", [A3])
    p2 = job.do(p1)
    back = edit.undo(p2)
    assert back.panel("p2").text == "a bear" and back.panel("p2").alternates == (A3,)
    remove = C.RemoveCharacter("bo")
    p3 = remove.do(back)
    p4 = C.EditPanel("p1", text="changed").do(p3)
    restored = remove.undo(p4)
    assert restored.panel("p1").character_ids == ("mira", "bo") and restored.panel("p1").text == "changed"


def test_redo_of_an_add_brings_back_what_arrived_after_it():
    """+ Panel, a picture arrives (outside the undo stack), undo, redo: the picture comes back with the panel."""
    p0 = base()
    add = C.AddPanel(Panel("p9", "a new panel"))
    with_picture = C.AddAlternates("p9", [A3]).do(add.do(p0))
    back = add.undo(with_picture)
    assert [p.id for p in back.panels] == [p.id for p in p0.panels]
    again = add.do(back)
    assert again.panel("p9").alternates == (A3,) and again.panel("p9").current == A3
    add_char = C.AddCharacter(Character("kit", "Kit", "a grey cat", ("cat",)))
    saved = add_char.do(p0).with_character(replace(add_char.character, identity_file="characters/kit.character"))
    assert add_char.do(add_char.undo(saved)).character("kit").identity_file == "characters/kit.character"


@pytest.mark.parametrize("make, message", [
    (lambda: C.EditPanel("p1", seed=-3), "panels[0].seed: expected a whole number ≥ 0, got -3"),
    (lambda: C.EditPanel("p1", width=100), "panels[0].width: expected a multiple of 16"),
    (lambda: C.EditPanel("p1", character_ids=("ghost",)), "panels[0].character_ids[0]: the panel names"),
    (lambda: C.EditPanel("nope", text="x"), "There is no panel 'nope'"),
    (lambda: C.EditPanel("p1", current=A2), "EditPanel cannot change current"),
    (lambda: C.ChooseAlternate("p2", A1), "is not one of panel 'p2'"),
    (lambda: C.AddCharacter(Character("mira", "M2", "a red fox", ("fox",))), "already a character with the id"),
    (lambda: C.EditCharacter("mira", subjects=("cat",)), "does not contain the subject word 'cat'"),
    (lambda: C.EditBook(page_preset="napkin"), 'book.page_preset: unknown page preset "napkin"'),
    (lambda: C.AssignPanel("pg1", 7, "p3"), "Page 'pg1' has no slot 7"),
    (lambda: C.AssignPanel("pg1", 0, "ghost"), "There is no panel 'ghost'"),
    (lambda: C.SetFraming("pg1", 0, zoom=0.0), "pages[0].slots[0].zoom: expected a number between"),
    (lambda: C.MoveTail("pg1", "b2", 0.5, 0.5), "pages[0].balloons[1].tail_x: captions have no tail"),
    (lambda: C.MoveBalloon("pg1", "b1", 1.5, 0.5), "pages[0].balloons[0].x: expected a number between 0 and 1"),
    (lambda: C.AddBalloon("pg1", Balloon("b1", "speech", "", 0, 0, 0.1, 0.1)), "already has a balloon"),
    (lambda: C.SetLayout("pg1", "", 2), "pages[0].layout: expected a non-empty text"),
])
def test_bad_edits_are_refused_and_change_nothing(make, message):
    p0 = base()
    with pytest.raises(ProjectError) as info:
        make().do(p0)
    assert message in str(info.value), str(info.value)
    assert p0 == base()


def test_choosing_an_alternate_never_drops_an_image():
    p = base()
    for target in (A2, A1, None, A2):
        p = C.ChooseAlternate("p1", target).do(p)
        assert p.panel("p1").alternates == (A1, A2)
    assert p.asset_ids() == (A1, A2)


def test_drags_and_typing_merge_into_one_step():
    p0 = base()
    first = C.MoveBalloon("pg1", "b1", 0.2, 0.2)
    p = first.do(p0)
    for x in (0.3, 0.4, 0.5):
        nxt = C.MoveBalloon("pg1", "b1", x, 0.2)
        p = nxt.do(p)
        assert first.merge_with(nxt)
    assert p.page("pg1").balloon("b1").x == 0.5
    assert first.undo(p) == p0
    assert not first.merge_with(C.MoveBalloon("pg1", "b2", 0.1, 0.1))  # another balloon
    assert not first.merge_with(C.MoveTail("pg1", "b1", 0.1, 0.1))  # another kind of edit
    typing = C.EditPanel("p2", text="a b")
    assert typing.merge_with(C.EditPanel("p2", text="a be"))
    assert not typing.merge_with(C.EditPanel("p2", seed=3))
    assert C.EditPanel("p2", seed=1).merge_key is None


def test_absorbed_edits_keep_fields_only_the_first_set_and_undo_every_field():
    """One gesture's edits folded together (``FieldEdit.absorb``): the first keystroke also dropped the identity,
    a later one changed another field; redo replays both, undo restores both."""
    p0 = base().with_character(replace(base().character("mira"), identity_file="characters/mira.character"))
    first = C.EditCharacter("mira", description="a red fox in", identity_file=None)
    p1 = first.do(p0)
    later = C.EditCharacter("mira", description="a red fox in a hat", name="Mira Hat")
    p2 = later.do(p1)
    first.absorb(later)
    assert first.changes == {"description": "a red fox in a hat", "identity_file": None, "name": "Mira Hat"}
    back = first.undo(p2)
    assert back == p0
    again = first.do(back).character("mira")
    assert (again.description, again.identity_file, again.name) == ("a red fox in a hat", None, "Mira Hat")
