"""The anchor cache of a saved identity: what later panels need from its anchors, recorded once.

Recorded while the identity's anchors are generated alone (``AnchorRecorder`` passed as ``bank`` to
``generate_consistent``), per run (1, 2), step and decoder self-attention layer:

* ``tokens``: the anchors' normed input tokens at their *dropped* subject patches, both CFG halves, (H, n, C) —
  exactly the keys/values a panel in the same batch would have read (projected by the layer's own to_k/to_v at
  replay, so one tensor is stored instead of two);
* ``outputs``: at the injection layers and steps of run 2, the anchors' conditional self-attention output before
  injection (A·P, C) — the values feature injection copies;
* the anchors' smoothed DIFT features (C, A·P) and per-subject run-1 masks (S, A·P) at the fine grid.

Replayed by ``IdentityBank`` for a batch of panels (``anchors=0``): every panel reads the cached tokens of every
identity it names, and injects from that identity's anchors only inside that identity's subject masks. The panel
then equals the same panel generated in the original batch (up to batch-size float noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["AnchorCache", "AnchorRecorder", "IdentityBank"]


@dataclass
class AnchorCache:
    subjects: tuple[str, ...]
    n_anchors: int
    n_steps: int
    tokens: dict[tuple[str, int, int], torch.Tensor] = field(default_factory=dict)   # (layer, run, step)
    outputs: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)       # (layer, step), run 2
    dift: torch.Tensor | None = None        # (C, Q) Q = A * P_fine
    masks: torch.Tensor | None = None       # (S, Q) bool
    owner: torch.Tensor | None = None       # (Q,) anchor index of each pool patch
    selection: dict[tuple[int, int, int], torch.Tensor] = field(default_factory=dict)  # (run, step, factor) ->
    # (S, A, P) bool: the dropped subject patches whose tokens were kept (in memory only, for inspection)
    offloaded: bool = False                 # tokens/outputs live in host memory, copied per layer on use

    def nbytes(self) -> int:
        total = sum(t.numel() * t.element_size() for t in self.tokens.values())
        total += sum(t.numel() * t.element_size() for t in self.outputs.values())
        for t in (self.dift, self.masks, self.owner):
            if t is not None:
                total += t.numel() * t.element_size()
        return total

    def to(self, device) -> "AnchorCache":
        mv = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return AnchorCache(self.subjects, self.n_anchors, self.n_steps, mv(self.tokens), mv(self.outputs),
                           None if self.dift is None else self.dift.to(device),
                           None if self.masks is None else self.masks.to(device),
                           None if self.owner is None else self.owner.to(device))


class AnchorRecorder:
    """Passed as ``bank`` while the anchors run alone: stores, provides nothing."""

    recording = True

    def __init__(self, subjects: tuple[str, ...]):
        self.cache: AnchorCache | None = None
        self.subjects = tuple(subjects)

    def attach(self, state) -> None:
        self.cache = AnchorCache(self.subjects, state.n_images, state.n_steps)

    def active(self, state) -> bool:
        return False

    def store(self, layer: str, st, x: torch.Tensor, out: torch.Tensor, *, sharing: bool, injecting: bool) -> None:
        n = st.n_images
        p = x.shape[1]
        if sharing:
            factor = st.factor_of(p)
            sel = st.dropped[factor].any(0).reshape(n * p)
            self.cache.selection.setdefault((st.run, st.step, factor), st.dropped[factor].detach().cpu())
            halves = x.shape[0] // n
            self.cache.tokens[(layer, st.run, st.step)] = x.reshape(halves, n * p, -1)[:, sel].detach().clone()
        if injecting and st.run == 2:
            h0 = n if st.do_cfg else 0
            self.cache.outputs[(layer, st.step)] = out[h0:h0 + n].reshape(n * p, -1).detach().clone()

    def injection_sources(self, layer, state):
        return None

    def extend_pool(self, feats, owner, masks, sources):
        self.cache.dift, self.cache.owner, self.cache.masks = feats.detach().clone(), owner.clone(), masks.clone()
        return feats, owner, masks, sources


class IdentityBank:
    """Replays one or more anchor caches for a batch of panels that names their subjects."""

    recording = False

    def __init__(self, caches: list[AnchorCache], subjects: tuple[str, ...]):
        self.caches = caches
        self.subjects = tuple(subjects)
        self.owner_of: dict[str, int] = {}
        for k, cache in enumerate(caches):
            for s in cache.subjects:
                self.owner_of[s] = k
        missing = [s for s in self.subjects if s not in self.owner_of]
        if missing:
            raise ValueError(f"no saved identity provides the subject(s) {missing}")
        self.state = None

    def attach(self, state) -> None:
        self.state = state
        for cache in self.caches:
            if cache.n_steps != state.n_steps:
                raise ValueError(f"identity made with {cache.n_steps} steps, panel uses {state.n_steps}")

    def active(self, state) -> bool:
        return state.phase == "main" and state.step >= 1 and state.config.share

    def keys_values(self, attn, layer: str, st, factor: int):
        parts = [c.tokens.get((layer, st.run, st.step)) for c in self.caches]
        parts = [t for t in parts if t is not None and t.shape[1]]
        if not parts:
            return None, None, None
        weight = attn.to_k.weight
        parts = [t.to(weight.device, non_blocking=True) for t in parts]   # offloaded caches live in host memory
        tokens = torch.cat(parts, 1).to(weight.dtype)
        halves = tokens.shape[0]
        if halves != (2 if st.do_cfg else 1):
            raise ValueError("the identity was made with a different guidance setting")
        k, v = attn.to_k(tokens), attn.to_v(tokens)
        every = torch.arange(tokens.shape[1], device=tokens.device)
        return k, v, [every] * st.n_images

    def injection_sources(self, layer: str, st):
        parts = [c.outputs.get((layer, st.step)) for c in self.caches]
        if any(p is None for p in parts):
            return None
        return torch.cat([p.to(st.device, non_blocking=True) for p in parts], 0)

    def extend_pool(self, feats, owner, masks, sources):
        """Append every identity's anchors to the injection pool; subject s reads only its owner's anchors."""
        s_count, n, m = sources.shape
        feats_l, owner_l, masks_l = [feats], [owner], [masks]
        ext_sources = []
        offset = m
        for k, cache in enumerate(self.caches):
            q = cache.dift.shape[1]
            feats_l.append(cache.dift.to(feats.device, feats.dtype))
            owner_l.append(cache.owner.to(owner.device) + offset)
            own = torch.zeros(s_count, q, dtype=torch.bool, device=masks.device)
            src = torch.zeros(s_count, n, cache.n_anchors, dtype=torch.bool, device=sources.device)
            for si, subject in enumerate(self.subjects):
                if self.owner_of[subject] == k:
                    own[si] = cache.masks[cache.subjects.index(subject)].to(masks.device)
                    src[si] = True
            masks_l.append(own)
            ext_sources.append(src)
            offset += cache.n_anchors
        return (torch.cat(feats_l, 1), torch.cat(owner_l), torch.cat(masks_l, 1),
                torch.cat([sources] + ext_sources, 2))
