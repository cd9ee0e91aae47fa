"""How well a toy model draws what it is told: ``python -m engine.toyworld.evaluate [--model toy | --run DIR]``.

``fidelity(model, n)`` generates ``n`` fully specified prompts (creatures drawn from ``random.Random(seed)``,
every attribute said) through ``engine.generate`` and judges each picture; it returns the share judged right per
attribute (body colour, markings, shape, hat present/absent, hat colour, scene) and the images, so a grid can be saved
with ``grid(images)`` and looked at.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .captions import caption
from .judge import judge
from .render import Creature, random_creature

__all__ = ["Fidelity", "fidelity", "grid"]


@dataclass(frozen=True)
class Fidelity:
    colour: float
    markings: float
    shape: float
    hat_present: float
    hat: float
    scene: float
    n: int
    seconds: float
    images: tuple = ()
    creatures: tuple[Creature, ...] = ()

    def summary(self) -> dict:
        return {k: round(getattr(self, k), 3) for k in ("colour", "markings", "shape", "hat_present", "hat", "scene")} | {
            "n": self.n, "seconds": round(self.seconds, 1)}


def fidelity(model, n: int = 60, seed: int = 2, steps: int = 20, guidance: float = 4.0, batch: int = 10) -> Fidelity:
    from ..generate import generate
    from ..request import GenerationSpec

    rng = random.Random(seed)
    creatures = tuple(random_creature(rng) for _ in range(n))
    images = []
    t0 = time.time()
    for i in range(0, n, batch):
        part = creatures[i:i + batch]
        spec = GenerationSpec(prompts=tuple(caption(c) for c in part), seeds=tuple(range(seed * 10000 + i,
                              seed * 10000 + i + len(part))), width=64, height=64, steps=steps, guidance=guidance)
        images += generate(model, spec).images
    seconds = time.time() - t0
    right = {"colour": 0, "markings": 0, "shape": 0, "hat_present": 0, "hat": 0, "scene": 0}
    for img, c in zip(images, creatures):
        j = judge(img)
        right["colour"] += j.colour == c.colour
        right["markings"] += j.markings == c.markings
        right["shape"] += j.shape == c.shape
        right["hat_present"] += (j.hat is None) == (c.hat is None)
        right["hat"] += j.hat == c.hat
        right["scene"] += j.scene == c.scene
    return Fidelity(**{k: v / n for k, v in right.items()}, n=n, seconds=seconds, images=tuple(images),
                    creatures=creatures)


def grid(images, columns: int = 10, scale: int = 2):
    """One PIL image of ``images`` (all the same size) in rows of ``columns``, enlarged ``scale`` times."""
    from PIL import Image

    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    out = Image.new("RGB", (w * columns, h * rows), "white")
    for i, img in enumerate(images):
        out.paste(img, (w * (i % columns), h * (i // columns)))
    return out.resize((w * columns * scale, h * rows * scale), Image.NEAREST)


def main(argv: list[str] | None = None) -> int:
    import torch

    from ..errors import EngineError
    from ..model_loader import load_model

    p = argparse.ArgumentParser(prog="python -m engine.toyworld.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy", help="model source (default toy)")
    p.add_argument("--run", help="evaluate a training folder's EMA weights instead of --model")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--grid", help="save the pictures here as one PNG (captions in a .txt beside it)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: more spin on a busy machine)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the model's automatic choice, CUDA on a GPU)")
    p.add_argument("--dtype", help="fp32, fp16 or bf16 (default: fp16 on CUDA, else fp32)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="toy-eval-") as tmp:
        source = args.model
        if args.run:
            from .export import export

            source = str(export(args.run, Path(tmp) / "toy"))
        try:
            model = load_model(source, device=args.device, dtype=args.dtype)
        except EngineError as exc:
            raise SystemExit(f"evaluate: {exc}") from None
        f = fidelity(model, args.n, steps=args.steps, guidance=args.guidance)
    print(json.dumps(f.summary()))
    if args.grid:
        grid(list(f.images)).save(args.grid)
        with open(args.grid.rsplit(".", 1)[0] + ".txt", "w") as fh:
            fh.write("\n".join(f"{i}: {caption(c)} -> {judge(img).identity} {judge(img).scene}"
                               for i, (c, img) in enumerate(zip(f.creatures, f.images))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
