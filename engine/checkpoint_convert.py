"""Write a diffusers SDXL / SD 1.x pipeline as one original-format (LDM / A1111-style) ``.safetensors`` checkpoint.

This is the inverse of diffusers' single-file conversion (``diffusers.loaders.single_file_utils``): loading the
written file back with ``engine.single_file.load_single_file`` and the same component configs gives the same
weights bit for bit. Key layout written (the one every SDXL / SD 1.x single-file checkpoint uses):

- UNet under ``model.diffusion_model.`` (``input_blocks`` / ``middle_block`` / ``output_blocks``), derived from the
  UNet config (any ``layers_per_block`` and block count, so the tiny test models convert too);
- VAE under ``first_stage_model.`` (``encoder.down.{i}.block.{j}``, attention as 1x1 convolutions);
- SD 1.x text encoder under ``cond_stage_model.transformer.text_model.``; SDXL's CLIP-L under
  ``conditioner.embedders.0.transformer.text_model.`` and its OpenCLIP-bigG under ``conditioner.embedders.1.model.``
  (fused ``in_proj`` attention weights, transposed ``text_projection``).

Useful to users as "export to single file" (``export_single_file``) and to tests, which need such files offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["unet_to_original", "vae_to_original", "clip_to_original", "open_clip_to_original",
           "pipeline_to_original", "export_single_file"]

_UNET_PREFIX = "model.diffusion_model."
_VAE_PREFIX = "first_stage_model."
_RESNET_NAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                 ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2",
}


def _resnet_suffix(suffix: str) -> str:
    for new, old in _RESNET_NAMES:
        if suffix.startswith(new + "."):
            return old + suffix[len(new):]
    return suffix


def unet_to_original(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """Diffusers ``UNet2DConditionModel`` state dict -> LDM keys (without the ``model.diffusion_model.`` prefix)."""
    lpb = int(config["layers_per_block"] if isinstance(config, dict) else config.layers_per_block)
    n_blocks = len(config["block_out_channels"] if isinstance(config, dict) else config.block_out_channels)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        n = 1 if parts[0] in _UNET_FIXED else 2
        head = ".".join(parts[:n])
        if head in _UNET_FIXED:
            out[_UNET_FIXED[head] + "." + ".".join(parts[n:])] = value
        elif parts[0] == "down_blocks":
            b, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                out[f"input_blocks.{1 + b * (lpb + 1) + j}.0.{_resnet_suffix(rest)}"] = value
            elif kind == "attentions":
                out[f"input_blocks.{1 + b * (lpb + 1) + j}.1.{rest}"] = value
            elif kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.weight
                out[f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{'.'.join(parts[5:])}"] = value
            else:
                raise ValueError(f"unexpected UNet key {key}")
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                out[f"middle_block.{2 * j}.{_resnet_suffix(rest)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
        elif parts[0] == "up_blocks":
            b, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            i = b * (lpb + 1) + j
            if kind == "resnets":
                out[f"output_blocks.{i}.0.{_resnet_suffix(rest)}"] = value
            elif kind == "attentions":
                out[f"output_blocks.{i}.1.{rest}"] = value
            elif kind == "upsamplers":
                i = b * (lpb + 1) + lpb
                has_attn = any(k.startswith(f"up_blocks.{b}.attentions.") for k in state)
                out[f"output_blocks.{i}.{2 if has_attn else 1}.{rest}"] = value
            else:
                raise ValueError(f"unexpected UNet key {key}")
        else:
            raise ValueError(f"unexpected UNet key {key} (block count {n_blocks})")
    return out


def vae_to_original(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """Diffusers ``AutoencoderKL`` state dict -> LDM keys (without the ``first_stage_model.`` prefix)."""
    n_up = len(config["up_block_types"] if isinstance(config, dict) else config.up_block_types)
    attn_names = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                  ("to_out.0.", "proj_out."))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        side, rest = key.split(".", 1)
        if side not in ("encoder", "decoder"):  # quant_conv, post_quant_conv
            out[key] = value
            continue
        parts = rest.split(".")
        if parts[0] in ("conv_in", "conv_out"):
            out[key] = value
        elif parts[0] == "conv_norm_out":
            out[f"{side}.norm_out.{'.'.join(parts[1:])}"] = value
        elif parts[0] in ("down_blocks", "up_blocks"):
            b = int(parts[1])
            level = b if parts[0] == "down_blocks" else n_up - 1 - b
            name = "down" if parts[0] == "down_blocks" else "up"
            if parts[2] == "resnets":
                tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                out[f"{side}.{name}.{level}.block.{parts[3]}.{tail}"] = value
            else:  # downsamplers.0.conv.* / upsamplers.0.conv.*
                out[f"{side}.{name}.{level}.{'downsample' if name == 'down' else 'upsample'}.{'.'.join(parts[4:])}"] = value
        elif parts[0] == "mid_block":
            if parts[1] == "resnets":
                tail = ".".join(parts[3:]).replace("conv_shortcut", "nin_shortcut")
                out[f"{side}.mid.block_{int(parts[2]) + 1}.{tail}"] = value
            else:
                tail = ".".join(parts[3:])
                for new, old in attn_names:
                    if tail.startswith(new):
                        tail = old + tail[len(new):]
                        break
                if value.ndim == 2:  # linear -> 1x1 conv, as LDM stores it
                    value = value[:, :, None, None]
                out[f"{side}.mid.attn_1.{tail}"] = value
        else:
            raise ValueError(f"unexpected VAE key {key}")
    return out


def clip_to_original(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel`` state dict -> ``{prefix}text_model.*`` (HF layout, as LDM stores CLIP-L)."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        name = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + name] = value
    return out


def open_clip_to_original(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A ``CLIPTextModelWithProjection`` state dict -> OpenCLIP layout under ``prefix`` (SDXL's second encoder)."""
    s = {k.removeprefix("text_model."): v for k, v in state.items() if not k.endswith("position_ids")}
    out = {
        prefix + "positional_embedding": s.pop("embeddings.position_embedding.weight"),
        prefix + "token_embedding.weight": s.pop("embeddings.token_embedding.weight"),
        prefix + "ln_final.weight": s.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": s.pop("final_layer_norm.bias"),
        prefix + "text_projection": s.pop("text_projection.weight").T.contiguous(),
    }
    layers = sorted({int(k.split(".")[2]) for k in s if k.startswith("encoder.layers.")})
    for n in layers:
        src, dst = f"encoder.layers.{n}.", f"{prefix}transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [s.pop(src + f"self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")], dim=0)
            out[dst + f"attn.out_proj.{kind}"] = s.pop(src + f"self_attn.out_proj.{kind}")
            out[dst + f"ln_1.{kind}"] = s.pop(src + f"layer_norm1.{kind}")
            out[dst + f"ln_2.{kind}"] = s.pop(src + f"layer_norm2.{kind}")
            out[dst + f"mlp.c_fc.{kind}"] = s.pop(src + f"mlp.fc1.{kind}")
            out[dst + f"mlp.c_proj.{kind}"] = s.pop(src + f"mlp.fc2.{kind}")
    if s:
        raise ValueError(f"unconverted text encoder keys: {sorted(s)[:5]}")
    return out


def pipeline_to_original(pipe) -> dict[str, torch.Tensor]:
    """All weights of an SDXL or SD 1.x pipeline in original single-file layout (tensors shared, not copied)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in unet_to_original(pipe.unet.state_dict(), pipe.unet.config).items():
        out[_UNET_PREFIX + k] = v
    for k, v in vae_to_original(pipe.vae.state_dict(), pipe.vae.config).items():
        out[_VAE_PREFIX + k] = v
    if getattr(pipe, "text_encoder_2", None) is not None:
        out.update(clip_to_original(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        out.update(open_clip_to_original(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    else:
        out.update(clip_to_original(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    return out


def export_single_file(pipe, path: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``pipe`` as one ``.safetensors`` checkpoint at ``path`` (optionally cast to ``dtype``)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = pipeline_to_original(pipe)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path
