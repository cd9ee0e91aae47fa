"""project.json round-trips every field, migrates every older schema, names the path of every bad value, and the
sample project is a valid 2-character, 8-panel, 3-page storybook."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from app.assets import write_asset
from app.project_codec import project_from_dict, project_to_dict
from app.project_model import (SCHEMA_VERSION, Balloon, BookSettings, Character, GenerationSettings, Page, Panel,
                               Project, ProjectError, SlotFill)
from app.project_store import BACKUP_FILE, PROJECT_FILE, open_project, save_project

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + b"fake image body"


def full_project(folder: Path) -> Project:
    """A project where every field differs from its default (checked by test_full_project_sets_every_field)."""
    a1 = write_asset(folder, PNG + b"1", {"recipe": {"seed": 1}})
    a2 = write_asset(folder, PNG + b"2", {"recipe": {"seed": 2}})
    (folder / "characters").mkdir(parents=True, exist_ok=True)
    (folder / "characters" / "mira.character").write_bytes(b"opaque identity")
    mira = Character(id="mira", name="Mira", description="a red fox", subjects=("fox",),
                     anchor_prompts=("a red fox", "a red fox in the snow", "a red fox reading"),
                     anchor_seeds=(7, 8, 9), identity_file="characters/mira.character", dropout=0.3)
    panel = Panel(id="p1", text="a red fox reading a book", character_ids=("mira",), style="watercolor",
                  negative_prompt="blurry", seed=123456789012, seed_locked=True, width=768, height=640,
                  alternates=(a1, a2), current=a1, dropout=0.25)
    balloon = Balloon(id="b1", kind="thought", text="Hmm…", x=0.1, y=0.2, w=0.3, h=0.15, tail_x=0.4,
                      tail_y=0.6, font_size_pt=11.5, font="serif")
    page = Page(id="pg1", layout="splash", gutter_in=0.2,
                slots=(SlotFill(panel_id="p1", focus_x=0.3, focus_y=0.7, zoom=1.5),), balloons=(balloon,))
    return Project(title="Full", book=BookSettings(title="The Book", page_preset="a4", orientation="landscape",
                                                    bleed_in=0.2, margin_in=0.5, gutter_in=0.25,
                                                    facing_pages=False, interior=False),
                   characters=(mira,), panels=(panel,), pages=(page,), model_source="tiny-sd15",
                   generation=GenerationSettings(steps=12, guidance=7.5, scheduler="euler"))


def test_full_project_sets_every_field(tmp_path):
    p = full_project(tmp_path)
    objects = [p, p.book, p.generation, p.characters[0], p.panels[0], p.pages[0], p.pages[0].slots[0],
               p.pages[0].balloons[0]]
    for obj in objects:
        for f in dataclasses.fields(obj):
            if f.name in ("format", "schema_version", "id") or f.default is dataclasses.MISSING \
                    and f.default_factory is dataclasses.MISSING:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert getattr(obj, f.name) != default, f"{type(obj).__name__}.{f.name} is left at its default"


def test_every_field_round_trips_through_the_file(tmp_path):
    project = full_project(tmp_path)
    save_project(project, tmp_path)
    loaded = open_project(tmp_path)
    assert loaded == project
    assert project_to_dict(loaded) == json.loads((tmp_path / PROJECT_FILE).read_text())
    first = (tmp_path / PROJECT_FILE).read_bytes()
    save_project(loaded, tmp_path)
    assert (tmp_path / PROJECT_FILE).read_bytes() == first
    assert not (tmp_path / BACKUP_FILE).exists()  # identical bytes: nothing rewritten


V1_DOCUMENT = {
    "format": "consistory-studio-project", "schema_version": 1, "title": "Old", "negative_prompt": "ugly",
    "book": {"title": "Old book", "page_preset": "us-comic"},
    "characters": [{"id": "bo", "name": "Bo", "description": "a brown bear", "subjects": ["bear"]}],
    "panels": [{"id": "p1", "text": "a bear in the snow", "character_ids": ["bo"], "seed": 5},
               {"id": "p2", "text": "a lake", "seed": 6, "negative_prompt": "dark"}],
    "pages": [{"id": "pg", "layout": "2-tiers", "panels": ["p1", None],
               "balloons": [{"id": "b1", "kind": "speech", "text": "Hi", "x": 0.1, "y": 0.2, "w": 0.2, "h": 0.1},
                            {"id": "b2", "kind": "caption", "text": "Later", "x": 0.0, "y": 0.9, "w": 0.5,
                             "h": 0.1}]}],
}
OLDER_VERSIONS = {1: V1_DOCUMENT}


def test_every_older_version_has_a_migration_test():
    assert set(OLDER_VERSIONS) == set(range(1, SCHEMA_VERSION))


@pytest.mark.parametrize("version", sorted(OLDER_VERSIONS))
def test_migration_from_older_version_opens_and_saves_current(tmp_path, version):
    doc = OLDER_VERSIONS[version]
    raw = json.dumps(doc).encode()
    (tmp_path / PROJECT_FILE).write_bytes(raw)
    project = open_project(tmp_path)
    assert (tmp_path / PROJECT_FILE).read_bytes() == raw  # opening never rewrites
    assert sorted(p.name for p in tmp_path.iterdir()) == [PROJECT_FILE]
    save_project(project, tmp_path)
    assert json.loads((tmp_path / PROJECT_FILE).read_text())["schema_version"] == SCHEMA_VERSION
    assert (tmp_path / BACKUP_FILE).read_bytes() == raw
    assert open_project(tmp_path) == project


def test_v1_to_v2_moves_each_field_where_v2_expects_it():
    before = copy.deepcopy(V1_DOCUMENT)
    p = project_from_dict(V1_DOCUMENT)
    assert V1_DOCUMENT == before  # the input is not modified
    assert [x.negative_prompt for x in p.panels] == ["ugly", "dark"]
    assert p.pages[0].slots == (SlotFill(panel_id="p1"), SlotFill(panel_id=None))
    speech, caption = p.pages[0].balloons
    assert (speech.tail_x, speech.tail_y) == (pytest.approx(0.2), pytest.approx(0.35))
    assert (caption.tail_x, caption.tail_y, caption.font, caption.font_size_pt) == (None, None, "comic", None)
    assert p.generation == GenerationSettings(steps=30, guidance=5.0, scheduler="ddim")
    assert p.schema_version == SCHEMA_VERSION


def _valid_doc() -> dict:
    return project_to_dict(project_from_dict(V1_DOCUMENT))


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["panels"][1].update(seed="abc"), 'panels[1].seed: expected a whole number ≥ 0, got "abc"'),
    (lambda d: d["panels"][0].update(seed=-1), "panels[0].seed: expected a whole number ≥ 0, got -1"),
    (lambda d: d["panels"][0].update(seed=True), "panels[0].seed: expected a whole number ≥ 0, got true"),
    (lambda d: d["panels"][0].update(width=500), "panels[0].width: expected a multiple of 16"),
    (lambda d: d["panels"][0].update(character_ids=["nobody"]),
     "panels[0].character_ids[0]: the panel names the character 'nobody'"),
    (lambda d: d["panels"][0].update(current="ab" * 32), "panels[0].current: the image in use is not one of"),
    (lambda d: d["book"].update(page_preset="nope"), 'book.page_preset: unknown page preset "nope"'),
    (lambda d: d["book"].update(bleed_in=float("inf")), "book.bleed_in: expected a number between 0 and 1"),
    (lambda d: d["book"].pop("title"), "book.title: this required field is missing"),
    (lambda d: d["book"].update(margin_in=10**400), "book.margin_in: expected a number between 0 and 3, got 1000"),
    (lambda d: d["panels"][0].update(seed=2**63), "panels[0].seed: expected a whole number ≥ 0, got 9223372036"),
    (lambda d: d["characters"][0].update(subjects=["two words"]), "characters[0].subjects[0]: expected a single"),
    (lambda d: d["characters"][0].update(anchor_seeds=[1]), "characters[0].anchor_seeds: there are 2 anchor"),
    (lambda d: d["characters"][0].update(anchor_prompts=["a cat", "a bear"], anchor_seeds=[1, 2]),
     "characters[0].anchor_prompts[0]: the anchor prompt \"a cat\" does not contain the subject word 'bear'"),
    (lambda d: d["pages"][0]["slots"][0].update(zoom=0), "pages[0].slots[0].zoom: expected a number between"),
    (lambda d: d["pages"][0]["slots"][1].update(panel_id="zz"), "pages[0].slots[1].panel_id: the slot shows"),
    (lambda d: d["pages"][0]["balloons"][0].update(kind="yell"), 'pages[0].balloons[0].kind: expected "speech"'),
    (lambda d: d["pages"][0]["balloons"][1].update(tail_x=0.5, tail_y=0.5),
     "pages[0].balloons[1].tail_x: captions have no tail"),
    (lambda d: d["pages"][0]["balloons"][0].update(tail_y=None), "pages[0].balloons[0].tail_x: give both"),
    (lambda d: d["pages"][0]["balloons"].append(dict(d["pages"][0]["balloons"][0])),
     "pages[0].balloons[2].id: the balloon id 'b1' is used twice"),
    (lambda d: d["panels"].append(dict(d["panels"][0])), "panels[2].id: the panel id 'p1' is used twice"),
    (lambda d: d.update(extra=1), "project.json: unknown field 'extra'"),
    (lambda d: d.update(schema_version="2"), 'schema_version: expected a whole number ≥ 1, got \'2\''),
    (lambda d: d.update(format="zip"), "format: this is not a Consistory Studio project"),
    (lambda d: d.update(panels={}), "panels: expected a list, got {}"),
])
def test_each_invalid_value_is_refused_with_its_path(edit, expected):
    doc = _valid_doc()
    edit(doc)
    with pytest.raises(ProjectError) as info:
        project_from_dict(doc)
    assert str(info.value).startswith(expected)


def test_sample_storybook_is_a_valid_short_book():
    from engine.offline_tokenizer import WORDS

    folder = ROOT / "projects" / "sample-storybook"
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    project = open_project(folder)
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert len(project.characters) == 2 and 6 <= len(project.panels) <= 10 and len(project.pages) == 3
    assert [pg.layout for pg in project.pages] == ["splash", "2x2", "3-tiers"]
    assert {b.kind for pg in project.pages for b in pg.balloons} == {"speech", "thought", "shout", "caption"}
    assert all(s in WORDS for c in project.characters for s in c.subjects)
    assert all(p.width % 64 == 0 and p.height % 64 == 0 and p.current is None for p in project.panels)
    placed = [s.panel_id for pg in project.pages for s in pg.slots]
    assert sorted(placed) == sorted(p.id for p in project.panels)  # every panel on exactly one slot
    for page in project.pages:
        layout = json.loads((ROOT / "resources" / "layouts" / f"{page.layout}.json").read_text())
        assert len(page.slots) == len(layout["slots"])
    assert project.book.page_preset in ("square-8.5", "us-comic")


def test_a_page_with_fewer_fills_than_its_layout_reads_with_every_slot(tmp_path):
    """``slots`` is optional and a version 1 page kept only its filled slots: every slot of the layout must be
    there to be filled and framed; an unknown layout is read as written (the editor and export name it)."""
    doc = project_to_dict(Project(title="T", book=BookSettings(title="T"), panels=(Panel(id="p1", text="a"),)))
    doc["pages"] = [{"id": "a", "layout": "2x2"}, {"id": "b", "layout": "strip-3", "slots": [{"panel_id": "p1"}]},
                    {"id": "c", "layout": "no-such-layout", "slots": [{"panel_id": "p1"}]}]
    project = project_from_dict(doc)
    assert project.page("a").slots == (SlotFill(),) * 4
    assert project.page("b").slots == (SlotFill(panel_id="p1"), SlotFill(), SlotFill())
    assert project.page("c").slots == (SlotFill(panel_id="p1"),)
    assert project_from_dict(project_to_dict(project)) == project
    v1 = {"format": doc["format"], "schema_version": 1, "title": "T", "book": doc["book"],
          "panels": [{"id": "p1", "text": "a"}], "pages": [{"id": "a", "layout": "2x2", "panels": ["p1"]}]}
    assert project_from_dict(v1).page("a").slots == (SlotFill(panel_id="p1"),) + (SlotFill(),) * 3
