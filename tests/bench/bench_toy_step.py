"""Seconds per training step of the toy UNet + text encoder on this machine (forward, backward, AdamW), with and
without the 32x32 attention, at the given batch sizes: ``python tests/bench/bench_toy_step.py [--batches 32,16]``.
Random latents and tokens; the first step is a warm-up. A benchmark, not a test."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def step_seconds(attn32: bool, batch: int, threads: int, repeats: int) -> float:
    import torch

    from engine.toyworld.architecture import build_text_encoder, build_unet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet, te = build_unet(32, attn32, 1), build_text_encoder()
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    z, t = torch.randn(batch, 4, 32, 32), torch.randint(0, 1000, (batch,))
    ids = torch.randint(0, te.config.vocab_size, (batch, te.config.max_position_embeddings))

    def step():
        loss = unet(z, t, te(ids)[0]).sample.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rows = [{"attn32": a, "batch": b, "s_per_step": round(step_seconds(a, b, args.threads, args.repeats), 3)}
            for b in map(int, args.batches.split(",")) for a in (True, False)]
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
