"""`consistory-studio generate`: files and recipes written, the same pixels as the engine, ConsiStory flags mapped
onto the spec, and one sentence + exit status 2 for every input mistake (with nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.cli_generate import UsageError, add_parser, image_names, parse_size, spec_from_args, write_mask_overlay

BASE = ["generate", "--model", "tiny", "--seed", "5", "--steps", "2", "--size", "64x32"]


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["generate", *argv])


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_generate_writes_png_and_recipe_per_prompt(tmp_path, capsys, tiny_sdxl):
    from engine.generate import generate
    from engine.request import GenerationSpec

    out = tmp_path / "out"
    code = main([*BASE, "--prompt", "a red fox in the snow", "--prompt", "a fox reads a book", "--guidance", "4",
                 "--scheduler", "euler", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert [i["seed"] for i in summary["images"]] == [5, 6]
    assert summary["model"]["fingerprint"] == tiny_sdxl.fingerprint and summary["consistory"] is False
    assert sorted(p.name for p in out.iterdir()) == [
        "001_a-red-fox-in-the-snow.json", "001_a-red-fox-in-the-snow.png",
        "002_a-fox-reads-a-book.json", "002_a-fox-reads-a-book.png"]
    side = json.loads((out / "002_a-fox-reads-a-book.json").read_text())
    assert side["prompt"] == "a fox reads a book" and side["seed"] == 6 and side["image_index"] == 1
    recipe = side["recipe"]
    assert recipe["model"]["fingerprint"] == tiny_sdxl.fingerprint and recipe["model"]["source"] == "tiny"
    assert recipe["prompts"] == ["a red fox in the snow", "a fox reads a book"] and recipe["seeds"] == [5, 6]
    assert (recipe["scheduler"], recipe["steps"], recipe["guidance"]) == ("euler", 2, 4.0)
    assert (recipe["width"], recipe["height"]) == (64, 32)
    assert {"torch", "diffusers", "transformers"} <= set(recipe["versions"])
    assert "step 2/2" in captured.err  # progress on stderr
    # the CLI's pixels are the engine's pixels for the same recipe
    spec = GenerationSpec(prompts=("a red fox in the snow", "a fox reads a book"), seeds=(5, 6), width=64,
                          height=32, steps=2, guidance=4.0, scheduler="euler")
    expected = generate(tiny_sdxl, spec).images
    for name, img in zip(image_names(spec.prompts), expected):
        written = Image.open(out / f"{name}.png")
        assert written.size == (64, 32)
        assert np.abs(np.asarray(written, dtype=np.int16) - np.asarray(img, dtype=np.int16)).max() == 0


def test_default_size_is_the_models_native_size(tmp_path, capsys):
    assert main(["generate", "--model", "tiny-sd15", "--seed", "1", "--steps", "1", "--prompt", "a cat",
                 "--out", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "001_a-cat.png").size == (64, 64)
    assert json.loads((tmp_path / "001_a-cat.json").read_text())["recipe"]["model"]["family"] == "sd15"


@pytest.mark.parametrize("argv, words", [
    (["--size", "64x40"], "height 40 is not a positive multiple of 16"),
    (["--size", "big"], "is not of the form WIDTHxHEIGHT"),
    (["--prompt", "  "], "Prompt 2 is empty"),
    (["--steps", "0"], "number of steps 0 must be between 1 and 1000"),
    (["--seed", "-3"], "seed -3 must be a whole number"),
    (["--model", "not a model"], "Unknown model source 'not a model'"),
    (["--model", "/nowhere/model.safetensors"], "does not exist"),
    (["--model", "someone/not-cached"], "not in the local Hugging Face cache"),
    (["--no-inject"], "--no-inject is a ConsiStory option and needs at least one --subject word"),
    (["--subject", "fox", "--anchors", "5"], "asks for 5 anchors"),
    (["--subject", ""], "A --subject word is empty"),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    code = main([*BASE, "--prompt", "a fox", "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2
    lines = _errors(err)
    assert len(lines) == 1 and words in lines[0], err
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main([*BASE, "--prompt", "a fox", "--out", str(blocker / "sub")])
    lines = _errors(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "cannot be created" in lines[0] and "--out" in lines[0]


def test_consistory_flags_map_onto_the_spec():
    from engine.consistory.config import ConsistoryConfig

    spec = spec_from_args(_parse(["--prompt", "a fox", "--prompt", "a fox swims", "--prompt", "a fox sleeps",
                                  "--seed", "9", "--out", "x", "--subject", "fox", "--anchors", "3", "--no-inject",
                                  "--no-share", "--no-query-blend", "--dropout", "0.3"]))
    assert spec.subjects == ("fox",) and spec.seeds == (9, 10, 11)
    assert spec.consistory == ConsistoryConfig(anchors=3, share=False, inject=False, query_blend=False, dropout=0.3)
    default = spec_from_args(_parse(["--prompt", "a fox", "--seed", "1", "--out", "x", "--subject", "fox",
                                     "--subject", "hat", "--subject", "fox"]))
    assert default.consistory == ConsistoryConfig() and default.subjects == ("fox", "hat")
    vanilla = spec_from_args(_parse(["--prompt", "a fox", "--seed", "1", "--out", "x", "--subject", "fox",
                                     "--vanilla"]))
    assert vanilla.consistory is None and vanilla.subjects == ("fox",)
    plain = spec_from_args(_parse(["--prompt", "a fox", "--seed", "1", "--out", "x", "--size", "96x64"]),
                           native_size=(64, 64))
    assert plain.consistory is None and (plain.width, plain.height) == (96, 64)
    with pytest.raises(UsageError, match="--debug-masks is a ConsiStory option"):
        spec_from_args(_parse(["--prompt", "a fox", "--seed", "1", "--out", "x", "--debug-masks"]))


def test_parse_size_and_names():
    assert parse_size("1024x768") == (1024, 768) and parse_size(" 96 X 64 ") == (96, 64)
    with pytest.raises(UsageError):
        parse_size("1024")
    assert image_names(["A Fox, in the SNOW!", "???"]) == ["001_a-fox-in-the-snow", "002_image"]


def test_mask_overlay_tints_exactly_the_subject(tmp_path):
    image = Image.new("RGB", (8, 4), (0, 0, 200))
    mask = np.array([[True, False], [False, False]])
    write_mask_overlay(image, mask, tmp_path / "m.png")
    px = np.asarray(Image.open(tmp_path / "m.png"))
    assert px.shape == (4, 8, 3)
    assert tuple(px[0, 0]) == (140, 0, 90) and tuple(px[1, 3]) == (140, 0, 90)  # top-left quarter, upsampled
    assert tuple(px[2, 0]) == (0, 0, 200) and tuple(px[0, 4]) == (0, 0, 200)


def test_debug_masks_are_written_next_to_the_images(tmp_path, capsys, monkeypatch):
    import torch

    import engine.generate
    from engine.request import GenerationResult

    def fake_generate(model, spec, **kwargs):
        assert spec.consistory is not None and spec.subjects == ("fox",)
        images = [Image.new("RGB", (spec.width, spec.height), (0, 0, 200)) for _ in spec.prompts]
        masks = [torch.zeros(spec.height // 4, spec.width // 4, dtype=torch.bool) for _ in spec.prompts]
        masks[1][0, 0] = True
        return GenerationResult(images=images, recipe={"fake": True}, masks=masks)

    monkeypatch.setattr(engine.generate, "generate", fake_generate)
    code = main([*BASE, "--prompt", "a fox", "--prompt", "a fox swims", "--subject", "fox", "--debug-masks",
                 "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["consistory"] is True
    mask = np.asarray(Image.open(tmp_path / "002_a-fox-swims_mask.png"))
    assert tuple(mask[0, 0]) == (140, 0, 90) and tuple(mask[0, 4]) == (0, 0, 200)
    assert (tmp_path / "001_a-fox_mask.png").exists()


def test_the_toy_model_defaults_to_no_dropout_and_dropout_still_overrides(tmp_path, capsys):
    """The toy model holds a look best without attention dropout (README, measured), so `generate` uses its
    profile's dropout 0 unless --dropout is given; the recipe records what ran."""
    from app.model_choice import default_model_source

    if default_model_source() != "toy":
        pytest.skip("the toy model is not installed")
    argv = ["generate", "--model", "toy", "--seed", "3", "--steps", "2", "--subject", "creature",
            "--prompt", "a creature in the snow", "--prompt", "a creature at night"]
    ran = {}
    for label, extra in (("default", []), ("given", ["--dropout", "0.4"])):
        out = tmp_path / label
        assert main([*argv, *extra, "--out", str(out)]) == 0, capsys.readouterr().err
        recipe = json.loads((out / "001_a-creature-in-the-snow.json").read_text())["recipe"]
        ran[label] = recipe["consistory"]["dropout"]
    assert ran == {"default": 0.0, "given": 0.4}
