"""Turn a model *source* a user can name into a ready ``LoadedModel``.

Sources: ``tiny`` / ``tiny-sd15`` (random weights built in code, for tests), ``toy`` (the built-in offline model
shipped in ``resources/models/toy``), ``sdxl-random`` (full-size SDXL architecture, random weights, for GPU
benchmarks), a local diffusers folder, a single ``.safetensors`` checkpoint, or a Hugging Face hub id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EngineError, ModelLoadError
from .hub_download import ProgressFn  # (message, fraction 0..1); the module imports nothing heavy at its top
from .paths import RESOURCES

__all__ = ["LoadedModel", "load_model", "pick_device", "BUILTIN_SOURCES", "describe_source"]

BUILTIN_SOURCES = ("tiny", "tiny-sd15", "toy", "sdxl-random")
TOY_MODEL_DIR = RESOURCES / "models" / "toy"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class LoadedModel:
    """A pipeline ready to run, with what it is and where it runs.

    ``pipe`` is a stock diffusers ``StableDiffusionXLPipeline`` or ``StableDiffusionPipeline``; the engine runs its
    own loop over the pipeline's components. ``fingerprint`` identifies the weights (not the dtype or device).
    """

    pipe: Any
    family: str  # "sdxl" or "sd15"
    device: str
    dtype: Any  # torch.dtype
    source: str
    fingerprint: str
    cpu_offload: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    @property
    def execution_device(self):
        return self.pipe._execution_device

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "family": self.family, "device": self.device,
                "dtype": str(self.dtype).replace("torch.", ""), "fingerprint": self.fingerprint}


def pick_device(device: str | None = None, dtype: str | None = None):
    """Choose (device, torch dtype): CUDA fp16, Apple MPS fp32, else CPU fp32; either can be overridden."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError("CUDA was requested but no CUDA GPU is available.", hint="Choose the CPU device.")
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            raise ModelLoadError(f"There is no CUDA GPU {device!r} on this computer "
                                 f"({torch.cuda.device_count()} found).", hint="Use cuda, cuda:0, … or auto.")
    elif kind == "mps" and index in ("", "0"):
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ModelLoadError("The Apple GPU (MPS) was requested but this computer has none.",
                                 hint="Choose Automatic or the CPU device.")
    elif device != "cpu":
        raise ModelLoadError(f"Unknown device {device!r}.", hint="Use auto, cpu, cuda (or cuda:N) or mps.")
    names = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype in (None, "", "auto"):
        torch_dtype = torch.float16 if device.startswith("cuda") else torch.float32
    elif dtype in names:
        torch_dtype = names[dtype]
    else:
        raise ModelLoadError(f"Unknown precision {dtype!r}.", hint="Use fp16, bf16 or fp32.")
    return device, torch_dtype


def describe_source(source: str) -> str:
    """Classify a source string: builtin name, 'folder', 'single-file', 'hub', or raise ``ModelLoadError``."""
    if source in BUILTIN_SOURCES:
        return source
    p = Path(source).expanduser()
    if source.lower().endswith((".safetensors", ".ckpt")):  # MODEL.SAFETENSORS too, as the app's check allows
        if source.lower().endswith(".ckpt"):
            raise ModelLoadError(
                f"{source} is a .ckpt (pickle) checkpoint, which can run code when opened.",
                hint="Convert it to .safetensors or use a diffusers folder.")
        return "single-file"
    if p.exists() or source.startswith((".", "/", "~")) or "\\" in source:
        return "folder"
    if _HUB_ID.match(source):
        return "hub"
    raise ModelLoadError(
        f"Unknown model source {source!r}.",
        hint="Use 'toy', 'tiny', a Hugging Face id like 'org/model', a diffusers folder or a .safetensors file.")


def _family_of(pipe) -> str:
    return "sdxl" if getattr(pipe, "text_encoder_2", None) is not None or "XL" in type(pipe).__name__ else "sd15"


def weights_fingerprint(pipe) -> str:
    """A short hash of the weights that does not depend on dtype or device.

    Reads a few values of every parameter (rounded to fp16 precision) plus every shape and config: cheap at load
    time even for SDXL, and any retrained or different model changes it.
    """
    import torch

    h = hashlib.sha256()
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        h.update(name.encode())
        raw = getattr(module, "config", None)
        cfg = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw or {})
        # bookkeeping that save/load adds or changes (path, versions, dtype, class list) is not part of the model
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_") and not k.endswith("_version")
               and k not in ("architectures", "dtype", "torch_dtype")}
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        with torch.no_grad():
            for pname, p in module.named_parameters():
                if p.device.type == "meta":
                    continue
                h.update(pname.encode())
                h.update(str(tuple(p.shape)).encode())
                sample = p.detach().reshape(-1)[:8].to("cpu", torch.float32).to(torch.float16)
                h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(source: str, *, device: str | None = None, dtype: str | None = None, cpu_offload: bool = False,
               vae_slicing: bool = False, vae_tiling: bool = False, progress: ProgressFn | None = None,
               config_dir: str | Path | None = None) -> LoadedModel:
    """Load ``source`` and return it ready on its device.

    ``config_dir`` overrides the component configs used for a single-file checkpoint (default: the family's
    configs shipped in ``resources/model_configs``). Raises ``ModelLoadError`` with one sentence on any failure.
    """
    import torch

    kind = describe_source(source)
    dev, torch_dtype = pick_device(device, dtype)
    if progress:
        progress(f"Loading {source}", 0.0)
    if kind == "tiny":
        from .tiny_models import build_tiny_sdxl
        pipe = build_tiny_sdxl()
    elif kind == "tiny-sd15":
        from .tiny_models import build_tiny_sd15
        pipe = build_tiny_sd15()
    elif kind == "toy":
        if not (TOY_MODEL_DIR / "model_index.json").exists():
            raise ModelLoadError(
                "The built-in toy model is not installed in resources/models/toy.",
                hint="Train it with 'python -m engine.toyworld.train' or choose another model.")
        pipe = _load_folder(TOY_MODEL_DIR, torch_dtype, progress)
    elif kind == "sdxl-random":
        from .full_size_random import build_sdxl_random
        pipe = build_sdxl_random(torch_dtype=torch_dtype, device=dev)
    elif kind == "folder":
        pipe = _load_folder(Path(source).expanduser(), torch_dtype, progress)
    elif kind == "single-file":
        from .single_file import load_single_file
        pipe = load_single_file(Path(source).expanduser(), torch_dtype=torch_dtype, config_dir=config_dir,
                                progress=progress)
    else:  # hub
        from .hub_download import load_from_hub
        pipe = load_from_hub(source, torch_dtype=torch_dtype, progress=progress)
    pipe.set_progress_bar_config(disable=True)
    if pipe.unet.dtype != torch_dtype:
        pipe.to(dtype=torch_dtype)
    fingerprint = weights_fingerprint(pipe)
    if cpu_offload and dev.startswith("cuda"):
        pipe.enable_model_cpu_offload()
    else:
        cpu_offload = False
        pipe.to(dev)
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    if progress:
        progress(f"Loaded {source}", 1.0)
    return LoadedModel(pipe=pipe, family=_family_of(pipe), device=dev, dtype=torch_dtype, source=source,
                       fingerprint=fingerprint, cpu_offload=cpu_offload)


def _load_folder(folder: Path, torch_dtype, progress: ProgressFn | None = None) -> Any:
    """A diffusers folder (``model_index.json`` + component subfolders), strictly offline; its parts are read one at
    a time, each announced through ``progress`` (``hub_download.read_pipeline_folder``)."""
    if not folder.is_dir():
        raise ModelLoadError(f"The model folder {folder} does not exist.", hint="Check the path.")
    index = folder / "model_index.json"
    if not index.exists():
        raise ModelLoadError(
            f"{folder} is not a diffusers model folder (it has no model_index.json).",
            hint="Point at the folder that holds model_index.json, or at a single .safetensors file.")
    try:
        cls_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{index} could not be read: {exc}.") from exc
    if cls_name not in ("StableDiffusionXLPipeline", "StableDiffusionPipeline"):
        raise ModelLoadError(
            f"{folder} holds a {cls_name or 'unknown'} model; only SDXL and SD 1.x text-to-image models are supported.")
    from .hub_download import read_pipeline_folder

    try:
        return read_pipeline_folder(folder, cls_name, torch_dtype, folder.name, progress)
    except EngineError:   # a cancel raised by ``progress``: not a damaged model
        raise
    except Exception as exc:  # diffusers and transformers raise many types for damaged folders
        raise ModelLoadError(f"The model in {folder} could not be loaded: {_first_line(exc)}.",
                             hint="The files may be incomplete or damaged; re-download or re-save the model.") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")
