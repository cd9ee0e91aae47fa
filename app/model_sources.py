"""What a user can name as a model, checked before any model work (no torch, no network unless asked).

Contract:
- ``SourceKind``: built_in, hub, folder, safetensors.
- ``classify(source) -> SourceKind``; ``check_source(source) -> str | None``: ``None`` when the source looks usable,
  else one sentence saying what is wrong and what to do.
- ``built_in_sources() -> list[tuple[str, str]]``: (source, label) of the models that need no download.
- ``free_disk_bytes(path)``, ``hub_cache_dir()``, ``format_bytes(n)``.
- ``hub_download_size(repo_id) -> int``: total bytes of the files a diffusers folder would download; needs the
  network, so callers run it off the GUI thread and show its ``OSError`` message.
"""

from __future__ import annotations

import os
import re
import shutil
from enum import Enum
from pathlib import Path

from app.model_choice import default_model_source

__all__ = ["SourceKind", "classify", "check_source", "built_in_sources", "free_disk_bytes", "hub_cache_dir",
           "format_bytes", "hub_download_size", "BUILT_IN"]

_ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = ("toy", "tiny", "tiny-sd15", "sdxl-random")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class SourceKind(Enum):
    built_in = "built_in"
    hub = "hub"
    folder = "folder"
    safetensors = "safetensors"


def classify(source: str) -> SourceKind:
    source = source.strip()
    if source in BUILT_IN:
        return SourceKind.built_in
    if source.lower().endswith(".safetensors"):
        return SourceKind.safetensors
    if os.path.isabs(source) or source.startswith((".", "~")) or os.path.isdir(source):
        return SourceKind.folder
    return SourceKind.hub


def built_in_sources() -> list[tuple[str, str]]:
    out = []
    if default_model_source() == "toy":
        out.append(("toy", "Built-in storybook model (offline, small)"))
    out.append(("tiny", "Tiny test model (random weights: noise pictures, for checks)"))
    return out


def check_source(source: str) -> str | None:
    source = source.strip()
    if not source:
        return "No model is chosen. Pick the built-in model or name a hub id, folder or .safetensors file."
    kind = classify(source)
    if kind is SourceKind.built_in:
        if source == "toy" and default_model_source() != "toy":
            return "The built-in storybook model is not installed. Choose the tiny model or another source."
        return None
    path = Path(source).expanduser()
    if kind is SourceKind.safetensors:
        if not path.is_file():
            return f"The file {path} does not exist. Choose an existing .safetensors checkpoint."
        return None
    if kind is SourceKind.folder:
        if not path.is_dir():
            return f"The folder {path} does not exist. Choose a diffusers model folder."
        if not (path / "model_index.json").is_file():
            return (f"The folder {path} is not a diffusers model (it has no model_index.json). "
                    "Choose the folder that holds model_index.json, or a single .safetensors file.")
        return None
    if not _HUB_ID.match(source):
        return (f"'{source}' is not a Hugging Face model id. Write it as owner/name, "
                "e.g. stabilityai/stable-diffusion-xl-base-1.0.")
    return None


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def free_disk_bytes(path: str | Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def hub_download_size(repo_id: str) -> int:
    """Bytes of the fp32/fp16 safetensors + configs a diffusers folder download fetches. Network; off-thread."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:  # pragma: no cover
        raise OSError("The Hugging Face hub client is not installed; reinstall the app.") from exc
    try:
        info = HfApi().model_info(repo_id, files_metadata=True)
    except Exception as exc:  # network, auth, not found: one sentence for the user
        raise OSError(f"Could not ask the hub about '{repo_id}' ({type(exc).__name__}). "
                      "Check the id and your network connection.") from exc
    total = 0
    for f in info.siblings or []:
        name = f.rfilename
        if "/" not in name and name != "model_index.json":
            continue  # root files other than the index are not downloaded by diffusers
        if name.endswith((".json", ".txt", ".model")) or (
                name.endswith(".safetensors") and ".fp16." not in name and "/" in name):
            total += f.size or 0
    return total
