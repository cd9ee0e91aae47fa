"""Load one original-format (LDM / A1111-style) ``.safetensors`` checkpoint of SDXL or SD 1.x, fully offline.

The family is read from the checkpoint's key names (header only, nothing loaded): ``conditioner.embedders.1.`` is
SDXL base, ``cond_stage_model.transformer.`` is SD 1.x. Component configs come from
``resources/model_configs/sdxl-base`` or ``resources/model_configs/sd15`` (or ``config_dir``), and the CLIP BPE
vocabulary from ``resources/model_configs/clip-tokenizer`` when a config folder's tokenizer holds no vocabulary.

Weights are converted with diffusers' own single-file converters, one component at a time and on a
component-filtered state dict (so SDXL's two text encoders can never be confused, even when they have the same
width as in the tiny test models). Every failure is one ``ModelLoadError`` sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import EngineError, ModelLoadError
from .hub_download import ProgressFn
from .paths import RESOURCES

__all__ = ["load_single_file", "detect_family", "tokenizer_from_config", "scheduler_from_config", "CONFIG_DIRS",
           "CLIP_TOKENIZER_DIR"]

CONFIG_DIRS = {"sdxl": RESOURCES / "model_configs" / "sdxl-base", "sd15": RESOURCES / "model_configs" / "sd15"}
CLIP_TOKENIZER_DIR = RESOURCES / "model_configs" / "clip-tokenizer"

_UNET = "model.diffusion_model."
_VAE = "first_stage_model."
_SDXL_TE1 = "conditioner.embedders.0.transformer."
_SDXL_TE2 = "conditioner.embedders.1.model."
_SD15_TE = "cond_stage_model.transformer."


def _read_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as exc:  # SafetensorError, OSError: corrupt header, truncated file, not safetensors at all
        raise ModelLoadError(
            f"{path} is not a readable .safetensors checkpoint ({_short(exc)}).",
            hint="The file may be truncated or damaged; download it again.") from exc


def detect_family(keys: list[str] | set[str], path: Path | str = "The checkpoint") -> str:
    """'sdxl' or 'sd15' from the key names of an original-format checkpoint, else ``ModelLoadError``."""
    keys = set(keys)
    has_unet = any(k.startswith(_UNET) for k in keys)
    if has_unet and any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if has_unet and any(k.startswith(_SD15_TE) for k in keys):
        return "sd15"
    if has_unet and any(k.startswith("cond_stage_model.model.") for k in keys):
        raise ModelLoadError(f"{path} is a Stable Diffusion 2.x checkpoint, which is not supported.",
                             hint="Use an SDXL or SD 1.x checkpoint.")
    if has_unet and any(k.startswith("conditioner.embedders.0.model.") for k in keys):
        raise ModelLoadError(f"{path} is an SDXL refiner checkpoint, which cannot generate from text alone.",
                             hint="Use an SDXL base checkpoint.")
    raise ModelLoadError(
        f"{path} is of an unknown family: it is neither an SDXL nor an SD 1.x full checkpoint.",
        hint="Single files must hold the whole model (UNet, VAE and text encoders), e.g. an A1111-style checkpoint;"
             " a LoRA or VAE-only file cannot be loaded as a model.")


def tokenizer_from_config(config_dir: Path, sub: str):
    """The CLIP tokenizer of ``config_dir/sub``; its vocabulary from the shared CLIP files when the folder has none."""
    from transformers import CLIPTokenizer

    folder = config_dir / sub
    if (folder / "vocab.json").exists() or (folder / "tokenizer.json").exists():
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
    kwargs = {k: cfg[k] for k in ("pad_token", "model_max_length", "bos_token", "eos_token", "unk_token") if k in cfg}
    kwargs.setdefault("model_max_length", 77)
    return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), local_files_only=True, **kwargs)


def _subset(state: dict[str, Any], *prefixes: str) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def load_single_file(path: str | Path, torch_dtype, config_dir: str | Path | None = None,
                     progress: ProgressFn | None = None):
    """Build a ``StableDiffusionXLPipeline`` / ``StableDiffusionPipeline`` from one original-format checkpoint.

    ``config_dir``: a diffusers-format folder (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder*/``,
    ``scheduler/``, tokenizer folders) giving the architecture; default: the shipped config of the detected family.
    Weights are loaded on the CPU in ``torch_dtype``. Raises ``ModelLoadError`` (one sentence) on any failure.
    ``progress(text, fraction)`` is told before the file is read and before each part is built; whatever it raises
    (the job queue's ``Cancelled``) stops the load there and is passed on as it is.
    """
    path = Path(path)
    if path.suffix == ".ckpt":
        raise ModelLoadError(f"{path} is a .ckpt (pickle) checkpoint, which can run code when opened.",
                             hint="Convert it to .safetensors or use a diffusers folder.")
    if not path.is_file():
        raise ModelLoadError(f"The checkpoint file {path} does not exist.", hint="Check the path.")
    family = detect_family(_read_keys(path), path)
    cfg = Path(config_dir) if config_dir is not None else CONFIG_DIRS[family]
    if not (cfg / "unet").is_dir() or not (cfg / "vae").is_dir():
        raise ModelLoadError(f"The config folder {cfg} lacks the unet/ and vae/ configs a single file needs.",
                             hint="Point at a diffusers model folder of the same architecture.")
    say = progress or (lambda text, fraction: None)
    say(f"Reading {path.name}", 0.0)
    try:
        from safetensors.torch import load_file

        state = load_file(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be read ({_short(exc)}).",
                             hint="The file may be truncated or damaged; download it again.") from exc
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # silence per-module dtype notes meant for library developers
    try:
        return _build(family, state, cfg, torch_dtype, say)
    except EngineError:   # one sentence already, or a cancel from ``progress``
        raise
    except Exception as exc:  # shape mismatches, missing tensors: the file does not fit the configs
        raise ModelLoadError(
            f"{path} does not match the {'SDXL' if family == 'sdxl' else 'SD 1.x'} architecture in {cfg}"
            f" ({_short(exc)}).",
            hint="It may be a different model variant; pass a matching config folder.") from exc
    finally:
        diffusers_logging.set_verbosity(verbosity)


def _build(family: str, state: dict[str, Any], cfg: Path, torch_dtype, say: ProgressFn):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    parts = 4 if family == "sdxl" else 3
    common = dict(config=str(cfg), torch_dtype=torch_dtype, local_files_only=True)
    say("Building the unet", 1 / (parts + 1))
    unet = UNet2DConditionModel.from_single_file(_subset(state, _UNET), subfolder="unet", **common)
    say("Building the vae", 2 / (parts + 1))
    vae = AutoencoderKL.from_single_file(_subset(state, _VAE), subfolder="vae", **common)
    _check_loaded(unet, "UNet")
    _check_loaded(vae, "VAE")
    index = json.loads((cfg / "model_index.json").read_text(encoding="utf-8")) if (cfg / "model_index.json").exists() else {}
    scheduler = scheduler_from_config(cfg, index)

    def clip(cls, prefix: str, sub: str, part: int):
        say(f"Building the {sub.replace('_', ' ')}", part / (parts + 1))
        sub_state = _subset(state, prefix)
        if not sub_state:
            raise ModelLoadError(f"The checkpoint has no weights for its {sub.replace('_', ' ')}.",
                                 hint="Use a full checkpoint that includes the text encoders.")
        model = create_diffusers_clip_model_from_ldm(cls, sub_state, subfolder=sub, config=str(cfg),
                                                     torch_dtype=torch_dtype, local_files_only=True)
        _check_loaded(model, sub.replace("_", " "))
        return model

    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(
            vae=vae, unet=unet, scheduler=scheduler,
            text_encoder=clip(CLIPTextModel, _SDXL_TE1, "text_encoder", 3),
            text_encoder_2=clip(CLIPTextModelWithProjection, _SDXL_TE2, "text_encoder_2", 4),
            tokenizer=tokenizer_from_config(cfg, "tokenizer"), tokenizer_2=tokenizer_from_config(cfg, "tokenizer_2"),
            force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)), add_watermarker=False)
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae, unet=unet, scheduler=scheduler, text_encoder=clip(CLIPTextModel, _SD15_TE, "text_encoder", 3),
        tokenizer=tokenizer_from_config(cfg, "tokenizer"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)


def scheduler_from_config(cfg: Path, index: dict[str, Any]):
    """The scheduler class named in ``model_index.json`` (DDIM if none), configured from ``cfg/scheduler``."""
    import diffusers

    name = (index.get("scheduler") or [None, "DDIMScheduler"])[1] or "DDIMScheduler"
    cls = getattr(diffusers, name, None) or diffusers.DDIMScheduler
    return cls.from_pretrained(str(cfg), subfolder="scheduler", local_files_only=True)


def _check_loaded(module, name: str) -> None:
    """A tensor left on the meta device means the checkpoint lacked it: fail now, not at the first step."""
    for pname, p in list(module.named_parameters()) + list(module.named_buffers()):
        if p.device.type == "meta":
            raise ModelLoadError(f"The checkpoint has no weight {pname} for its {name}.",
                                 hint="The file may be incomplete or of a different model variant.")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return (text[:200] + "...") if len(text) > 200 else text.rstrip(".")
