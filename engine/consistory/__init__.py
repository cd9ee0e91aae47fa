"""ConsiStory: training-free consistent subjects by shared self-attention, inside SDXL / SD 1.x UNets."""

from .config import ConsistoryConfig

__all__ = ["ConsistoryConfig"]
