"""When does the toy model commit to each creature attribute? ``python tests/bench/bench_commitment.py --json``.

ConsiStory can only move what is still open when sharing starts (step 1, once step 0's cross-attention gives the
first masks) and, through its keys and values, mostly what is *appearance* rather than layout. This measures, per
attribute, the denoising step by which a picture has settled: the first ``k`` steps run with a prompt that says
attribute value A, the remaining steps with the same prompt saying value B (same seed, same latents). ``follows_a``
is the share of pictures the judge reads as A: near 0 when switching at ``k`` still changes the attribute, near 1
once the model has committed. Pairs (A → B), each in both directions:

- colour: red ↔ blue (appearance), shape: round ↔ square (silhouette), hat: yellow hat ↔ no hat (a part),
  markings: spotted ↔ striped (a pattern inside the body).

Also ``commit_step``: the first ``k`` where ``follows_a ≥ 0.8``.

``self_attention_role``: how much the decoder's self-attention (the only place ConsiStory shares) decides each
attribute. The same seeds and fully specified prompts are drawn plainly and with every decoder self-attention
layer's output scaled by ``--attn-scale`` (0 removes it; the residual path stays); per attribute, the share of
pictures whose judged value is unchanged. Values near 1 mean the attribute is made elsewhere (convolutions,
cross-attention), so sharing self-attention cannot move it much.

``twins`` (``--twins``, for a model trained with twins: ``train --twins``): prompts ask for two creatures of one
kind with the look left open ("two round creatures in the snow"); per attribute, the share of pictures whose two
creatures the judge reads alike. This is what the model's own self-attention does *within* one picture, the
ability that ConsiStory's shared attention borrows *across* pictures. A benchmark, not a test: run it explicitly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PAIRS = {
    "colour": (("red", "blue"), "a {} round creature with no hat in the snow", lambda j: j.colour),
    "shape": (("round", "square"), "a red {} creature with no hat in the snow", lambda j: j.shape),
    "hat": (("with a yellow hat", "with no hat"), "a red round creature {} in the snow",
            lambda j: "yellow" if j.hat == "yellow" else ("none" if j.hat is None else j.hat)),
    "markings": (("spotted", "striped"), "a red {} round creature with no hat in the snow", lambda j: j.markings),
}
VALUE = {"red": "red", "blue": "blue", "round": "round", "square": "square", "with a yellow hat": "yellow",
         "with no hat": "none", "spotted": "spotted", "striped": "striped"}


def switched(model, prompt_a: str, prompt_b: str, seeds: list[int], steps: int, k: int, guidance: float):
    """Images whose first ``k`` steps follow ``prompt_a`` and the rest ``prompt_b`` (same noise)."""
    from engine.denoise_loop import decode_latents, denoise, prepare
    from engine.request import GenerationSpec

    n = len(seeds)
    spec_a = GenerationSpec(prompts=(prompt_a,) * n, seeds=tuple(seeds), width=64, height=64, steps=steps,
                            guidance=guidance)
    spec_b = GenerationSpec(prompts=(prompt_b,) * n, seeds=tuple(seeds), width=64, height=64, steps=steps,
                            guidance=guidance)
    cond_a, sched, timesteps, latents, _ = prepare(model, spec_a)
    cond_b, _, _, _, _ = prepare(model, spec_b)
    lat = denoise(model, latents, cond_a, sched, timesteps, stop_step=k) if k > 0 else latents
    if k < steps:
        lat = denoise(model, lat, cond_b, sched, timesteps, start_step=k)
    return decode_latents(model, lat)


def measure(model, seeds: list[int], steps: int, ks: list[int], guidance: float) -> dict:
    from engine.toyworld.judge import judge

    out: dict = {}
    for name, ((v1, v2), template, read) in PAIRS.items():
        rows = {}
        for k in ks:
            hits = total = 0
            for a, b in ((v1, v2), (v2, v1)):
                images = switched(model, template.format(a), template.format(b), seeds, steps, k, guidance)
                for im in images:
                    hits += read(judge(im)) == VALUE[a]
                    total += 1
            rows[k] = round(hits / total, 3)
        commit = next((k for k in ks if rows[k] >= 0.8), None)
        out[name] = {"follows_a": rows, "commit_step": commit}
    return out


class _ScaledSelfAttention:
    """A stock attention processor whose output is multiplied by ``scale`` (decoder attn1 layers only)."""

    def __init__(self, scale: float):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.scale = scale
        self.plain = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, *args, **kwargs):
        out = self.plain(attn, hidden_states, *args, **kwargs)
        return out * self.scale


def self_attention_role(model, seeds: list[int], steps: int, guidance: float, scale: float) -> dict:
    from diffusers.models.attention_processor import AttnProcessor2_0

    from engine.denoise_loop import generate_plain
    from engine.request import GenerationSpec
    from engine.toyworld.judge import judge

    prompts = ["a red spotted round creature with a yellow hat in the snow",
               "a blue striped square creature with no hat at night",
               "a green spotted triangle creature with a pink hat on the beach", "a blue striped round creature in the forest"]
    unet = model.pipe.unet
    original = unet.attn_processors
    scaled = {name: (_ScaledSelfAttention(scale) if name.startswith("up_blocks") and ".attn1." in name
                     else AttnProcessor2_0()) for name in original}
    same = {"colour": 0, "shape": 0, "hat": 0, "markings": 0}
    total = 0
    for prompt in prompts:
        spec = GenerationSpec(prompts=(prompt,) * len(seeds), seeds=tuple(seeds), width=64, height=64,
                              steps=steps, guidance=guidance)
        base = [judge(im) for im in generate_plain(model, spec).images]
        try:
            unet.set_attn_processor(dict(scaled))   # diffusers empties the dict it is given
            cut = [judge(im) for im in generate_plain(model, spec).images]
        finally:
            unet.set_attn_processor(dict(original))
        for a, b in zip(base, cut):
            same["colour"] += a.colour == b.colour
            same["shape"] += a.shape == b.shape
            same["hat"] += a.hat == b.hat
            same["markings"] += a.markings == b.markings
            total += 1
    return {"attn_scale": scale, "unchanged": {k: round(v / total, 3) for k, v in same.items()}, "images": total}


def twin_agreement(model, seeds: list[int], steps: int, guidance: float) -> dict:
    from engine.denoise_loop import generate_plain
    from engine.request import GenerationSpec
    from engine.toyworld.captions import SCENE_PHRASES
    from engine.toyworld.judge import judge_twins
    from engine.toyworld.render import SHAPES

    vocab = model.pipe.tokenizer.get_vocab()
    if "two</w>" not in vocab or "creatures</w>" not in vocab:
        raise SystemExit(f"{model.source} was not trained on twins (its vocabulary lacks 'two' and 'creatures').")
    same = {"colour": 0, "markings": 0, "shape": 0, "hat": 0, "look": 0}
    total = 0
    places = list(SCENE_PHRASES.values())
    for i, shape in enumerate(SHAPES):
        prompts = tuple(f"two {shape} creatures {places[(i + k) % len(places)]}" for k in range(len(seeds)))
        spec = GenerationSpec(prompts=prompts, seeds=tuple(seeds), width=64, height=64, steps=steps,
                              guidance=guidance)
        for im in generate_plain(model, spec).images:
            a, b = judge_twins(im)
            for name in ("colour", "markings", "shape", "hat"):
                same[name] += getattr(a, name) == getattr(b, name)
            same["look"] += a.colour is not None and a.look == b.look
            total += 1
    return {"agree": {k: round(v / total, 3) for k, v in same.items()}, "images": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--ks", default="0,1,2,3,4,6,8,12,20")
    p.add_argument("--attn-scale", type=float, default=0.0)
    p.add_argument("--role-only", action="store_true", help="only the self-attention role measure")
    p.add_argument("--twins", action="store_true", help="also: do twins in one picture agree (twins-trained models)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from engine.model_loader import load_model

    model = load_model(args.model)
    ks = [int(k) for k in args.ks.split(",")]
    seeds = list(range(args.seeds))
    result = {"model": args.model, "seeds": args.seeds, "steps": args.steps, "guidance": args.guidance,
              "self_attention_role": self_attention_role(model, seeds, args.steps, args.guidance, args.attn_scale)}
    if args.twins:
        result["twins"] = twin_agreement(model, seeds, args.steps, args.guidance)
    if not args.role_only:
        result["attributes"] = measure(model, seeds, args.steps, ks, args.guidance)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("decoder self-attention x", args.attn_scale, "-> unchanged:", result["self_attention_role"]["unchanged"])
        if args.twins:
            print("twins in one picture agree:", result["twins"]["agree"])
        for name, r in result.get("attributes", {}).items():
            print(f"{name:7s} commit step {r['commit_step']}: " + "  ".join(f"k={k}:{v}" for k, v in
                                                                          r["follows_a"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
