"""Shared self-attention in one kernel call per layer: each image's queries attend to its own P tokens and then to
its gathered source tokens, read straight from the layer's keys and values through an index table.

The portable path (``sdsa_processor.SelfAttentionProcessor._shared_attention``) makes one SDPA call per key group,
each with a gather, a query copy and an output copy; on an SDXL pass that is about 110 calls with small shapes whose
key count changes every step. This Triton kernel (flash-attention's online softmax, forward only) does all rows of a
layer at once, needs no copy of the keys and writes the output in the layout the layer's output projection reads.
It is used on CUDA for fp16/bf16 when Triton is importable; elsewhere the portable path runs (same mathematics; the
results agree to rounding, tests/engine/test_gathered_attention.py).

Layouts: ``q``, ``k``, ``v`` and the output are (B, P, H*D) with B = halves * N rows (``[uncond; cond]``); row
``half * N + i`` is image i. ``table`` (N, Lmax) int32 holds, per image, the flat (N*P) token indices of the source
patches it reads within its own half (``RunState.key_index``, built by ``RunState._table``), padded; ``lengths``
(N,) int32 how many are real.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

__all__ = ["ENABLED", "available", "gathered_attention", "try_gathered_attention"]

log = logging.getLogger(__name__)

ENABLED = True   # benchmarks switch the kernel off to time the portable path


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
        for bm, bn, w, s in [(128, 64, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4)]]

    @triton.autotune(configs=configs, key=["P", "BLOCK_D"])
    @triton.jit
    def kernel(Q, K, V, O, IDX, LEN, stride_qb, stride_qp, stride_kb, stride_kp, stride_vb, stride_vp, stride_ob,
               stride_op, stride_idx, n_images, P, H, D, qk_scale,
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
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        # key j < P is the image's own token j; key P + i is the source token IDX[img, i], a flat index t of this
        # half: row half * N + t // P, position t % P
        total = P + tl.load(LEN + img)
        for start in range(0, total, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            own = offs_n < P
            mask_n = offs_n < total
            t = tl.load(IDX + img * stride_idx + (offs_n - P), mask=mask_n & ~own, other=0)
            row = tl.where(own, b, half * n_images + t // P)
            pos = tl.where(own, offs_n, t % P)
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


def gathered_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, n_images: int,
                       table: torch.Tensor, lengths: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """(B, P, H*D) queries, keys and values → (B, P, H*D): each row attends to its own P tokens and to the
    ``table`` tokens of its image (see the module's docstring). ``scale`` defaults to 1/sqrt(D), as SDPA's."""
    triton, _ = _triton()
    b, p, inner = q.shape
    d = inner // heads
    if b % n_images or k.shape != q.shape or v.shape != q.shape or d * heads != inner:
        raise ValueError(f"gathered_attention: shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                         f"do not fit {n_images} images of {heads} heads")
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = torch.empty(b, p, inner, device=q.device, dtype=q.dtype)
    qk_scale = (scale if scale is not None else d ** -0.5) * 1.4426950408889634   # exp2 in the kernel
    block_d = max(16, triton.next_power_of_2(d))

    def grid(meta):
        return (triton.cdiv(p, meta["BLOCK_M"]), b * heads)

    _kernel()[grid](q, k, v, out, table, lengths, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0),
                    v.stride(1), out.stride(0), out.stride(1), table.stride(0), n_images, p, heads, d, qk_scale,
                    BLOCK_D=block_d)
    return out


def try_gathered_attention(*args, **kwargs) -> torch.Tensor | None:
    """``gathered_attention``, or None when the kernel cannot be built or run here (a Triton or driver mismatch):
    then it is switched off for the session, with one warning, and callers take the portable path."""
    global ENABLED
    try:
        return gathered_attention(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any compiler or launch failure means: use the portable path
        ENABLED = False
        log.warning("shared attention: the one-call kernel failed (%s: %s); using one SDPA call per key group",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
