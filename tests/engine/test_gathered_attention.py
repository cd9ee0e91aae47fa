"""The one-call shared attention kernel (``engine/consistory/gathered_attention.py``) against the portable path
(one SDPA call per key group): the same outputs, from the same per-step index tables. The kernel runs on CUDA; on a
CPU it runs in Triton's interpreter where Triton is installed (a subprocess, since the interpreter is chosen when
the kernel is defined)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.consistory.config import ConsistoryConfig
from engine.consistory.run_state import RunState, source_matrix
from engine.consistory.unet_layers import UNetLayout

ROOT = Path(__file__).resolve().parents[2]


def _state(n=5, anchors=2, hw=(4, 5), dropout=0.5, device="cpu", tables_only=False):
    layout = UNetLayout(layers={}, coarse=1, fine=1, decoder_factors=(1,), dift_block=0)
    st = RunState(config=ConsistoryConfig(anchors=anchors, dropout=dropout), layout=layout, n_images=n,
                  seeds=tuple(range(n)), latent_hw=hw, n_steps=10, do_cfg=True, token_weights=torch.zeros(1, n, 77),
                  sources=source_matrix(n, anchors).unsqueeze(0), device=torch.device(device),
                  tables_only=tables_only)
    masks = torch.zeros(1, n, hw[0] * hw[1], dtype=torch.bool)
    masks[0, :, 3:15] = True
    st.masks = {1: masks.to(device)}
    st.begin_step(2)
    return st


def test_index_tables_hold_each_images_key_index_padded():
    st = _state(anchors=1)   # the one anchor reads nobody: an empty row
    p = 20
    table, lengths = st.tables[p]
    assert table.dtype == torch.int32 and lengths.tolist() == [t.numel() for t in st.key_index[1]]
    assert lengths[0] == 0 and (lengths[1:] > 0).all()
    for i, index in enumerate(st.key_index[1]):
        assert torch.equal(table[i, :index.numel()].long(), index)
        assert not table[i, index.numel():].any()
    st.begin_step(3)   # a new step: new draws, new tables
    assert not torch.equal(st.tables[p][0], table)


@pytest.mark.parametrize("anchors", [1, 2, 4])
def test_tables_built_without_host_waits_hold_the_same_rows(anchors):
    from tests.engine.test_host_waits import _WaitCounter

    st = _state(anchors=anchors)
    free = _state(anchors=anchors, tables_only=True)
    with _WaitCounter() as counter:
        counter.inside = True
        free.begin_step(3)
    st.begin_step(3)
    assert counter.counts == {}   # no nonzero, item or other wait while the tables were built
    (table, lengths), (free_table, free_lengths) = st.tables[20], free.tables[20]
    assert torch.equal(free_lengths, lengths) and free_table.dtype == torch.int32
    for i, length in enumerate(lengths.tolist()):
        assert torch.equal(free_table[i, :length], table[i, :length])
    assert free.key_index[1] is None
    # the grouped calls' lists, when asked for, are the ones built with host waits
    as_lists = [[(imgs, idx.tolist()) for imgs, idx in state.groups(1)] for state in (free, st)]
    assert as_lists[0] == as_lists[1]
    assert all(torch.equal(a, b) for a, b in zip(free.key_index[1], st.key_index[1]))


_SCRIPT = textwrap.dedent('''
    import builtins, os, sys
    import numpy as np
    import torch
    import triton.runtime.interpreter as ti

    # Triton's interpreter reads scalar arguments as 1-element arrays, which NumPy 2 no longer turns into an int
    _patch = ti._patch_lang_tensor
    def _patched(tensor, scope):
        _patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: builtins.int(np.asarray(self.handle.data).reshape(-1)[0]))
    ti._patch_lang_tensor = _patched

    sys.path.insert(0, sys.argv[1])
    from diffusers.models.attention_processor import Attention
    from engine.consistory import gathered_attention as fused
    from engine.consistory.sdsa_processor import SelfAttentionProcessor
    from engine.consistory.unet_layers import LayerInfo
    from tests.engine.test_gathered_attention import _state

    fused.HYBRID_MIN_TOKENS = 0   # the two-call form on these small layers too

    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    worst = {True: 0.0, False: 0.0}
    # P = 20 leaves a partial block of own keys (BLOCK_N 16 here), P = 16 none
    for anchors, heads, dim_head, hw in [(2, 2, 8, (4, 5)), (1, 1, 10, (4, 5)), (3, 2, 16, (4, 5)), (2, 2, 8, (4, 4))]:
        st = _state(anchors=anchors, hw=hw)
        torch.manual_seed(anchors)
        attn = Attention(query_dim=heads * dim_head, heads=heads, dim_head=dim_head)
        x = torch.randn(10, hw[0] * hw[1], heads * dim_head)
        proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
        with torch.no_grad():
            assert fused.available(x)
            fused.ENABLED = False
            grouped = proc(attn, x)
            fused.ENABLED = True
            for hybrid in (True, False):
                fused.HYBRID = hybrid
                out = proc(attn, x)
                assert fused.HYBRID == hybrid and fused.ENABLED   # neither form switched itself off
                worst[hybrid] = max(worst[hybrid], (out - grouped).abs().max().item())
            # the tables built without host waits serve the kernel the same way
            st_free = _state(anchors=anchors, hw=hw, tables_only=True)
            out = SelfAttentionProcessor(st_free, info, sdsa=True, inject=False)(attn, x)
            assert st_free.key_index[1] is None   # the kernel needed no per-image lists
            worst[False] = max(worst[False], (out - grouped).abs().max().item())
    print("max difference", worst)
    assert max(worst.values()) < 1e-5, worst
''')


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton (its interpreter on a CPU)")
def test_the_kernel_equals_the_grouped_calls_in_tritons_interpreter(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(ROOT)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "max difference" in done.stdout


def test_without_triton_or_off_cuda_the_portable_path_runs(monkeypatch):
    from engine.consistory import gathered_attention as fused

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not fused.available(torch.zeros(2, 2, dtype=torch.float16))   # a CPU tensor
    monkeypatch.setattr(fused, "_triton", lambda: None)
    assert not fused.available(torch.zeros(2, 2, dtype=torch.float16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                    reason="needs a CUDA device and Triton")
def test_on_a_gpu_one_kernel_call_and_two_calls_give_the_grouped_result(monkeypatch):
    from diffusers.models.attention_processor import Attention
    from torch.profiler import ProfilerActivity, profile

    from engine.consistory import gathered_attention as fused
    from engine.consistory.sdsa_processor import SelfAttentionProcessor
    from engine.consistory.unet_layers import LayerInfo

    st = _state(hw=(32, 32), device="cuda")
    st.masks = {1: torch.rand(1, 5, 1024, device="cuda") < 0.35}
    st.begin_step(2)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    torch.manual_seed(0)
    attn = Attention(query_dim=640, heads=10, dim_head=64).cuda().half()
    x = torch.randn(10, 1024, 640, device="cuda", dtype=torch.float16)
    monkeypatch.setattr(fused, "HYBRID_MIN_TOKENS", 0)   # two calls on this 32x32 layer too
    monkeypatch.setattr(fused, "_checked", False)   # the first two-call result is compared with the one-call kernel
    with torch.no_grad():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            two_calls = proc(attn, x)
            torch.cuda.synchronize()
        assert fused.HYBRID and fused.ENABLED, "the two-call form switched itself off (see the log)"
        fused.HYBRID = False
        try:
            one_call = proc(attn, x)
        finally:
            fused.HYBRID = True
        fused.ENABLED = False
        try:
            grouped = proc(attn, x)
        finally:
            fused.ENABLED = True
    keys = {e.key for e in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" not in keys   # no per-group SDPA calls
    assert keys & {"aten::_scaled_dot_product_cudnn_attention", "aten::_scaled_dot_product_flash_attention"}
    assert (one_call.float() - grouped.float()).abs().max().item() < 2e-3
    assert (two_calls.float() - grouped.float()).abs().max().item() < 2e-3


def test_a_kernel_that_fails_switches_itself_off_and_the_portable_path_answers(monkeypatch, caplog):
    from diffusers.models.attention_processor import Attention

    from engine.consistory import gathered_attention as fused
    from engine.consistory.sdsa_processor import SelfAttentionProcessor
    from engine.consistory.unet_layers import LayerInfo

    def broken(*args, **kwargs):
        raise RuntimeError("PassManager::run failed\nmore lines")

    monkeypatch.setattr(fused, "available", lambda q: fused.ENABLED)
    monkeypatch.setattr(fused, "gathered_attention", broken)
    monkeypatch.setattr(fused, "ENABLED", True)
    monkeypatch.setattr(fused, "HYBRID", True)
    st = _state()
    proc = SelfAttentionProcessor(st, LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1), sdsa=True,
                                  inject=False)
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    x = torch.randn(10, 20, 16)
    with torch.no_grad(), caplog.at_level("WARNING"):
        first = proc(attn, x)
        assert fused.ENABLED is False
        assert torch.equal(first, proc(attn, x))   # the portable path, now without trying again
    assert "the one-call kernel failed (RuntimeError: PassManager::run failed)" in caplog.text
    assert caplog.text.count("one-call kernel failed") == 1


def _fake_forms(monkeypatch, two_calls_offset=0.0, own=None, min_tokens=6, checked=False) -> list[str]:
    """Stand-ins for the kernel and the own-token attention: the one-call form returns the queries, the two-call form
    the queries plus ``two_calls_offset``; returns the list that records which form each call asked for."""
    from engine.consistory import gathered_attention as fused

    calls: list[str] = []

    def kernel(q, k, v, heads, n_images, table, lengths, scale=None, own=None):
        calls.append("two" if own is not None else "one")
        return q + two_calls_offset if own is not None else q.clone()

    monkeypatch.setattr(fused, "gathered_attention", kernel)
    monkeypatch.setattr(fused, "own_attention", own or (lambda *a: ("o", "lse")))
    monkeypatch.setattr(fused, "HYBRID", True)
    monkeypatch.setattr(fused, "HYBRID_MIN_TOKENS", min_tokens)
    monkeypatch.setattr(fused, "_checked", checked)
    return calls


def test_the_first_two_call_result_is_checked_once_against_the_one_call_kernel(monkeypatch, caplog):
    from engine.consistory import gathered_attention as fused

    calls = _fake_forms(monkeypatch)
    q = torch.randn(4, 6, 8)
    with caplog.at_level("WARNING"):
        assert torch.equal(fused.try_gathered_attention(q, q, q, 2, 2, None, None), q)
        assert torch.equal(fused.try_gathered_attention(q, q, q, 2, 2, None, None), q)
    assert calls == ["two", "one", "two"] and fused.HYBRID and not caplog.text


def test_a_two_call_result_that_disagrees_switches_that_form_off(monkeypatch, caplog):
    from engine.consistory import gathered_attention as fused

    calls = _fake_forms(monkeypatch, two_calls_offset=0.5)
    q = torch.randn(4, 6, 8)
    with caplog.at_level("WARNING"):
        first = fused.try_gathered_attention(q, q, q, 2, 2, None, None)
        second = fused.try_gathered_attention(q, q, q, 2, 2, None, None)
    assert torch.equal(first, q) and torch.equal(second, q)   # the one-call results
    assert calls == ["two", "one", "one"] and fused.HYBRID is False and fused.ENABLED
    assert "the two-call form differs from the one-call kernel by 0.5" in caplog.text


def test_an_own_token_attention_that_fails_leaves_the_one_call_kernel(monkeypatch, caplog):
    from engine.consistory import gathered_attention as fused

    def no_lse(*args):
        raise RuntimeError("No available kernel. Aborting execution.\ndetails")

    calls = _fake_forms(monkeypatch, own=no_lse)
    q = torch.randn(4, 6, 8)
    with caplog.at_level("WARNING"):
        assert torch.equal(fused.try_gathered_attention(q, q, q, 2, 2, None, None), q)
    assert calls == ["one"] and fused.HYBRID is False and fused.ENABLED
    assert "own-token attention with its log-sum-exp failed (No available kernel. Aborting execution.)" in caplog.text


def test_own_token_attention_gives_the_softmax_output_and_its_log_sum_exp():
    from engine.consistory.gathered_attention import own_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 7, 2 * 5) for _ in range(3))
    o, lse = own_attention(q, k, v, heads=2, scale=0.3)
    q4, k4, v4 = (t.view(3, 7, 2, 5).transpose(1, 2) for t in (q, k, v))
    logits = q4 @ k4.transpose(-1, -2) * 0.3
    assert o.shape == (3, 2, 7, 5) and lse.shape == (3, 2, 7)
    assert torch.allclose(o, torch.nn.functional.scaled_dot_product_attention(q4, k4, v4, scale=0.3), atol=1e-6)
    assert torch.allclose(lse, torch.logsumexp(logits, -1), atol=1e-6)


def test_layers_with_fewer_tokens_than_the_threshold_take_the_one_call_kernel(monkeypatch):
    from engine.consistory import gathered_attention as fused

    calls = _fake_forms(monkeypatch, min_tokens=7, checked=True)
    fused.try_gathered_attention(torch.randn(4, 6, 8), None, None, 2, 2, None, None)
    fused.try_gathered_attention(torch.randn(4, 7, 8), None, None, 2, 2, None, None)
    assert calls == ["one", "two"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                    reason="needs a CUDA device and Triton")
def test_on_a_gpu_a_whole_set_takes_the_kernel_with_tables_built_without_waits():
    import numpy as np

    from engine.consistory import gathered_attention as fused
    from engine.consistory.pipeline import generate_consistent
    from engine.model_loader import load_model
    from engine.request import GenerationSpec

    model = load_model("tiny", device="cuda", dtype="fp16")
    spec = GenerationSpec(prompts=("a photo of a fox", "a fox in the snow", "a fox reads a map"), seeds=(1, 2, 3),
                          width=64, height=64, steps=6, subjects=("fox",), consistory=ConsistoryConfig())
    record: dict = {}
    kernel = generate_consistent(model, spec, record=record)
    state = record["state"]
    assert state.tables_only and fused.ENABLED   # the kernel served the set; it did not switch itself off
    assert state.key_index and all(v is None for v in state.key_index.values())   # no per-image lists were built
    fused.ENABLED = False
    try:
        grouped = generate_consistent(model, spec)
    finally:
        fused.ENABLED = True
    diff = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)) for a, b in zip(kernel.images, grouped.images)]
    assert max(d.mean() for d in diff) < 1.0 and max(d.max() for d in diff) <= 16   # fp16 rounding only
