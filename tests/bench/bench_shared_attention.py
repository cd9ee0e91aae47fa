"""One decoder self-attention layer, timed alone: ConsiStory's shared attention against the stock processor, at
the shapes of a real set (default: SDXL at 1024x1024, 2 anchors + 3 panels, both guidance halves).

    python tests/bench/bench_shared_attention.py [--device cuda] [--dtype fp16] [--iters 50] [--json]

For each decoder resolution (``--layers``: grid side, channels, heads) it reports, per layer call:
- ``plain``: diffusers' ``AttnProcessor2_0`` on the whole batch;
- ``shared``: ``SelfAttentionProcessor`` with a real ``RunState``: new dropout draws every call (``vary``: key
  lengths change from call to call, as in a run) or the same draws every call (``fixed``); where the one-call kernel
  serves (``gathered_attention.py``: CUDA, half precision, Triton), ``shared_one_kernel_fixed`` and
  ``shared_two_calls_fixed`` are the same in one Triton call (own keys too) and in two calls (PyTorch's attention over
  the own keys, then Triton's over the source keys) whatever the layer's size, and ``shared_portable_*`` is the same
  with the kernel off (one SDPA call per key group);
- ``sdpa_<backend>``: the largest group's SDPA call alone under each backend PyTorch offers (``default`` is
  PyTorch's own choice, printed as ``chosen``), again with varying and fixed key lengths.

Each figure is ``gpu_ms`` (CUDA events around ``--iters`` calls, after a warm-up) and ``host_ms`` (the time the
host needs to issue one call when it never waits): when host_ms is close to gpu_ms the layer is bound by Python and
kernel launches, not by arithmetic. On the CPU both are wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_engine import sdpa_backends  # noqa: E402  (tests/bench is the script's folder)
from diffusers.models.attention_processor import Attention, AttnProcessor2_0  # noqa: E402

from engine.consistory import gathered_attention  # noqa: E402
from engine.consistory.config import ConsistoryConfig  # noqa: E402
from engine.consistory.run_state import RunState, source_matrix  # noqa: E402
from engine.consistory.sdsa_processor import SelfAttentionProcessor  # noqa: E402
from engine.consistory.unet_layers import LayerInfo, UNetLayout  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def subject_masks(n: int, side: int, share: float, device) -> torch.Tensor:
    """(1, N, side*side) bool: a centred disc covering about ``share`` of each image, shifted per image."""
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    r = side * (share / 3.1416) ** 0.5
    masks = []
    for i in range(n):
        cy, cx = side / 2 + (i - n / 2), side / 2 - (i - n / 2)
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).flatten())
    return torch.stack(masks).unsqueeze(0).to(device)


def make_state(n: int, anchors: int, side: int, steps: int, dropout: float, share: float, device) -> RunState:
    layout = UNetLayout(layers={}, coarse=1, fine=1, decoder_factors=(1,), dift_block=0)
    st = RunState(config=ConsistoryConfig(anchors=anchors, dropout=dropout), layout=layout, n_images=n,
                  seeds=tuple(range(n)), latent_hw=(side, side), n_steps=steps, do_cfg=True,
                  token_weights=torch.zeros(1, n, 77), sources=source_matrix(n, anchors).unsqueeze(0),
                  device=torch.device(device))
    st.masks = {1: subject_masks(n, side, share, device)}
    return st


def timed(fn, iters: int, cuda: bool, before=None) -> dict[str, float]:
    """gpu_ms: CUDA events around ``iters`` calls (wall time on the CPU); host_ms: issuing time per call."""
    for _ in range(3):
        if before:
            before(0)
        fn()
    if cuda:
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    for i in range(iters):
        if before:
            before(i)
        fn()
    host = (time.perf_counter() - t0) / iters * 1e3
    if cuda:
        end.record()
        torch.cuda.synchronize()
        return {"gpu_ms": round(start.elapsed_time(end) / iters, 3), "host_ms": round(host, 3)}
    return {"gpu_ms": round(host, 3), "host_ms": round(host, 3)}


def bench_layer(side: int, channels: int, heads: int, args) -> dict[str, object]:
    from torch.nn.attention import sdpa_kernel

    cuda = args.device.startswith("cuda")
    dtype = DTYPES[args.dtype]
    n, p = args.images, side * side
    torch.manual_seed(0)
    attn = Attention(query_dim=channels, heads=heads, dim_head=channels // heads).to(args.device, dtype).eval()
    x = torch.randn(2 * n, p, channels, device=args.device, dtype=dtype)
    st = make_state(n, args.anchors, side, args.steps, args.dropout, args.subject_share, args.device)
    proc = SelfAttentionProcessor(st, LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1),
                                  sdsa=True, inject=False)
    plain = AttnProcessor2_0()
    row: dict[str, object] = {"grid": f"{side}x{side}", "channels": channels, "heads": heads}
    with torch.no_grad():
        row["plain"] = timed(lambda: plain(attn, x), args.iters, cuda)
        st.begin_step(1)
        row["shared_fixed"] = timed(lambda: proc(attn, x), args.iters, cuda)
        row["shared_vary"] = timed(lambda: proc(attn, x), args.iters, cuda,
                                   before=lambda i: st.begin_step(1 + i % (args.steps - 1)))
        if gathered_attention.available(x):
            gathered_attention.HYBRID = False
            row["shared_one_kernel_fixed"] = timed(lambda: proc(attn, x), args.iters, cuda)
            gathered_attention.HYBRID = True
            saved, gathered_attention.HYBRID_MIN_TOKENS = gathered_attention.HYBRID_MIN_TOKENS, 0
            row["shared_two_calls_fixed"] = timed(lambda: proc(attn, x), args.iters, cuda)
            gathered_attention.HYBRID_MIN_TOKENS = saved
            gathered_attention.ENABLED = False
            row["shared_portable_fixed"] = timed(lambda: proc(attn, x), args.iters, cuda)
            row["shared_portable_vary"] = timed(lambda: proc(attn, x), args.iters, cuda,
                                                before=lambda i: st.begin_step(1 + i % (args.steps - 1)))
            gathered_attention.ENABLED = True
            st.begin_step(1)
            with torch.no_grad():
                fused_out = proc(attn, x)
                gathered_attention.ENABLED = False
                row["fused_vs_portable_max_abs"] = float((fused_out.float() - proc(attn, x).float()).abs().max())
                gathered_attention.ENABLED = True
        row["shared_vary_begin_step_only"] = timed(lambda: None, args.iters, cuda,
                                                   before=lambda i: st.begin_step(1 + i % (args.steps - 1)))
        # the largest group's SDPA call alone: (2 * panels, heads, P, d) queries against P + L keys
        st.begin_step(1)
        images, index = max(st.key_groups[1], key=lambda grp: len(grp[0]))
        lengths = sorted({int(idx.numel()) for _, idx in [(None, i) for i in st.key_index[1]]} | {index.numel()})
        b, d = 2 * len(images), channels // heads
        q = torch.randn(b, heads, p, d, device=args.device, dtype=dtype)
        kv = torch.randn(b, heads, p + max(lengths) + args.steps, d, device=args.device, dtype=dtype)
        fixed_len = p + index.numel()
        row["group"] = {"images": len(images), "shared_keys": index.numel(), "keys": fixed_len}
        try:
            row["chosen"] = int(torch._fused_sdp_choice(q, kv[:, :, :fixed_len], kv[:, :, :fixed_len]))
        except Exception as exc:  # private API: report, do not fail
            row["chosen"] = repr(exc)
        length = {"n": fixed_len}
        for name, backend in [("default", None), *sdpa_backends().items()]:
            if name == "math" and p * fixed_len * b * heads > 2**31:
                continue
            for how in ("fixed", "vary"):
                def call():
                    k = kv[:, :, :length["n"]]
                    if backend is None:
                        F.scaled_dot_product_attention(q, k, k)
                    else:
                        with sdpa_kernel(backend):
                            F.scaled_dot_product_attention(q, k, k)

                def before(i, how=how):
                    length["n"] = fixed_len + (i % args.steps if how == "vary" else 0)
                try:
                    row[f"sdpa_{name}_{how}"] = timed(call, args.iters, cuda, before=before)
                except RuntimeError as exc:
                    row[f"sdpa_{name}_{how}"] = str(exc).splitlines()[0][:120]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default fp16 on CUDA, fp32 on the CPU")
    p.add_argument("--layers", default="32:1280:20,64:640:10",
                   help="grid side:channels:heads of each decoder resolution (default SDXL at 1024x1024)")
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--anchors", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--subject-share", type=float, default=0.35, help="share of each image that is subject")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("fp16" if args.device.startswith("cuda") else "fp32")
    rows = [bench_layer(*map(int, spec.split(":")), args) for spec in args.layers.split(",")]
    info = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "dtype": args.dtype, "layers": rows}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for row in rows:
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
