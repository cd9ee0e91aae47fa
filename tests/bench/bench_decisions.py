"""When does a picture's look get decided? ``python tests/bench/bench_decisions.py --model toy --sets N``.

Generates the consistency benchmark's sets (``bench_consistency.make_sets``) in each mode and judges the
scheduler's prediction of the clean picture (``pred_original_sample``) after every step of the trajectory that
produced the final pictures (for ConsiStory: run 1 up to the first injection step, then run 2). Per mode and per
attribute (body colour, markings, shape):

- ``agreement_by_step``: share of image pairs within a set whose judged attribute agrees in that step's prediction
  (a prediction too blurry to judge counts as disagreeing);
- ``settle_steps``: how many pictures settle at each step (the first step from which the judged attribute equals the
  final picture's until the end);
- ``inject_steps``: the steps on which feature injection ran (``null`` for modes without it).

This shows whether an attribute is settled while the method acts on it: on the toy model the body colour agrees
during the injection steps, while the markings are decided after them (see the README). Needs a model whose
scheduler returns ``pred_original_sample`` (DDIM, the toy's). A benchmark, not a test: run it explicitly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ATTRIBUTES = ("colour", "markings", "shape")


@contextmanager
def recording_predictions(calls: list):
    """Every scheduler made inside appends (timestep, pred_original_sample) to ``calls`` on each step."""
    import engine.consistory.pipeline as consistory_pipeline
    import engine.denoise_loop as loop

    original = loop.make_scheduler

    def make(model, name):
        scheduler = original(model, name)
        step = scheduler.step

        def recording_step(model_output, timestep, sample, *args, **kwargs):
            out = step(model_output, timestep, sample, *args, **kwargs)
            pred = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, "pred_original_sample", None)
            if pred is None:
                raise RuntimeError(f"{type(scheduler).__name__} gives no prediction of the clean picture.")
            calls.append((int(timestep), pred.detach().clone()))
            return out

        scheduler.step = recording_step
        return scheduler

    loop.make_scheduler = consistory_pipeline.make_scheduler = make
    try:
        yield
    finally:
        loop.make_scheduler = consistory_pipeline.make_scheduler = original


def final_trajectory(calls: list) -> list:
    """The predictions of the pass that made the final pictures: the last one recorded for every timestep, in
    step order (ConsiStory's run 2 starts from run 1's state at the first injection step)."""
    last: dict[int, object] = {}
    for t, pred in calls:
        last[t] = pred
    return [last[t] for t in sorted(last, reverse=True)]


def settle_step(values: list) -> int:
    """The first index from which every value equals the last one."""
    k = len(values) - 1
    while k > 0 and values[k - 1] == values[-1]:
        k -= 1
    return k


def run_mode(model, mode: str, sets, steps: int, guidance: float) -> dict:
    from bench_consistency import mode_config
    from engine.consistory.run_state import inject_steps
    from engine.denoise_loop import decode_latents
    from engine.generate import generate
    from engine.request import GenerationSpec
    from engine.toyworld.captions import SUBJECT
    from engine.toyworld.judge import judge

    cfg = mode_config(mode)
    agree = {a: [0] * steps for a in ATTRIBUTES}
    settle = {a: Counter() for a in ATTRIBUTES}
    pairs = 0
    for scenes, prompts, seeds, _kind in sets:
        calls: list = []
        spec = GenerationSpec(prompts=prompts, seeds=seeds, width=64, height=64, steps=steps, guidance=guidance,
                              subjects=(SUBJECT,) if cfg is not None else (), consistory=cfg)
        with recording_predictions(calls):
            generate(model, spec)
        trajectory = final_trajectory(calls)
        if len(trajectory) != steps:
            raise RuntimeError(f"recorded {len(trajectory)} steps, expected {steps}")
        judged = [[judge(img) for img in decode_latents(model, pred)] for pred in trajectory]
        n = len(prompts)
        pairs += n * (n - 1) // 2
        for a in ATTRIBUTES:
            values = [[getattr(j, a) for j in step] for step in judged]   # [step][image]
            for k, row in enumerate(values):
                agree[a][k] += sum(x == y and x is not None for x, y in itertools.combinations(row, 2))
            for i in range(n):
                settle[a][settle_step([row[i] for row in values])] += 1
    inj = None
    if cfg is not None and cfg.inject:
        r = inject_steps(cfg, steps)
        inj = [r.start, r.stop - 1]
    return {"agreement_by_step": {a: [round(v / pairs, 3) for v in agree[a]] for a in ATTRIBUTES},
            "settle_steps": {a: dict(sorted(settle[a].items())) for a in ATTRIBUTES},
            "inject_steps": inj}


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench_consistency import EXTRA_MODES, MODES, make_sets

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--sets", type=int, default=12)
    p.add_argument("--size", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    known = (*MODES, *EXTRA_MODES)
    p.add_argument("--modes", default="plain,consistory", help=f"comma-separated, from {', '.join(known)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in known:
            p.error(f"Unknown mode {mode!r}; choose from {', '.join(known)}.")
    torch.set_num_threads(args.threads)
    from engine.model_loader import load_model

    model = load_model(args.model)
    sets = make_sets(args.sets, args.size)
    report = {"model": args.model, "sets": args.sets, "size": args.size, "steps": args.steps,
              "modes": {m: run_mode(model, m, sets, args.steps, args.guidance) for m in modes}}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.sets} sets of {args.size}, {args.steps} steps, model {args.model}: pair agreement of the judged "
          "prediction after each step")
    print(f"{'mode':<14}{'attribute':<10}" + "".join(f"{k:>6}" for k in range(args.steps)))
    for mode, res in report["modes"].items():
        for a in ATTRIBUTES:
            print(f"{mode:<14}{a:<10}" + "".join(f"{v:6.2f}" for v in res["agreement_by_step"][a]))
        print(f"{'':<14}injection on steps {res['inject_steps']}; settle steps: " + "; ".join(
            f"{a} {res['settle_steps'][a]}" for a in ATTRIBUTES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
