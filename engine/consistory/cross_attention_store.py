"""The cross-attention processor that records where each subject word looks (for the subject masks).

On coarse-resolution ``attn2`` layers, in the main pass, it computes the softmax attention probabilities of the
conditional half, averages them over heads, and keeps only the subject tokens' columns (averaged over each
subject's token positions): (N, S, P) per layer, summed into ``RunState``. Everything stays on the device. The
layer's output itself is computed by diffusers' ``AttnProcessor2_0`` on the same inputs.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from .run_state import RunState
from .unet_layers import LayerInfo

__all__ = ["CrossAttentionRecorder"]


class CrossAttentionRecorder:
    def __init__(self, state: RunState, layer: LayerInfo):
        self.state = state
        self.layer = layer
        self.plain = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        st = self.state
        out = self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if st.phase != "main" or encoder_hidden_states is None or hidden_states.ndim != 3:
            return out
        n = st.n_images
        cond = slice(n, 2 * n) if st.do_cfg else slice(0, n)
        x = hidden_states[cond]
        ctx = encoder_hidden_states[cond]
        with torch.no_grad():
            q = attn.to_q(x)
            k = attn.to_k(ctx)
            b, p, inner = q.shape
            d = inner // attn.heads
            q = q.view(b, p, attn.heads, d).transpose(1, 2)
            k = k.view(b, -1, attn.heads, d).transpose(1, 2)
            probs = torch.softmax((q.float() @ k.float().transpose(-1, -2)) * attn.scale, dim=-1)  # (N, H, P, T)
            probs = probs.mean(1)  # (N, P, T)
            w = st.token_weights.to(probs.device)  # (S, N, T)
            maps = torch.einsum("npt,snt->nsp", probs, w)
        st.add_maps(maps)
        return out
