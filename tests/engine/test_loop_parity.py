"""Our denoising loop equals the stock diffusers pipelines (SDXL and SD 1.x layouts, DDIM and Euler, with and
without CFG, non-square), per-image seeds are independent of the batch, and step callbacks / cancel behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.denoise_loop import decode_latents, denoise, generate_plain, make_scheduler, prepare
from engine.errors import Cancelled, InvalidRequestError
from engine.request import GenerationSpec

PROMPTS = ("a red fox in the snow", "a small robot reads a book")
STEPS = 2
W, H = 64, 32  # non-square, small: these tests run on two shared CPU cores


def _stock_pipe(model, scheduler: str):
    """A stock pipeline sharing the model's components but with its own scheduler (the fixture is not mutated)."""
    components = dict(model.pipe.components)
    components["scheduler"] = make_scheduler(model, scheduler)
    pipe = type(model.pipe)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _stock(model, spec: GenerationSpec) -> tuple[torch.Tensor, list]:
    """The stock pipeline's final latents (captured at its last step callback) and its PIL images, in one call."""
    pipe = _stock_pipe(model, spec.scheduler)
    gens = [torch.Generator("cpu").manual_seed(s) for s in spec.seeds]
    captured = {}

    def keep_latents(_pipe, _i, _t, tensors):
        captured["latents"] = tensors["latents"].clone()
        return tensors

    with torch.no_grad():
        images = pipe(prompt=list(spec.prompts), num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                      width=spec.width, height=spec.height, generator=gens, output_type="pil",
                      callback_on_step_end=keep_latents, callback_on_step_end_tensor_inputs=["latents"]).images
    return captured["latents"], images


def _ours_latents(model, spec: GenerationSpec) -> torch.Tensor:
    cond, scheduler, timesteps, latents, _ = prepare(model, spec)
    return denoise(model, latents, cond, scheduler, timesteps)


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB"), dtype=np.int16) for im in images])


@pytest.fixture(scope="module")
def reloaded_sdxl(tmp_path_factory, tiny_sdxl):
    """The tiny SDXL model saved with save_pretrained and loaded back as a folder."""
    from engine.model_loader import load_model

    folder = tmp_path_factory.mktemp("tiny-saved")
    tiny_sdxl.pipe.save_pretrained(folder)
    return load_model(str(folder))


@pytest.mark.parametrize("which", ["tiny_sdxl", "tiny_sd15"])
@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
@pytest.mark.parametrize("guidance", [1.0, 5.0])
def test_loop_equals_stock_pipeline(request, which, scheduler, guidance):
    model = request.getfixturevalue(which)
    spec = GenerationSpec(prompts=PROMPTS, seeds=(11, 12), width=W, height=H, steps=STEPS, guidance=guidance,
                          scheduler=scheduler)
    ours = _ours_latents(model, spec)
    stock, stock_images = _stock(model, spec)
    assert ours.shape == stock.shape == (2, 4, H // model.vae_scale_factor, W // model.vae_scale_factor)
    assert torch.max(torch.abs(ours - stock)).item() <= 1e-5
    ours_px, stock_px = _pixels(decode_latents(model, ours)), _pixels(stock_images)
    assert ours_px.shape == (2, H, W, 3)
    assert np.abs(ours_px - stock_px).max() <= 1
    # not trivially flat (a broken decode would give a constant image on both sides)
    assert ours_px.std() > 1.0


def test_saved_and_reloaded_folder_equals_stock_and_original(reloaded_sdxl, tiny_sdxl):
    assert reloaded_sdxl.family == "sdxl"
    assert reloaded_sdxl.fingerprint == tiny_sdxl.fingerprint
    spec = GenerationSpec(prompts=PROMPTS, seeds=(3, 4), width=H, height=W, steps=STEPS, guidance=5.0)
    ours = _ours_latents(reloaded_sdxl, spec)
    stock, stock_images = _stock(reloaded_sdxl, spec)
    assert torch.max(torch.abs(ours - stock)).item() <= 1e-5
    assert np.abs(_pixels(decode_latents(reloaded_sdxl, ours)) - _pixels(stock_images)).max() <= 1
    assert torch.max(torch.abs(ours - _ours_latents(tiny_sdxl, spec))).item() <= 1e-5


@pytest.mark.parametrize("which", ["tiny_sdxl", "tiny_sd15"])
def test_each_image_depends_only_on_its_own_seed(request, which):
    model = request.getfixturevalue(which)
    batch = GenerationSpec(prompts=PROMPTS + ("a cat sleeps",), seeds=(7, 8, 9), width=32, height=32, steps=2)
    alone = GenerationSpec(prompts=(PROMPTS[1],), seeds=(8,), width=32, height=32, steps=2)
    batch_px = _pixels(generate_plain(model, batch).images)
    alone_px = _pixels(generate_plain(model, alone).images)
    assert np.abs(batch_px[1] - alone_px[0]).max() <= 1
    other_seed = GenerationSpec(prompts=(PROMPTS[1],), seeds=(80,), width=32, height=32, steps=2)
    assert np.abs(_pixels(generate_plain(model, other_seed).images)[0] - alone_px[0]).max() > 1


def test_step_callback_gets_every_step_and_previews(tiny_sdxl):
    seen = []
    spec = GenerationSpec(prompts=PROMPTS, seeds=(1, 2), width=W, height=H, steps=4)
    generate_plain(tiny_sdxl, spec, on_step=seen.append, preview_every=2)
    assert [(s.step, s.total) for s in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [s.preview is not None for s in seen] == [False, True, False, True]
    preview = seen[1].preview
    assert len(preview) == 2 and preview[0].size == (W // 2, H // 2) and preview[0].mode == "RGB"
    no_preview = []
    generate_plain(tiny_sdxl, spec, on_step=no_preview.append)
    assert all(s.preview is None for s in no_preview) and len(no_preview) == 4


class _CountingDecode:
    def __init__(self, vae, monkeypatch):
        self.calls = 0
        original = vae.decode

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(vae, "decode", counting)


def test_cancel_raises_at_next_step_and_decodes_nothing(tiny_sdxl, monkeypatch):
    counter = _CountingDecode(tiny_sdxl.pipe.vae, monkeypatch)
    steps_done = []
    spec = GenerationSpec(prompts=PROMPTS, seeds=(1, 2), width=W, height=H, steps=5)
    with pytest.raises(Cancelled):
        generate_plain(tiny_sdxl, spec, on_step=steps_done.append, should_cancel=lambda: len(steps_done) >= 2)
    assert [s.step for s in steps_done] == [1, 2]
    assert counter.calls == 0
    generate_plain(tiny_sdxl, GenerationSpec(prompts=PROMPTS[:1], seeds=(1,), width=W, height=H, steps=1))
    assert counter.calls == 1


def test_cancel_before_the_first_step(tiny_sd15, monkeypatch):
    counter = _CountingDecode(tiny_sd15.pipe.vae, monkeypatch)
    seen = []
    with pytest.raises(Cancelled):
        generate_plain(tiny_sd15, GenerationSpec(prompts=PROMPTS, seeds=(1, 2), width=W, height=H, steps=3),
                       on_step=seen.append, should_cancel=lambda: True)
    assert seen == [] and counter.calls == 0


@pytest.mark.parametrize("changes, words", [
    ({"width": 72}, "width 72 is not a positive multiple of 16"),
    ({"height": 0}, "height 0 is not a positive multiple of 16"),
    ({"steps": 0}, "number of steps 0 must be between 1 and 1000"),
    ({"steps": 1001}, "must be between 1 and 1000"),
    ({"seeds": (-1, 2)}, "seed -1 is not a whole number"),
    ({"seeds": (1,)}, "2 prompts but 1 seeds"),
    ({"prompts": ("a fox", "  ")}, "Prompt 2 is empty"),
    ({"guidance": float("nan")}, "guidance scale nan must be a number"),
    ({"scheduler": "heun"}, "Unknown scheduler 'heun'"),
])
def test_bad_requests_fail_before_any_model_work(tiny_sdxl, monkeypatch, changes, words):
    calls = []
    monkeypatch.setattr(tiny_sdxl.pipe, "encode_prompt", lambda *a, **k: calls.append(1))
    fields = dict(prompts=("a fox", "a cat"), seeds=(1, 2), width=64, height=64, steps=2) | changes
    with pytest.raises(InvalidRequestError) as err:
        generate_plain(tiny_sdxl, GenerationSpec(**fields))
    assert words in str(err.value)
    assert str(err.value).count("\n") == 0
    assert calls == []


def test_real_sdxl_size_rule_is_64_pixels():
    spec = GenerationSpec(prompts=("a fox",), seeds=(1,), width=1000, height=1024)
    with pytest.raises(InvalidRequestError, match="width 1000 is not a positive multiple of 64"):
        spec.validate(vae_scale_factor=8)
    GenerationSpec(prompts=("a fox",), seeds=(1,), width=960, height=1088).validate(vae_scale_factor=8)


def test_generate_plain_images_equal_stock_pipeline(tiny_sdxl):
    spec = GenerationSpec(prompts=PROMPTS[:1], seeds=(5,), width=W, height=H, steps=2)
    _, stock_images = _stock(tiny_sdxl, spec)
    assert np.abs(_pixels(generate_plain(tiny_sdxl, spec).images) - _pixels(stock_images)).max() <= 1
