"""Panels of characters with a saved identity: planned without anchors, drawn against the identities' anchor caches
(one or two characters in a panel), the identity made from the project and copied into project and library, and
every failure (foreign model, missing file, cancel) reported with nothing written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app import user_dirs
from app.assets import read_sidecar
from app.character_identity import add_library_character, character_identity, create_character_identity
from app.character_library import CharacterLibrary
from app.job_plan import panel_recipe_hash, plan_jobs, stale_panels
from app.job_runner import anchor_cache_store, run_job
from app.project_model import BookSettings, Character, GenerationSettings, Panel, Project, ProjectError
from app.project_store import open_project, save_project

MIRA = Character("mira", "Mira", "a small red fox", ("fox",), anchor_prompts=("a red fox",), anchor_seeds=(11,))
BO = Character("bo", "Bo", "a brown bear", ("bear",), anchor_prompts=("a big brown bear",), anchor_seeds=(12,))
CLEO = Character("cleo", "Cleo", "a grey cat", ("cat",))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_sdxl):
    """A project folder whose Mira and Bo have identities (one anchor each, 64 px, 2 steps), and their library."""
    folder = tmp_path_factory.mktemp("identity-project")
    library = CharacterLibrary(tmp_path_factory.mktemp("library"))
    project = Project(title="T", book=BookSettings(title="B"), model_source="tiny", characters=(MIRA, BO, CLEO),
                      generation=GenerationSettings(steps=2, guidance=5.0))
    save_project(project, folder)
    for cid in ("mira", "bo"):
        project = create_character_identity(project, folder, cid, tiny_sdxl, library=library)
    save_project(project, folder)
    return project, folder, library


def panels_project(made, *panels: Panel) -> Project:
    return replace(made[0], panels=panels)


def test_identity_is_made_from_the_character_and_stored_in_project_and_library(made, tiny_sdxl):
    project, folder, library = made
    mira, bo = project.character("mira"), project.character("bo")
    entries = {e.name: e for e in library.list()}
    assert set(entries) == {"Mira", "Bo"}
    assert mira.identity_file == f"characters/{entries['Mira'].id}.character"
    assert (folder / mira.identity_file).read_bytes() == entries["Mira"].path.read_bytes()
    ident = character_identity(project, folder, "bo")
    assert bo.identity_file == f"characters/{entries['Bo'].id}.character"
    assert (ident.anchor_prompts, ident.anchor_seeds, ident.subjects) == (("a big brown bear",), (12,),
                                                                          ("bear",))
    assert (ident.width, ident.height, ident.steps, ident.config["dropout"]) == (64, 64, 2, 0.5)
    assert ident.model["fingerprint"] == tiny_sdxl.fingerprint and open_project(folder) == project
    with pytest.raises(ProjectError, match="the character 'Cleo' has no saved identity"):
        character_identity(project, folder, "cleo")


def test_plan_has_no_anchors_for_identity_panels_and_keeps_them_for_the_others(made):
    p = panels_project(made, Panel("a", "a fox in the snow", ("mira",), seed=1, width=64, height=80),
                       Panel("b", "a fox and a bear", ("bo", "mira"), seed=2, width=64, height=64),
                       Panel("c", "a fox and a cat", ("mira", "cleo"), seed=3, width=64, height=64),
                       Panel("d", "a fox at home", ("mira",), seed=4, width=64, height=80, negative_prompt="x"))
    jobs = plan_jobs(p, max_batch=1, panel_ids=["a", "b", "d"])  # identity panels need no room for anchors
    by_panels = {j.panel_ids: j for j in jobs if j.kind == "identity"}
    assert [(j.kind, j.panel_ids) for j in jobs] == [("identity", ("a",)), ("identity", ("b",)),
                                                     ("identity", ("d",))]
    assert all(j.anchor_count == 0 and j.image_index == (0,) for j in by_panels.values())
    assert by_panels[("b",)].identity_files == (p.character("mira").identity_file, p.character("bo").identity_file)
    assert by_panels[("b",)].spec.subjects == ("fox", "bear") and by_panels[("a",)].spec.height == 80
    with pytest.raises(ProjectError, match="needs room for at least one anchor"):
        plan_jobs(p, max_batch=1, panel_ids=["c"])  # Cleo has no identity: the anchors-in-batch path
    (mixed,) = plan_jobs(p, max_batch=4, panel_ids=["c"])
    assert mixed.kind == "consistent" and mixed.anchor_count >= 1 and mixed.identity_files == ()
    assert [j.panel_ids for j in plan_jobs(p, max_batch=4) if j.kind == "identity"] == [("a", "d"), ("b",)]
    for job in jobs:
        job.spec.validate(2)
    remade = p.with_character(replace(p.character("mira"), identity_file="characters/mira-00000000.character"))
    assert panel_recipe_hash(remade, p.panels[0]) != panel_recipe_hash(p, p.panels[0])  # a new identity: stale
    assert panel_recipe_hash(p.with_character(replace(p.character("mira"), dropout=0.1)), p.panels[0]) == \
        panel_recipe_hash(p, p.panels[0])  # the identity decides its dropout, not the project character


def test_runner_draws_an_identity_panel_and_caches_its_anchors(made, tiny_sdxl):
    project, folder, _ = made
    p = panels_project(made, Panel("a", "a fox in the snow", ("mira",), seed=1, width=64, height=80))
    save_project(p, folder)
    (job,) = plan_jobs(p, max_batch=4)
    store = anchor_cache_store()
    store.clear_memory()
    steps = []
    (aid,) = run_job(job, p, folder, tiny_sdxl,
                     on_progress=lambda info: steps.append((info.phase, info.step, info.total)))
    for phase in ("anchors", "denoise"):  # the anchor cache is built first (a cold cache), then the panel is drawn
        mine = [(s, t) for ph, s, t in steps if ph == phase]
        assert [s for s, _ in mine] == list(range(1, mine[0][1] + 1))  # each runs to its total
    assert [ph for ph, _, _ in steps] == sorted(ph for ph, _, _ in steps)
    saved = open_project(folder)
    assert saved.panels[0].current == aid and stale_panels(saved, folder) == ()
    side = read_sidecar(folder, aid)
    assert (side["job_kind"], side["anchor_count"], side["prompt"], side["seed"]) == \
        ("identity", 0, "a fox in the snow", 1)
    assert side["identity_files"] == [p.character("mira").identity_file]
    assert [i["name"] for i in side["recipe"]["identities"]] == ["Mira"] and side["recipe"]["width"] == 64
    from PIL import Image

    assert Image.open(folder / "assets" / f"{aid}.png").size == (64, 80)
    assert store is anchor_cache_store() and store.disk_dir == user_dirs.cache_dir() / "anchor-cache"
    key = side["recipe"]["identities"][0]["fingerprint"]
    assert store.events[-1] == "built" and [f.name for f in store.disk_dir.iterdir()] == [f"{key}.safetensors"]


def test_two_saved_characters_in_one_panel(made, tiny_sdxl):
    project, folder, _ = made
    p = panels_project(made, Panel("both", "a fox and a bear in a forest", ("bo", "mira"), seed=5, width=64,
                                   height=64))
    save_project(p, folder)
    (job,) = plan_jobs(p, max_batch=4)
    (aid,) = run_job(job, p, folder, tiny_sdxl)
    side = read_sidecar(folder, aid)
    assert [i["name"] for i in side["recipe"]["identities"]] == ["Mira", "Bo"]
    assert side["recipe"]["subjects"] == ["fox", "bear"] and side["recipe"]["consistory"]["anchors"] == 0
    assert open_project(folder).panels[0].current == aid


def test_a_library_character_is_reused_in_another_project(made, tiny_sdxl, tmp_path):
    _, _, library = made
    mira_id = next(e.id for e in library.list() if e.name == "Mira")
    fresh = Project(title="Next book", book=BookSettings(title="N"), model_source="tiny",
                    characters=(Character("mira", "Other Mira", "a blue fox", ("fox",)),))
    fresh = add_library_character(fresh, tmp_path, mira_id, library=library)
    added = fresh.characters[1]
    assert (added.id, added.name, added.subjects, added.anchor_prompts, added.anchor_seeds) == \
        ("mira-2", "Mira", ("fox",), ("a red fox",), (11,))
    assert (tmp_path / added.identity_file).read_bytes() == library.path(mira_id).read_bytes()
    fresh = replace(fresh, panels=(Panel("p", "a fox reading", ("mira-2",), seed=9, width=64, height=64),))
    save_project(fresh, tmp_path)
    (job,) = plan_jobs(fresh, max_batch=2)
    assert job.kind == "identity"
    (aid,) = run_job(job, fresh, tmp_path, tiny_sdxl)
    assert open_project(tmp_path).panels[0].current == aid


def test_failures_write_nothing(made, tiny_sdxl, tmp_path):
    from engine.errors import Cancelled
    from engine.identity import IdentityError, read_identity, write_identity

    project, folder, _ = made
    p = panels_project(made, Panel("a", "a fox on a hill", ("mira",), seed=3, width=64, height=64))
    foreign = read_identity(folder / p.character("mira").identity_file)
    foreign = replace(foreign, model={**foreign.model, "fingerprint": "another-model", "source": "sdxl-base"})
    work = tmp_path / "work"
    save_project(p, work)
    (work / "characters").mkdir()
    write_identity(foreign, work / p.character("mira").identity_file)
    (job,) = plan_jobs(p, max_batch=2)
    before = snapshot(work)
    with pytest.raises(IdentityError, match=r"^The character 'Mira' was made with another model \(sdxl-base, "
                                            r"fingerprint another-model\); the current model is tiny"):
        run_job(job, p, work, tiny_sdxl)
    assert snapshot(work) == before
    (work / p.character("mira").identity_file).unlink()
    before = snapshot(work)
    with pytest.raises(ProjectError, match=r"the identity file of character 'mira' is missing\. Save the"):
        run_job(job, p, work, tiny_sdxl)
    assert snapshot(work) == before
    save_project(p, work / "ok")
    (work / "ok" / "characters").mkdir()
    (work / "ok" / p.character("mira").identity_file).write_bytes((folder / p.character("mira").identity_file)
                                                                  .read_bytes())
    before = snapshot(work / "ok")
    with pytest.raises(Cancelled):
        run_job(job, p, work / "ok", tiny_sdxl, should_cancel=lambda: True)
    assert snapshot(work / "ok") == before
