"""The cross-attention processor that records where each subject word looks (for the subject masks).

On coarse-resolution ``attn2`` layers, in the main pass, it computes the softmax attention probabilities of the
conditional half, keeps only the subject tokens' columns (``RunState.token_cols``), averages them over heads and
over each subject's token positions: (N, S, P) per layer, summed into ``RunState``. Everything stays on the device.
The layer's output is computed from the same q, k, v projections (no second projection for the record).

The probabilities are a float32 softmax of the half-precision logits, with the scale folded into the prompt's keys
(T of them, against P patches) and no float32 copy of the logits: on SDXL at 1024x1024 that is about a third of the
memory traffic of casting, scaling and then normalising the (N, heads, 1024, 77) logits in 60 layers of every pass.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from .run_state import RunState
from .sdsa_processor import attend, finish_output
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
        if (not st.records_maps() or encoder_hidden_states is None or hidden_states.ndim != 3
                or attention_mask is not None or attn.spatial_norm is not None or attn.group_norm is not None
                or attn.norm_cross):
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        # one projection of q, k, v serves both the layer output and the recorded probabilities
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        out = finish_output(attn, attend(attn, q, k, v), hidden_states)
        n = st.n_images
        cond = slice(n, 2 * n) if st.do_cfg else slice(0, n)
        with torch.no_grad():
            qc, kc = q[cond], k[cond]
            b, p, inner = qc.shape
            d = inner // attn.heads
            qc = qc.reshape(b, p, attn.heads, d).transpose(1, 2)
            kc = kc.reshape(b, -1, attn.heads, d).transpose(1, 2)
            probs = torch.softmax(qc @ (kc.transpose(-1, -2) * attn.scale), dim=-1, dtype=torch.float32)
            if st.token_cols is not None:
                probs = probs.index_select(-1, st.token_cols)
            maps = torch.einsum("npt,snt->nsp", probs.mean(1), st.token_weights)  # on the device: no copy per layer
        st.add_maps(maps)
        return out
