"""Unit tests of ConsiStory's parts on small tensors: Otsu, subject tokens, layer layout, dropout, shared
attention (reads only subject patches), query blending and feature injection (only inside target masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from engine.consistory.config import ConsistoryConfig
from engine.consistory.feature_injection import batch_pool, plan_injection, smooth_features
from engine.consistory.otsu import otsu_mask, otsu_threshold
from engine.consistory.run_state import RunState, dropout_keep, source_matrix
from engine.consistory.sdsa_processor import SelfAttentionProcessor
from engine.consistory.subject_tokens import subject_token_positions
from engine.consistory.unet_layers import LayerInfo, UNetLayout, analyse_unet
from engine.errors import SubjectNotInPromptError


def _otsu_numpy(x: np.ndarray, bins: int = 256) -> float:
    """Independent reference: brute-force between-class variance over the same 256-bin histogram."""
    hist, edges = np.histogram(x, bins=bins, range=(x.min(), x.max()))
    centers = (edges[:-1] + edges[1:]) / 2
    best, thr = -1.0, None
    for k in range(bins - 1):
        w1, w2 = hist[: k + 1].sum(), hist[k + 1:].sum()
        if w1 == 0 or w2 == 0:
            continue
        m1 = (hist[: k + 1] * centers[: k + 1]).sum() / w1
        m2 = (hist[k + 1:] * centers[k + 1:]).sum() / w2
        v = w1 * w2 * (m1 - m2) ** 2
        if v > best:
            best, thr = v, centers[k]
    return float(thr)


# ---------------------------------------------------------------- Otsu
def test_otsu_separates_a_bimodal_map_and_matches_reference():
    g = torch.Generator().manual_seed(0)
    low = torch.rand(300, generator=g) * 0.2
    high = 0.7 + torch.rand(100, generator=g) * 0.3
    x = torch.cat([low, high])[torch.randperm(400, generator=g)]
    thr = otsu_threshold(x[None])[0].item()
    assert 0.2 <= thr < 0.7
    assert thr == pytest.approx(_otsu_numpy(x.numpy().astype(np.float64)), abs=1e-5)
    assert otsu_mask(x[None])[0].sum().item() == 100


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs an Apple GPU (MPS has no float64)")
def test_otsu_on_an_apple_gpu_equals_the_cpu():
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(3, 256, generator=g)
    maps[1, :10] = float("inf")
    on_mps = otsu_threshold(maps.to("mps"))
    assert on_mps.device.type == "mps" and torch.equal(on_mps.cpu(), otsu_threshold(maps))


def test_otsu_is_batched_scale_invariant_and_empty_on_flat_maps():
    g = torch.Generator().manual_seed(1)
    maps = torch.rand(3, 64, generator=g)
    maps[1] = 0.5  # flat: no subject found
    m = otsu_mask(maps)
    assert m[1].sum() == 0
    assert torch.equal(otsu_mask(maps[[0]] * 1000.0), m[[0]])
    for row in (0, 2):
        assert otsu_threshold(maps[[row]])[0].item() == pytest.approx(_otsu_numpy(maps[row].numpy().astype(np.float64)), abs=1e-5)


def test_otsu_ignores_invalid_entries():
    x = torch.tensor([[0.0, 0.1, 0.9, 1.0, float("inf")]])
    thr = otsu_threshold(x, valid=torch.isfinite(x))
    assert 0.09 <= thr.item() < 0.9  # the centre of the last low bin, as scikit-image reports it
    assert thr.item() == pytest.approx(_otsu_numpy(np.array([0.0, 0.1, 0.9, 1.0])), abs=1e-6)


# ---------------------------------------------------------------- subject tokens
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import CLIPTokenizer

    from engine.tiny_models import tiny_tokenizer_dir

    return CLIPTokenizer.from_pretrained(tiny_tokenizer_dir())


def test_subject_positions_single_multi_piece_and_repeated(tokenizer):
    prompts = ["a fox reads a map", "the fox and the fox", "a hedgehogs friend"]
    pos = subject_token_positions(tokenizer, prompts[:2], ["fox"])
    assert pos == [[[2], [2, 5]]]
    pieces = tokenizer("hedgehogs", add_special_tokens=False).input_ids
    assert len(pieces) > 1  # the tiny vocabulary splits this word
    pos = subject_token_positions(tokenizer, prompts[2:], ["hedgehogs"])
    assert pos == [[list(range(2, 2 + len(pieces)))]]
    two = subject_token_positions(tokenizer, ["a fox with a hat"], ["fox", "hat"])
    assert two == [[[2]], [[5]]]


def test_prompt_without_subject_is_refused_with_prompt_and_word(tokenizer):
    with pytest.raises(SubjectNotInPromptError) as err:
        subject_token_positions(tokenizer, ["a fox in snow", "a cat in snow"], ["fox"])
    assert "'a cat in snow'" in str(err.value) and "'fox'" in str(err.value)
    assert err.value.token_limit is None


def test_subject_past_the_token_limit_is_refused_naming_the_limit(tokenizer):
    long = "a " + "very " * (tokenizer.model_max_length) + "small fox"
    with pytest.raises(SubjectNotInPromptError) as err:
        subject_token_positions(tokenizer, ["a fox", long], ["fox"])
    assert err.value.token_limit == tokenizer.model_max_length
    assert f"limit of {tokenizer.model_max_length} tokens" in str(err.value) and "Shorten" in str(err.value)


# ---------------------------------------------------------------- layout
def test_layer_layout_of_tiny_models(tiny_sdxl, tiny_sd15):
    lay = analyse_unet(tiny_sdxl.pipe.unet)
    assert (lay.coarse, lay.fine, lay.decoder_factors, lay.dift_block) == (4, 2, (4, 2), 0)
    assert all(n.startswith("up_blocks.") for n in lay.sdsa_layers())
    inj = lay.injection_layers()
    assert inj and {n.split(".")[0] + "." + n.split(".")[1] for n in inj} == {"down_blocks.1", "up_blocks.1"}
    assert all(".attn2." in n for n in lay.mask_layers())
    assert lay.grid(4, (32, 48)) == (8, 12)
    lay15 = analyse_unet(tiny_sd15.pipe.unet)
    assert (lay15.coarse, lay15.fine, lay15.dift_block) == (2, 1, 1)


# ---------------------------------------------------------------- dropout
def test_dropout_draws_depend_only_on_seed_image_step_and_grid():
    a = dropout_keep(7, 0, 3, (8, 8), 0.5)
    assert torch.equal(a, dropout_keep(7, 0, 3, (8, 8), 0.5))
    assert not torch.equal(a, dropout_keep(8, 0, 3, (8, 8), 0.5))
    assert not torch.equal(a, dropout_keep(7, 0, 4, (8, 8), 0.5))
    assert not torch.equal(a, dropout_keep(7, 0, 3, (16, 4), 0.5))
    frac = torch.stack([dropout_keep(s, 0, 1, (16, 16), 0.5) for s in range(20)]).float().mean().item()
    assert 0.45 < frac < 0.55
    assert dropout_keep(1, 0, 1, (4, 4), 0.0).all()


def test_each_steps_dropout_comes_from_one_table_drawn_once_per_run():
    """The run draws every step's dropout at a resolution at once (one copy to the device, not one per step); the
    table holds exactly the per-(seed, image, step, grid) draws, and a step's shared patches are masks & draws."""
    n, p = 3, 16
    masks = torch.ones(1, n, p, dtype=torch.bool)
    masks[0, 1, 4:] = False
    st = _state(n=n, dropout=0.5, masks=masks)
    table = st.keep_tables[1]
    assert table.shape == (10, n, p) and table.dtype == torch.bool
    for step in range(10):
        for j in range(n):
            assert torch.equal(table[step, j], dropout_keep(j, j, step, (4, 4), 0.5))
    assert torch.equal(st.dropped[1][0], masks[0] & table[2])
    st.begin_step(5)
    assert st.keep_tables[1] is table  # not drawn again
    assert torch.equal(st.dropped[1][0], masks[0] & table[5])


def test_source_matrix_reads_anchors_only():
    g = source_matrix(4, 2)
    assert g.tolist() == [[False, True, False, False], [True, False, False, False],
                          [True, True, False, False], [True, True, False, False]]


# ---------------------------------------------------------------- shared attention on a real Attention layer
def _state(n=3, anchors=2, dropout=0.0, hw=(4, 4), masks=None, cfg=True, **cfg_kw):
    layout = UNetLayout(layers={}, coarse=1, fine=1, decoder_factors=(1,), dift_block=0)
    config = ConsistoryConfig(anchors=anchors, dropout=dropout, **cfg_kw)
    st = RunState(config=config, layout=layout, n_images=n, seeds=tuple(range(n)), latent_hw=hw, n_steps=10,
                  do_cfg=cfg, token_weights=torch.zeros(1, n, 77),
                  sources=source_matrix(n, anchors).unsqueeze(0), device=torch.device("cpu"))
    st.masks = {1: masks}
    st.begin_step(2)
    return st


def _layer_and_input(n=3, p=16, c=16, seed=0):
    torch.manual_seed(seed)
    attn = Attention(query_dim=c, heads=2, dim_head=8)
    x = torch.randn(2 * n, p, c)
    return attn, x


def test_shared_attention_reads_only_source_subject_patches():
    n, p = 3, 16
    subject = torch.zeros(1, n, p, dtype=torch.bool)
    subject[0, 0, :5] = True   # anchor 0's subject patches
    subject[0, 1, 8:12] = True  # anchor 1's
    subject[0, 2, :] = True     # the non-anchor: nobody may read it anyway
    st = _state(masks=subject)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input()
    with torch.no_grad():
        base = proc(attn, x)
        # perturb anchor 0's NON-subject tokens in both CFG halves: image 2 must not change at all
        x1 = x.clone()
        x1[[0, n], 5:] += 3.0
        out1 = proc(attn, x1)
        assert torch.equal(out1[[2, n + 2]], base[[2, n + 2]])
        assert torch.equal(out1[[1, n + 1]], base[[1, n + 1]])  # anchor 1 reads anchor 0's subject only too
        # perturb anchor 0's SUBJECT tokens: images 1 and 2 change
        x2 = x.clone()
        x2[[0, n], :5] += 3.0
        out2 = proc(attn, x2)
        assert not torch.allclose(out2[[2, n + 2]], base[[2, n + 2]])
        assert not torch.allclose(out2[[1, n + 1]], base[[1, n + 1]])
        # the non-anchor is never read by anyone: anchors stay the same whatever it holds
        x3 = x.clone()
        x3[[2, n + 2]] += 3.0
        out3 = proc(attn, x3)
        assert torch.equal(out3[[0, 1, n, n + 1]], base[[0, 1, n, n + 1]])
        # the unconditional half reads the unconditional half only
        x4 = x.clone()
        x4[n, :5] += 3.0
        out4 = proc(attn, x4)
        assert torch.equal(out4[2], base[2])
        assert not torch.allclose(out4[n + 2], base[n + 2])


def test_without_sharing_the_processor_equals_plain_attention():
    from diffusers.models.attention_processor import AttnProcessor2_0

    st = _state(masks=torch.ones(1, 3, 16, dtype=torch.bool), share=False)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input()
    with torch.no_grad():
        assert torch.equal(proc(attn, x), AttnProcessor2_0()(attn, x))


def test_dropout_removes_shared_keys_deterministically():
    full = torch.ones(1, 3, 16, dtype=torch.bool)
    st = _state(masks=full, dropout=0.5)
    idx_a = [t.clone() for t in st.key_index[1]]
    st.begin_step(2)
    assert all(torch.equal(a, b) for a, b in zip(idx_a, st.key_index[1]))
    assert 0 < idx_a[2].numel() < 32  # image 2 reads roughly half of the anchors' 32 patches
    st.begin_step(3)
    assert not all(torch.equal(a, b) for a, b in zip(idx_a, st.key_index[1]))


def test_query_blending_pulls_queries_toward_the_vanilla_pass():
    full = torch.ones(1, 3, 16, dtype=torch.bool)
    st = _state(masks=full, query_blend=True)
    st.begin_step(1)
    assert st.nu() == pytest.approx(0.9 - 0.8 * 1 / 9)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input()
    with torch.no_grad():
        st.phase = "vanilla"
        proc(attn, x)
        assert torch.equal(st.q_cache[info.name], attn.to_q(x))
        st.phase = "main"
        blended = proc(attn, x + 0.5)   # same vanilla queries cached, different main input
        st.q_cache.clear()
        unblended = proc(attn, x + 0.5)
    assert not torch.allclose(blended, unblended)
    st.begin_step(3)  # past ⌊0.1 · 10⌋ = 1: no blending
    assert st.nu() is None


def test_panels_that_read_the_same_anchors_are_attended_together_with_the_same_result():
    n = 5
    full = torch.ones(1, n, 16, dtype=torch.bool)
    st = _state(n=n, masks=full, dropout=0.5)
    groups = st.key_groups[1]
    assert sorted(images for images, _ in groups) == [[0], [1], [2, 3, 4]]
    for images, index in groups:
        assert all(torch.equal(index, st.key_index[1][i]) for i in images)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input(n=n)
    with torch.no_grad():
        grouped = proc(attn, x)
        st.key_groups[1] = [([i], st.key_index[1][i]) for i in range(n)]   # one image per call
        single = proc(attn, x)
    assert torch.allclose(grouped, single, atol=1e-6)


def test_key_groups_follow_the_sources_and_give_the_per_image_result():
    """Two subjects: panel 4 shows only the first, so it reads the anchors' first-subject patches only and gets a
    group of its own; panels 2 and 3 read both subjects' patches together."""
    n = 5
    sources = source_matrix(n, 2).unsqueeze(0).repeat(2, 1, 1)
    sources[1, 4] = False
    masks = torch.zeros(2, n, 16, dtype=torch.bool)
    masks[0, :, :6] = True
    masks[1, :, 10:] = True
    st = _state(n=n, masks=masks, dropout=0.5)
    st.sources = sources
    st.token_weights = torch.zeros(2, n, 77)
    for name in ("source_groups", "device_sources"):
        st.__dict__.pop(name, None)
    st.begin_step(2)
    groups = st.key_groups[1]
    assert [images for images, _ in groups] == [[0], [1], [2, 3], [4]]
    assert st.key_index[1][4].numel() < st.key_index[1][2].numel()
    assert all(torch.equal(index, st.key_index[1][images[0]]) for images, index in groups)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input(n=n)
    with torch.no_grad():
        grouped = proc(attn, x)
        st.key_groups[1] = [([i], st.key_index[1][i]) for i in range(n)]
        single = proc(attn, x)
    assert torch.allclose(grouped, single, atol=1e-6)


def test_shared_attention_never_asks_for_a_backend_that_compiles_per_key_length():
    """The shared calls' key count changes every step; on CUDA they rule out cuDNN attention (a graph built per new
    shape, about 60 ms each on an H200) and keep the kernels that take any length. Plain calls are left alone."""
    from torch.nn.attention import SDPBackend

    from engine.consistory import sdsa_processor

    assert SDPBackend.CUDNN_ATTENTION not in sdsa_processor._ANY_LENGTH
    assert SDPBackend.FLASH_ATTENTION in sdsa_processor._ANY_LENGTH and SDPBackend.MATH in sdsa_processor._ANY_LENGTH
    attn, x = _layer_and_input()
    q, k = attn.to_q(x), attn.to_k(x)
    with torch.no_grad():  # on the CPU the choice is PyTorch's own either way: the same numbers
        assert torch.equal(sdsa_processor.attend(attn, q, k, k, varying=True), sdsa_processor.attend(attn, q, k, k))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_shared_attention_runs_no_cudnn_attention_kernel():
    from torch.profiler import ProfilerActivity, profile

    n = 5
    st = _state(n=n, masks=torch.ones(1, n, 64, dtype=torch.bool), dropout=0.5, hw=(8, 8))
    st.device = torch.device("cuda")
    st.masks = {1: st.masks[1].cuda()}
    st.keep_tables.clear()
    st.__dict__.pop("device_sources", None)
    st.begin_step(2)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    torch.manual_seed(0)
    attn = Attention(query_dim=64, heads=1, dim_head=64).cuda().half()
    x = torch.randn(2 * n, 64, 64, device="cuda", dtype=torch.float16)
    from engine.consistory import gathered_attention

    gathered_attention.ENABLED = False   # the portable path (one SDPA call per key group)
    try:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            proc(attn, x)
            torch.cuda.synchronize()
    finally:
        gathered_attention.ENABLED = True
    ops = {e.key for e in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" in ops
    assert not any("cudnn_attention" in op for op in ops), sorted(ops)


def test_a_vanilla_copy_in_the_same_call_equals_a_separate_vanilla_pass():
    full = torch.ones(1, 3, 16, dtype=torch.bool)
    st = _state(masks=full, query_blend=True)
    st.begin_step(1)
    info = LayerInfo("up_blocks.0.x.attn1.processor", "up", 0, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=True, inject=False)
    attn, x = _layer_and_input()
    van = x + 0.25
    with torch.no_grad():
        st.phase = "vanilla"
        sep_vanilla = proc(attn, van)
        st.phase = "main"
        sep_main = proc(attn, x)
        st.q_cache.clear()
        st.dual = True                          # [main rows; vanilla rows] in one call
        both = proc(attn, torch.cat([x, van]))
    assert torch.allclose(both[:6], sep_main, atol=1e-6)
    assert torch.allclose(both[6:], sep_vanilla, atol=1e-6)
    assert torch.allclose(st.q_cache[info.name], attn.to_q(van))


def test_maps_are_recorded_only_where_someone_reads_them():
    full = torch.ones(1, 3, 16, dtype=torch.bool)
    batch = _state(masks=full)
    batch.mask_last = 7
    assert batch.reads_any and all(batch.records_maps() for batch.step in range(10))
    # panels against saved identities (no anchors in the batch): only the mask window that ends at mask_last
    alone = _state(anchors=0, masks=full)
    alone.mask_last, alone.run = 7, 1
    alone.config = ConsistoryConfig(anchors=0, mask_window=5)
    recorded = [s for s in range(10) if (setattr(alone, "step", s) or alone.records_maps())]
    assert not alone.reads_any and recorded == [3, 4, 5, 6, 7]
    alone.run = 2
    assert not any(alone.records_maps() for alone.step in range(10))
    # the panel still shares (with the saved anchors, through the bank) and blends from step 1: empty own keys
    alone.begin_step(1)
    assert alone.sharing() and all(i.numel() == 0 for i in alone.key_index[1])


# ---------------------------------------------------------------- feature injection
def test_injection_plan_stays_inside_target_masks_and_reads_sources_only():
    torch.manual_seed(0)
    n, c, h, w = 3, 8, 4, 4
    feats = torch.randn(n, c, h, w)
    feats[2] = feats[0] + 0.01 * torch.randn(c, h, w)  # image 2 looks like anchor 0
    src_masks = torch.zeros(1, n, h * w, dtype=torch.bool)
    src_masks[0, 0, :8] = True
    src_masks[0, 1, 4:12] = True
    target = torch.zeros(n, h * w, dtype=torch.bool)
    target[2, 2:10] = True
    target[0, :3] = True
    plan = plan_injection(feats, target[None], *batch_pool(feats, src_masks), source_matrix(n, 2).unsqueeze(0), 0.8)
    assert plan.selected[~target].sum() == 0
    assert set(plan.src_owner.tolist()) <= {0, 1}
    src_img, src_patch = plan.src_flat // 16, plan.src_flat % 16
    assert torch.equal(src_img, plan.src_owner)
    for ti, si, sp in zip(plan.tgt_img, src_img, src_patch):
        assert src_masks[0, si, sp]
        assert si != ti
    # image 2's matches to its near-copy anchor 0 are the identity correspondence
    rows = plan.tgt_img == 2
    assert rows.any()
    exact = (src_img[rows] == 0) & (src_patch[rows] == plan.tgt_patch[rows])
    assert exact.float().mean() > 0.6


def test_injection_changes_only_conditional_rows_at_selected_patches():
    n, p = 3, 16
    full = torch.ones(1, n, p, dtype=torch.bool)
    st = _state(masks=full, share=False, inject=True)
    torch.manual_seed(3)
    feats = torch.randn(n, 8, 4, 4)
    target = torch.zeros(n, p, dtype=torch.bool)
    target[2, :6] = True
    st.injection = plan_injection(feats, target[None], *batch_pool(feats, full), st.sources, 0.8)
    st.inject_on = True
    st.n_steps = 10
    st.step = 1  # inject_steps(10) = 1..3
    info = LayerInfo("down_blocks.1.x.attn1.processor", "down", 1, True, 1)
    proc = SelfAttentionProcessor(st, info, sdsa=False, inject=True)
    attn, x = _layer_and_input()
    with torch.no_grad():
        injected = proc(attn, x)
        st.inject_on = False
        plain = proc(attn, x)
    changed = (injected != plain).any(-1)
    expected = torch.zeros_like(changed)
    expected[n + 2, :6] = st.injection.selected[2, :6]
    assert changed.any()
    assert torch.equal(changed, expected)


def test_smoothing_is_a_normalised_gaussian():
    x = torch.zeros(1, 2, 5, 5)
    x[0, :, 2, 2] = 1.0
    y = smooth_features(x)
    assert y.sum().item() == pytest.approx(2.0, abs=1e-5)
    assert y[0, 0, 2, 2] > y[0, 0, 1, 2] > y[0, 0, 1, 1] > 0
