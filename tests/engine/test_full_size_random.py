"""The shipped full-size SDXL configs have the published sizes (checked on the meta device: nothing is allocated),
and the random-weight builder gives finite, deterministic weights (checked on the tiny architecture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.full_size_random import SDXL_CONFIG_DIR, build_sdxl_meta, build_sdxl_random


def test_shipped_sdxl_configs_have_the_published_sizes_on_meta():
    parts = build_sdxl_meta()
    assert all(p.device.type == "meta" for m in parts.values() for p in m.parameters())
    millions = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in parts.items()}
    assert millions["unet"] == pytest.approx(2567.46, abs=0.01)
    assert millions["vae"] == pytest.approx(83.65, abs=0.01)
    assert millions["text_encoder"] == pytest.approx(123.06, abs=0.01)
    assert millions["text_encoder_2"] == pytest.approx(694.66, abs=0.01)
    procs = parts["unet"].attn_processors
    assert len(procs) == 140
    assert sum(k.endswith("attn1.processor") for k in procs) == sum(k.endswith("attn2.processor") for k in procs) == 70
    assert parts["vae"].config.scaling_factor == 0.13025 and parts["vae"].config.force_upcast
    assert parts["text_encoder"].config.hidden_size + parts["text_encoder_2"].config.hidden_size == 2048
    assert parts["unet"].config.cross_attention_dim == 2048


def test_shipped_sd15_configs_have_the_published_sizes_on_meta():
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from engine.single_file import CONFIG_DIRS

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIG_DIRS["sd15"] / "unet"))
    assert sum(p.numel() for p in unet.parameters()) / 1e6 == pytest.approx(859.52, abs=0.01)
    assert len(unet.attn_processors) == 32


def test_random_builder_gives_finite_deterministic_weights(tmp_path, tiny_sdxl):
    """The same code path as `sdxl-random`, on the tiny architecture so it runs on a small CPU."""
    tiny_sdxl.pipe.save_pretrained(tmp_path)
    a = build_sdxl_random(torch.float32, "cpu", config_dir=tmp_path)
    b = build_sdxl_random(torch.float32, "cpu", config_dir=tmp_path)
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part
        for name, p in getattr(a, part).named_parameters():
            assert p.device.type == "cpu" and torch.isfinite(p).all(), name
            if name.endswith("bias"):
                assert not p.any(), name
    te = a.text_encoder.state_dict()
    pos = [k for k in te if k.endswith("position_ids")]
    for k in pos:  # buffers survive to_empty
        assert torch.equal(te[k], torch.arange(77).unsqueeze(0)), k
    w = a.unet.conv_in.weight
    assert abs(w.std().item() - 0.02) < 0.005
    assert torch.equal(a.unet.conv_norm_out.weight, torch.ones_like(a.unet.conv_norm_out.weight))
    with torch.no_grad():
        img = a(prompt="a fox", num_inference_steps=1, height=32, width=32, output_type="np").images
    assert np.isfinite(img).all() and img.shape == (1, 32, 32, 3)


def test_sdxl_random_source_is_wired_into_the_loader():
    from engine.model_loader import BUILTIN_SOURCES, describe_source

    assert "sdxl-random" in BUILTIN_SOURCES and describe_source("sdxl-random") == "sdxl-random"
    assert (SDXL_CONFIG_DIR / "model_index.json").exists()
