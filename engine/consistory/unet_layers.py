"""Which UNet attention layers ConsiStory touches, and at which resolution, derived from names and the config.

``down_blocks.i`` works at 1/2^i of the latent, the mid block at 1/2^(n-1), ``up_blocks.j`` at 1/2^(n-1-j) (n =
number of down blocks). SDXL at 1024 px: factors 2 (64x64) and 4 (32x32). The *coarse* factor is the largest one
among decoder attention layers (masks, SDSA at 32x32); the *fine* factor is the next one (feature injection,
DIFT grid). Grids follow the latent's own height and width, so non-square panels and SD 1.x work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LayerInfo", "UNetLayout", "analyse_unet"]

_NAME = re.compile(r"^(down_blocks|up_blocks|mid_block)(?:\.(\d+))?\..*\.(attn1|attn2)\.processor$")


@dataclass(frozen=True)
class LayerInfo:
    name: str          # processor name, e.g. "up_blocks.0.attentions.1.transformer_blocks.3.attn1.processor"
    block: str         # "down" | "mid" | "up"
    block_index: int
    self_attn: bool
    factor: int        # the layer works on a grid of latent_size / factor


@dataclass(frozen=True)
class UNetLayout:
    layers: dict[str, LayerInfo]
    coarse: int                     # factor of the mask resolution
    fine: int                       # factor of the injection / DIFT resolution
    decoder_factors: tuple[int, ...]  # factors of decoder self-attention layers, coarse first
    dift_block: int                 # index of the up block whose output gives DIFT features (at the fine factor)

    def grid(self, factor: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = latent_hw
        return (h // factor, w // factor)

    def sdsa_layers(self) -> list[str]:
        return [n for n, l in self.layers.items() if l.self_attn and l.block == "up"]

    def injection_layers(self) -> list[str]:
        return [n for n, l in self.layers.items()
                if l.self_attn and l.factor == self.fine and l.block in ("down", "up")]

    def mask_layers(self) -> list[str]:
        return [n for n, l in self.layers.items() if not l.self_attn and l.factor == self.coarse]


def analyse_unet(unet) -> UNetLayout:
    n_down = len(unet.config.down_block_types)
    layers: dict[str, LayerInfo] = {}
    for name in unet.attn_processors:
        m = _NAME.match(name)
        if not m:
            continue
        block, idx, kind = m.group(1), m.group(2), m.group(3)
        if block == "down_blocks":
            b, i, factor = "down", int(idx), 2 ** int(idx)
        elif block == "up_blocks":
            b, i, factor = "up", int(idx), 2 ** (n_down - 1 - int(idx))
        else:
            b, i, factor = "mid", 0, 2 ** (n_down - 1)
        layers[name] = LayerInfo(name, b, i, kind == "attn1", factor)
    dec = sorted({l.factor for l in layers.values() if l.block == "up" and l.self_attn}, reverse=True)
    if not dec:
        raise ValueError("This UNet has no decoder self-attention layers; ConsiStory cannot run on it.")
    coarse = dec[0]
    fine = dec[1] if len(dec) > 1 else dec[0]
    dift_block = n_down - 1 - (coarse.bit_length() - 1)
    return UNetLayout(layers, coarse, fine, tuple(dec), dift_block)
