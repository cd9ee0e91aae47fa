"""The toy model's components in SD 1.x layout, built from code (training) or its saved configs (export).

64x64 RGB -> AutoencoderKL with scale factor 2 -> a 32x32x4 latent. The UNet has attention at 16x16, 8x8 and the
middle, and with ``attn32`` (the shipped model) at 32x32 too, where the markings are drawn: the engine's masks
still come from 8x8 and its feature injection works at 16x16, while its shared attention reaches every decoder
level. A small CLIP text encoder (one token per word of ``captions.VOCABULARY``, 16 positions). Cosine noise
schedule with v-prediction; DDIM with trailing timestep spacing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .captions import VOCABULARY

__all__ = ["MAX_TOKENS", "build_vae", "build_unet", "build_text_encoder", "build_scheduler", "build_tokenizer",
           "write_tokenizer"]

MAX_TOKENS = 16


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 32), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=16, layers_per_block=1, sample_size=64, mid_block_add_attention=False)


def build_unet(width: int = 32, attn32: bool = False, heads32: int = 4):
    """``attn32``: attention at the 32×32 level too (where the markings are drawn); the layer names of the
    convolutions are the same either way, so weights carry over (``load_state_dict(strict=False)``). ``heads32``:
    attention heads at that level (the weights' shapes do not depend on it). On a CPU one head of 32 channels trains
    about 30 % faster than four of 8 (the fused attention kernel is slow on 8-channel heads)."""
    from diffusers import UNet2DConditionModel

    top_down, top_up = ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D") if attn32 else ("DownBlock2D", "UpBlock2D")
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        block_out_channels=(width, 2 * width, 4 * width), layers_per_block=1, norm_num_groups=16,
        down_block_types=(top_down, "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", top_up),
        attention_head_dim=(heads32, 4, 4) if attn32 else 4, cross_attention_dim=128)


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..offline_tokenizer import vocab_size

    n = vocab_size(VOCABULARY)
    return CLIPTextModel(CLIPTextConfig(
        bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1, vocab_size=n,
        hidden_size=128, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3,
        max_position_embeddings=MAX_TOKENS, layer_norm_eps=1e-5, hidden_act="gelu", projection_dim=128))


def build_scheduler(kind: str = "ddim"):
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                  timestep_spacing="trailing", clip_sample=False)
    if kind == "ddpm":
        return DDPMScheduler(**common)
    return DDIMScheduler(set_alpha_to_one=False, steps_offset=1, **common)


def write_tokenizer(folder: str | Path) -> Path:
    from ..offline_tokenizer import write_tokenizer_files

    return write_tokenizer_files(folder, words=VOCABULARY, max_length=MAX_TOKENS)


def build_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="toy-tok-") as folder:  # the tokenizer reads its files on loading
        return CLIPTokenizer.from_pretrained(write_tokenizer(folder))
