"""Random-weight models built in code, in well under a second, for tests and CPU benchmarks.

``tiny`` has SDXL's architecture in miniature: two text encoders (concatenated context), text-time
micro-conditioning, a VAE with scale factor 2, and a UNet whose attention sits at **two** resolutions (1/2 and 1/4
of the latent, like SDXL's 64x64 and 32x32 grids at 1024 px), so multi-resolution logic is really exercised.
``tiny-sd15`` is the same for the SD 1.x layout (one text encoder, attention at the latent's full and half size).
Weights are drawn after ``torch.manual_seed(seed)``, so the same call always builds the same model.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from .offline_tokenizer import vocab_size, write_tokenizer_files

__all__ = ["build_tiny_sdxl", "build_tiny_sd15", "tiny_tokenizer_dir"]

_TOKENIZER_DIRS: dict[str, Path] = {}


def tiny_tokenizer_dir(pad_token: str = "<|endoftext|>") -> Path:
    """A process-wide folder holding the offline tokenizer files (written once)."""
    key = pad_token
    if key not in _TOKENIZER_DIRS:
        folder = tempfile.mkdtemp(prefix="cs-tok-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _TOKENIZER_DIRS[key] = write_tokenizer_files(folder, pad_token=pad_token)
    return _TOKENIZER_DIRS[key]


def _text_config(hidden: int, projection: int):
    from transformers import CLIPTextConfig

    n = vocab_size()
    return CLIPTextConfig(
        bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1, vocab_size=n,
        hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=4, num_hidden_layers=3,
        max_position_embeddings=77, layer_norm_eps=1e-5, hidden_act="gelu", projection_dim=projection,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=16, layers_per_block=1, sample_size=64,
    )


def _scheduler(kind: str = "ddim"):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  steps_offset=1, timestep_spacing="leading")
    if kind == "euler":
        return EulerDiscreteScheduler(**common)
    return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **common)


def build_tiny_sdxl(seed: int = 0):
    """A ``StableDiffusionXLPipeline`` with ~1 M random weights (64x64 default output)."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4), transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
    )
    torch.manual_seed(seed + 1)
    vae = _vae()
    torch.manual_seed(seed + 2)
    te1 = CLIPTextModel(_text_config(32, 32))
    torch.manual_seed(seed + 3)
    te2 = CLIPTextModelWithProjection(_text_config(32, 32))
    tok1 = CLIPTokenizer.from_pretrained(tiny_tokenizer_dir("<|endoftext|>"))
    tok2 = CLIPTokenizer.from_pretrained(tiny_tokenizer_dir("!"))
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok1, tokenizer_2=tok2, unet=unet,
        scheduler=_scheduler(), force_zeros_for_empty_prompt=True, add_watermarker=False,
    )
    return pipe


def build_tiny_sd15(seed: int = 0):
    """A ``StableDiffusionPipeline`` in SD 1.x layout with random weights (64x64 default output)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=4, cross_attention_dim=32,
    )
    torch.manual_seed(seed + 1)
    vae = _vae()
    torch.manual_seed(seed + 2)
    te = CLIPTextModel(_text_config(32, 32))
    tok = CLIPTokenizer.from_pretrained(tiny_tokenizer_dir("<|endoftext|>"))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return pipe
