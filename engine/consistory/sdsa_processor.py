"""The self-attention processor: subject-driven shared self-attention (SDSA), vanilla-query blending and
feature injection, for one ``attn1`` layer.

Shapes: ``hidden_states`` (B, P, C) are the layer's normed tokens, B = 2N with CFG (``[uncond; cond]``) or N.
Image i attends to all of its own P tokens plus the *gathered* subject tokens of the images it may read
(``RunState.key_index``): no dense mask, so PyTorch keeps its fast SDPA kernels. Both CFG halves share the same
indices; each half reads the same half of the sources. When nothing is active the call is delegated to diffusers'
``AttnProcessor2_0``, so such layers compute exactly what the stock model computes.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import gathered_attention as fused
from .run_state import RunState
from .unet_layers import LayerInfo

__all__ = ["SelfAttentionProcessor", "attend", "finish_output"]


# Shared attention's key count changes with every step's dropout draw. PyTorch's cuDNN attention builds an
# execution graph per new shape (about 60 ms on an H200, against 0.1-0.8 ms for the call itself), so these calls
# use the kernels that take any length as it comes (tests/bench/bench_shared_attention.py measures both).
_ANY_LENGTH = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def attend(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
           varying: bool = False) -> torch.Tensor:
    """SDPA over (B, Lq, H*D) queries and (B, Lk, H*D) keys/values → (B, Lq, H*D); ``mask``: an optional boolean
    (B, 1, 1, Lk) key mask (True: attend) that broadcasts over heads and queries; ``varying``: Lk changes from call
    to call (on CUDA, no backend that compiles per shape)."""
    b, lq, inner = q.shape
    d = inner // attn.heads
    q = q.view(b, lq, attn.heads, d).transpose(1, 2)
    k = k.view(b, -1, attn.heads, d).transpose(1, 2)
    v = v.view(b, -1, attn.heads, d).transpose(1, 2)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    with sdpa_kernel(_ANY_LENGTH) if varying and q.is_cuda else contextlib.nullcontext():
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(b, lq, inner).to(q.dtype)


def finish_output(attn, out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


class SelfAttentionProcessor:
    """ConsiStory's ``attn1`` processor. Reads the shared ``RunState``; holds no per-call state of its own."""

    def __init__(self, state: RunState, layer: LayerInfo, *, sdsa: bool, inject: bool):
        self.state = state
        self.layer = layer
        self.sdsa = sdsa        # decoder layer: shares keys and blends queries
        self.inject = inject    # fine-resolution layer: receives injected features in run 2
        self.plain = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        st = self.state
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3 \
                or attn.spatial_norm is not None or attn.group_norm is not None:
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if st.dual and hidden_states.shape[0] == 2 * st.rows:
            # main rows first, then the vanilla copy (vanilla_stream.py): the copy's query is cached before the
            # main rows of this layer read it
            b = st.rows
            vanilla = self._vanilla(attn, hidden_states[b:], temb)
            return torch.cat([self._main(attn, hidden_states[:b], temb), vanilla])
        if st.phase == "vanilla":
            return self._vanilla(attn, hidden_states, temb)
        return self._main(attn, hidden_states, temb)

    def _vanilla(self, attn, hidden_states, temb):
        if not self.sdsa:
            return self.plain(attn, hidden_states, None, None, temb)
        q = attn.to_q(hidden_states)
        self.state.q_cache[self.layer.name] = q
        return finish_output(attn, attend(attn, q, attn.to_k(hidden_states), attn.to_v(hidden_states)), hidden_states)

    def _main(self, attn, hidden_states, temb):
        st = self.state
        sharing = self.sdsa and st.sharing()
        nu = st.nu() if sharing else None
        injecting = self.inject and st.injecting()
        external = self.sdsa and st.external is not None and st.external.active(st)
        if not (sharing or injecting or external):
            return self.plain(attn, hidden_states, None, None, temb)

        x = hidden_states
        q = attn.to_q(x)
        if nu is not None and self.layer.name in st.q_cache:
            q = nu * st.q_cache[self.layer.name] + (1.0 - nu) * q
        k = attn.to_k(x)
        v = attn.to_v(x)
        if sharing or external:
            out = self._shared_attention(attn, x, q, k, v)
        else:
            out = attend(attn, q, k, v)
        out = finish_output(attn, out, x)
        if st.external is not None and st.external.recording:
            st.external.store(self.layer.name, st, x, out, sharing=sharing, injecting=injecting)
        if injecting:
            out = st.injection.apply(out, self.layer.name, st)
        if "outputs" in st.record:
            st.record["outputs"][(self.layer.name, st.run, st.step)] = out.detach().clone()
        return out

    def _shared_attention(self, attn, x, q, k, v) -> torch.Tensor:
        """Images that read the same source patches are attended to together: each one's own P keys followed by
        the shared gathered keys (the same for the whole group), one SDPA call per group. Within the batch the keys
        and values of a group are one gather each (``RunState.group_gather``); saved anchors (an identity bank) are
        appended to them."""
        st = self.state
        n = st.n_images
        halves = x.shape[0] // n
        p = x.shape[1]
        factor = st.factor_of(p)
        inner = q.shape[-1]
        qh = q.view(halves, n, p, inner)
        kf = k.view(halves, n * p, inner)
        vf = v.view(halves, n * p, inner)
        ext_k = ext_v = ext_index = None
        if st.external is not None and st.external.active(st):
            ext_k, ext_v, ext_index = st.external.keys_values(attn, self.layer.name, st, factor)
        elif st.sharing() and p in st.tables and attn.norm_q is None and attn.norm_k is None and fused.available(q):
            out = fused.try_gathered_attention(q, k, v, attn.heads, n, *st.tables[p])   # all groups at once
            if out is not None:
                return out
        groups = st.groups(factor) if st.sharing() else None
        if groups is None:
            groups = [(list(range(n)), None)]
        out = torch.empty_like(qh)
        for images, index in groups:
            g = len(images)
            sel = slice(images[0], images[0] + g) if images == list(range(images[0], images[0] + g)) else images
            gather = st.group_gather(factor, images, index, p)      # (g * (P + L),) flat rows of kf
            length = gather.numel() // g
            kg = kf[:, gather].view(halves, g, length, inner)
            vg = vf[:, gather].view(halves, g, length, inner)
            if ext_k is not None:
                ext = ext_index[images[0]]
                # a bank gives every image the same index object; comparing values would make the host wait
                if any(ext_index[i] is not ext and not torch.equal(ext_index[i], ext) for i in images[1:]):
                    raise RuntimeError("images of one key group read different saved anchors")
                if ext.numel():
                    size = (halves, g, ext.numel(), inner)
                    kg = torch.cat([kg, ext_k[:, ext].unsqueeze(1).expand(size)], 2)
                    vg = torch.cat([vg, ext_v[:, ext].unsqueeze(1).expand(size)], 2)
            qg = qh[:, sel].reshape(halves * g, p, inner)
            out[:, sel] = attend(attn, qg, kg.reshape(halves * g, -1, inner), vg.reshape(halves * g, -1, inner),
                                 varying=True).view(halves, g, p, inner)
        return out.view(halves * n, p, inner)
