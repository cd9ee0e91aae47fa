"""Paired panels for training the toy model: two pictures of one creature whose self-attention reads each other.

Why: in a large model such as SDXL, self-attention is the only mechanism that reaches across a 1024-pixel picture
at full detail, so it learns to copy a look from one part of a picture to another (two views, a repeated object).
ConsiStory relies on that habit: extended across pictures, self-attention copies the subject's look from the
anchors. In a 64-pixel toy model the convolutions of the 8x8 level reach across the whole picture, and the
``twins`` pictures (two identical creatures side by side) are learnt mostly by them: the habit does not form where
ConsiStory can use it. A paired panel is the toy's stand-in for a picture too wide for convolutions: two separate
64-pixel pictures of the same creature (same colour, shape, markings and hat; scene, place and size differ), each
captioned on its own, whose decoder self-attention layers (``attn1`` of the up blocks) see both pictures' tokens.
The only way for the second picture to match a look its caption leaves open is to read it there, which is where
ConsiStory shares (encoder layers are left alone: a run that paired every layer learnt part of the copying in the
encoder, where the method does not look).

``pair_index`` draws the pairs from the training set's one-creature pictures; ``PairedSelfAttention`` is the
``attn1`` processor used while training (a batch holds the pairs' first pictures, then their second pictures,
then unpaired pictures, which attend only to themselves). Generation never uses it.

By default a picture reads all of its partner's tokens. With ``set_subject_masks`` it reads them as ConsiStory's
shared attention does: only the partner's creature patches (its true mask, area-pooled to the layer's grid), each
dropped with probability ``dropout``, one draw per grid size and batch.
"""

from __future__ import annotations

import random
from collections import defaultdict

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

from ..consistory.sdsa_processor import attend, finish_output
from .device_copy import queued_copy
from .render import Creature

__all__ = ["look_key", "pair_index", "draw_pairs", "PairedSelfAttention", "install_paired_attention"]


def look_key(c: Creature) -> tuple:
    return (c.colour, c.shape, c.markings, c.hat)


def pair_index(creatures: tuple[Creature, ...]) -> dict[tuple, list[int]]:
    """One-creature pictures grouped by look (only looks seen at least twice can be paired)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(creatures):
        if c.twin_cx is None:
            groups[look_key(c)].append(i)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def draw_pairs(groups: dict[tuple, list[int]], n: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """``n`` pairs of different pictures with one look: (first pictures, second pictures)."""
    keys = list(groups)  # in first-seen order: deterministic for a given training set
    first, second = [], []
    for _ in range(n):
        members = groups[rng.choice(keys)]
        a, b = rng.sample(members, 2)
        first.append(a)
        second.append(b)
    return first, second


def _partner_order(m: int) -> torch.Tensor:
    """Row j's partner for the ``2 * m`` paired rows: the second pictures first, then the first ones."""
    return torch.cat([torch.arange(m, 2 * m), torch.arange(0, m)])


class PairedSelfAttention:
    """``attn1`` processor: the first ``2 * n_pairs`` rows of the batch are pairs (row j with row j + n_pairs);
    each of them attends to its own tokens followed by its partner's. The other rows attend as usual."""

    def __init__(self) -> None:
        self.n_pairs = 0
        self.plain = AttnProcessor2_0()
        self.dropout = 0.0
        self._masks: torch.Tensor | None = None     # (2 * n_pairs, H, W) bool: the pictures' creature masks
        self._generator: torch.Generator | None = None
        self._keys: dict[int, torch.Tensor] = {}   # per token count: (2 * n_pairs, 2 * P) bool, the keys each row reads
        self._swap: torch.Tensor | None = None      # row j's partner, on the layers' device

    def set_subject_masks(self, masks: torch.Tensor | None, dropout: float = 0.5,
                          generator: torch.Generator | None = None) -> None:
        """Read only the partner's creature patches from now on (``None``: all of its tokens again). Call once per
        batch: the dropout is drawn again for the new batch."""
        if masks is not None and not 0.0 <= dropout < 1.0:
            raise ValueError(f"The pair dropout {dropout!r} must be in [0, 1).")
        self._masks = None if masks is None else masks.bool()
        self.dropout = dropout
        self._generator = generator
        self._keys = {}

    def _key_mask(self, n_tokens: int, device) -> torch.Tensor:
        """(2m, 1, 1, 2P) bool for SDPA: a row's own P tokens, then its partner's kept creature patches."""
        if n_tokens not in self._keys:
            m2, h, w = self._masks.shape
            scale = int(round((h * w / n_tokens) ** 0.5))
            cover = F.avg_pool2d(self._masks.float().unsqueeze(1), scale).flatten(1)   # share of creature per patch
            subject = cover >= 0.25
            if self.dropout > 0:
                subject &= torch.rand(subject.shape, generator=self._generator) >= self.dropout
            own = torch.ones_like(subject)
            keys = torch.cat([own, subject[_partner_order(m2 // 2)]], 1).view(m2, 1, 1, 2 * n_tokens)
            self._keys[n_tokens] = queued_copy(keys, device)
        return self._keys[n_tokens]

    def _partners(self, m: int, device) -> torch.Tensor:
        if self._swap is None or len(self._swap) != 2 * m or self._swap.device != torch.device(device):
            self._swap = queued_copy(_partner_order(m), device)
        return self._swap

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        m = self.n_pairs
        if m == 0 or encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        x = hidden_states[:2 * m]
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        swap = self._partners(m, x.device)
        keys, values = torch.cat([k, k[swap]], 1), torch.cat([v, v[swap]], 1)
        mask = None if self._masks is None else self._key_mask(x.shape[1], x.device)
        out = finish_output(attn, attend(attn, q, keys, values, mask), x)
        if hidden_states.shape[0] == 2 * m:
            return out
        rest = self.plain(attn, hidden_states[2 * m:], None, None, temb)
        return torch.cat([out, rest])


def install_paired_attention(unet) -> PairedSelfAttention:
    """One shared processor on every decoder self-attention layer of ``unet`` (set its ``n_pairs`` per batch);
    every other layer gets the stock processor."""
    paired = PairedSelfAttention()
    unet.set_attn_processor({name: paired if name.startswith("up_blocks.") and name.endswith("attn1.processor")
                             else AttnProcessor2_0() for name in unet.attn_processors})
    return paired
