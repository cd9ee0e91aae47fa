"""Benchmark: the engine's own loop vs the stock diffusers pipeline call, same model / prompts / seeds, one run.

    python tests/bench/bench_engine.py --model SOURCE [--size WxH] [--batch N] [--steps S] [--dtype T]
                                       [--repeats R] [--scheduler ddim|euler] [--device D] [--profile DIR] --json

Each mode is one function ``mode_<name>(model, spec) -> list[PIL.Image]`` registered in ``MODES``; every mode gets
one warm-up run (up to 10 steps), then ``repeats`` rounds run the modes in turn (interleaved, order alternating,
fair under a changing load); the median is reported as ``<mode>_s`` and the fastest run as ``<mode>_min_s`` (on a
shared CPU the minimum is the least disturbed measurement), with ``<mode>_peak_mb`` and ``<mode>_unet_passes``
(UNet forward calls in one run). ConsiStory adds its mode the same way
(``consistory_s``, ``ratio_time`` = consistory / vanilla, ``ratio_peak_mem``: see ``derived_rows``), and its
ablations ``consistory_no_share``, ``_no_dropout``, ``_no_blend``, ``_no_inject``, ``_no_freeu`` (one part off each;
``ratio_time_<ablation>`` against vanilla) say what each part of the method costs.

Peak memory, honestly:
- CUDA: ``torch.cuda.max_memory_allocated`` per run, reset before each, all modes in this process (the weights
  are included, since they are allocated on the GPU).
- CPU: after the timings, every mode runs once more in a fresh subprocess; ``<mode>_peak_mb`` is that process's
  peak RSS (``ru_maxrss``: Python, libraries and weights included) and ``<mode>_gen_peak_mb`` the growth of that
  peak during generation (peak RSS after the run minus peak RSS after loading; 0 when generation stays under the
  loading peak).
``max_pixel_diff_vs_stock`` (0-255) checks that the modes compared really made the same images.
``--profile DIR`` adds one profiled run per mode (``profile_modes``, ``--profile-steps`` steps, default 12): where
the time goes, GPU kernels against wall time and the host calls that wait for the GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["MODES", "ABLATIONS", "mode_vanilla", "mode_stock", "mode_consistory", "mode_vanilla_single",
           "mode_identity_panel", "measure_modes", "profile_modes", "derived_rows", "sdpa_backends", "main"]

PROMPTS = ("a red fox in a snowy forest, storybook illustration", "a fox reading a book under a tree",
           "a fox sailing a small boat at sunset", "a fox wearing a yellow scarf in the city",
           "a fox sleeping by a campfire at night")


def build_spec(args: argparse.Namespace, model):
    from engine.request import GenerationSpec

    if args.size:
        width, height = (int(v) for v in args.size.lower().split("x"))
    else:
        width = height = int(model.pipe.unet.config.sample_size) * model.vae_scale_factor
    prompts = tuple(PROMPTS[i % len(PROMPTS)] for i in range(args.batch))
    return GenerationSpec(prompts=prompts, seeds=tuple(range(args.batch)), width=width, height=height,
                          steps=args.steps, guidance=args.guidance, scheduler=args.scheduler)


def mode_vanilla(model, spec) -> list:
    """The engine's own plain loop (``engine.generate.generate`` with no ConsiStory)."""
    from engine.generate import generate

    return generate(model, spec).images


def mode_stock(model, spec) -> list:
    """The stock diffusers pipeline ``__call__`` on the same components, scheduler, prompts and seeds."""
    import torch

    from engine.denoise_loop import make_scheduler

    components = dict(model.pipe.components)
    components["scheduler"] = make_scheduler(model, spec.scheduler)
    pipe = type(model.pipe)(**components)
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator("cpu").manual_seed(s) for s in spec.seeds]
    with torch.no_grad():
        return pipe(prompt=list(spec.prompts), negative_prompt=None, num_inference_steps=spec.steps,
                    guidance_scale=spec.guidance, width=spec.width, height=spec.height, generator=gens,
                    output_type="pil").images


def mode_consistory(model, spec, **changes) -> list:
    """The whole batch as one ConsiStory set (the first 2 prompts are the anchors; default settings, or the
    ``ConsistoryConfig`` fields in ``changes``)."""
    from engine.consistory.config import ConsistoryConfig
    from engine.generate import generate

    return generate(model, dataclasses.replace(spec, subjects=("fox",),
                                               consistory=ConsistoryConfig(**changes))).images


def mode_vanilla_single(model, spec) -> list:
    """One plain image (the third prompt): the reference for a new panel of a saved character."""
    from engine.generate import generate

    return generate(model, dataclasses.replace(spec, prompts=spec.prompts[2:3], seeds=spec.seeds[2:3])).images


_IDENTITY: dict[str, Any] = {}


def _identity(model, spec):
    """A saved character made from the batch's 2 anchor prompts (built once; its anchor cache warm after the
    warm-up run)."""
    key = (model.fingerprint, spec.width, spec.height, spec.steps)
    if _IDENTITY.get("key") != key:
        from engine.identity import read_identity, write_identity
        from engine.identity.cache_store import AnchorCacheStore
        from engine.identity.identities import create_identity

        ident = create_identity(model, name="bench", description="a fox", subjects=("fox",),
                                anchor_prompts=spec.prompts[:2], anchor_seeds=spec.seeds[:2], width=spec.width,
                                height=spec.height, steps=spec.steps, guidance=spec.guidance,
                                scheduler=spec.scheduler)
        path = Path(tempfile.mkdtemp()) / "bench.character"
        write_identity(ident, path)
        _IDENTITY.update(key=key, identity=read_identity(path), file_bytes=path.stat().st_size,
                         store=AnchorCacheStore())
    return _IDENTITY


def mode_identity_panel(model, spec) -> list:
    """One new panel (the third prompt) for a saved character, anchor cache warm (built in the warm-up)."""
    from engine.identity.identities import generate_with_identities

    ident = _identity(model, spec)
    return generate_with_identities(model, prompts=spec.prompts[2:3], seeds=spec.seeds[2:3],
                                    identities=[ident["identity"]], store=ident["store"]).images


# ConsiStory with one part switched off: what each part costs (on the GPU, where issue #3's time target is missed)
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_share": {"share": False}, "no_dropout": {"dropout": 0.0}, "no_blend": {"query_blend": False},
    "no_inject": {"inject": False}, "no_freeu": {"freeu": False}}


def _ablation(changes: dict[str, Any]) -> Callable[[Any, Any], list]:
    return lambda model, spec: mode_consistory(model, spec, **changes)


def _shared_attention_setting(name: str, value: Any, doc: str) -> Callable[[Any, Any], list]:
    """A ConsiStory mode with one setting of ``engine.consistory.gathered_attention`` changed for its run."""
    def mode(model, spec) -> list:
        from engine.consistory import gathered_attention

        saved = getattr(gathered_attention, name)
        setattr(gathered_attention, name, value)
        try:
            return mode_consistory(model, spec)
        finally:
            setattr(gathered_attention, name, saved)

    mode.__doc__ = doc
    return mode


mode_consistory_portable = _shared_attention_setting(
    "ENABLED", False, "ConsiStory with the shared attention's kernel off (one SDPA call per key group): the same set.")
mode_consistory_one_kernel = _shared_attention_setting(
    "HYBRID", False, "ConsiStory with the shared attention in one Triton call per layer (own and source keys) on "
    "every layer: the same set.")
mode_consistory_two_calls = _shared_attention_setting(
    "HYBRID_MIN_TOKENS", 0, "ConsiStory with PyTorch's attention over the own keys, then the Triton kernel over the "
    "source keys, on every decoder layer (by default only from HYBRID_MIN_TOKENS tokens): the same set.")


MODES: dict[str, Callable[[Any, Any], list]] = {
    "vanilla": mode_vanilla, "stock": mode_stock, "consistory": mode_consistory,
    "consistory_portable": mode_consistory_portable, "consistory_one_kernel": mode_consistory_one_kernel,
    "consistory_two_calls": mode_consistory_two_calls,
    "vanilla_single": mode_vanilla_single, "identity_panel": mode_identity_panel,
    **{f"consistory_{name}": _ablation(changes) for name, changes in ABLATIONS.items()}}


class _UnetCounter:
    """Counts UNet forward calls as they start (a pre-hook, so a pass that ends early at the DIFT block counts
    too; removed by ``close``)."""

    def __init__(self, unet):
        self.calls = 0
        self._handle = unet.register_forward_pre_hook(lambda *a: self._bump())

    def _bump(self) -> None:
        self.calls += 1

    def close(self) -> None:
        self._handle.remove()


WARMUP_STEPS = 10


def measure_modes(names: list[str], model, spec, repeats: int) -> dict[str, dict[str, Any]]:
    """Warm every mode up, then time ``repeats`` rounds that run the modes in turn (interleaved, so a load change
    on a shared machine hits every mode alike). On CUDA also the peak memory of each run (max over runs)."""
    import numpy as np
    import torch

    cuda = model.device.startswith("cuda")
    # warm-up: kernels, allocator, caches (and the identity's anchor cache, at full steps). 10 steps, so that a
    # ConsiStory warm-up passes through every phase (query blending, both runs, injection): with 2 steps the first
    # timed ConsiStory round on an H100 took 35 s against 25 s for the next two
    for name in names:
        MODES[name](model, spec if name == "identity_panel" else dataclasses.replace(spec, steps=min(WARMUP_STEPS,
                                                                                                        spec.steps)))
    res: dict[str, dict[str, Any]] = {n: {"all_seconds": [], "peak_mb": None, "unet_passes": 0} for n in names}
    images: dict[str, list] = {}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):  # alternate the order: no mode always goes first
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            counter = _UnetCounter(model.pipe.unet)
            start = time.perf_counter()
            images[name] = MODES[name](model, spec)
            if cuda:
                torch.cuda.synchronize()
            res[name]["all_seconds"].append(round(time.perf_counter() - start, 4))
            print(f"round {r + 1}: {name} {res[name]['all_seconds'][-1]:.2f} s", file=sys.stderr, flush=True)
            counter.close()
            res[name]["unet_passes"] = counter.calls
            if cuda:
                res[name]["peak_mb"] = max(res[name]["peak_mb"] or 0.0, torch.cuda.max_memory_allocated() / 2**20)
    for name in names:
        res[name]["seconds"] = statistics.median(res[name]["all_seconds"])
        res[name]["pixels"] = np.stack([np.asarray(im.convert("RGB")) for im in images[name]])
    return res


_SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
               "cudaMemcpyAsync")


def profile_modes(names: list[str], model, spec, out_dir: Path) -> dict[str, Any]:
    """One more run of each mode under ``torch.profiler``: writes ``profile_<mode>.txt`` (the ops and kernels that
    take the most time) into ``out_dir`` and returns rows that say where a mode's time goes: ``<mode>_prof_wall_s``
    (the profiled run), ``<mode>_prof_kernel_s`` (summed GPU kernel time; CUDA only), ``<mode>_prof_syncs`` (host
    calls that wait for the GPU or copy between host and device) and ``<mode>_prof_ops`` (operator calls)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = model.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    for name in names:
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            MODES[name](model, spec)
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
        events = prof.key_averages()
        sort = "self_device_time_total" if cuda else "self_cpu_time_total"
        (out_dir / f"profile_{name}.txt").write_text(events.table(sort_by=sort, row_limit=40), encoding="utf-8")
        if cuda:  # where the host's time goes: Python, launches, waits
            (out_dir / f"profile_{name}_host.txt").write_text(
                events.table(sort_by="self_cpu_time_total", row_limit=40), encoding="utf-8")
        rows[f"{name}_prof_wall_s"] = round(wall, 4)
        rows[f"{name}_prof_syncs"] = sum(e.count for e in events if e.key in _SYNC_CALLS)
        rows[f"{name}_prof_ops"] = sum(e.count for e in events if e.key.startswith("aten::"))
        if cuda:
            kernel_us = sum(getattr(e, "self_device_time_total", 0) for e in events
                            if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
            rows[f"{name}_prof_kernel_s"] = round(kernel_us / 1e6, 4)
    return rows


def _rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def derived_rows(res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows comparing modes: the loop vs stock, and (when present) ConsiStory vs the plain loop."""
    rows: dict[str, Any] = {}
    for name, r in res.items():
        rows[f"{name}_s"] = round(r["seconds"], 4)
        rows[f"{name}_min_s"] = round(min(r["all_seconds"]), 4)
        rows[f"{name}_all_s"] = r["all_seconds"]
        rows[f"{name}_peak_mb"] = None if r["peak_mb"] is None else round(r["peak_mb"], 1)
        if r.get("gen_peak_mb") is not None:
            rows[f"{name}_gen_peak_mb"] = round(r["gen_peak_mb"], 1)
        rows[f"{name}_unet_passes"] = r["unet_passes"]
    if "vanilla" in res and "stock" in res:
        rows["ratio_loop_vs_stock"] = round(res["vanilla"]["seconds"] / res["stock"]["seconds"], 4)
        # the fastest run of each is the least disturbed by other load on a shared machine
        rows["ratio_loop_vs_stock_min"] = round(min(res["vanilla"]["all_seconds"]) / min(res["stock"]["all_seconds"]), 4)
    if "consistory" in res and "vanilla" in res:
        rows["ratio_time"] = round(res["consistory"]["seconds"] / res["vanilla"]["seconds"], 4)
        if res["consistory"]["peak_mb"] and res["vanilla"]["peak_mb"]:
            rows["ratio_peak_mem"] = round(res["consistory"]["peak_mb"] / res["vanilla"]["peak_mb"], 4)
        rows["unet_passes"] = res["consistory"]["unet_passes"]
        rows["vanilla_unet_passes"] = res["vanilla"]["unet_passes"]
    for name in ABLATIONS:
        if f"consistory_{name}" in res and "vanilla" in res:
            rows[f"ratio_time_{name}"] = round(res[f"consistory_{name}"]["seconds"] / res["vanilla"]["seconds"], 4)
    if "identity_panel" in res and "vanilla_single" in res:
        rows["ratio_identity_panel"] = round(res["identity_panel"]["seconds"] / res["vanilla_single"]["seconds"], 4)
        if _IDENTITY.get("file_bytes"):
            rows["identity_file_bytes"] = _IDENTITY["file_bytes"]
            caches = list(_IDENTITY["store"]._memory.values())
            if caches:
                rows["identity_cache_bytes"] = caches[0].nbytes()
    if "stock" in res:
        import numpy as np

        ref = res["stock"]["pixels"].astype(np.int16)
        for name, r in res.items():
            if name in ("stock", "consistory") or r["pixels"].shape != ref.shape:
                continue
            rows[f"max_pixel_diff_{name}_vs_stock"] = int(np.abs(r["pixels"].astype(np.int16) - ref).max())
    return rows


def _load(args):
    from engine.model_loader import load_model

    start = time.perf_counter()
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    return model, time.perf_counter() - start


def _child(args) -> int:
    """Peak RSS of one mode (warm-up + one run) in this fresh process, written for the parent."""
    model, _ = _load(args)
    rss_loaded = _rss_mb()
    measure_modes([args.only], model, build_spec(args, model), 1)
    peak = _rss_mb()
    (Path(args.child_out) / f"{args.only}.json").write_text(
        json.dumps({"peak_mb": peak, "gen_peak_mb": max(0.0, peak - rss_loaded)}))
    return 0


def run_all(args) -> dict[str, Any]:
    import torch

    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"Unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}.")
    model, load_s = _load(args)
    spec = build_spec(args, model)
    spec.validate(model.vae_scale_factor)
    info = {"model": args.model, "family": model.family, "device": model.device,
            "dtype": str(model.dtype).replace("torch.", ""), "size": f"{spec.width}x{spec.height}",
            "batch": len(spec.prompts), "steps": spec.steps, "guidance": spec.guidance, "scheduler": spec.scheduler,
            "repeats": args.repeats, "load_s": round(load_s, 3), "torch": torch.__version__}
    print(f"loaded {args.model} in {load_s:.1f} s", file=sys.stderr, flush=True)
    res = measure_modes(modes, model, spec, args.repeats)
    if args.profile:  # fewer steps: the profiler's tables of a 50-step SDXL set take minutes to build
        steps = min(args.profile_steps, spec.steps)
        info |= profile_modes(modes, model, dataclasses.replace(spec, steps=steps), Path(args.profile))
        info["profile_steps"] = steps
    info["timing"] = (f"median and min of {args.repeats} interleaved rounds (order alternating) after one warm-up "
                      f"run ({min(WARMUP_STEPS, spec.steps)} steps) per mode")
    if model.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["memory_method"] = "torch.cuda.max_memory_allocated per run (weights included), reset between runs"
    else:
        del model
        info["memory_method"] = ("peak RSS (ru_maxrss) of a fresh subprocess per mode running one generation, "
                                 "weights and libraries included; *_gen_peak_mb = growth of that peak during "
                                 "generation")
        with tempfile.TemporaryDirectory() as tmp:
            for m in modes:
                cmd = [sys.executable, str(Path(__file__).resolve()), *args.argv, "--only", m, "--child-out", tmp]
                subprocess.run(cmd, check=True, cwd=ROOT)
                res[m].update(json.loads((Path(tmp) / f"{m}.json").read_text()))
    return info | derived_rows(res)


def sdpa_backends() -> dict[str, Any]:
    """The ``scaled_dot_product_attention`` backends this PyTorch has, by their short names."""
    from torch.nn.attention import SDPBackend

    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
             "math": "MATH"}
    return {k: getattr(SDPBackend, v) for k, v in names.items() if hasattr(SDPBackend, v)}


def _sdpa_backends(spec: str | None):
    """A context allowing only the named ``scaled_dot_product_attention`` backends (all modes alike)."""
    import contextlib

    if not spec:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    known = sdpa_backends()
    unknown = [b for b in spec.split(",") if b not in known]
    if unknown:
        raise SystemExit(f"Unknown --sdpa backend(s) {', '.join(unknown)}; known: {', '.join(known)}.")
    return sdpa_kernel([known[b] for b in spec.split(",")])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--size", default=None, help="WxH (default: the model's native size)")
    p.add_argument("--batch", type=int, default=5, help="images per set (ConsiStory: 2 anchors + the rest)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--scheduler", default="ddim", choices=("ddim", "euler"))
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default="vanilla,stock,consistory,vanilla_single,identity_panel",
                   help=f"comma-separated modes to run (known: {', '.join(MODES)})")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="after the timings, profile one more run of each mode; tables go to DIR/profile_<mode>.txt")
    p.add_argument("--profile-steps", type=int, default=12,
                   help="steps of each profiled run (default 12: every phase of the method, a quarter of the time)")
    p.add_argument("--sdpa", default=None, metavar="B,B",
                   help="allow only these attention backends in every mode (flash, efficient, cudnn, math); "
                        "default: PyTorch's own choice")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (default: aligned text)")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = [a for a in argv if a != "--json"]
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    with _sdpa_backends(args.sdpa):
        if args.only:
            return _child(args)
        rows = run_all(args)
    rows["sdpa_backends"] = args.sdpa or "default"
    from bench_report import print_rows  # tests/bench is the script's folder

    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
