"""Cost model: ConsiStory's compute vs the plain loop on a full-size architecture, counted in FLOPs, no weights.

    python tests/bench/bench_cost_model.py [--arch sdxl-base|sd15] [--size WxH] [--steps S] [--batch N]
                                           [--anchors A] [--subject-fraction F] --json

The UNet is built from the shipped config on PyTorch's ``meta`` device (no memory, no weights, no GPU) and one
forward over the CFG batch runs under ``torch.utils.flop_counter.FlopCounterMode``; the per-module counts give the
pieces the method's schedule is made of:

* ``pass``: one plain forward (2N rows);
* ``partial``: run 1's last forward, which stops after the DIFT block;
* ``decoder_copy``: the vanilla-query copy of the batch through the up blocks that hold shared layers;
* ``sdsa_extra``: attention over the gathered subject keys, per forward with sharing — for every decoder
  self-attention layer 4·P·L·C FLOPs per row (QKᵀ and AV), L = F·(1−dropout)·P·(sources read: A−1 for an
  anchor, A for a panel); F is the subject's share of the patches (the spec's estimate is 0.3);
* ``record_extra``: the coarse cross-attention probabilities recorded for the masks (2·P·T·C per conditional row);
* for an identity panel (one panel against a saved character's cache): the panel's own batch of 2 rows, L =
  F·(1−dropout)·P·A cached keys, plus their to_k/to_v projections every layer and step.

The schedule (forwards, decoder copies, partial pass, sharing steps) is the engine's own
(``engine.consistory.pipeline``). ``ratio_flops`` and ``ratio_identity_flops`` are what ``ratio_time`` and
``ratio_identity_panel`` would be on a device where the UNet's arithmetic dominates (a GPU at full size); on a
small CPU model, per-call overheads dominate instead and ``bench_engine.py`` measures them. Seconds are never
estimated here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["count_pass", "cost_model", "main"]


def _build_meta_unet(arch: str):
    import torch
    from diffusers import UNet2DConditionModel

    cfg = json.loads((ROOT / "resources" / "model_configs" / arch / "unet" / "config.json").read_text())
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(cfg)


def count_pass(unet, rows: int, height: int, width: int) -> dict[str, float]:
    """FLOPs of one UNet forward over ``rows`` rows, total and per top-level module (``up_blocks.0`` …)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cfg = unet.config
    lat = (height // 8, width // 8)  # the VAE factor is 8 for every shipped architecture
    meta = dict(device="meta")
    x = torch.randn(rows, cfg.in_channels, *lat, **meta)
    ctx = torch.randn(rows, 77, cfg.cross_attention_dim, **meta)
    added = None
    if cfg.addition_embed_type == "text_time":
        added = {"text_embeds": torch.randn(rows, 1280, **meta), "time_ids": torch.randn(rows, 6, **meta)}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, torch.tensor(500, **meta), encoder_hidden_states=ctx, added_cond_kwargs=added, return_dict=False)
    out = {"total": float(counter.get_total_flops())}
    for name, ops in counter.get_flop_counts().items():
        short = name.removeprefix("UNet2DConditionModel.")
        if short.count(".") <= 1 and short != "UNet2DConditionModel" and short != "Global":
            out[short] = float(sum(ops.values()))
    return out


def _attn_dims(unet, layer_name: str) -> tuple[int, int]:
    """(inner dim C, cross-attention width) of the attention module owning a processor name."""
    module = unet.get_submodule(layer_name.removesuffix(".processor"))
    return module.to_q.out_features, module.to_k.in_features


def cost_model(arch: str = "sdxl-base", width: int = 1024, height: int = 1024, steps: int = 50, batch: int = 5,
               anchors: int = 2, subject_fraction: float = 0.3) -> dict:
    from diffusers import DDIMScheduler

    from engine.consistory.config import ConsistoryConfig
    from engine.consistory.pipeline import dift_step_of, unet_pass_count
    from engine.consistory.run_state import blend_steps, inject_steps
    from engine.consistory.unet_layers import analyse_unet

    cfg = ConsistoryConfig(anchors=anchors)
    unet = _build_meta_unet(arch)
    layout = analyse_unet(unet)
    sched = DDIMScheduler.from_pretrained(ROOT / "resources" / "model_configs" / arch / "scheduler")
    sched.set_timesteps(steps)
    ts = sched.timesteps
    lat_h, lat_w = height // 8, width // 8

    start = inject_steps(cfg, steps).start
    end1 = max(dift_step_of(ts, cfg.dift_timestep), start) + 1
    forwards = unet_pass_count(cfg, ts, encoder_injection=any(
        layout.layers[n].block != "up" for n in layout.injection_layers()))
    partial = 1 if dift_step_of(ts, cfg.dift_timestep) == end1 - 1 else 0
    copies = len(blend_steps(cfg, steps))
    sharing_forwards = forwards - 1          # every forward but step 0 of run 1 shares
    last_up = max(layout.layers[n].block_index for n in layout.sdsa_layers())

    def pieces(rows: int) -> dict[str, float]:
        c = count_pass(unet, rows, height, width)
        after_dift = sum(v for k, v in c.items() if k.startswith("up_blocks.")
                         and int(k.split(".")[1]) > layout.dift_block) + c.get("conv_out", 0.0)
        copy = sum(v for k, v in c.items() if k.startswith("up_blocks.") and int(k.split(".")[1]) <= last_up)
        return {"pass": c["total"], "partial": c["total"] - after_dift, "decoder_copy": copy}

    p_fact = 1.0 - cfg.dropout

    def dims(names: list[str]) -> list[tuple[int, int, int]]:
        """(patches P, inner width C, input width) of each named attention layer at this size."""
        out = []
        for name in names:
            factor = layout.layers[name].factor
            out.append(((lat_h // factor) * (lat_w // factor), *_attn_dims(unet, name)))
        return out

    sdsa_dims, mask_dims = dims(layout.sdsa_layers()), dims(layout.mask_layers())

    def attention_extra(rows_per_image: int, keys_per_p: list[float]) -> float:
        """Extra attention FLOPs per forward with sharing; ``keys_per_p``: each image's gathered keys / P."""
        return sum(rows_per_image * 4.0 * p * (share * p) * inner for p, inner, _ in sdsa_dims for share in keys_per_p)

    def record_extra(n_images: int) -> float:
        return sum(n_images * 2.0 * p * 77 * inner for p, inner, _ in mask_dims)

    def run_flops(pc: dict[str, float], per_sharing_forward: float, per_forward: float) -> float:
        """The schedule's FLOPs: full and partial passes, decoder copies and the per-forward extras."""
        return ((forwards - partial) * pc["pass"] + partial * pc["partial"] + copies * pc["decoder_copy"]
                + sharing_forwards * per_sharing_forward + forwards * per_forward)

    # --- a consistent set of N images: A anchors read A-1 sources, panels read A
    pc = pieces(2 * batch)
    per_source = subject_fraction * p_fact
    shares = [per_source * (anchors - 1)] * anchors + [per_source * anchors] * (batch - anchors)
    sdsa = attention_extra(2, shares)
    rec = record_extra(batch)
    set_flops = run_flops(pc, sdsa, rec)
    plain = steps * pc["pass"]

    # --- one identity panel against a saved character (cached anchors, batch of one): the cached keys are also
    # projected by to_k and to_v, both CFG halves, every layer and step
    p1 = pieces(2)
    proj1 = sum(2 * 2.0 * 2.0 * (per_source * anchors * p) * width_in * inner for p, inner, width_in in sdsa_dims)
    panel_flops = run_flops(p1, attention_extra(2, [per_source * anchors]) + proj1, record_extra(1))
    panel_plain = steps * p1["pass"]

    return {
        "arch": arch, "size": f"{width}x{height}", "steps": steps, "batch": batch, "anchors": anchors,
        "subject_fraction": subject_fraction, "dropout": cfg.dropout,
        "pass_tflop": round(pc["pass"] / 1e12, 3),
        "partial_pass_share": round(pc["partial"] / pc["pass"], 4),
        "decoder_copy_share": round(pc["decoder_copy"] / pc["pass"], 4),
        "sdsa_extra_share": round(sdsa / pc["pass"], 4),
        "record_extra_share": round(rec / pc["pass"], 5),
        "unet_forwards": forwards, "partial_passes": partial, "decoder_copies": copies,
        "pass_equivalents": round(set_flops / pc["pass"], 2),
        "ratio_flops": round(set_flops / plain, 4),
        "reference_ratio_passes": round(2 * (steps + int(steps * cfg.query_blend_until) + 1) / steps, 4),
        "identity_panel_pass_equivalents": round(panel_flops / p1["pass"], 2),
        "ratio_identity_flops": round(panel_flops / panel_plain, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sdxl-base", choices=["sdxl-base", "sd15"])
    ap.add_argument("--size", default=None, help="WxH (default 1024x1024 for SDXL, 512x512 for SD 1.x)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--anchors", type=int, default=2)
    ap.add_argument("--subject-fraction", type=float, default=0.3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    size = args.size or ("1024x1024" if args.arch == "sdxl-base" else "512x512")
    width, height = (int(v) for v in size.lower().split("x"))
    rows = cost_model(args.arch, width, height, args.steps, args.batch, args.anchors, args.subject_fraction)
    from bench_report import print_rows  # tests/bench is the script's folder

    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
