"""``sdxl-random``: the full-size SDXL base architecture with random weights, for GPU benchmarks (no download).

Built from the configs shipped in ``resources/model_configs/sdxl-base``: UNet 2,567 M parameters (140 attention
processors), VAE 83.7 M, CLIP-L text encoder 123 M, OpenCLIP-bigG text encoder 695 M. Modules are created on the
meta device (``accelerate.init_empty_weights``), then allocated directly on the target device (``to_empty``) and
filled with a cheap deterministic init: matrices and embeddings N(0, 0.02), normalisation scales 1, biases 0. So it
builds in seconds on a GPU and never materialises on the CPU first. The weights mean nothing; they are finite and
keep activations in a sane range, so timings and memory equal the real model's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .single_file import CONFIG_DIRS, scheduler_from_config, tokenizer_from_config

__all__ = ["build_sdxl_random", "build_sdxl_meta", "SDXL_CONFIG_DIR"]

SDXL_CONFIG_DIR = CONFIG_DIRS["sdxl"]


def build_sdxl_meta(config_dir: Path = SDXL_CONFIG_DIR) -> dict[str, Any]:
    """UNet, VAE and both text encoders on the meta device (no memory): for parameter counts and shapes."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
        te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder", local_files_only=True))
        te2 = CLIPTextModelWithProjection(
            CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2", local_files_only=True))
    return {"unet": unet, "vae": vae, "text_encoder": te1, "text_encoder_2": te2}


def _materialise(module: torch.nn.Module, device: str | torch.device, dtype: torch.dtype,
                 generator: torch.Generator) -> torch.nn.Module:
    """Allocate ``module``'s meta parameters on ``device`` in ``dtype`` and fill them deterministically."""
    buffers = {n: b.detach().clone() for n, b in module.named_buffers() if b.device.type != "meta"}
    module.to(dtype=dtype)  # still on meta: no memory, so the device copy is allocated in dtype directly
    module.to_empty(device=device)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias":
                p.zero_()
            elif p.ndim == 1:  # norm scales (GroupNorm / LayerNorm weight)
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=generator)
        for name, value in buffers.items():  # e.g. CLIP position_ids: restore, to_empty left them uninitialised
            owner, _, leaf = name.rpartition(".")
            value = value.to(dtype) if value.is_floating_point() else value
            module.get_submodule(owner)._buffers[leaf] = value.to(device)
    return module


def build_sdxl_random(torch_dtype: torch.dtype = torch.float16, device: str = "cuda", seed: int = 0,
                      config_dir: Path = SDXL_CONFIG_DIR):
    """A ``StableDiffusionXLPipeline`` of full SDXL size with random weights, already on ``device``/``torch_dtype``.

    Peak memory is the weights only (about 7 GB in fp16). On the CPU in fp32 it needs about 14 GB of RAM.
    """
    from diffusers import StableDiffusionXLPipeline

    parts = build_sdxl_meta(config_dir)
    gen_device = torch.device(device).type if torch.device(device).type != "mps" else "cpu"
    generator = torch.Generator(gen_device).manual_seed(seed)
    for module in parts.values():
        if gen_device != torch.device(device).type:  # MPS: init on the CPU module by module
            _materialise(module, "cpu", torch_dtype, generator).to(device)
        else:
            _materialise(module, device, torch_dtype, generator)
        module.eval()
    index = json.loads((config_dir / "model_index.json").read_text(encoding="utf-8"))
    return StableDiffusionXLPipeline(
        **parts, tokenizer=tokenizer_from_config(config_dir, "tokenizer"),
        tokenizer_2=tokenizer_from_config(config_dir, "tokenizer_2"),
        scheduler=scheduler_from_config(config_dir, index), force_zeros_for_empty_prompt=True, add_watermarker=False)
