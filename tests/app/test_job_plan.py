"""The job plan: missing/stale panels, one anchor set per character set, batches that respect the size limit."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from app.assets import write_asset
from app.job_plan import (GIB, anchor_set, max_batch_for_memory, panel_prompt, panel_recipe_hash, plan_jobs,
                          stale_panels)
from app.project_model import BookSettings, Character, Panel, Project, ProjectError
from app.project_store import open_project

ROOT = Path(__file__).resolve().parents[2]
MIRA = Character("mira", "Mira", "a small red fox", ("fox",), anchor_prompts=("a red fox", "a red fox running",
                                                                               "a red fox sleeping"))
BO = Character("bo", "Bo", "a brown bear", ("bear",))


def project(*panels: Panel) -> Project:
    return Project(title="T", book=BookSettings(title="B"), characters=(MIRA, BO), panels=panels)


def test_one_anchor_set_per_character_set_and_anchors_first():
    p = project(*(Panel(f"m{i}", f"a fox number {i}", ("mira",), seed=i) for i in range(5)),
                Panel("both1", "a fox and a bear", ("bo", "mira"), seed=50),
                Panel("both2", "a bear and a fox", ("mira", "bo"), seed=51),
                Panel("bo1", "a bear", ("bo",), seed=60),
                Panel("plain", "a lake", seed=70))
    jobs = plan_jobs(p, max_batch=5)
    by_set: dict[tuple, set] = {}
    for job in jobs:
        if job.kind == "consistent":
            n = job.anchor_count
            by_set.setdefault(job.character_ids, set()).add((job.spec.prompts[:n], job.spec.seeds[:n]))
            assert job.spec.consistory.anchors == n
            assert job.image_index == tuple(range(n, len(job.spec.prompts)))
            assert len(job.spec.prompts) <= 5
    assert set(by_set) == {("mira",), ("mira", "bo"), ("bo",)}  # {bo, mira} and {mira, bo} are one set
    assert all(len(anchor_sets) == 1 for anchor_sets in by_set.values())
    assert by_set[("mira",)] == {(MIRA.anchor_prompts, MIRA.anchor_seeds)}
    mira_jobs = [j for j in jobs if j.character_ids == ("mira",)]
    assert [j.panel_ids for j in mira_jobs] == [("m0", "m1"), ("m2", "m3"), ("m4",)]  # 3 anchors + 2 panels
    assert [j.spec.subjects for j in jobs if j.character_ids == ("mira", "bo")] == [("fox", "bear")]
    plain = [j for j in jobs if j.kind == "plain"]
    assert len(plain) == 1 and plain[0].spec.consistory is None and plain[0].spec.prompts == ("a lake",)
    assert sorted(pid for j in jobs for pid in j.panel_ids) == sorted(x.id for x in p.panels)


def test_multi_character_anchor_set_joins_each_characters_anchors():
    prompts, seeds = anchor_set((MIRA, BO))
    assert prompts == ("a red fox and a brown bear", "a red fox running and a brown bear standing",
                       "a red fox sleeping and a brown bear")
    assert len(set(seeds)) == 3 and anchor_set((MIRA, BO)) == (prompts, seeds)


def test_batches_split_by_size_negative_prompt_and_dropout():
    p = project(Panel("a", "a fox", ("mira",)), Panel("b", "a fox", ("mira",), width=768),
                Panel("c", "a fox", ("mira",), negative_prompt="blur"), Panel("d", "a fox", ("mira",), dropout=0.2),
                Panel("e", "a fox", ("mira",)))
    jobs = plan_jobs(p, max_batch=8)
    assert [j.panel_ids for j in jobs] == [("a", "e"), ("b",), ("c",), ("d",)]
    assert [j.spec.consistory.dropout for j in jobs] == [0.5, 0.5, 0.5, 0.2]
    assert jobs[2].spec.negative_prompt == "blur" and jobs[1].spec.width == 768
    merged = plan_jobs(p, max_batch=8, size=(64, 64), steps=3)
    assert [j.panel_ids for j in merged] == [("a", "b", "e"), ("c",), ("d",)]
    assert {(j.spec.width, j.spec.height, j.spec.steps) for j in merged} == {(64, 64, 3)}


def test_small_batches_drop_anchors_and_batch_one_is_refused_for_characters():
    p = project(Panel("a", "a fox", ("mira",)), Panel("z", "a lake"))
    two = plan_jobs(p, max_batch=2)
    assert two[0].anchor_count == 1 and two[0].spec.prompts == ("a red fox", "a fox")
    assert plan_jobs(project(Panel("z", "a lake")), max_batch=1)[0].spec.prompts == ("a lake",)
    with pytest.raises(ProjectError, match="needs room for at least one anchor"):
        plan_jobs(p, max_batch=1)


def test_panel_prompt_adds_style_and_missing_subject_words():
    p = project(Panel("a", "Mira reads a book", ("mira", "bo"), style="watercolor"))
    assert panel_prompt(p, p.panels[0]) == "watercolor, Mira reads a book, a small red fox, a brown bear"
    assert panel_prompt(p, replace(p.panels[0], text="a fox and a bear", style="")) == "a fox and a bear"


def test_only_missing_stale_and_forced_panels(tmp_path):
    done = write_asset(tmp_path, b"\x89PNG\r\n\x1a\nA", {})
    p = project(Panel("a", "a fox", ("mira",), alternates=(done,), current=done), Panel("b", "a lake"))
    (tmp_path / "assets" / f"{done}.json").write_text(
        '{"panel_recipe_hash": "%s"}' % panel_recipe_hash(p, p.panels[0]))
    assert [j.panel_ids for j in plan_jobs(p, max_batch=4)] == [("b",)]
    assert stale_panels(p, tmp_path) == ()
    assert [j.panel_ids for j in plan_jobs(p, max_batch=4, only_missing=False, folder=tmp_path)] == [("b",)]
    edited = p.with_panel(replace(p.panels[0], text="a fox in the snow"))
    assert stale_panels(edited, tmp_path) == ("a",)
    assert [j.panel_ids for j in plan_jobs(edited, max_batch=4, only_missing=False, folder=tmp_path)] == \
        [("a",), ("b",)]
    assert stale_panels(p.with_character(replace(MIRA, dropout=0.1)), tmp_path) == ("a",)  # anchors' settings
    assert [j.panel_ids for j in plan_jobs(p, max_batch=4, panel_ids=["a"])] == [("a",)]
    with pytest.raises(ProjectError, match="needs the project folder"):
        plan_jobs(p, max_batch=4, only_missing=False)


def test_a_panel_drawn_with_fewer_anchors_than_its_character_has_is_up_to_date_at_that_batch(tmp_path):
    """A batch of 3 holds two of Mira's three anchors: the job's recipe says so, and so must the staleness check."""
    p = project(Panel("a", "a fox", ("mira",)))
    (job,) = plan_jobs(p, max_batch=3)
    assert job.anchor_count == 2
    done = write_asset(tmp_path, b"\x89PNG\r\n\x1a\nA", {"panel_recipe_hash": job.recipe_hashes[0]})
    p = p.with_panel(replace(p.panels[0], alternates=(done,), current=done))
    assert stale_panels(p, tmp_path, max_batch=3) == ()
    assert plan_jobs(p, max_batch=3, only_missing=False, folder=tmp_path) == []
    assert stale_panels(p, tmp_path, max_batch=4) == ("a",)  # room for all three anchors: drawn again with them
    assert [j.panel_ids for j in plan_jobs(p, max_batch=4, only_missing=False, folder=tmp_path)] == [("a",)]


def test_empty_panel_text_is_reported_with_its_path():
    with pytest.raises(ProjectError, match=r"panels\[1\].text: the panel has no text"):
        plan_jobs(project(Panel("a", "a lake"), Panel("b", "  ")), max_batch=4)


def test_sample_storybook_plans_three_anchor_sets_and_one_plain_job():
    jobs = plan_jobs(open_project(ROOT / "projects" / "sample-storybook"), max_batch=6, size=(64, 64))
    consistent = {j.character_ids for j in jobs if j.kind == "consistent"}
    assert consistent == {("mira",), ("bo",), ("mira", "bo")}
    assert [j.kind for j in jobs].count("plain") == 1
    assert sum(len(j.panel_ids) for j in jobs) == 8
    for job in jobs:
        job.spec.validate(8)  # the engine accepts every spec as planned
        for prompt in job.spec.prompts:  # ConsiStory needs every subject word in every prompt of its batch
            assert all(s in re.findall(r"[\w'-]+", prompt.lower()) for s in job.spec.subjects), prompt


@pytest.mark.parametrize("free_gib, size, consistory, expected", [
    (80, 1024, True, 16),   # capped
    (24, 1024, True, 9),    # (24 - 1.5) / 2.5
    (24, 1024, False, 12),  # (24 - 1.5) / 1.8
    (8, 1024, True, 2),
    (8, 512, True, 10),     # a quarter of the pixels
    (1, 1024, True, 1),     # never below 1
])
def test_max_batch_for_memory(free_gib, size, consistory, expected):
    assert max_batch_for_memory(int(free_gib * GIB), size, size, consistory=consistory) == expected
