"""Built-in model profiles: the toy model's closed vocabulary and native size, the tiny models' render defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.job_plan import plan_jobs
from app.model_profiles import job_words_message, profile_for, unknown_words_message
from app.project_store import open_project

ROOT = Path(__file__).resolve().parents[2]


def test_toy_profile_knows_only_toy_world_words():
    toy = profile_for("toy")
    assert toy.max_side == 64 and toy.panel_side(1024) == 64 and toy.panel_side(32) == 32
    assert toy.unknown_words("A red round creature, with a yellow hat at night!") == []
    assert toy.unknown_words("a fox and a fox holding a lantern") == ["fox", "and", "holding", "lantern"]
    msg = unknown_words_message(toy, ["a fox in the snow", "a bear"])
    assert msg.startswith("The built-in toy model does not know the words fox, bear;")
    assert "creature" in msg and "Model → Model…" in msg
    assert toy.dropout == 0.0   # new characters start at full likeness on the toy model (README: measured)
    assert profile_for("tiny").dropout == 0.5 and profile_for("org/some-sdxl").dropout == 0.5   # the paper's


def test_toy_vocabulary_is_what_the_installed_model_holds(tmp_path):
    import json

    from app.model_profiles import _toy_vocabulary
    from engine.toyworld.captions import VOCABULARY

    (tmp_path / "tokenizer").mkdir()
    older = [w for w in VOCABULARY if w not in ("two", "creatures", "hats")]  # trained before the twins words
    (tmp_path / "tokenizer" / "vocab.json").write_text(json.dumps(
        {**{f"{w}</w>": i for i, w in enumerate(older)}, "tw": 900, "fox</w>": 901}))
    assert _toy_vocabulary(tmp_path) == frozenset(older)  # world words only, and only those it has a token for
    assert _toy_vocabulary(tmp_path / "missing") == frozenset(VOCABULARY)
    (tmp_path / "tokenizer" / "vocab.json").write_text("{not json")
    assert _toy_vocabulary(tmp_path) == frozenset(VOCABULARY)


@pytest.mark.parametrize("source", ["tiny", "stabilityai/stable-diffusion-xl-base-1.0", "/models/x.safetensors",
                                    "", None])
def test_other_models_have_an_open_vocabulary(source):
    profile = profile_for(source)
    assert profile.unknown_words("a fox holding a lantern") == []
    assert unknown_words_message(profile, ["anything at all"]) is None
    if source == "tiny":
        assert (profile.max_side, profile.steps) == (128, 3)
    else:
        assert profile.max_side is None and profile.panel_side(1024) == 1024


def test_each_sample_suits_its_model():
    toy = profile_for("toy")
    toy_jobs = plan_jobs(open_project(ROOT / "projects" / "toy-storybook"), max_batch=8, size=(64, 64))
    assert toy_jobs and all(job_words_message(toy, j) is None for j in toy_jobs)
    story = plan_jobs(open_project(ROOT / "projects" / "sample-storybook"), max_batch=8, size=(64, 64))
    refused = [job_words_message(toy, j) for j in story]
    assert refused and all(m is not None and "does not know the words" in m for m in refused)
    assert all(job_words_message(profile_for("tiny"), j) is None for j in story)
    # a character's anchors are checked too (its anchor prompts and subject words)
    from app.anchor_jobs import plan_character_job

    fox = plan_character_job(open_project(ROOT / "projects" / "sample-storybook"), "mira", size=(64, 64), steps=2)
    assert "fox" in job_words_message(toy, fox)
    pip = plan_character_job(open_project(ROOT / "projects" / "toy-storybook"), "pip", size=(64, 64), steps=2)
    assert job_words_message(toy, pip) is None
