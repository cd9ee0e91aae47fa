"""Does a toy model use a second picture's creature? ``python tests/bench/bench_pair_gain.py --model toy``.

Renders ``--pairs`` pairs of pictures of one creature (same look; scene, place and size differ), encodes them with
the model's VAE, noises both pictures of a pair at one timestep and asks the UNet for its prediction twice: with
the decoder's self-attention reading the partner's creature patches (its true mask; ConsiStory's shared attention
on ideal masks, no dropout) and with nothing to read (the picture alone). Per timestep it reports the v-prediction
error over all latent pixels and over the creature's pixels, and the ``gain`` (share of the error the partner
removes; negative: reading the partner makes the prediction worse). Captions name the scene and the kind and leave
the look open, as the consistency benchmark's prompts do.

A model that ConsiStory can make consistent should gain from the partner at the noise levels where it decides a
look (on the toy model: colour early, markings around t = 650-550, see ``bench_decisions.py``). A benchmark, not a
test: run it explicitly.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TIMESTEPS = (900, 750, 600, 450, 300)


def make_pairs(n: int, seed: int):
    """``n`` pairs of renders: (first pictures + second pictures, their creatures)."""
    from dataclasses import replace

    from engine.toyworld.render import SCENES, random_creature, render

    rng = random.Random(seed)
    firsts, seconds = [], []
    for _ in range(n):
        a = random_creature(rng)
        b = replace(random_creature(rng), colour=a.colour, shape=a.shape, markings=a.markings, hat=a.hat,
                    scene=rng.choice([s for s in SCENES if s != a.scene]))
        firsts.append(a)
        seconds.append(b)
    creatures = firsts + seconds
    return [render(c) for c in creatures], creatures


def pair_gain(model, n_pairs: int = 16, timesteps=TIMESTEPS, seed: int = 0) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from engine.toyworld.captions import underspecified
    from engine.toyworld.dataset import to_tensor
    from engine.toyworld.paired_attention import install_paired_attention

    pipe = model.pipe
    unet, vae = pipe.unet, pipe.vae
    renders, creatures = make_pairs(n_pairs, seed)
    images = np.stack([np.asarray(r.image) for r in renders])
    masks = torch.from_numpy(np.stack([r.mask for r in renders]))
    caps = [underspecified(c.scene, c.shape) for c in creatures]
    ids = pipe.tokenizer(caps, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    original = unet.attn_processors
    out = {}
    try:
        with torch.no_grad():
            z0 = vae.encode(to_tensor(images)).latent_dist.mean * vae.config.scaling_factor
            factor = images.shape[1] // z0.shape[-1]
            creature = F.avg_pool2d(masks.float().unsqueeze(1), factor) > 0.5
            emb = pipe.text_encoder(ids)[0]
            acp = pipe.scheduler.alphas_cumprod
            paired = install_paired_attention(unet)
            paired.n_pairs = n_pairs
            for t0 in timesteps:
                noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed * 1000 + t0))
                t = torch.full((2 * n_pairs,), t0)
                a = acp[t].view(-1, 1, 1, 1)
                zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
                target = a.sqrt() * noise - (1 - a).sqrt() * z0
                row = {}
                for mode, keys in (("alone", torch.zeros_like(masks)), ("partner", masks)):
                    paired.set_subject_masks(keys, dropout=0.0)
                    err = (unet(zt, t, emb).sample - target).pow(2).mean(1, keepdim=True)
                    row[mode] = (float(err.mean()), float(err[creature].mean()))
                out[t0] = {"error_alone": row["alone"][0], "error_partner": row["partner"][0],
                           "gain": 1 - row["partner"][0] / row["alone"][0],
                           "creature_error_alone": row["alone"][1], "creature_error_partner": row["partner"][1],
                           "creature_gain": 1 - row["partner"][1] / row["alone"][1]}
    finally:
        unet.set_attn_processor(original)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1.")
    torch.set_num_threads(args.threads)
    from engine.model_loader import load_model

    model = load_model(args.model)
    if model.pipe.scheduler.config.get("prediction_type") != "v_prediction":
        p.error(f"{args.model} does not predict v; this benchmark is for the toy world's models.")
    res = pair_gain(model, args.pairs, seed=args.seed)
    if args.json:
        print(json.dumps({"model": args.model, "pairs": args.pairs, "timesteps": res}, indent=1))
        return 0
    print(f"{args.pairs} pairs, model {args.model}: v-prediction error alone / with the partner's creature (gain)")
    for t0, r in res.items():
        print(f"t = {t0:4d}  all pixels {r['error_alone']:.4f} / {r['error_partner']:.4f} ({r['gain']:+.1%})   "
              f"creature {r['creature_error_alone']:.4f} / {r['creature_error_partner']:.4f} "
              f"({r['creature_gain']:+.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
