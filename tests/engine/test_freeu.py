"""FreeU as pre-hooks with the skip filter as a projection (``engine/consistory/freeu.py``) against diffusers' own
FreeU: the same filter on any size, the same UNet output, and nothing left behind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers.utils.torch_utils import fourier_filter

from engine.consistory.freeu import install_freeu, skip_filter


@pytest.mark.parametrize("hw", [(2, 2), (3, 5), (4, 4), (8, 6), (16, 16), (7, 9), (1, 4)])
@pytest.mark.parametrize("scale", [0.6, 0.4, 1.7])
def test_the_projection_equals_diffusers_fourier_filter(hw, scale):
    torch.manual_seed(hw[0] * 31 + hw[1])
    x = torch.randn(2, 3, *hw) * 4 + 1.5
    before = x.clone()
    ours = skip_filter(x, scale)
    assert torch.equal(x, before)   # the input is left alone
    assert ours.dtype == x.dtype and ours.shape == x.shape
    assert torch.allclose(ours, fourier_filter(x, threshold=1, scale=scale), atol=2e-5)
    assert not torch.allclose(ours, x, atol=1e-3)   # it does filter


def test_the_projection_keeps_half_precision():
    x = torch.randn(2, 4, 8, 8).half()
    out = skip_filter(x, 0.6)
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), fourier_filter(x.float(), threshold=1, scale=0.6), atol=2e-3)


def test_the_hooks_give_diffusers_freeu_output_and_come_off(tiny_sdxl):
    unet = tiny_sdxl.pipe.unet
    torch.manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, 16, 16)
    t = torch.tensor(500)
    ctx = torch.randn(2, 7, unet.config.cross_attention_dim)
    added = {"text_embeds": torch.randn(2, 32), "time_ids": torch.randn(2, 6)}
    if unet.config.projection_class_embeddings_input_dim:
        added["text_embeds"] = torch.randn(2, unet.config.projection_class_embeddings_input_dim - 6 *
                                           unet.config.addition_time_embed_dim)
    params = (0.6, 0.4, 1.1, 1.2)
    with torch.no_grad():
        plain = unet(sample, t, ctx, added_cond_kwargs=added).sample
        unet.enable_freeu(*params)
        try:
            reference = unet(sample, t, ctx, added_cond_kwargs=added).sample
        finally:
            unet.disable_freeu()
        handles = install_freeu(unet, *params)
        assert len(handles) == sum(len(b.resnets) for b in unet.up_blocks if b.resolution_idx in (0, 1))
        try:
            ours = unet(sample, t, ctx, added_cond_kwargs=added).sample
        finally:
            for h in handles:
                h.remove()
        after = unet(sample, t, ctx, added_cond_kwargs=added).sample
    assert not torch.allclose(reference, plain, atol=1e-4)   # FreeU changes this UNet's output
    assert torch.allclose(ours, reference, atol=1e-5)
    assert torch.equal(after, plain)   # the hooks are gone


def test_a_set_with_freeu_equals_the_same_set_on_diffusers_freeu(tiny_sdxl, monkeypatch):
    import numpy as np

    from engine.consistory import pipeline
    from engine.consistory.config import ConsistoryConfig
    from engine.request import GenerationSpec

    spec = GenerationSpec(prompts=("a photo of a fox", "a fox in the snow", "a fox reads a map"), seeds=(1, 2, 3),
                          width=64, height=64, steps=6, subjects=("fox",), consistory=ConsistoryConfig(freeu=True))
    ours = pipeline.generate_consistent(tiny_sdxl, spec)
    assert not tiny_sdxl.pipe.unet._forward_pre_hooks and all(
        not r._forward_pre_hooks for b in tiny_sdxl.pipe.unet.up_blocks for r in b.resnets)

    class _Off:
        def __init__(self, unet):
            self.unet = unet

        def remove(self):
            self.unet.disable_freeu()

    def diffusers_freeu(unet, *params):
        unet.enable_freeu(*params)
        return [_Off(unet)]

    monkeypatch.setattr(pipeline, "install_freeu", diffusers_freeu)
    reference = pipeline.generate_consistent(tiny_sdxl, spec)
    off = pipeline.generate_consistent(tiny_sdxl, dataclasses.replace(spec, consistory=ConsistoryConfig(freeu=False)))
    diff = max(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
               for a, b in zip(ours.images, reference.images))
    assert diff <= 1   # float32 rounding at most
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(off.images, reference.images))
