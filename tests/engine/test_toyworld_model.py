"""The shipped toy model loads offline as source ``toy`` and draws the colour it is asked for; the training
script runs, checkpoints and resumes (on a miniature run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.model_loader import TOY_MODEL_DIR

SHIPPED = (TOY_MODEL_DIR / "model_index.json").exists()
needs_model = pytest.mark.skipif(
    not SHIPPED, reason="the toy model is not in resources/models/toy (python -m engine.toyworld.train, then "
                        "python -m engine.toyworld.export)")


@pytest.fixture(scope="module")
def toy():
    from engine.model_loader import load_model

    return load_model("toy")


@needs_model
def test_shipped_folder_is_a_small_standard_pipeline():
    from engine.toyworld.export import folder_size

    index = json.loads((TOY_MODEL_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert sorted(p.name for p in TOY_MODEL_DIR.rglob("*.safetensors")) == [
        "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors", "model.safetensors"]
    assert not list(TOY_MODEL_DIR.rglob("*.bin"))
    assert folder_size(TOY_MODEL_DIR) <= 30 * 2**20


@needs_model
def test_toy_draws_the_requested_colour(toy):
    from engine.generate import generate
    from engine.request import GenerationSpec
    from engine.toyworld.judge import judge

    assert toy.family == "sd15" and toy.pipe.vae_scale_factor == 2
    colours = ("red", "blue", "green")
    prompts = tuple(f"a {c} round creature with no hat in the snow" for c in colours for _ in range(2))
    result = generate(toy, GenerationSpec(prompts=prompts, seeds=tuple(range(len(prompts))), width=64, height=64,
                                          steps=12, guidance=4.0))
    judged = [judge(img) for img in result.images]
    wanted = [c for c in colours for _ in range(2)]
    right = sum(j.colour == w for j, w in zip(judged, wanted))
    assert right >= 5, [j.identity for j in judged]
    assert sum(j.scene == "snow" for j in judged) >= 5


def test_training_script_checkpoints_and_resumes(tmp_path):
    from engine.toyworld import train
    from engine.toyworld.export import build_pipeline

    out = tmp_path / "run"
    small = ["--out", str(out), "--n-train", "48", "--n-held", "8", "--vae-psnr", "1", "--vae-eval-every", "2",
             "--vae-batch", "4", "--batch", "4", "--log-every", "1", "--threads", "1"]
    assert train.main(small + ["--steps", "2"]) == 0
    with pytest.raises(SystemExit):  # a second run into the same folder needs --resume
        train.main(small + ["--steps", "2"])
    assert train.main(small + ["--steps", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "unet" and "loss" in r] == [1, 2, 3]
    assert sum(r["phase"] == "data" for r in rows) == 1  # the resumed run did not draw the pictures again
    assert any(r.get("msg") == "resumed" and r["step"] == 2 for r in rows)
    pipe = build_pipeline(out)
    assert pipe.vae.config.scaling_factor == pytest.approx(
        next(r["scaling"] for r in rows if r["phase"] == "latents"), abs=1e-4)
    assert Path(out / "unet.pt").exists()
