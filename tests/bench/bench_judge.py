"""How well the toy world's judge reads pictures whose truth is known:
``python tests/bench/bench_judge.py [--n 240] [--model toy] [--json]``.

Four kinds of picture, each with the creature attributes it was drawn with:
- ``renders``: held-out renders of one creature (seeds no training set uses);
- ``vae``: the same renders encoded and decoded by the model's VAE (posterior mean), a model's kind of blur;
- ``twins``: held-out renders of identical twins, read as one picture (the judge reads the larger twin);
- ``drawings``: pictures the toy models drew, read by a person (``tests/engine/data/judge_drawings.json``).

Per kind: the share of pictures whose colour, markings, shape, hat and scene the judge reads right, and whose whole
look (colour, markings and shape) it reads right. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ATTRS = ("colour", "markings", "shape", "hat", "scene")
DRAWINGS = ROOT / "tests" / "data" / "judge_drawings.json"


def load_drawings(path: Path = DRAWINGS):
    """The labelled drawings: (64x64 uint8 arrays, ``Creature`` truths). The JSON names a PNG of 64x64 cells in
    rows of ``columns`` and gives, cell by cell, what a person reads in it."""
    import numpy as np
    from PIL import Image

    from engine.toyworld.render import Creature

    spec = json.loads(path.read_text())
    sheet = np.asarray(Image.open(path.parent / spec["image"]).convert("RGB"))
    images, truths = [], []
    for i, d in enumerate(spec["drawings"]):
        y, x = 64 * (i // spec["columns"]), 64 * (i % spec["columns"])
        images.append(sheet[y:y + 64, x:x + 64])
        truths.append(Creature(colour=d["colour"], shape=d["shape"], hat=d["hat"], scene=d["scene"],
                               markings=d["markings"]))
    return images, truths


def _score(judged, truths) -> dict:
    """Share read right, per attribute; an attribute whose truth is "?" (not read by the person) is left out."""
    out = {}
    for a in ATTRS:
        known = [(j, t) for j, t in zip(judged, truths) if getattr(t, a) != "?"]
        out[a] = sum(getattr(j, a) == getattr(t, a) for j, t in known) / len(known) if known else None
    out["look"] = sum(j.look == (t.colour, t.markings, t.shape) for j, t in zip(judged, truths)) / len(truths)
    out["n"] = len(truths)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _vae_round_trip(images, model: str):
    import numpy as np
    import torch

    from engine.model_loader import load_model
    from engine.toyworld.dataset import to_tensor

    vae = load_model(model, device="cpu", dtype="fp32").pipe.vae
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 32):
            x = to_tensor(images[i:i + 32])
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=240, help="renders of each kind")
    p.add_argument("--model", default="toy", help="whose VAE blurs the renders")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.toyworld.dataset import HELDOUT_SEED, make_set
    from engine.toyworld.judge import judge

    report = {}
    ones = make_set(args.n, HELDOUT_SEED + 300)
    report["renders"] = _score([judge(im) for im in ones.images], ones.creatures)
    report["vae"] = _score([judge(im) for im in _vae_round_trip(ones.images, args.model)], ones.creatures)
    twins = make_set(2 * args.n, HELDOUT_SEED + 301, twins=0.5)
    pick = [i for i, c in enumerate(twins.creatures) if c.twin_cx is not None][:args.n]
    report["twins"] = _score([judge(twins.images[i]) for i in pick], [twins.creatures[i] for i in pick])
    images, truths = load_drawings()
    report["drawings"] = _score([judge(im) for im in images], truths)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{'pictures':<10}" + "".join(f"{a:>10}" for a in (*ATTRS, "look", "n")))
    for kind, row in report.items():
        print(f"{kind:<10}" + "".join(f"{str(row[a]):>10}" for a in (*ATTRS, "look", "n")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
