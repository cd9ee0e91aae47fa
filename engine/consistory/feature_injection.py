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

__all__ = ["smooth_features", "InjectionPlan", "batch_pool", "plan_injection", "DiftCapture", "DiftCaptured"]


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
    """Flat lists of injected patches: target (image, patch) ← source patch ``src_flat`` of the *pool*.

    The pool is the batch's images in order (N·P patches) followed by external sources (a saved identity's
    anchors, any grid size), flattened patch by patch; ``src_owner`` is the pool image of each source patch.
    """

    tgt_img: torch.Tensor
    tgt_patch: torch.Tensor
    src_flat: torch.Tensor
    src_owner: torch.Tensor
    alpha: float
    n_patches: int
    best_dist: torch.Tensor  # (N, P) best distance per target patch (+inf where no source)
    selected: torch.Tensor   # (N, P) bool, injected patches

    def apply(self, out: torch.Tensor, layer: str, state) -> torch.Tensor:
        """Blend the conditional half of one fine layer's output ``out`` (B, P, C); sources are read from the
        pre-injection outputs."""
        n = state.n_images
        if self.tgt_img.numel() == 0 or out.shape[1] != self.n_patches:
            return out
        h0 = n if state.do_cfg else 0
        pool = out[h0:h0 + n].reshape(n * self.n_patches, -1)
        if state.external is not None:
            ext = state.external.injection_sources(layer, state)
            if ext is not None:
                pool = torch.cat([pool, ext.to(pool.dtype)], 0)
        src = pool[self.src_flat]
        rows = h0 + self.tgt_img
        new = out.clone()
        new[rows, self.tgt_patch] = self.alpha * src + (1.0 - self.alpha) * out[rows, self.tgt_patch]
        return new


def batch_pool(features: torch.Tensor, masks: torch.Tensor):
    """The batch as an injection pool: (C, N·P) features, (N·P,) owners, (S, N·P) subject masks."""
    n, c, h, w = features.shape
    feats = features.reshape(n, c, h * w).permute(1, 0, 2).reshape(c, n * h * w)
    owner = torch.arange(n, device=features.device).repeat_interleave(h * w)
    return feats, owner, masks.reshape(masks.shape[0], n * h * w)


def plan_injection(target_feats: torch.Tensor, target_masks: torch.Tensor, pool_feats: torch.Tensor,
                   pool_owner: torch.Tensor, pool_masks: torch.Tensor, sources: torch.Tensor,
                   alpha: float) -> InjectionPlan:
    """Nearest-neighbour correspondences and the injected patch set.

    target_feats: (N, C, h, w) smoothed DIFT features of the batch; target_masks: (S, N, P) their per-subject
    masks (undropped). pool_feats (C, Q), pool_owner (Q,), pool_masks (S, Q): the candidate source patches (see
    ``batch_pool``). sources: (S, N, M) bool, who may read which pool image per subject.
    A target patch inside subject s's mask only matches source patches of subject s from images it may read for
    s (so two characters never borrow from each other's anchors); background patches use the union, which only
    matters for the Otsu threshold (computed over all patches, as in the method).
    """
    n, c, h, w = target_feats.shape
    p = h * w
    tf = F.normalize(target_feats.float().reshape(n, c, p), dim=1)
    pf = F.normalize(pool_feats.float(), dim=0)
    # per subject: allowed[s, i, q] = sources[s, i, owner[q]] & pool_masks[s, q]
    allowed = sources[:, :, pool_owner] & pool_masks.unsqueeze(1)
    best = torch.full((n, p), float("inf"), device=target_feats.device)
    arg = torch.zeros((n, p), dtype=torch.long, device=target_feats.device)
    for i in range(n):
        a_s = allowed[:, i]                                   # (S, Q)
        if not a_s.any():
            continue
        t_s = target_masks[:, i]                              # (S, P)
        rows = (t_s.transpose(0, 1).float() @ a_s.float()) > 0   # (P, Q) subject rows: their own subjects' sources
        background = ~t_s.any(0)
        ok = torch.where(background.unsqueeze(1), a_s.any(0).unsqueeze(0), rows)
        dist = (1.0 - tf[i].transpose(0, 1) @ pf).masked_fill(~ok, float("inf"))  # (P, Q)
        best[i], arg[i] = dist.min(1)
    valid = torch.isfinite(best)
    thr = otsu_threshold(best, valid=valid)
    selected = target_masks.any(0) & valid & (best < thr.unsqueeze(1))
    tgt_img, tgt_patch = selected.nonzero(as_tuple=True)
    flat = arg[tgt_img, tgt_patch]
    return InjectionPlan(tgt_img, tgt_patch, flat, pool_owner[flat], alpha, p, best, selected)


class DiftCaptured(Exception):
    """Raised by ``DiftCapture`` to end run 1's last UNet pass as soon as the features are taken: nothing after
    the DIFT block is needed there (the coarse cross-attention layers that feed the masks come before it)."""


class DiftCapture:
    """Forward hook on the DIFT block: keeps the conditional half's output at one step of run 1.

    With ``stop=True`` the pass ends right after the capture (``DiftCaptured``), when that step is run 1's last.
    """

    def __init__(self, state, step: int, *, stop: bool = False):
        self.state = state
        self.step = step
        self.stop = stop
        self.features: torch.Tensor | None = None

    def __call__(self, module, inputs, output):
        st = self.state
        if st.phase != "main" or st.run != 1 or st.step != self.step:
            return None
        out = output[0] if isinstance(output, (tuple, list)) else output
        n = st.n_images
        cond = out[n:2 * n] if st.do_cfg else out[:n]
        self.features = smooth_features(cond.detach().float())
        if self.stop:
            raise DiftCaptured()
        return None
