"""Load a Hugging Face hub model id: download what the app needs into the standard HF cache, then load it offline.

Only the components an SDXL / SD 1.x text-to-image pipeline uses are fetched (``model_index.json``, configs,
tokenizers, scheduler, and one set of ``.safetensors`` weights: the ``fp16`` variant when loading in float16 and the
repository has it), never ``.bin`` / ``.ckpt`` / ONNX / Flax files or the root single-file checkpoints. Downloads go
through ``huggingface_hub.snapshot_download``: into the user's HF cache (``HF_HOME`` / ``HF_HUB_CACHE``), resumable
(an interrupted download continues where it stopped), with byte progress sent to ``progress(message, fraction)``.

With ``HF_HUB_OFFLINE=1``, or when the hub cannot be reached, a model already in the cache loads without network;
otherwise the error is one ``ModelLoadError`` sentence naming the id and how to point at local files instead.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Callable

from .errors import Cancelled, ModelLoadError

__all__ = ["load_from_hub", "hub_download_size", "download_patterns", "hub_is_offline", "read_pipeline_folder"]

ProgressFn = Callable[[str, float], None]

_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
_LOCAL_HINT = ("or point at local files instead: a diffusers model folder (with model_index.json) or a single"
               " .safetensors checkpoint.")


def hub_is_offline() -> bool:
    """True when the user switched the hub off (``HF_HUB_OFFLINE``), read at call time."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in ("1", "true", "yes", "on") or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def download_patterns(variant: str | None) -> tuple[list[str], list[str]]:
    """``(allow_patterns, ignore_patterns)`` for one weight set (``variant`` None or e.g. "fp16")."""
    allow = ["model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*"]
    ignore = ["*.bin", "*.ckpt", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.pb"]
    for c in _COMPONENTS:
        allow.append(f"{c}/*.json")
        # the file names diffusers loads, whole or sharded (not e.g. unet/diffusion_pytorch_model.non_ema.*)
        name = "model" if c.startswith("text_encoder") else "diffusion_pytorch_model"
        stem = f"{name}.{variant}" if variant else name
        allow += [f"{c}/{stem}.safetensors", f"{c}/{stem}-*-of-*.safetensors"]
    if not variant:
        ignore.append("*.fp16*.safetensors")
    return allow, ignore


def choose_variant(files: list[str], torch_dtype) -> str | None:
    """The weight variant to load from a model's files (paths relative to its folder): "fp16" for fp16 runs when
    the files have it, and whenever they have only it; else ``None`` (the plain files)."""
    import torch

    has = lambda v: any(f.startswith("unet/") and f.endswith(".safetensors") and (f".{v}" in f) for f in files)  # noqa: E731
    plain = any(f.startswith("unet/") and f.endswith(".safetensors") and ".fp16" not in f for f in files)
    if torch_dtype == torch.float16 and has("fp16"):
        return "fp16"
    if not plain and has("fp16"):
        return "fp16"
    return None


_WEIGHTED_PARTS = ("unet", "text_encoder", "text_encoder_2", "vae")   # the components that hold the weights


def read_pipeline_folder(folder: Path, cls_name: str, torch_dtype, label: str, progress: ProgressFn | None = None,
                         start: float = 0.0) -> Any:
    """The SDXL / SD 1.x pipeline in a diffusers folder (a model folder or a hub snapshot), strictly offline. Its
    weighted parts are read one at a time, each announced first as "Loading LABEL: unet" through ``progress`` (at
    fractions from ``start`` towards 1), so a progress callback that raises (the job queue's "Cancel now") stops the
    load between parts instead of after all of them. Errors are the libraries' own; callers word them."""
    import importlib

    from diffusers import DiffusionPipeline

    entries = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors")]
    variant = choose_variant(files, torch_dtype)   # a folder of fp16 files only, too
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype, "local_files_only": True, "variant": variant}
    if cls_name == "StableDiffusionPipeline":
        kwargs.update(safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    parts = [name for name in _WEIGHTED_PARTS if isinstance(entries.get(name), list) and len(entries[name]) == 2
             and entries[name][0] in ("diffusers", "transformers")]
    for i, name in enumerate(parts):
        if progress:
            progress(f"Loading {label}: {name.replace('_', ' ')}", start + (1 - start) * i / (len(parts) + 1))
        library, class_name = entries[name]
        own = variant if variant and any(f.startswith(f"{name}/") and f".{variant}." in f for f in files) else None
        kwargs[name] = getattr(importlib.import_module(library), class_name).from_pretrained(
            folder, subfolder=name, torch_dtype=torch_dtype, local_files_only=True, variant=own)
    return DiffusionPipeline.from_pretrained(folder, **kwargs)


class _ProgressBar:
    """Builds a tqdm class for ``snapshot_download`` that reports downloaded bytes to ``progress``."""

    @staticmethod
    def make(repo_id: str, progress: ProgressFn | None):
        from tqdm.auto import tqdm

        class ReportingTqdm(tqdm):  # vanilla tqdm subclass: huggingface_hub passes it no 'name'
            def __init__(self, *args: Any, **kwargs: Any):
                self._report = bool(kwargs.get("unit") == "B" and str(kwargs.get("desc", "")).startswith("Reconstruct"))
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                self.n += n or 0
                if self._report and progress is not None and self.total:
                    progress(f"Downloading {repo_id}: {self.n / 1e9:.2f} of {self.total / 1e9:.2f} GB",
                             min(1.0, self.n / self.total) * 0.9)
                return None

        return ReportingTqdm


def _snapshot(repo_id: str, variant: str | None, *, local_only: bool, cache_dir: str | Path | None,
              progress: ProgressFn | None) -> Path:
    from huggingface_hub import snapshot_download

    allow, ignore = download_patterns(variant)
    return Path(snapshot_download(repo_id, allow_patterns=allow, ignore_patterns=ignore, local_files_only=local_only,
                                  cache_dir=str(cache_dir) if cache_dir else None,
                                  tqdm_class=_ProgressBar.make(repo_id, progress)))


def _translate(repo_id: str, exc: Exception) -> ModelLoadError:
    from huggingface_hub import errors
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    IncompleteSnapshotError = getattr(errors, "IncompleteSnapshotError", ())  # noqa: N806 (huggingface_hub >= 1.x)

    if isinstance(exc, GatedRepoError):
        return ModelLoadError(f"The model {repo_id} is gated on the Hugging Face hub and needs you to accept its terms.",
                              hint="Accept them on the model's page and log in with 'hf auth login', " + _LOCAL_HINT)
    if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError)):
        return ModelLoadError(f"The model {repo_id} does not exist on the Hugging Face hub (or it is private).",
                              hint="Check the id, " + _LOCAL_HINT)
    if isinstance(exc, IncompleteSnapshotError):
        return ModelLoadError(f"The model {repo_id} is only partly downloaded and the hub cannot be reached.",
                              hint="Connect to the internet to resume the download, " + _LOCAL_HINT)
    if isinstance(exc, LocalEntryNotFoundError) and hub_is_offline():
        return ModelLoadError(
            f"The model {repo_id} is not in the local Hugging Face cache and downloads are switched off"
            " (HF_HUB_OFFLINE is set).",
            hint="Unset HF_HUB_OFFLINE and connect to download it, " + _LOCAL_HINT)
    return ModelLoadError(f"The model {repo_id} could not be downloaded: the Hugging Face hub cannot be reached.",
                          hint="Check your internet connection, " + _LOCAL_HINT)


def _remote_files(repo_id: str) -> dict[str, int | None]:
    """``{path: size}`` of the repository's files (one API call)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, files_metadata=True)
    return {s.rfilename: getattr(s, "size", None) for s in (info.siblings or [])}


def hub_download_size(repo_id: str, torch_dtype=None) -> int | None:
    """Bytes still to download for ``repo_id`` in ``torch_dtype`` (None when offline or unknown). One API call."""
    import torch
    from huggingface_hub import snapshot_download

    if hub_is_offline():
        return None
    try:
        files = _remote_files(repo_id)
        allow, ignore = download_patterns(choose_variant(list(files), torch_dtype or torch.float16))
        infos = snapshot_download(repo_id, allow_patterns=allow, ignore_patterns=ignore, dry_run=True)
    except Exception:  # a size estimate is optional: never fail the caller for it
        return None
    return sum(int(i.file_size or 0) for i in infos if i.will_download)


def load_from_hub(repo_id: str, torch_dtype, progress: ProgressFn | None = None, *,
                  cache_dir: str | Path | None = None):
    """Download (if needed) and load ``repo_id`` as an SDXL / SD 1.x pipeline on the CPU in ``torch_dtype``."""
    offline = hub_is_offline()
    folder: Path | None = None
    if not offline:
        try:
            files = _remote_files(repo_id)
            if "model_index.json" not in files:  # a LoRA or checkpoint-only repository: say so, not "unreachable"
                raise _not_a_pipeline(repo_id)
            variant = choose_variant(list(files), torch_dtype)
            from huggingface_hub import hf_hub_download

            index = Path(hf_hub_download(repo_id, "model_index.json", cache_dir=cache_dir))
            _check_pipeline(repo_id, index)  # before any weights: a model we cannot run downloads nothing more
            if progress:
                progress(f"Downloading {repo_id}", 0.0)
            folder = _snapshot(repo_id, variant, local_only=False, cache_dir=cache_dir, progress=progress)
        except (Cancelled, ModelLoadError):  # the caller stopped the download (it resumes next time); not a pipeline
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # HTTP errors are OSErrors too: by errno
                raise _no_space(repo_id, cache_dir) from exc
            err = _translate(repo_id, exc)
            if "cannot be reached" not in err.message:
                raise err from exc
            folder = None  # no network: fall back to the cache below
    if folder is None:
        try:
            folder = _snapshot(repo_id, None, local_only=True, cache_dir=cache_dir, progress=None)
        except Exception as exc:
            raise _translate(repo_id, exc) from exc
    if progress:
        progress(f"Loading {repo_id} from {folder}", 0.9)
    return _load_snapshot(repo_id, folder, torch_dtype, progress)


def _not_a_pipeline(repo_id: str) -> ModelLoadError:
    return ModelLoadError(f"The model {repo_id} is not a diffusers pipeline (it has no model_index.json).",
                          hint="Use an SDXL or SD 1.x diffusers repository, " + _LOCAL_HINT)


def _no_space(repo_id: str, cache_dir: str | Path | None) -> ModelLoadError:
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = constants.HF_HUB_CACHE
    return ModelLoadError(f"The model {repo_id} could not be downloaded: the disk holding {cache_dir} is full.",
                          hint="Free some space (the download resumes where it stopped), or set HF_HOME to a "
                               "disk with room.")


def _check_pipeline(repo_id: str, index: Path) -> str:
    """The pipeline class ``model_index.json`` names, when it is one the app runs (else ``ModelLoadError``)."""
    if not index.exists():
        raise _not_a_pipeline(repo_id)
    cls_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    if cls_name not in ("StableDiffusionXLPipeline", "StableDiffusionPipeline"):
        raise ModelLoadError(
            f"The model {repo_id} is a {cls_name or 'unknown'} model; only SDXL and SD 1.x text-to-image models"
            " are supported.")
    return cls_name


def _load_snapshot(repo_id: str, folder: Path, torch_dtype, progress: ProgressFn | None = None):
    cls_name = _check_pipeline(repo_id, folder / "model_index.json")
    try:
        return read_pipeline_folder(folder, cls_name, torch_dtype, repo_id, progress, start=0.9)
    except Cancelled:
        raise
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise ModelLoadError(f"The downloaded model {repo_id} could not be loaded: {text}.",
                             hint="The cached files may be incomplete; connect to the internet to finish the"
                                  " download, " + _LOCAL_HINT) from exc
