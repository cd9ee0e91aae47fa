"""The cross-attention recorder (``engine/consistory/cross_attention_store.py``): the subject maps it adds are the
head-averaged softmax probabilities of the subject tokens, averaged over each subject's positions, and the layer's
output is the stock processor's."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from engine.consistory.config import ConsistoryConfig
from engine.consistory.cross_attention_store import CrossAttentionRecorder
from engine.consistory.pipeline import _token_weights
from engine.consistory.run_state import RunState, source_matrix
from engine.consistory.unet_layers import LayerInfo, UNetLayout

N, T = 3, 12
POSITIONS = [[[2], [4, 5], [7]], [[9], [1], [3, 10]]]   # two subjects; the second image's first word in two pieces


def _state(cols: bool) -> RunState:
    weights = _token_weights(POSITIONS, N, T)
    picked = weights.sum((0, 1)).nonzero().flatten()
    layout = UNetLayout(layers={}, coarse=1, fine=1, decoder_factors=(1,), dift_block=0)
    return RunState(config=ConsistoryConfig(), layout=layout, n_images=N, seeds=(0, 1, 2), latent_hw=(4, 4),
                    n_steps=10, do_cfg=True, token_weights=weights[..., picked] if cols else weights,
                    sources=source_matrix(N, 2).unsqueeze(0).repeat(2, 1, 1), device=torch.device("cpu"),
                    token_cols=picked if cols else None)


@pytest.mark.parametrize("cols", [True, False])
def test_recorded_maps_are_the_subject_tokens_head_averaged_probabilities(cols):
    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=24, heads=4, dim_head=8).eval()
    x = torch.randn(2 * N, 16, 32)
    ctx = torch.randn(2 * N, T, 24)
    st = _state(cols)
    with torch.no_grad():
        out = CrossAttentionRecorder(st, LayerInfo("down_blocks.2.x.attn2.processor", "down", 2, False, 1))(
            attn, x, ctx)
        stock = AttnProcessor2_0()(attn, x, ctx)
        q = attn.to_q(x[N:]).view(N, 16, 4, 8).transpose(1, 2)
        k = attn.to_k(ctx[N:]).view(N, T, 4, 8).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, -1).mean(1)   # (N, P, T), conditional half
    assert torch.allclose(out, stock, atol=1e-6)
    assert st.acc_count == 1 and st.acc_sum.shape == (N, 2, 16)
    for s, per_image in enumerate(POSITIONS):
        for i, pos in enumerate(per_image):
            assert torch.allclose(st.acc_sum[i, s], probs[i, :, pos].mean(-1), atol=1e-6)


def test_the_driver_keeps_only_the_subject_words_columns(tiny_sdxl):
    from engine.consistory.pipeline import generate_consistent
    from engine.request import GenerationSpec

    spec = GenerationSpec(prompts=("a photo of a fox", "a fox in the snow"), seeds=(1, 2), width=64, height=64,
                          steps=2, subjects=("fox",), consistory=ConsistoryConfig())
    record: dict = {}
    generate_consistent(tiny_sdxl, spec, record=record)
    st = record["state"]
    ids = tiny_sdxl.pipe.tokenizer(list(spec.prompts)).input_ids
    fox = tiny_sdxl.pipe.tokenizer("fox", add_special_tokens=False).input_ids
    expected = sorted({j for row in ids for j, t in enumerate(row) if t in fox})
    assert st.token_cols.tolist() == expected
    assert st.token_weights.shape == (1, 2, len(expected))
    assert torch.allclose(st.token_weights.sum(-1), torch.ones(1, 2))
