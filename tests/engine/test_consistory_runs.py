"""ConsiStory end to end on the tiny random-weight models: parity when off, anchor independence, determinism,
schedules, masks on non-square grids, SD 1.x, multi-subject, refusal and clean-up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from engine.consistory.config import ConsistoryConfig
from engine.consistory.pipeline import generate_consistent, unet_pass_count
from engine.denoise_loop import generate_plain
from engine.errors import Cancelled, SubjectNotInPromptError
from engine.generate import generate
from engine.request import GenerationSpec

PROMPTS = ("a photo of a fox", "a fox in the snow", "a fox reads a map in the forest")


def _spec(**kw) -> GenerationSpec:
    base = dict(prompts=PROMPTS, seeds=(11, 12, 13), width=64, height=64, steps=10, subjects=("fox",),
                consistory=ConsistoryConfig())
    base.update(kw)
    return GenerationSpec(**base)


def _px(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


@pytest.fixture(scope="module")
def full_run(tiny_sdxl):
    return generate(tiny_sdxl, _spec())


@pytest.fixture(scope="module")
def no_cfg_run(tiny_sdxl):
    """Guidance 1 (no CFG: half the batch) for the tests that only compare switches and seeds."""
    return generate(tiny_sdxl, _spec(guidance=1.0))


def test_all_parts_off_equals_the_plain_loop_bit_for_bit(tiny_sdxl):
    off = generate(tiny_sdxl, _spec(consistory=ConsistoryConfig.off()))
    plain = generate_plain(tiny_sdxl, _spec(consistory=None))
    assert np.array_equal(_px(off.images), _px(plain.images))


def test_method_changes_the_images_and_reports_its_schedule(tiny_sdxl, full_run):
    plain = generate_plain(tiny_sdxl, _spec(consistory=None))
    assert not np.array_equal(_px(full_run.images), _px(plain.images))
    sched = full_run.recipe["consistory_schedule"]
    # 10 leading DDIM steps: t = 901, 801, ... 1; DIFT at the first t <= 261 (step 7); injection on steps 1..3
    assert sched["dift_step"] == 7 and sched["inject_steps"] == [1, 3] and sched["blend_steps"] == [1]
    # run 1: steps 0..7 (the vanilla queries of step 1 ride along in the decoder), run 2: steps 1..9
    assert full_run.extras["unet_passes"] == sched["unet_passes"] == 17
    assert full_run.extras["decoder_copies"] == 1 and full_run.extras["partial_passes"] == 1
    assert sum(full_run.extras["injected_patches"]) > 0


def test_pass_count_of_the_reference_schedule():
    from diffusers import DDIMScheduler

    s = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
                      timestep_spacing="leading")
    s.set_timesteps(50)
    assert int(s.timesteps[36]) == 261
    assert unet_pass_count(ConsistoryConfig(), s.timesteps) == 82            # vs 112 in the reference code
    assert unet_pass_count(ConsistoryConfig(inject=False), s.timesteps) == 50
    # blending past the first injection step: run 2 needs vanilla passes of its own when the encoder is injected
    late = ConsistoryConfig(query_blend_until=0.2)
    assert unet_pass_count(late, s.timesteps) == 82 + 5
    assert unet_pass_count(late, s.timesteps, encoder_injection=False) == 82


def test_fused_vanilla_queries_and_the_early_dift_stop_keep_the_images(tiny_sdxl, full_run):
    whole = generate_consistent(tiny_sdxl, _spec(), stop_at_dift=False)
    assert np.array_equal(_px(whole.images), _px(full_run.images))   # the rest of run 1's last pass is unused
    assert whole.extras["partial_passes"] == 0
    separate = generate_consistent(tiny_sdxl, _spec(), fuse_vanilla=False, stop_at_dift=False)
    assert separate.extras["unet_passes"] == 18 and separate.extras["decoder_copies"] == 0
    # the same queries from a copy of the batch in the decoder (batch-size float noise at most)
    diff = np.abs(_px(separate.images).astype(int) - _px(full_run.images).astype(int)).max()
    assert diff <= 1
    assert torch.equal(separate.extras["subject_masks"], full_run.extras["subject_masks"])


def test_run_2_blends_its_first_step_with_that_steps_vanilla_queries(tiny_sdxl):
    """Run 2 resumes at the first injection step (a blending step) and takes that step's vanilla queries from run 1.
    When they rode along in run 1's main pass they were written during that pass, after run 1's snapshot: run 2
    must still read them (not the step before's, nor none), exactly as with a vanilla pass of their own."""
    spec = _spec(guidance=1.0)  # blending on step 1, injection from step 1 (see the schedule test)
    fused, separate = {"outputs": {}}, {"outputs": {}}
    generate_consistent(tiny_sdxl, spec, record=fused)
    generate_consistent(tiny_sdxl, spec, record=separate, fuse_vanilla=False)
    run2_first = [k for k in fused["outputs"] if k[1:] == (2, 1)]
    assert run2_first and set(run2_first) == {k for k in separate["outputs"] if k[1:] == (2, 1)}
    for key in run2_first:
        torch.testing.assert_close(fused["outputs"][key], separate["outputs"][key], rtol=1e-4, atol=1e-5)
    unblended = dataclasses.replace(spec, consistory=ConsistoryConfig(query_blend=False))
    plain_q = {"outputs": {}}
    generate_consistent(tiny_sdxl, unblended, record=plain_q)
    assert any(not torch.allclose(fused["outputs"][k], plain_q["outputs"][k], atol=1e-5) for k in run2_first)


def test_anchors_do_not_depend_on_non_anchor_prompts(tiny_sdxl, full_run):
    other = generate(tiny_sdxl, _spec(prompts=PROMPTS[:2] + ("a fox sleeps under a tree at night",)))
    a, b = _px(full_run.images), _px(other.images)
    assert np.array_equal(a[:2], b[:2])
    assert not np.array_equal(a[2], b[2])


def test_same_seeds_same_set_different_seeds_different_set(tiny_sdxl, no_cfg_run):
    again = generate(tiny_sdxl, _spec(guidance=1.0))
    assert np.array_equal(_px(again.images), _px(no_cfg_run.images))
    other = generate(tiny_sdxl, _spec(guidance=1.0, seeds=(21, 22, 23)))
    assert not np.array_equal(_px(other.images)[0], _px(no_cfg_run.images)[0])


def test_masks_cover_part_of_each_image_on_a_non_square_grid(tiny_sdxl):
    r = generate(tiny_sdxl, _spec(width=96, height=64, steps=4, consistory=ConsistoryConfig(inject=False)))
    assert r.images[0].size == (96, 64)
    # latent 32x48; fine grid = latent / 2
    assert all(m.shape == (16, 24) and m.dtype == torch.bool for m in r.masks)
    assert all(0 < int(m.sum()) < 16 * 24 for m in r.masks)


def test_two_subjects_give_the_union_of_their_masks(tiny_sdxl):
    prompts = ("a fox with a hat", "a fox with a hat in the snow", "a fox with a hat on the beach")
    r = generate(tiny_sdxl, _spec(prompts=prompts, subjects=("fox", "hat"), steps=4,
                                  consistory=ConsistoryConfig(inject=False)))
    per_subject = r.extras["subject_masks"]  # (S, N, P)
    assert per_subject.shape[:2] == (2, 3)
    for i, m in enumerate(r.masks):
        assert torch.equal(m.reshape(-1), per_subject[:, i].any(0))
    assert not torch.equal(per_subject[0], per_subject[1])


def test_sd15_runs_with_its_own_grids(tiny_sd15):
    r = generate(tiny_sd15, _spec(steps=10))
    assert len(r.images) == 3 and r.masks[0].shape == (32, 32)  # tiny-sd15: fine factor 1 of a 32x32 latent
    assert r.extras["unet_passes"] == 17


def test_prompt_without_its_subject_is_refused_before_any_work(tiny_sdxl):
    calls = []
    with pytest.raises(SubjectNotInPromptError, match="a cat in the snow"):
        generate(tiny_sdxl, _spec(prompts=("a fox", "a fox at night", "a cat in the snow")),
                 on_step=lambda info: calls.append(info))
    assert calls == []


def test_cancel_restores_the_model(tiny_sdxl):
    unet = tiny_sdxl.pipe.unet
    with pytest.raises(Cancelled):
        generate(tiny_sdxl, _spec(), should_cancel=lambda: True)
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    assert unet.up_blocks[0].b1 is None if hasattr(unet.up_blocks[0], "b1") else True
    assert not unet.up_blocks[0]._forward_hooks
    plain = generate_plain(tiny_sdxl, _spec(consistory=None))
    again = generate_plain(tiny_sdxl, _spec(consistory=None))
    assert np.array_equal(_px(plain.images), _px(again.images))


def test_progress_counts_both_runs(tiny_sdxl):
    seen = []
    generate(tiny_sdxl, _spec(steps=10), on_step=lambda i: seen.append((i.step, i.total)))
    # run 1: steps 0..7 (8), run 2: steps 1..9 (9)
    assert seen == [(k, 17) for k in range(1, 18)]


def test_ablation_switches_change_the_result(tiny_sdxl, no_cfg_run):
    base = _px(no_cfg_run.images)
    for change in ({"inject": False}, {"share": False}, {"dropout": 0.0}):
        cfg = dataclasses.replace(ConsistoryConfig(), **change)
        r = generate(tiny_sdxl, _spec(guidance=1.0, consistory=cfg))
        assert not np.array_equal(_px(r.images)[2], base[2]), change
