"""The vanilla-query pass folded into the main pass: a second copy of the batch through the decoder only.

Query blending needs, at every decoder self-attention layer, the query a pass *without* sharing would compute on
the same latents. Sharing only happens in the decoder (up blocks), so a separate vanilla pass would recompute the
encoder and middle block exactly as the main pass does. Instead, on blending steps the main pass carries a second
copy of the batch from the first up block on: ``[main rows; vanilla rows]``. The copy's rows go through stock
attention (their queries are cached just before the main rows of the same layer read them), and the UNet returns
the main rows only. The copy ends with the last up block that holds a shared self-attention layer (the
high-resolution up block without attention and the output convolution never see it). Cost per blending step:
the decoder's attention levels once more, instead of a whole UNet pass.

This is only valid while nothing changes the encoder's output between the two passes, i.e. while no feature
injection runs in an encoder layer at that step; the driver uses a separate vanilla pass otherwise.
"""

from __future__ import annotations

import torch

__all__ = ["VanillaStream"]


def _double(x):
    if x is None:
        return None
    return torch.cat([x, x])


class VanillaStream:
    """Hooks that duplicate the up blocks' inputs while ``state.dual`` is set, and drop the copy after the last up
    block with a shared layer (``last_block``)."""

    def __init__(self, state, unet, last_block: int):
        self.state = state
        self.last_block = last_block
        self.handles = [block.register_forward_pre_hook(self._pre_up, with_kwargs=True)
                        for block in unet.up_blocks[: last_block + 1]]
        self.handles.append(unet.up_blocks[last_block].register_forward_hook(self._trim))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _pre_up(self, module, args, kwargs):
        if not self.state.dual:
            return None
        if args:  # the UNet calls its up blocks with keywords only; anything else is left alone
            raise RuntimeError("unexpected positional call of an up block")
        res = kwargs["res_hidden_states_tuple"]
        rows = res[0].shape[0]
        kwargs = dict(kwargs)
        kwargs["res_hidden_states_tuple"] = tuple(_double(r) for r in res)
        if kwargs["hidden_states"].shape[0] == rows:      # the first up block: start the copy here
            kwargs["hidden_states"] = _double(kwargs["hidden_states"])
        kwargs["temb"] = _double(kwargs.get("temb"))
        if kwargs.get("encoder_hidden_states") is not None:
            kwargs["encoder_hidden_states"] = _double(kwargs["encoder_hidden_states"])
        for key in ("attention_mask", "encoder_attention_mask"):
            if kwargs.get(key) is not None:
                kwargs[key] = _double(kwargs[key])
        return args, kwargs

    def _trim(self, module, args, output):
        if not self.state.dual:
            return None
        return output[: output.shape[0] // 2]
