"""Does ConsiStory make a set's creature consistent? ``python tests/bench/bench_consistency.py --model toy --sets N``.

Each set is ``--size`` underspecified prompts with fixed seeds; the scenes differ. ``--prompts kind`` (default)
names the kind of creature, as the paper's prompts name a class ("a round creature in the snow", "a round
creature at night": colour, markings and hat never said; the kind rotates between sets); ``--prompts open`` says
nothing about the creature ("a creature in the snow"). Every mode generates the same sets with the same seeds:
``plain``, ``consistory`` (defaults) and the ablations ``no_share``, ``no_inject``, ``no_dropout``,
``no_query_blend``. The toy world's judge reads every picture. Per mode:

- ``consistency``: share of image pairs within a set whose judged character (``Judgement.look``: body colour,
  markings and shape) agree; ``consistency_with_hat`` also asks the hat (a prop) to agree;
- ``colour_agreement`` / ``markings_agreement`` / ``shape_agreement`` / ``hat_agreement``: the same per attribute;
- ``alignment``: share of images whose judged scene is the prompt's scene; ``kind_alignment``: share whose judged
  shape is the named kind (``kind`` prompts only);
- ``layout_overlap``: mean IoU of the judged creature regions of image pairs within a set (how much the layouts
  repeat each other: the paper's dropout and query blending exist to keep this down);
- ``subject_mask_iou``: the engine's subject masks (``GenerationResult.masks``, upsampled) vs the judged creature
  region (``null`` for plain runs, which make no masks);
- ``pair_consistency``: ``consistency`` split by the kind of pair: ``anchor_anchor``, ``anchor_other`` and
  ``other_other`` (the anchors are a set's first images, as the engine takes them; plain runs are split the same
  way for comparison), which shows whether disagreement starts between the anchors or in what reads them;
- ``chance_consistency``: the same share over pairs of pictures from *different* sets whose prompts name the same
  kind: how often two independent pictures of this mode agree by chance, given how the mode's looks are spread
  (the baseline ``consistency`` is compared with: plain generation is near chance when the two are close);
- ``seconds_per_set`` and, for the spread, ``distinct_identities`` (share of images whose identity is unique).

Modes whose engine is missing or fails are reported with the error instead of numbers. ``--json`` prints one JSON
object; otherwise a table. A benchmark, not a test: run it explicitly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MODES = ("plain", "consistory", "no_share", "no_inject", "no_dropout", "no_query_blend")
# run on request (--modes): stronger-than-default settings (does more injection or sharing move more attributes?),
# injection that lasts longer or comes later (into the steps where the toy model decides its markings),
# sharing without subject masks, and other numbers of anchors (the first images of a set)
EXTRA_MODES = {"long_inject": {"inject_start": 0.05, "inject_end": 0.6},
               "inject_to_half": {"inject_end": 0.5}, "late_inject": {"inject_start": 0.35, "inject_end": 0.6},
               "strong_share": {"dropout": 0.0, "query_blend": False, "inject_start": 0.05, "inject_end": 0.6},
               "full_inject": {"inject_alpha": 1.0}, "no_masks": {"masks": False},
               # the paper's other operating points for the dropout (its automatic metric used 0.15 and 0)
               "dropout_015": {"dropout": 0.15}, "dropout_03": {"dropout": 0.3},
               "no_dropout_no_blend": {"dropout": 0.0, "query_blend": False},
               "one_anchor": {"anchors": 1}, "three_anchors": {"anchors": 3}, "four_anchors": {"anchors": 4}}


def mode_config(mode: str):
    from engine.consistory.config import ConsistoryConfig

    if mode == "plain":
        return None
    base = ConsistoryConfig()
    changes = {"consistory": {}, "no_share": {"share": False}, "no_inject": {"inject": False},
               "no_dropout": {"dropout": 0.0}, "no_query_blend": {"query_blend": False}, **EXTRA_MODES}[mode]
    return ConsistoryConfig(**{**base.to_dict(), "freeu_params": base.freeu_params, **changes})


def make_sets(n_sets: int, size: int, prompts: str = "kind", first: int = 0) -> list[
        tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...], str | None]]:
    """(scenes, prompts, seeds, kind) of sets ``first`` … ``first + n_sets - 1``; scenes rotate so every set mixes
    different ones, and with ``kind`` prompts the named shape rotates between sets. Set k's seeds are 1000·k + i, so
    ``first`` gives fresh sets that no earlier run has seen."""
    from engine.toyworld.captions import underspecified
    from engine.toyworld.render import SCENES, SHAPES

    names = list(SCENES)
    sets = []
    for k in range(first, first + n_sets):
        scenes = tuple(names[(k + i * (1 + k % 2)) % len(names)] for i in range(size))
        kind = SHAPES[k % len(SHAPES)] if prompts == "kind" else None
        sets.append((scenes, tuple(underspecified(s, kind) for s in scenes), tuple(1000 * k + i for i in range(size)),
                     kind))
    return sets


def _mask_iou(mask, region) -> float:
    import numpy as np
    from PIL import Image

    from engine.toyworld.judge import iou

    m = np.asarray(mask.cpu().numpy() if hasattr(mask, "cpu") else mask, dtype=np.uint8) * 255
    up = np.asarray(Image.fromarray(m).resize(region.shape[::-1], Image.NEAREST)) > 127
    return iou(up, region)


def _pair_kind(i: int, j: int, n_anchors: int) -> str:
    """``anchor_anchor``, ``anchor_other`` or ``other_other`` for images i < j of a set."""
    return {2: "anchor_anchor", 1: "anchor_other", 0: "other_other"}[(i < n_anchors) + (j < n_anchors)]


def chance_agreement(looks_by_set: list[list[tuple]], kinds: list[str | None]) -> float | None:
    """Share of picture pairs from two different sets of one kind whose looks agree (a look with no colour never
    agrees): how often independent pictures agree by chance. ``None`` when no two sets share a kind."""
    pairs = agree = 0
    for (la, ka), (lb, kb) in itertools.combinations(zip(looks_by_set, kinds), 2):
        if ka != kb:
            continue
        for a, b in itertools.product(la, lb):
            pairs += 1
            agree += a == b and a[0] is not None
    return agree / pairs if pairs else None


def run_mode(model, mode: str, sets, steps: int, guidance: float, keep_images: bool = False) -> dict:
    from engine.generate import generate
    from engine.request import GenerationSpec
    from engine.toyworld.captions import SUBJECT
    from engine.toyworld.judge import iou, judge

    pairs = agree = agree_hat = 0
    cfg = mode_config(mode)
    n_anchors = (cfg or mode_config("consistory")).anchors  # plain runs are split as the default would be
    by_kind: dict[str, list[int]] = {}
    overlaps: list[float] = []
    per_attr = Counter()
    aligned = kind_aligned = n_kind = n_images = 0
    ious: list[float] = []
    identities = []
    looks_by_set: list[list[tuple]] = []
    seconds = 0.0
    images_out = []
    for scenes, prompts, seeds, kind in sets:
        spec = GenerationSpec(prompts=prompts, seeds=seeds, width=64, height=64, steps=steps, guidance=guidance,
                              subjects=(SUBJECT,) if mode != "plain" else (), consistory=cfg)
        t0 = time.perf_counter()
        result = generate(model, spec)
        seconds += time.perf_counter() - t0
        judged = [judge(img) for img in result.images]
        looks_by_set.append([j.look for j in judged])
        if keep_images:
            images_out += result.images
        for (ia, a), (ib, b) in itertools.combinations(enumerate(judged), 2):
            pairs += 1
            overlaps.append(iou(a.region, b.region))
            same_look = a.look == b.look and a.colour is not None
            agree += same_look
            by_kind.setdefault(_pair_kind(ia, ib, n_anchors), []).append(same_look)
            agree_hat += a.identity == b.identity and a.colour is not None
            per_attr["colour"] += a.colour == b.colour and a.colour is not None
            per_attr["markings"] += a.markings == b.markings and a.markings is not None
            per_attr["shape"] += a.shape == b.shape and a.shape is not None
            per_attr["hat"] += a.hat == b.hat
        for j, scene in zip(judged, scenes):
            aligned += j.scene == scene
            n_images += 1
            identities.append(j.look)
            if kind is not None:
                kind_aligned += j.shape == kind
                n_kind += 1
        if result.masks is not None:
            ious += [_mask_iou(m, j.region) for m, j in zip(result.masks, judged) if m is not None]
    counts = Counter(identities)
    out = {
        "consistency": agree / pairs, "consistency_with_hat": agree_hat / pairs,
        "chance_consistency": chance_agreement(looks_by_set, [kind for *_, kind in sets]),
        "colour_agreement": per_attr["colour"] / pairs, "markings_agreement": per_attr["markings"] / pairs,
        "shape_agreement": per_attr["shape"] / pairs, "hat_agreement": per_attr["hat"] / pairs,
        "pair_consistency": {k: sum(v) / len(v) for k, v in sorted(by_kind.items())},
        "layout_overlap": sum(overlaps) / len(overlaps),
        "alignment": aligned / n_images, "kind_alignment": kind_aligned / n_kind if n_kind else None,
        "subject_mask_iou": sum(ious) / len(ious) if ious else None,
        "seconds_per_set": seconds / len(sets),
        "distinct_identities": sum(1 for i in identities if counts[i] == 1) / len(identities),
        "colours": dict(Counter(str(i[0]) for i in identities)),
        "markings": dict(Counter(str(i[1]) for i in identities)),
    }
    if keep_images:
        out["_images"] = images_out
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--sets", type=int, default=10)
    p.add_argument("--first", type=int, default=0, help="index of the first set (fresh sets for a second sample)")
    p.add_argument("--size", type=int, default=4, help="images per set (the first two are the anchors)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--prompts", choices=("kind", "open"), default="kind",
                   help="kind: name the kind of creature (its shape), as the paper names a class; open: say nothing")
    known = (*MODES, *EXTRA_MODES)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(known)}")
    p.add_argument("--grid", help="save each mode's pictures (one row per set) as PREFIX_<mode>.png")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: more spin on a busy machine)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the model's automatic choice, CUDA on a GPU)")
    p.add_argument("--dtype", help="fp32, fp16 or bf16 (default: fp16 on CUDA, else fp32)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from engine.model_loader import load_model

    model = load_model(args.model, device=args.device, dtype=args.dtype)
    sets = make_sets(args.sets, args.size, args.prompts, args.first)
    report: dict = {"model": args.model, "sets": args.sets, "first": args.first, "size": args.size, "steps": args.steps,
                    "guidance": args.guidance, "prompts": args.prompts, "example": sets[0][1][0], "modes": {}}
    for mode in args.modes.split(","):
        if mode not in known:
            p.error(f"Unknown mode {mode!r}; choose from {', '.join(known)}.")
        try:
            res = run_mode(model, mode, sets, args.steps, args.guidance, keep_images=bool(args.grid))
        except Exception as exc:  # noqa: BLE001 - a missing or broken engine part is reported, not fatal
            report["modes"][mode] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        if args.grid:
            from engine.toyworld.evaluate import grid

            grid(res.pop("_images"), columns=args.size, scale=3).save(f"{args.grid}_{mode}.png")
        report["modes"][mode] = res
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    cols = ("consistency", "chance_consistency", "consistency_with_hat", "colour_agreement", "markings_agreement",
            "shape_agreement", "hat_agreement", "layout_overlap", "alignment", "subject_mask_iou", "seconds_per_set",
            "distinct_identities")
    print(f"{args.sets} sets of {args.size} ({args.prompts} prompts: {sets[0][1][0]!r} ...), {args.steps} steps, "
          f"model {args.model}")
    print(f"{'mode':<16}" + "".join(f"{c.replace('_agreement', ''):>13}" for c in cols))
    for mode, res in report["modes"].items():
        if "error" in res:
            print(f"{mode:<16} {res['error']}")
            continue
        print(f"{mode:<16}" + "".join(f"{'-' if res[c] is None else format(res[c], '.3f'):>13}" for c in cols))
    print("look agreement by pair: " + "; ".join(
        f"{mode} " + ", ".join(f"{k} {v:.3f}" for k, v in res["pair_consistency"].items())
        for mode, res in report["modes"].items() if "error" not in res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
