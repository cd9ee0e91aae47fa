"""FreeU (Si et al., 2023) on a diffusers UNet, with the skip filter computed as a projection instead of two FFTs.

FreeU, in its diffusers form, acts in the up blocks of resolution index 0 and 1, before each resnet: the first half
of the backbone channels is multiplied by ``b``, and the skip features go through a Fourier filter that multiplies
the 2x2 box of frequencies at the centre of the shifted spectrum by ``s``. That box holds the frequencies
(ky, kx) in {-1, 0} x {-1, 0}, so the filter is

    x + (s - 1) * Re(IFFT(X restricted to the box)) = x + (s - 1) / (H W) * sum_j <x, b_j> b_j

over seven real basis images b_j: 1, cos θy, sin θy, cos θx, sin θx, cos(θy + θx), sin(θy + θx), with
θy = 2πy/H and θx = 2πx/W. diffusers computes it with a float32 copy, an FFT, two shifts, a float32 mask of the
tensor's size, a complex product and an inverse FFT, for every resnet of the two blocks at every pass: about 1.5 GB
of memory traffic for one SDXL skip tensor of 10 x 1280 x 32 x 32. Two thin matrix products read it once and
write it once. The results agree with diffusers' ``fourier_filter`` to float32 rounding (tests/engine/test_freeu.py).

``install_freeu`` puts forward pre-hooks on those resnets (their input is the concatenation [backbone; skip]) and
returns their handles; nothing else of the UNet changes.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["install_freeu", "skip_filter"]


@functools.lru_cache(maxsize=16)
def _basis(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(7, h*w) float32: the real basis images of the box's four frequencies."""
    ty = (2 * math.pi / h) * torch.arange(h, dtype=torch.float64).view(h, 1).expand(h, w)
    tx = (2 * math.pi / w) * torch.arange(w, dtype=torch.float64).view(1, w).expand(h, w)
    rows = [torch.ones(h, w, dtype=torch.float64), ty.cos(), ty.sin(), tx.cos(), tx.sin(), (ty + tx).cos(),
            (ty + tx).sin()]
    return torch.stack(rows).reshape(7, h * w).to(device, torch.float32)


def skip_filter(x: torch.Tensor, scale: float) -> torch.Tensor:
    """FreeU's Fourier filter (threshold 1) of ``x`` (B, C, H, W): the four lowest frequencies times ``scale``."""
    b, c, h, w = x.shape
    if h < 2 or w < 2:   # the box then holds fewer than four distinct frequencies: diffusers' own transform
        from diffusers.utils.torch_utils import fourier_filter

        return fourier_filter(x, threshold=1, scale=scale)
    basis = _basis(h, w, x.device)
    flat = x.reshape(b * c, h * w).float()
    out = torch.addmm(flat, flat @ basis.T, basis, alpha=(scale - 1.0) / (h * w))
    return out.reshape(b, c, h, w).to(x.dtype)


def _backbone_channels(unet) -> dict:
    """{resnet: backbone channels of its input} for the resnets of up blocks with resolution index 0 and 1."""
    out = {}
    incoming = unet.config.block_out_channels[-1]   # the middle block's output
    for block in unet.up_blocks:
        for resnet in block.resnets:
            if getattr(block, "resolution_idx", None) in (0, 1):
                out[resnet] = (incoming, block.resolution_idx)
            incoming = resnet.out_channels
    return out


def install_freeu(unet, s1: float, s2: float, b1: float, b2: float) -> list:
    """FreeU on ``unet`` (the parameters of diffusers' ``enable_freeu``); returns the hook handles to remove."""
    handles = []
    for resnet, (channels, index) in _backbone_channels(unet).items():
        s, b = (s1, b1) if index == 0 else (s2, b2)

        def pre_hook(module, args, channels=channels, s=s, b=b):
            x, *rest = args
            half = channels // 2
            x[:, :half].mul_(b)   # x is the block's fresh concatenation [backbone; skip]
            x[:, channels:] = skip_filter(x[:, channels:], s)
            return (x, *rest)

        handles.append(resnet.register_forward_pre_hook(pre_hook))
    return handles
