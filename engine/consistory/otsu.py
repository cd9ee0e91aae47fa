"""Otsu's threshold in torch, batched and on the device (no CPU round trip per step).

Same algorithm as scikit-image's ``threshold_otsu`` (256-bin histogram over [min, max], threshold = the centre of
the bin that maximises the between-class variance); masks are ``x > threshold``.
"""

from __future__ import annotations

import torch

__all__ = ["otsu_threshold", "otsu_mask"]


def otsu_threshold(values: torch.Tensor, bins: int = 256, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row Otsu threshold of ``values`` (B, P) → (B,). ``valid`` (B, P) bool excludes entries (e.g. +inf).

    A row with no spread (max == min) gets +inf, so ``x > threshold`` selects nothing there.
    """
    if values.device.type == "mps":  # no float64 there: the histogram is small, so it runs on the CPU
        cpu_valid = None if valid is None else valid.cpu()
        return otsu_threshold(values.detach().cpu(), bins, cpu_valid).to(values.device)
    x = values.detach().float()
    if valid is None:
        valid = torch.isfinite(x)
    big = torch.finfo(torch.float32).max
    lo = torch.where(valid, x, torch.full_like(x, big)).amin(dim=1, keepdim=True)
    hi = torch.where(valid, x, torch.full_like(x, -big)).amax(dim=1, keepdim=True)
    span = hi - lo
    flat = span.squeeze(1) <= 1e-12 * hi.abs().squeeze(1).clamp_min(1e-30)
    width = torch.where(span > 0, span / bins, torch.ones_like(span))
    idx = ((x - lo) / width).floor().clamp(0, bins - 1).long()
    idx = torch.where(valid, idx, torch.zeros_like(idx))
    hist = torch.zeros(x.shape[0], bins, device=x.device, dtype=torch.float64)
    hist.scatter_add_(1, idx, valid.to(torch.float64))
    centers = (lo.double() + width.double() * (torch.arange(bins, device=x.device, dtype=torch.float64) + 0.5))
    w1 = hist.cumsum(1)
    w2 = hist.flip(1).cumsum(1).flip(1)
    m1 = (hist * centers).cumsum(1) / w1.clamp_min(1e-300)
    m2 = ((hist * centers).flip(1).cumsum(1) / w2.flip(1).clamp_min(1e-300)).flip(1)
    var12 = w1[:, :-1] * w2[:, 1:] * (m1[:, :-1] - m2[:, 1:]) ** 2
    best = var12.argmax(dim=1, keepdim=True)
    thr = centers[:, :-1].gather(1, best).squeeze(1).float()
    return torch.where(flat | ~valid.any(1), torch.full_like(thr, float("inf")), thr)


def otsu_mask(values: torch.Tensor) -> torch.Tensor:
    """(B, P) → bool (B, P): entries above their row's Otsu threshold."""
    return values > otsu_threshold(values).unsqueeze(1)
