"""Rendered training and held-out sets of the toy world, as uint8 arrays with their creatures.

``make_set(n, seed)`` renders ``n`` creatures drawn from ``random.Random(seed)``; the training set uses seed 0 and
the held-out set seed 1, so they never share a draw. With ``twins`` > 0 that share of the pictures (on average)
shows identical twins instead of one creature; ``twins=0`` gives exactly the one-creature draws. ``to_tensor``
maps uint8 HWC to float NCHW in [-1, 1].
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .render import Creature, random_creature, random_twins, render

__all__ = ["RenderSet", "make_creatures", "make_set", "to_tensor", "TRAIN_SEED", "HELDOUT_SEED"]

TRAIN_SEED = 0
HELDOUT_SEED = 1


@dataclass(frozen=True)
class RenderSet:
    images: np.ndarray  # uint8 (n, 64, 64, 3)
    masks: np.ndarray   # bool (n, 64, 64)
    creatures: tuple[Creature, ...]


def make_creatures(n: int, seed: int, twins: float = 0.0) -> tuple[Creature, ...]:
    """The attributes of ``make_set(n, seed, twins)`` without drawing them (instant)."""
    rng = random.Random(seed)
    return tuple(random_twins(rng) if twins > 0 and rng.random() < twins else random_creature(rng)
                 for _ in range(n))


def make_set(n: int, seed: int, size: int = 64, twins: float = 0.0) -> RenderSet:
    creatures = make_creatures(n, seed, twins)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    for i, c in enumerate(creatures):
        r = render(c, size)
        images[i] = np.asarray(r.image)
        masks[i] = r.mask
    return RenderSet(images, masks, creatures)


def to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
