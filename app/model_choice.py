"""Which model the app uses when the user has not chosen one: the built-in toy model if installed, else ``tiny``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_model_source", "default_model_description"]

_ROOT = Path(__file__).resolve().parent.parent


def default_model_source() -> str:
    return "toy" if (_ROOT / "resources" / "models" / "toy" / "model_index.json").exists() else "tiny"


def default_model_description() -> str:
    """One line for the user, without importing torch (the device is what torch would pick, read cheaply)."""
    import importlib.util
    import shutil

    device = "CUDA GPU" if shutil.which("nvidia-smi") and importlib.util.find_spec("torch") else "CPU"
    return f"Model: {default_model_source()} · Device: {device} (float32 on CPU, float16 on CUDA)"
