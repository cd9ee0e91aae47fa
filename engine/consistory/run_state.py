"""The per-run state every ConsiStory processor reads: step, phase, subject masks, dropout, key indices, caches.

The driver (``pipeline.py``) owns one ``RunState`` per set; processors hold a reference to it and never rely on
``cross_attention_kwargs``. Shapes: N images, S subjects, a layer grid of P = h*w patches at a given factor.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F

from .config import ConsistoryConfig
from .otsu import otsu_mask
from .unet_layers import UNetLayout

__all__ = ["RunState", "dropout_keep", "source_matrix"]


def _seed_of(*parts: int) -> int:
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def dropout_keep(seed: int, image: int, step: int, grid: tuple[int, int], p: float) -> torch.Tensor:
    """Bool (h*w,) of patches kept by attention dropout for one source image at one step and resolution.

    Drawn from a CPU generator seeded by (seed, image, step, h, w) only, so an anchor's draws never depend on the
    rest of the batch and a saved identity re-creates them exactly.
    """
    g = torch.Generator("cpu").manual_seed(_seed_of(seed, image, step, grid[0], grid[1]))
    return torch.rand(grid[0] * grid[1], generator=g) >= p


def source_matrix(n_images: int, anchors: int) -> torch.Tensor:
    """G (N, N) bool: G[i, j] = image i may read subject patches of image j (j != i): anchors only."""
    g = torch.zeros(n_images, n_images, dtype=torch.bool)
    g[:, :anchors] = True
    g.fill_diagonal_(False)
    return g


@dataclass
class RunState:
    config: ConsistoryConfig
    layout: UNetLayout
    n_images: int
    seeds: tuple[int, ...]
    latent_hw: tuple[int, int]
    n_steps: int
    do_cfg: bool
    token_weights: torch.Tensor           # (S, N, T) averaging weights over each subject's token positions; (S, N, C)
    # over the token columns ``token_cols`` when those are given (the only columns any subject reads)
    sources: torch.Tensor                 # (S, N, N) bool: per subject, who reads whom
    device: torch.device
    step: int = 0
    phase: str = "main"                   # "main" | "vanilla"
    dual: bool = False                    # this main pass carries a vanilla copy through the decoder
    run: int = 1
    share_on: bool = True
    inject_on: bool = False
    window: deque = field(default_factory=deque)
    acc_sum: torch.Tensor | None = None   # (N, S, Pc) this step's summed maps
    acc_count: int = 0
    masks: dict[int, torch.Tensor] = field(default_factory=dict)      # factor -> (S, N, P) bool, undropped
    key_index: dict[int, list[torch.Tensor] | None] = field(default_factory=dict)  # factor -> per image flat
    # (N*P) idx; None: not built this step (``tables_only``)
    key_groups: dict[int, list[tuple[list[int], torch.Tensor]]] = field(default_factory=dict)  # factor ->
    # (images, flat idx): images that read exactly the same patches, attended to in one call
    dropped: dict[int, torch.Tensor] = field(default_factory=dict)  # factor -> (S, N, P) masks after dropout
    keep_tables: dict[int, torch.Tensor] = field(default_factory=dict)  # factor -> (steps, N, P) dropout draws
    q_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    injection: object | None = None       # feature_injection.InjectionPlan during run 2
    dift: torch.Tensor | None = None      # (N, C, hf, wf) smoothed features captured in run 1
    record: dict[str, object] = field(default_factory=dict)  # optional probes for tests/debugging
    external: object | None = None        # identity bank (anchors outside the batch), see identity_bank.py
    mask_last: int | None = None          # the last step whose masks are used when no image of the batch is read
    gathers: dict[tuple, tuple] = field(default_factory=dict)  # (factor, images) -> (index, gather), this step
    tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # P (tokens per image)
    # -> (N, Lmax) int32 padded key_index and (N,) lengths, for the one-call kernel (gathered_attention.py)
    token_cols: torch.Tensor | None = None  # (C,) long: the prompt columns ``token_weights`` covers (None: all)
    tables_only: bool = False             # the kernel serves: build ``tables`` without a host wait; the per-image
    # index lists and groups (the grouped SDPA calls) only when asked for (``groups``)

    # -- schedule -------------------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows of one copy of the batch in a UNet pass (2N with CFG)."""
        return 2 * self.n_images if self.do_cfg else self.n_images

    @property
    def n_subjects(self) -> int:
        return self.token_weights.shape[0]

    def grid(self, factor: int) -> tuple[int, int]:
        return self.layout.grid(factor, self.latent_hw)

    def factor_of(self, n_tokens: int) -> int:
        h, w = self.latent_hw
        f = round(((h * w) / n_tokens) ** 0.5)
        if (h // f) * (w // f) != n_tokens:
            raise RuntimeError(f"cannot place {n_tokens} tokens on the latent grid {h}x{w}")
        return f

    def nu(self) -> float | None:
        """Query-blending strength at this step, or None when blending is off here."""
        c = self.config
        if not (c.query_blend and self.share_on and c.share) or self.step < 1:
            return None
        if self.step > int(self.n_steps * c.query_blend_until):
            return None
        return c.nu_start - (c.nu_start - c.nu_floor) * self.step / max(self.n_steps - 1, 1)

    def sharing(self) -> bool:
        return self.phase == "main" and self.config.share and self.share_on and self.step >= 1 and bool(self.key_index)

    def injecting(self) -> bool:
        return self.phase == "main" and self.inject_on and self.injection is not None and self.step in inject_steps(
            self.config, self.n_steps)

    @cached_property
    def reads_any(self) -> bool:
        """True when some image of the batch is read: by another one, or by later panels (an identity's anchors
        being recorded). False for panels against saved identities."""
        recording = self.external is not None and getattr(self.external, "recording", False)
        return recording or bool(self.sources.any())

    def records_maps(self) -> bool:
        """Whether this main pass must record subject maps. When no image of the batch is read by another, masks
        only serve at ``mask_last`` (injection targets, the masks shown to the user), so only the window of steps
        that ends there is recorded; the masks there are the same as if every step had been."""
        if self.phase != "main":
            return False
        if self.reads_any or self.mask_last is None:
            return True
        return self.run == 1 and self.mask_last - self.config.mask_window < self.step <= self.mask_last

    # -- attention store ------------------------------------------------------------------------------------
    def add_maps(self, maps: torch.Tensor) -> None:
        """Add one coarse cross-attention layer's subject maps (N, S, Pc), conditional half, head-averaged."""
        maps = maps.float()
        self.acc_sum = maps if self.acc_sum is None else self.acc_sum + maps
        self.acc_count += 1

    def end_step(self) -> None:
        """After ``scheduler.step``: push this step's layer mean into the window and rebuild the masks."""
        if self.acc_sum is None:
            return
        self.window.append(self.acc_sum / self.acc_count)
        while len(self.window) > self.config.mask_window:
            self.window.popleft()
        self.acc_sum, self.acc_count = None, 0
        self.masks = self.build_masks(torch.stack(list(self.window)).mean(0))

    def build_masks(self, agg: torch.Tensor) -> dict[int, torch.Tensor]:
        """(N, S, Pc) aggregated maps → {factor: (S, N, P) bool} by Otsu per image and subject at every decoder
        resolution (bilinear upsampling of the coarse map first)."""
        n, s, _ = agg.shape
        hc, wc = self.grid(self.layout.coarse)
        coarse = agg.reshape(n * s, 1, hc, wc)
        out: dict[int, torch.Tensor] = {}
        for factor in sorted(set(self.layout.decoder_factors) | {self.layout.fine}, reverse=True):
            h, w = self.grid(factor)
            maps = coarse if (h, w) == (hc, wc) else F.interpolate(coarse, size=(h, w), mode="bilinear",
                                                                     align_corners=False)
            mask = otsu_mask(maps.reshape(n * s, h * w)).reshape(n, s, h * w)
            out[factor] = mask.transpose(0, 1).contiguous()
        return out

    def begin_step(self, step: int) -> None:
        """Before the UNet passes of ``step``: draw dropout and build each image's shared-key indices."""
        self.step = step
        self.key_index = {}
        self.key_groups = {}
        self.dropped = {}
        self.gathers = {}
        self.tables = {}
        if not (self.config.share and self.share_on) or step < 1:
            return
        if not self.reads_any:   # nobody in the batch is read: no masks, dropout or gathering needed
            none = torch.zeros(0, dtype=torch.long, device=self.device)
            for factor in self.layout.decoder_factors:
                self.key_index[factor] = [none] * self.n_images
                self.key_groups[factor] = [(list(range(self.n_images)), none)]
            return
        if not self.masks:
            return
        for factor in self.layout.decoder_factors:
            self.dropped[factor] = self.dropped_masks(factor, step)
            if self.tables_only:
                self.tables[self.dropped[factor].shape[-1]] = self.device_table(self.dropped[factor])
                self.key_index[factor] = None   # built by ``groups`` if the grouped calls are needed after all
            else:
                self.key_index[factor], self.key_groups[factor] = self.shared_key_index(self.dropped[factor])

    def groups(self, factor: int) -> list[tuple[list[int], torch.Tensor]] | None:
        """This step's key groups at one resolution (``key_groups``); with ``tables_only`` built on first use, which
        waits for the GPU once."""
        if self.key_index.get(factor, ()) is None:
            self.key_index[factor], self.key_groups[factor] = self.shared_key_index(self.dropped[factor])
        return self.key_groups.get(factor)

    def dropped_masks(self, factor: int, step: int) -> torch.Tensor:
        """(S, N, P) bool: each image's subject patches that others may read at this step (after dropout)."""
        n = self.n_images
        h, w = self.grid(factor)
        masks = self.masks[factor] if self.config.masks else torch.ones(
            self.n_subjects, n, h * w, dtype=torch.bool, device=self.device)
        if self.config.dropout > 0:
            masks = masks & self.keep_table(factor)[step].unsqueeze(0)
        return masks

    def keep_table(self, factor: int) -> torch.Tensor:
        """(steps, N, P) bool: the dropout draws (``dropout_keep``) of every step at one resolution, drawn when first
        needed and moved to the device in one copy (a copy per step would make the host wait for the GPU each step)."""
        table = self.keep_tables.get(factor)
        if table is None:
            grid, p = self.grid(factor), self.config.dropout
            table = torch.stack([torch.stack([dropout_keep(self.seeds[j], j, step, grid, p)
                                              for j in range(self.n_images)]) for step in range(self.n_steps)])
            table = self.keep_tables[factor] = table.to(self.device)
        return table

    def shared_key_index(self, dropped: torch.Tensor) -> tuple[list[torch.Tensor], list[tuple[list[int], torch.Tensor]]]:
        """Per image i, the flat (N*P) indices of the patches it reads: allowed[i, j, p] = OR_s sources[s, i, j] &
        dropped[s, j, p]; and the same grouped by ``source_groups`` (every panel that reads only the anchors reads
        the same patches). Computed once per step and resolution, shared by every layer at that resolution; the host
        waits once here, for the indices' lengths."""
        allowed = self._allowed(dropped)
        n, _, p = allowed.shape
        nz = allowed.reshape(n, n * p).nonzero()
        counts = torch.bincount(nz[:, 0], minlength=n).tolist()
        per_image = list(nz[:, 1].split(counts))
        self.tables[p] = self._table(nz, counts)
        return per_image, [(images, per_image[images[0]]) for images in self.source_groups]

    def _allowed(self, dropped: torch.Tensor) -> torch.Tensor:
        """(N, N, P) bool: allowed[i, j, p] = OR_s sources[s, i, j] & dropped[s, j, p]."""
        return (self.device_sources.unsqueeze(-1) & dropped.unsqueeze(1)).any(0)

    def device_table(self, dropped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``_table``'s (N, L) int32 index rows and (N,) lengths, built without the host learning any length: row i
        lists the flat (N*P) indices image i reads in ascending order (as ``nonzero`` gives them), padded to
        L = N*P + 1 (the last column takes the scatter of the unread indices)."""
        allowed = self._allowed(dropped)
        n, _, p = allowed.shape
        flat = allowed.reshape(n, n * p)
        lengths = flat.sum(1, dtype=torch.int32)
        slot = torch.where(flat, flat.cumsum(1) - 1, n * p)
        table = torch.zeros(n, n * p + 1, dtype=torch.int32, device=flat.device)
        table.scatter_(1, slot, torch.arange(n * p, dtype=torch.int32, device=flat.device).expand(n, -1))
        return table, lengths

    def _table(self, nz: torch.Tensor, counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, Lmax) int32: row i holds image i's flat indices (``nz`` rows of image i, in order), zero-padded;
        and (N,) int32 lengths. Built on the device from the indices already found, without a wait."""
        n = len(counts)
        starts = [0]
        for c in counts[:-1]:
            starts.append(starts[-1] + c)
        lengths = torch.tensor(counts, dtype=torch.int32).to(self.device, non_blocking=True)
        table = torch.zeros(n, max(max(counts, default=0), 1), dtype=torch.int32, device=self.device)
        if nz.shape[0]:
            offset = torch.tensor(starts, dtype=torch.long).to(self.device, non_blocking=True)
            pos = torch.arange(nz.shape[0], device=self.device) - offset[nz[:, 0]]
            table[nz[:, 0], pos] = nz[:, 1].to(torch.int32)
        return table, lengths

    @cached_property
    def device_sources(self) -> torch.Tensor:
        return self.sources.to(self.device)

    @cached_property
    def source_groups(self) -> list[list[int]]:
        """Images that read exactly the same sources for every subject, in order: they read the same patches at
        every step and resolution, since dropout and masks belong to the source. Found once, on the host (grouping
        the GPU's index rows each step sorted them, 26 ms per call on an H200)."""
        members: dict[bytes, list[int]] = {}
        rows = self.sources.cpu().transpose(0, 1).reshape(self.n_images, -1)
        for i in range(self.n_images):
            members.setdefault(rows[i].numpy().tobytes(), []).append(i)
        return list(members.values())

    def group_gather(self, factor: int, images: list[int], index: torch.Tensor | None, p: int) -> torch.Tensor:
        """(g * (P + L),) long: for each image of a key group, the flat (N*P) rows of its own P tokens followed by
        the group's L shared ones (``index``). Built once per step, resolution and group, then used by every layer
        there: a layer gathers a group's keys in one indexing call instead of slicing, expanding and concatenating.
        """
        key = (factor, tuple(images))
        cached = self.gathers.get(key)
        if cached is not None and cached[0] is index:
            return cached[1]
        own = torch.arange(p, device=self.device)
        shared = index if index is not None else own[:0]
        gather = torch.cat([torch.cat([own + i * p, shared]) for i in images])
        self.gathers[key] = (index, gather)
        return gather

    # -- snapshots (run 2 resumes from run 1) ----------------------------------------------------------------
    def snapshot(self) -> dict:
        return {"window": [t.clone() for t in self.window], "masks": dict(self.masks),
                "q_cache": dict(self.q_cache), "step": self.step}

    def restore(self, snap: dict) -> None:
        self.window = deque(t.clone() for t in snap["window"])
        self.masks = dict(snap["masks"])
        self.q_cache = dict(snap["q_cache"])
        self.acc_sum, self.acc_count = None, 0


def inject_steps(config: ConsistoryConfig, n_steps: int) -> range:
    if not config.inject:
        return range(0)
    return range(int(n_steps * config.inject_start), int(n_steps * config.inject_end) + 1)


def blend_steps(config: ConsistoryConfig, n_steps: int) -> range:
    if not (config.query_blend and config.share):
        return range(0)
    return range(1, int(n_steps * config.query_blend_until) + 1)
