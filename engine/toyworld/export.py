"""Ship a training run as the built-in model: ``python -m engine.toyworld.export [--run runs/toy] [--out DIR]``.

Builds a standard diffusers ``StableDiffusionPipeline`` from the run's VAE and the EMA weights of UNet and text
encoder, with the offline tokenizer files and a DDIM scheduler (trailing spacing, v-prediction), and saves it as
safetensors into ``resources/models/toy`` (default). Reloading it needs no network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

__all__ = ["build_pipeline", "export", "folder_size"]


def build_pipeline(run: str | Path, ema: bool = True):
    """A ``StableDiffusionPipeline`` (CPU, float32) from the checkpoints in ``run``."""
    import torch
    from diffusers import StableDiffusionPipeline

    from .architecture import build_scheduler, build_text_encoder, build_tokenizer, build_unet, build_vae

    run = Path(run)
    if not (run / "unet.pt").exists() or not (run / "vae.pt").exists():
        raise FileNotFoundError(f"{run} holds no finished VAE and UNet checkpoints; train first.")
    vstate = torch.load(run / "vae.pt", map_location="cpu", weights_only=False)
    ustate = torch.load(run / "unet.pt", map_location="cpu", weights_only=False)
    vae = build_vae()
    vae.load_state_dict(vstate["model"])
    vae.register_to_config(scaling_factor=float(ustate["scaling"]))
    unet = build_unet(ustate.get("width", 32), attn32=ustate.get("attn32", False), heads32=ustate.get("heads32", 4))
    unet.load_state_dict(ustate["ema_unet" if ema else "unet"])
    te = build_text_encoder()
    te.load_state_dict(ustate["ema_te" if ema else "te"])
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=te, tokenizer=build_tokenizer(), unet=unet, scheduler=build_scheduler("ddim"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for m in (vae, unet, te):
        m.eval()
    return pipe


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def export(run: str | Path, out: str | Path, ema: bool = True) -> Path:
    """Save the pipeline to ``out`` (replaced atomically enough: written beside it, then swapped in)."""
    import torch

    from .architecture import write_tokenizer

    out = Path(out)
    pipe = build_pipeline(run, ema)
    tmp = Path(tempfile.mkdtemp(prefix="toy-export-", dir=out.parent if out.parent.exists() else None))
    pipe.save_pretrained(tmp, safe_serialization=True)
    write_tokenizer(tmp / "tokenizer")  # the project's own files (the saved ones are equivalent)
    ustate = torch.load(Path(run) / "unet.pt", map_location="cpu", weights_only=False)
    (tmp / "training.json").write_text(json.dumps(
        {"unet_steps": ustate["step"], "unet_minutes": round(ustate["wall"] / 60, 1), "ema": ema,
         "init": ustate.get("init"), "attn32": bool(ustate.get("attn32")), "heads32": ustate.get("heads32", 4),
         "twins": ustate.get("twins", 0.0),
         "pairs": ustate.get("pairs", 0.0), "pair_keys": ustate.get("pair_keys"),
         "pair_captions": ustate.get("pair_captions"), "pairs_from": ustate.get("pairs_from"),
         "twins_from": ustate.get("twins_from"), "time_schedule": bool(ustate.get("time_schedule")),
         "pair_t_from": ustate.get("pair_t_from"), "pair_weight": ustate.get("pair_weight")},
        indent=1))
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), out)
    return out


def main(argv: list[str] | None = None) -> int:
    from ..model_loader import TOY_MODEL_DIR

    p = argparse.ArgumentParser(prog="python -m engine.toyworld.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/toy", help="training folder (default runs/toy)")
    p.add_argument("--out", default=str(TOY_MODEL_DIR), help="destination folder (default: the built-in model)")
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    args = p.parse_args(argv)
    out = export(args.run, args.out, ema=not args.raw)
    print(f"Saved {out} ({folder_size(out) / 2**20:.1f} MiB).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
