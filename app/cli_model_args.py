"""How the headless commands run their model: ``--device``, ``--dtype``, ``--cpu-offload``, ``--vae-tiling``,
the same for ``generate``, ``render`` and ``character recreate`` (the app's model dialog holds the same choices)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_model_arguments", "load_kwargs"]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: automatic)")
    p.add_argument("--dtype", default=None, help="fp16, bf16 or fp32 (default: fp16 on CUDA, else fp32)")
    p.add_argument("--cpu-offload", action="store_true",
                   help="keep model parts in CPU memory until needed (NVIDIA GPUs with little memory; slower)")
    p.add_argument("--vae-tiling", action="store_true", help="decode pictures in tiles (less memory for large ones)")


def load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``engine.model_loader.load_model`` keywords the arguments ask for."""
    return {"device": args.device, "dtype": args.dtype, "cpu_offload": args.cpu_offload,
            "vae_tiling": args.vae_tiling}
