"""Correspondence-based feature injection: DIFT features, nearest-neighbour maps, the Otsu distance threshold and
the blend of self-attention outputs.

Run 1 captures DIFT-style features (the output of the decoder block at the coarse resolution, after its upsampler,
conditional half) at the step whose timestep first reaches ``dift_timestep``; they are smoothed by a 3x3 Gaussian
(σ = 1). For every target image i and patch p, the nearest source patch (cosine distance) is searched among the
subject patches of the sources i may read; the best source per patch wins; an Otsu threshold over those best
distances keeps only confident matches, and only inside i's own subject mask. In run 2, on the injection steps and
fine-resolution self-attention layers, the conditional half's output becomes α·source + (1-α)·own at those patches.
Sources are read from a copy of the outputs taken before any injection (order-independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .otsu import otsu_threshold

__all__ = ["smooth_features", "InjectionPlan", "plan_injection", "DiftCapture"]


def smooth_features(feats: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Depthwise 3x3 Gaussian blur (normalised kernel, zero padding) of (N, C, h, w) features."""
    ax = torch.tensor([-1.0, 0.0, 1.0], device=feats.device)
    k1 = torch.exp(-(ax ** 2) / (2 * sigma ** 2))
    k2 = torch.outer(k1, k1)
    k2 = (k2 / k2.sum()).to(feats.dtype)
    c = feats.shape[1]
    return F.conv2d(feats, k2.expand(c, 1, 3, 3).contiguous(), padding=1, groups=c)


@dataclass
class InjectionPlan:
    """Flat lists of injected patches: target (image, patch) ← source (pool image, patch); pool = batch images
    followed by external (identity) sources."""

    tgt_img: torch.Tensor
    tgt_patch: torch.Tensor
    src_img: torch.Tensor
    src_patch: torch.Tensor
    alpha: float
    n_patches: int
    best_dist: torch.Tensor  # (N, P) best distance per target patch (+inf where no source)
    selected: torch.Tensor   # (N, P) bool, injected patches

    def apply(self, out: torch.Tensor, layer: str, state) -> torch.Tensor:
        """Blend the conditional half of one fine layer's output ``out`` (B, P, C)."""
        n = state.n_images
        if self.tgt_img.numel() == 0 or out.shape[1] != self.n_patches:
            return out
        h0 = n if state.do_cfg else 0
        cond = out[h0:h0 + n]
        pool = cond.reshape(n * self.n_patches, -1)
        if state.external is not None:
            ext = state.external.injection_sources(layer, state)
            if ext is not None:
                pool = torch.cat([pool, ext.reshape(-1, pool.shape[-1]).to(pool.dtype)], 0)
        src = pool[self.src_img * self.n_patches + self.src_patch]
        rows = h0 + self.tgt_img
        new = out.clone()
        new[rows, self.tgt_patch] = self.alpha * src + (1.0 - self.alpha) * out[rows, self.tgt_patch]
        return new


def plan_injection(features: torch.Tensor, source_masks: torch.Tensor, target_masks: torch.Tensor,
                   sources: torch.Tensor, alpha: float) -> InjectionPlan:
    """Nearest-neighbour correspondences and the injected patch set.

    features: (M, C, h, w) smoothed DIFT features of the pool (M ≥ N: batch images then external sources).
    source_masks: (S, M, P) bool subject masks of the pool at the fine grid (run-1 final masks).
    target_masks: (N, P) bool masks of the targets (union over subjects, undropped).
    sources: (S, N, M) bool, who may read whom per subject (diagonal false).
    """
    m, c, h, w = features.shape
    p = h * w
    n = target_masks.shape[0]
    feats = F.normalize(features.float().reshape(m, c, p), dim=1)          # (M, C, P)
    allowed = (sources.unsqueeze(-1) & source_masks.unsqueeze(1)).any(0)   # (N, M, P)
    pool = feats.permute(1, 0, 2).reshape(c, m * p)                        # (C, M*P)
    best = torch.full((n, p), float("inf"), device=features.device)
    arg = torch.zeros((n, p), dtype=torch.long, device=features.device)
    for i in range(n):
        ok = allowed[i].reshape(m * p)
        if not ok.any():
            continue
        dist = 1.0 - feats[i].transpose(0, 1) @ pool                      # (P, M*P)
        dist = dist.masked_fill(~ok.unsqueeze(0), float("inf"))
        best[i], arg[i] = dist.min(1)
    valid = torch.isfinite(best)
    thr = otsu_threshold(best, valid=valid)
    selected = target_masks & valid & (best < thr.unsqueeze(1))
    tgt_img, tgt_patch = selected.nonzero(as_tuple=True)
    flat = arg[tgt_img, tgt_patch]
    return InjectionPlan(tgt_img, tgt_patch, flat // p, flat % p, alpha, p, best, selected)


class DiftCapture:
    """Forward hook on the DIFT block: keeps the conditional half's output at one step of run 1."""

    def __init__(self, state, step: int):
        self.state = state
        self.step = step
        self.features: torch.Tensor | None = None

    def __call__(self, module, inputs, output):
        st = self.state
        if st.phase != "main" or st.run != 1 or st.step != self.step:
            return None
        out = output[0] if isinstance(output, (tuple, list)) else output
        n = st.n_images
        cond = out[n:2 * n] if st.do_cfg else out[:n]
        self.features = smooth_features(cond.detach().float())
        return None
