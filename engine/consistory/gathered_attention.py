"""Shared self-attention without a gather copy: each image's queries attend to its own P tokens and then to its
gathered source tokens, read straight from the layer's keys and values through an index table.

The portable path (``sdsa_processor.SelfAttentionProcessor._shared_attention``) makes one SDPA call per key group,
each with a gather, a query copy and an output copy; on an SDXL pass that is about 110 calls with small shapes whose
key count changes every step. Here a layer of ``HYBRID_MIN_TOKENS`` tokens or more takes two calls for all its rows:

1. the own-token attention of every row, a plain fixed-shape self-attention, by PyTorch's fastest kernel (cuDNN's,
   else flash attention), asked for its log-sum-exp as well as its output;
2. a Triton kernel (flash-attention's online softmax, forward only) that starts from that output and log-sum-exp and
   goes on over the row's gathered source tokens only, then writes the result in the layout the layer's output
   projection reads. Softmax over the union of two key sets is exactly this continuation, so the result is the
   single softmax over own + source keys (up to rounding).

The same Triton kernel can also do step 1 itself (one call, the own keys read contiguously): it does on layers of
fewer than ``HYBRID_MIN_TOKENS`` tokens per image, where the second call's launch costs more than it saves, and
everywhere with ``HYBRID = False``. The first two-call result in a process is checked against the one-call kernel,
and a mismatch switches the two-call form off.
Used on CUDA for fp16/bf16 when Triton is importable; elsewhere the portable path runs (same mathematics; the results
agree to rounding, tests/engine/test_gathered_attention.py).

Layouts: ``q``, ``k``, ``v`` and the output are (B, P, H*D) with B = halves * N rows (``[uncond; cond]``); row
``half * N + i`` is image i. ``table`` (N, Lmax) int32 holds, per image, the flat (N*P) token indices of the source
patches it reads within its own half (``RunState.key_index``, built by ``RunState.device_table`` or ``_table``),
padded; ``lengths`` (N,) int32 how many are real.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

__all__ = ["ENABLED", "HYBRID", "available", "gathered_attention", "own_attention", "try_gathered_attention"]

log = logging.getLogger(__name__)

ENABLED = True   # benchmarks switch the kernel off to time the portable path
HYBRID = True    # own keys by PyTorch's attention (with its log-sum-exp), then the kernel over the source keys
# ... on layers of at least this many tokens per image. One SDXL decoder layer at 1024x1024, fp16, 2 anchors + 3
# panels, on an H100 (tests/bench/bench_shared_attention.py, ms per call): at 64x64 tokens two calls 1.63 against
# one call 1.75 on the GPU; at 32x32 the two calls' extra launch (0.64 against 0.47 ms to issue) costs more than
# their GPU time saves.
HYBRID_MIN_TOKENS = 4096
_checked = False  # whether a two-call result has been compared with the one-call kernel in this process
_LOG2E = 1.4426950408889634


@functools.cache
def _triton():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


def available(q: torch.Tensor) -> bool:
    """Whether the kernel serves this call: CUDA, half precision, Triton importable (or Triton's interpreter)."""
    if not ENABLED or _triton() is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


@functools.cache
def _kernel():
    triton, tl = _triton()
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    configs = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=1)] if interpret else [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(128, 64, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4), (128, 128, 8, 3)]]

    @triton.autotune(configs=configs, key=["P", "BLOCK_D", "OWN"])
    @triton.heuristics({"EVEN_P": lambda args: args["P"] % args["BLOCK_N"] == 0})
    @triton.jit(do_not_specialize=["stride_idx", "n_images"])
    def kernel(Q, K, V, O, IDX, LEN, O1, LSE, stride_qb, stride_qp, stride_kb, stride_kp, stride_vb, stride_vp,
               stride_ob, stride_op, stride_idx, stride_1b, stride_1h, stride_1p, stride_lb, stride_lh, stride_lp,
               n_images, P, H, D, qk_scale, OWN: tl.constexpr, EVEN_P: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        half = b // n_images
        img = b % n_images
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        mask_m = offs_m < P
        mask_d = offs_d < D
        col = h * D + offs_d
        q = tl.load(Q + b * stride_qb + offs_m[:, None] * stride_qp + col[None, :],
                    mask=mask_m[:, None] & mask_d[None, :], other=0.0)
        if OWN:
            # the image's own P tokens: contiguous rows of this row b
            m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
            l_i = tl.zeros([BLOCK_M], tl.float32)
            acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
            for start in range(0, P, BLOCK_N):
                offs_n = start + tl.arange(0, BLOCK_N)
                if EVEN_P:
                    kv_mask = mask_d[None, :]
                else:
                    kv_mask = (offs_n < P)[:, None] & mask_d[None, :]
                k = tl.load(K + b * stride_kb + offs_n[:, None] * stride_kp + col[None, :], mask=kv_mask, other=0.0)
                v = tl.load(V + b * stride_vb + offs_n[:, None] * stride_vp + col[None, :], mask=kv_mask, other=0.0)
                s = tl.dot(q, tl.trans(k)) * qk_scale
                if not EVEN_P:
                    s = tl.where((offs_n < P)[None, :], s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                alpha = tl.exp2(m_i - m_new)
                p = tl.exp2(s - m_new[:, None])
                l_i = l_i * alpha + tl.sum(p, 1)
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
                m_i = m_new
        else:
            # continue from the own-token attention: output O1 = sum(p v) / sum(p) and its natural log-sum-exp, so
            # in the kernel's base-2 running state m = lse * log2(e), l = 1, acc = O1
            lse = tl.load(LSE + b * stride_lb + h * stride_lh + offs_m * stride_lp, mask=mask_m, other=0.0)
            m_i = lse.to(tl.float32) * 1.4426950408889634
            l_i = tl.full([BLOCK_M], 1.0, tl.float32)
            acc = tl.load(O1 + b * stride_1b + h * stride_1h + offs_m[:, None] * stride_1p + offs_d[None, :],
                          mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(tl.float32)
        # the source tokens: entry i of the image's table row is a flat index t of this half, that is
        # row half * N + t // P, position t % P
        n_shared = tl.load(LEN + img)
        for start in range(0, n_shared, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            mask_n = offs_n < n_shared
            t = tl.load(IDX + img * stride_idx + offs_n, mask=mask_n, other=0)
            row = half * n_images + t // P
            pos = t % P
            kv_mask = mask_n[:, None] & mask_d[None, :]
            k = tl.load(K + row[:, None] * stride_kb + pos[:, None] * stride_kp + col[None, :], mask=kv_mask,
                        other=0.0)
            v = tl.load(V + row[:, None] * stride_vb + pos[:, None] * stride_vp + col[None, :], mask=kv_mask,
                        other=0.0)
            s = tl.dot(q, tl.trans(k)) * qk_scale
            s = tl.where(mask_n[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        acc = acc / l_i[:, None]
        tl.store(O + b * stride_ob + offs_m[:, None] * stride_op + col[None, :], acc.to(O.dtype.element_ty),
                 mask=mask_m[:, None] & mask_d[None, :])

    return kernel


def own_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                  scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's attention over its own P tokens: (B, P, H*D) → output (B, H, P, D) and natural log-sum-exp of the
    scaled logits (B, H, P) float32. On CUDA by cuDNN's attention (else flash attention), which return the
    log-sum-exp at no extra cost; elsewhere (Triton's interpreter in tests) in plain float32 arithmetic."""
    b, p, inner = q.shape
    d = inner // heads
    scale = scale if scale is not None else d ** -0.5
    q4, k4, v4 = (t.view(b, p, heads, d).transpose(1, 2) for t in (q, k, v))
    if q.is_cuda:
        out = None
        if torch.backends.cuda.cudnn_sdp_enabled():
            try:
                out = torch.ops.aten._scaled_dot_product_cudnn_attention(q4, k4, v4, None, True, scale=scale)
            except RuntimeError:
                out = None
        if out is None:
            out = torch.ops.aten._scaled_dot_product_flash_attention(q4, k4, v4, scale=scale)
        o, lse = out[0], out[1]
    else:
        s = (q4.float() @ k4.float().transpose(-1, -2)) * scale
        lse = torch.logsumexp(s, -1)
        o = (torch.softmax(s, -1) @ v4.float()).to(q.dtype)
    if lse.numel() != b * heads * p:
        raise RuntimeError(f"own_attention: log-sum-exp of shape {tuple(lse.shape)} for {b}x{heads}x{p} rows")
    return o, lse.reshape(b, heads, p)


def gathered_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, n_images: int,
                       table: torch.Tensor, lengths: torch.Tensor, scale: float | None = None,
                       own: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(B, P, H*D) queries, keys and values → (B, P, H*D): each row attends to its own P tokens and to the
    ``table`` tokens of its image (see the module's docstring). ``scale`` defaults to 1/sqrt(D), as SDPA's. ``own``:
    ``own_attention``'s result for these rows, to start from (the kernel then reads only the source tokens)."""
    triton, _ = _triton()
    b, p, inner = q.shape
    d = inner // heads
    if b % n_images or k.shape != q.shape or v.shape != q.shape or d * heads != inner:
        raise ValueError(f"gathered_attention: shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                         f"do not fit {n_images} images of {heads} heads")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty(b, p, inner, device=q.device, dtype=q.dtype)
    scale = scale if scale is not None else d ** -0.5
    block_d = max(16, triton.next_power_of_2(d))
    if own is None:
        o1, lse = q, q   # not read
        o1_strides, lse_strides = (0, 0, 0), (0, 0, 0)
    else:
        o1, lse = own
        if o1.shape != (b, heads, p, d) or lse.shape != (b, heads, p):
            raise ValueError(f"gathered_attention: own-token result {tuple(o1.shape)}, {tuple(lse.shape)} for "
                             f"{b}x{heads}x{p}x{d}")
        o1 = o1 if o1.stride(-1) == 1 else o1.contiguous()
        o1_strides, lse_strides = o1.stride()[:3], lse.stride()

    def grid(meta):
        return (triton.cdiv(p, meta["BLOCK_M"]), b * heads)

    _kernel()[grid](q, k, v, out, table, lengths, o1, lse, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                    v.stride(0), v.stride(1), out.stride(0), out.stride(1), table.stride(0), *o1_strides,
                    *lse_strides, n_images, p, heads, d, scale * _LOG2E, OWN=own is None, BLOCK_D=block_d)
    return out


def try_gathered_attention(q, k, v, heads, n_images, table, lengths, scale=None) -> torch.Tensor | None:
    """The shared attention of a layer (two calls where ``HYBRID``, else one), or None when the kernel cannot be
    built or run here (a Triton or driver mismatch): then it is switched off for the session, with one warning, and
    callers take the portable path. The first two-call result of a process is compared with the one-call kernel; if
    they disagree the two-call form is switched off, with a warning."""
    global ENABLED, HYBRID, _checked
    try:
        if not HYBRID or q.shape[1] < HYBRID_MIN_TOKENS:
            return gathered_attention(q, k, v, heads, n_images, table, lengths, scale)
        try:
            own = own_attention(q, k, v, heads, scale)
        except RuntimeError as exc:
            HYBRID = False
            log.warning("shared attention: the own-token attention with its log-sum-exp failed (%s); using one "
                        "kernel call", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return gathered_attention(q, k, v, heads, n_images, table, lengths, scale)
        out = gathered_attention(q, k, v, heads, n_images, table, lengths, scale, own=own)
        if not _checked:
            _checked = True
            one = gathered_attention(q, k, v, heads, n_images, table, lengths, scale)
            worst = (out.float() - one.float()).abs().max().item()
            if not worst <= 1e-2 * max(one.float().abs().max().item(), 1.0):
                HYBRID = False
                log.warning("shared attention: the two-call form differs from the one-call kernel by %.3g; using "
                            "one kernel call", worst)
                return one
        return out
    except Exception as exc:  # noqa: BLE001 - any compiler or launch failure means: use the portable path
        ENABLED = False
        log.warning("shared attention: the one-call kernel failed (%s: %s); using one SDPA call per key group",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
