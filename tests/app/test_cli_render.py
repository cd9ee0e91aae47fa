"""``consistory-studio render``: generates missing panels with the tiny model, exports, and reports problems."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.cli import main
from app.cli_render import scaled_size
from app.project_model import Balloon, BookSettings, Page, Panel, Project, SlotFill
from app.project_store import open_project, save_project


def make(folder, texts=("a red kite over the sea", "")):
    panels = tuple(Panel(f"p{i}", t, seed=i, width=768, height=512) for i, t in enumerate(texts))
    pages = (Page("pg", "2-tiers", slots=tuple(SlotFill(p.id) for p in panels),
                  balloons=(Balloon("b", "speech", "Look up!", 0.1, 0.05, 0.3, 0.08, 0.2, 0.3),)),)
    save_project(Project("Kites", BookSettings(title="Kites"), panels=panels, pages=pages, model_source="tiny"),
                 folder)


def test_scaled_size_keeps_the_aspect_on_the_model_grid():
    assert scaled_size(768, 512, 128, 16) == (128, 80)
    assert scaled_size(512, 1024, 64, 16) == (32, 64)
    assert scaled_size(100, 4000, 64, 16) == (16, 64)


@pytest.mark.slow
def test_render_generates_missing_panels_then_exports(tmp_path, capsys):
    folder = tmp_path / "kites"
    make(folder)
    out = tmp_path / "out" / "book.pdf"
    rc = main(["render", str(folder), "--out", str(out), "--model", "tiny", "--steps", "1", "--max-side", "64"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert re.search(r"\[job 1/1\] 1 panel\(s\), step 1/1", err)
    assert "warning: panel p1 cannot be generated" in err
    assert "Page 1: Panel 2: not generated yet." in err
    assert f"Wrote 1 page(s) as pdf to {out}" in err and "1 panel(s) could not be generated" in err
    project = open_project(folder)
    assert project.panels[0].current is not None and project.panels[1].current is None
    from PIL import Image

    with Image.open(folder / "assets" / f"{project.panels[0].current}.png") as im:
        assert im.size == (64, 48)
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"Pages:\s+1\b", info)
    # A second run has nothing left to generate and writes the same book.
    rc = main(["render", str(folder), "--out", str(tmp_path / "b.cbz"), "--model", "tiny", "--dpi", "40"])
    err = capsys.readouterr().err
    assert rc == 0 and "Loading model" not in err and "Wrote 1 page(s) as cbz" in err


def test_no_generate_exports_placeholders(tmp_path, capsys):
    folder = tmp_path / "kites"
    make(folder)
    rc = main(["render", str(folder), "--out", str(tmp_path / "pages"), "--format", "png", "--dpi", "36",
               "--no-generate"])
    err = capsys.readouterr().err
    assert rc == 0 and "Page 1: Panel 1: not generated yet." in err
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["page-001.png"]
    assert open_project(folder).panels[0].current is None


def test_user_errors_exit_2_with_a_sentence_and_write_nothing(tmp_path, capsys):
    folder = tmp_path / "kites"
    make(folder)
    out = tmp_path / "book.pdf"
    assert main(["render", str(folder), "--out", str(out), "--model", "no-such-model-dir"]) == 2
    err = capsys.readouterr().err
    assert "Loading model no-such-model-dir" in err and "error: " in err and "Wrote" not in err
    assert main(["render", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["render", str(folder), "--out", str(out), "--batch", "0"]) == 2
    assert "--batch must be at least 1" in capsys.readouterr().err
    assert main(["render", str(folder), "--out", str(out), "--steps", "0"]) == 2
    assert "--steps must be between 1 and 1000" in capsys.readouterr().err
    assert main(["render", str(folder), "--out", str(tmp_path / "x"), "--format", "png", "--dpi", "7",
                 "--no-generate"]) == 2
    assert "resolution 7 dpi is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["render", str(folder), "--out", str(out), "--format", "docx"])
    assert not out.exists()


@pytest.mark.slow
def test_the_toy_sample_renders_real_pictures_and_the_storybook_is_refused_by_name(tmp_path, capsys):
    """``make render``'s job: the toy-world sample with the default model draws its characters as written."""
    from PIL import Image

    from app.model_choice import default_model_source
    from engine.toyworld.judge import judge

    root = Path(__file__).resolve().parents[2]
    if default_model_source() != "toy":
        pytest.skip("the toy model is not installed")
    folder = tmp_path / "toy"
    shutil.copytree(root / "projects" / "toy-storybook", folder)
    rc = main(["render", str(folder), "--out", str(tmp_path / "toy.pdf")])
    err = capsys.readouterr().err
    assert rc == 0 and "could not be generated" not in err and "Wrote 3 page(s) as pdf" in err, err
    project = open_project(folder)
    colours = {}
    for panel in project.panels:
        with Image.open(folder / "assets" / f"{panel.current}.png") as im:
            assert im.size == (64, 64)             # the toy model's native size, not the page slot's 1024 px
            colours[panel.id] = judge(im.convert("RGB")).colour
    pip = [colours[p.id] for p in project.panels if p.character_ids == ("pip",)]
    dot = [colours[p.id] for p in project.panels if p.character_ids == ("dot",)]
    assert pip.count("red") >= len(pip) - 1 and dot.count("blue") >= len(dot) - 1, colours
    # the fox-and-bear storybook names words the toy model cannot draw: refused by name, book still written
    story = tmp_path / "story"
    shutil.copytree(root / "projects" / "sample-storybook", story)
    rc = main(["render", str(story), "--out", str(tmp_path / "story.pdf"), "--model", "toy"])
    err = capsys.readouterr().err
    assert rc == 0 and "not drawn: The built-in toy model does not know the words" in err
    assert "8 panel(s) could not be generated" in err and "Loading model toy" in err


def test_export_mistakes_are_found_before_any_model_work(tmp_path, capsys, monkeypatch):
    import engine.model_loader

    monkeypatch.setattr(engine.model_loader, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    folder = tmp_path / "kites"
    make(folder)
    (tmp_path / "a-folder.pdf").mkdir()
    for args, message in ((["--out", str(tmp_path / "x"), "--format", "png", "--dpi", "7"], "7 dpi is out of range"),
                          (["--out", str(tmp_path / "a-folder.pdf")], "a-folder.pdf is a folder")):
        assert main(["render", str(folder), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Loading model" not in err, err
    assert open_project(folder).panels[0].current is None


def test_model_options_reach_the_loader(tmp_path, capsys, monkeypatch):
    import engine.model_loader
    from engine.errors import ModelLoadError

    seen = []

    def load(source, **kw):
        seen.append((source, kw))
        raise ModelLoadError("stop here")

    monkeypatch.setattr(engine.model_loader, "load_model", load)
    folder = tmp_path / "kites"
    make(folder)
    code = main(["render", str(folder), "--out", str(tmp_path / "b.pdf"), "--device", "cpu", "--dtype", "fp32",
                 "--cpu-offload", "--vae-tiling"])
    assert code == 2 and "stop here" in capsys.readouterr().err
    assert seen == [("tiny", {"device": "cpu", "dtype": "fp32", "cpu_offload": True, "vae_tiling": True})]
