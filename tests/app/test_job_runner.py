"""run_job writes each finished image to assets/ and references it in project.json at once; a cancel writes nothing."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from app.assets import asset_path, read_sidecar
from app.commands import EditPanel
from app.job_plan import plan_jobs, stale_panels
from app.job_runner import apply_results, run_job
from app.project_model import BookSettings, GenerationSettings, Panel, Project
from app.project_store import AUTOSAVE_FILE, PROJECT_FILE, autosave, open_project, recover, save_project


def tiny_project() -> Project:
    return Project(title="T", book=BookSettings(title="B"), model_source="tiny",
                   generation=GenerationSettings(steps=2, guidance=5.0),
                   panels=(Panel("p1", "a lake at night", seed=1, width=64, height=64),
                           Panel("p2", "a red house", seed=2, width=64, height=64),
                           Panel("p3", "a tree", seed=3, width=64, height=64)))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_finished_images_are_on_disk_and_referenced(tmp_path, tiny_sdxl):
    project = tiny_project()
    save_project(project, tmp_path)
    jobs = plan_jobs(project, max_batch=2)
    assert [j.panel_ids for j in jobs] == [("p1", "p2"), ("p3",)]
    steps = []
    ids = run_job(jobs[0], project, tmp_path, tiny_sdxl, on_progress=lambda info: steps.append(info.step))
    assert steps == [1, 2]
    saved = open_project(tmp_path)  # also checks every referenced file exists
    assert [p.current for p in saved.panels] == [ids[0], ids[1], None]
    assert [p.alternates for p in saved.panels] == [(ids[0],), (ids[1],), ()]
    for pid, aid in zip(("p1", "p2"), ids):
        assert asset_path(tmp_path, aid).read_bytes().startswith(b"\x89PNG")
        side = read_sidecar(tmp_path, aid)
        assert side["panel_id"] == pid and side["recipe"]["seeds"] == [1, 2] and side["recipe"]["steps"] == 2
    assert side["prompt"] == "a red house" and side["seed"] == 2
    assert stale_panels(saved, tmp_path) == ()
    assert [j.panel_ids for j in plan_jobs(saved, max_batch=2)] == [("p3",)]
    assert stale_panels(EditPanel("p1", text="a lake at dawn").do(saved), tmp_path) == ("p1",)
    assert apply_results(project, jobs[0], ids) == saved  # what the GUI applies to its copy


def test_results_merge_into_edits_saved_meanwhile_and_the_autosave(tmp_path, tiny_sdxl):
    project = tiny_project()
    save_project(project, tmp_path)
    job = plan_jobs(project, max_batch=1)[0]
    save_project(replace(project, title="Renamed while generating"), tmp_path)
    autosave(EditPanel("p3", text="unsaved edit").do(replace(project, title="Renamed while generating")), tmp_path)
    (aid,) = run_job(job, project, tmp_path, tiny_sdxl)
    saved = open_project(tmp_path)
    assert saved.title == "Renamed while generating" and saved.panels[0].current == aid
    pending = recover(tmp_path)
    assert pending.panels[0].current == aid and pending.panels[2].text == "unsaved edit"
    assert os.stat(tmp_path / AUTOSAVE_FILE).st_mtime_ns >= os.stat(tmp_path / PROJECT_FILE).st_mtime_ns


def test_cancel_leaves_the_folder_untouched(tmp_path, tiny_sdxl):
    from engine.errors import Cancelled

    project = tiny_project()
    save_project(project, tmp_path)
    before = snapshot(tmp_path)
    steps = []
    with pytest.raises(Cancelled):
        run_job(plan_jobs(project, max_batch=3)[0], project, tmp_path, tiny_sdxl,
                on_progress=lambda info: steps.append(info.step), should_cancel=lambda: len(steps) >= 1)
    assert steps == [1]  # stopped at the next step boundary
    assert snapshot(tmp_path) == before
    assert list((tmp_path / "assets").iterdir()) == []


def test_first_run_in_an_unsaved_folder_uses_the_given_project(tmp_path, tiny_sdxl):
    project = tiny_project()
    job = plan_jobs(project, max_batch=1)[0]
    (aid,) = run_job(job, project, tmp_path / "new", tiny_sdxl)
    saved = json.loads((tmp_path / "new" / PROJECT_FILE).read_text())
    assert saved["panels"][0]["current"] == aid and saved["title"] == "T"


def test_consistent_job_saves_panels_not_anchors(tmp_path, tiny_sdxl):
    from app.project_model import Character

    project = replace(tiny_project(), characters=(Character("mira", "Mira", "a red fox", ("fox",)),),
                      panels=(Panel("p1", "a fox in the snow", ("mira",), seed=4, width=64, height=64),))
    save_project(project, tmp_path)
    (job,) = plan_jobs(project, max_batch=2)  # one anchor + the panel
    assert job.kind == "consistent" and job.anchor_count == 1 and job.image_index == (1,)
    (aid,) = run_job(job, project, tmp_path, tiny_sdxl)
    side = read_sidecar(tmp_path, aid)
    mask = side["mask_asset"]  # the panel's subject mask; the anchor has no image and no mask here
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == sorted(
        [f"{aid}.json", f"{aid}.png", f"{mask}.json", f"{mask}.png"])
    assert (side["image_index"], side["prompt"], side["seed"]) == (1, "a fox in the snow", 4)
    assert side["recipe"]["consistory"]["anchors"] == 1 and side["anchor_count"] == 1
    assert open_project(tmp_path).panels[0].current == aid


def test_mask_png_colours_each_subject_at_the_image_size():
    import io

    import numpy as np
    import torch
    from PIL import Image

    from app.job_runner import MASK_COLOURS, mask_png
    from engine.request import GenerationResult

    # 2 subjects, 2 images, a 2x3 grid; image 1: subject 0 at (0, 0), subject 1 at (1, 2), both at (0, 2).
    subject = torch.zeros(2, 2, 6, dtype=torch.bool)
    subject[0, 1, 0] = subject[0, 1, 2] = True
    subject[1, 1, 5] = subject[1, 1, 2] = True
    result = GenerationResult(images=[], recipe={}, masks=[subject[:, i].any(0).reshape(2, 3) for i in range(2)],
                              extras={"subject_masks": subject})
    png = mask_png(result, 1, (6, 4))  # upsampled x2 in both directions, nearest
    rgba = np.asarray(Image.open(io.BytesIO(png)))
    assert rgba.shape == (4, 6, 4)
    red, blue = (*MASK_COLOURS[0], 255), (*MASK_COLOURS[1], 255)
    expected = np.zeros((2, 3, 4), np.uint8)
    expected[0, 0] = expected[0, 2] = red  # the first subject wins where both were seen
    expected[1, 2] = blue
    assert (rgba == expected.repeat(2, 0).repeat(2, 1)).all()
    assert mask_png(result, 0, (6, 4)) is not None and not np.asarray(
        Image.open(io.BytesIO(mask_png(result, 0, (6, 4)))))[..., 3].any()  # nothing seen: all transparent
    assert mask_png(GenerationResult(images=[], recipe={}, masks=None, extras={}), 0, (6, 4)) is None


def test_masks_on_disk_are_the_engines_masks_and_plain_jobs_have_none(tmp_path, tiny_sdxl, monkeypatch):
    import numpy as np
    from PIL import Image

    import engine.generate
    from app.job_runner import MASK_COLOURS
    from app.project_model import Character

    seen = []
    real = engine.generate.generate
    monkeypatch.setattr(engine.generate, "generate", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    project = replace(tiny_project(), characters=(Character("mira", "Mira", "a red fox", ("fox",)),
                                                  Character("bo", "Bo", "a brown bear", ("bear",))),
                      panels=(Panel("p1", "a fox and a bear in the snow", ("mira", "bo"), seed=4, width=64,
                                    height=64),
                              Panel("p2", "an empty road", seed=5, width=64, height=64)))
    save_project(project, tmp_path)
    consistent, plain = plan_jobs(project, max_batch=3)
    (aid,) = run_job(consistent, project, tmp_path, tiny_sdxl)
    result = seen[-1]
    side = read_sidecar(tmp_path, aid)
    mask_side = read_sidecar(tmp_path, side["mask_asset"])
    assert (mask_side["kind"], mask_side["panel_id"], mask_side["subjects"]) == ("subject_mask", "p1",
                                                                               ["fox", "bear"])
    rgba = np.asarray(Image.open(asset_path(tmp_path, side["mask_asset"])))
    assert rgba.shape == (64, 64, 4)  # the panel's size
    index = consistent.image_index[0]
    grid = result.masks[index].numpy()
    factor = 64 // grid.shape[0]
    assert ((rgba[..., 3] > 0) == grid.repeat(factor, 0).repeat(factor, 1)).all()
    subject = result.extras["subject_masks"][:, index].numpy().reshape((2,) + grid.shape)
    only_bear = (subject[1] & ~subject[0]).repeat(factor, 0).repeat(factor, 1)
    assert (rgba[only_bear][:, :3] == MASK_COLOURS[1]).all()
    (plain_id,) = run_job(plain, open_project(tmp_path), tmp_path, tiny_sdxl)
    assert "mask_asset" not in read_sidecar(tmp_path, plain_id)
