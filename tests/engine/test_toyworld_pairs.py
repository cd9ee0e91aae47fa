"""Paired panels for toy-model training: which pictures pair up, and what the paired self-attention computes."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch

from engine.toyworld.captions import underspecified
from engine.toyworld.dataset import make_creatures
from engine.toyworld.paired_attention import (PairedSelfAttention, draw_pairs, install_paired_attention, look_key,
                                              pair_index)
from engine.toyworld.render import Creature


def test_pairs_are_two_different_one_creature_pictures_with_one_look():
    creatures = make_creatures(600, seed=3, twins=0.5)
    groups = pair_index(creatures)
    assert groups and all(len(v) >= 2 for v in groups.values())
    paired = {i for v in groups.values() for i in v}
    assert all(creatures[i].twin_cx is None for i in paired)   # twins pictures never pair
    first, second = draw_pairs(groups, 50, random.Random(1))
    assert len(first) == len(second) == 50
    for a, b in zip(first, second):
        assert a != b and look_key(creatures[a]) == look_key(creatures[b])
    # the pictures differ in what the look leaves open (here: at least the place or the scene)
    assert any((creatures[a].cx, creatures[a].scene) != (creatures[b].cx, creatures[b].scene)
               for a, b in zip(first, second))
    assert draw_pairs(groups, 50, random.Random(1)) == (first, second)  # seeded: a resumed run sees the same stream


def test_looks_seen_once_cannot_pair():
    a = Creature("red", "round", None, "beach")
    creatures = (a, replace(a, colour="blue"), replace(a, scene="forest", cx=0.4),
                 replace(a, twin_cx=0.7))  # the twins picture has a's look but never pairs
    assert pair_index(creatures) == {look_key(a): [0, 2]}


@pytest.fixture(scope="module")
def unet():
    from engine.toyworld.architecture import build_unet

    torch.manual_seed(0)
    return build_unet(32, True).eval()


def _run(unet, x, e, n_pairs=None):
    t = torch.full((x.shape[0],), 500)
    with torch.no_grad():
        if n_pairs is None:
            from diffusers.models.attention_processor import AttnProcessor2_0

            unet.set_attn_processor(AttnProcessor2_0())
        else:
            install_paired_attention(unet).n_pairs = n_pairs
        return unet(x, t, e).sample


def test_paired_attention_reads_exactly_the_partner(unet):
    g = torch.Generator().manual_seed(1)
    x, e = torch.randn(5, 4, 32, 32, generator=g), torch.randn(5, 16, 128, generator=g)
    plain = _run(unet, x, e)
    assert torch.allclose(_run(unet, x, e, n_pairs=0), plain, atol=1e-5)   # no pairs: the stock computation
    paired = _run(unet, x, e, n_pairs=2)                                     # rows 0-2 and 1-3 pair, row 4 alone
    assert torch.allclose(paired[4], plain[4], atol=1e-5)
    assert (paired[:4] - plain[:4]).abs().amax() > 1e-3
    x2 = x.clone()
    x2[3] = torch.randn(4, 32, 32, generator=g)                             # change row 1's partner only
    changed = _run(unet, x2, e, n_pairs=2)
    assert (changed[1] - paired[1]).abs().amax() > 1e-3
    assert torch.allclose(changed[0], paired[0], atol=1e-5) and torch.allclose(changed[2], paired[2], atol=1e-5)


def test_a_picture_paired_with_itself_draws_as_alone(unet):
    """Its keys are then its own, twice: softmax weights halve and the output is unchanged."""
    g = torch.Generator().manual_seed(2)
    x, e = torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 16, 128, generator=g)
    x, e = torch.cat([x, x]), torch.cat([e, e])
    assert torch.allclose(_run(unet, x, e, n_pairs=2), _run(unet, x, e), atol=1e-5)


def test_processor_leaves_cross_attention_alone():
    proc = PairedSelfAttention()
    proc.n_pairs = 1
    calls = []
    proc.plain = lambda attn, h, enc, mask, temb: calls.append(enc) or h
    h, enc = torch.zeros(2, 4, 8), torch.ones(2, 3, 8)
    assert proc(None, h, enc) is h and calls == [enc]


def test_training_with_pairs_records_them_and_refuses_a_set_without_any(tmp_path):
    from engine.toyworld import train
    from engine.toyworld.export import export

    small = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "4",
             "--log-every", "1", "--threads", "1", "--twins", "0", "--steps", "2"]
    with pytest.raises(SystemExit, match="no two of the 6 training pictures show one creature with the same look"):
        train.main(["--out", str(tmp_path / "few"), "--n-train", "6", "--pairs", "0.5"] + small)
    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--n-train", "160", "--pairs", "0.5"] + small) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    info = next(r for r in rows if r.get("msg") == "paired panels")
    assert info["pairs_per_batch"] == 1 and info["looks"] >= 1
    assert [r["step"] for r in rows if r["phase"] == "unet" and "loss" in r] == [1, 2]
    assert json.loads((export(out, tmp_path / "model") / "training.json").read_text())["pairs"] == 0.5
    with pytest.raises(SystemExit, match="a batch of 4 holds none; raise --pairs or --batch"):  # 4 * 0.1 < 2
        train.main(["--out", str(out), "--n-train", "160", "--resume", "--pairs", "0.1"] + small)


def test_pairs_from_holds_the_pairs_back_for_the_first_share_of_the_steps(tmp_path, monkeypatch):
    """A run from scratch learns the look words on full captions first: no pairs (and no open pair captions)
    before ``--pairs-from`` of ``--steps``, then every batch starts with its pairs."""
    from engine.toyworld import train
    from engine.toyworld.export import export

    drawn, captions = [], []
    real_draw, real_open = train.draw_pairs, train.underspecified
    monkeypatch.setattr(train, "draw_pairs", lambda *a: drawn.append(1) or real_draw(*a))
    monkeypatch.setattr(train, "underspecified", lambda *a: captions.append(1) or real_open(*a))
    args = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "4",
            "--log-every", "1", "--threads", "1", "--twins", "0", "--n-train", "160", "--pairs", "0.5",
            "--pair-keys", "subject", "--pair-captions", "open", "--steps", "5", "--pairs-from", "0.5"]
    with pytest.raises(SystemExit):  # every step before the pairs: refused, it would train none
        train.main(["--out", str(tmp_path / "bad")] + args[:-1] + ["1.0"])
    out = tmp_path / "run"
    assert train.main(["--out", str(out)] + args) == 0
    assert len(drawn) == 2 and len(captions) == 2 * 2   # steps 3 and 4 of 0-4: one pair, two open captions each
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert next(r for r in rows if r.get("msg") == "paired panels")["from_step"] == 3
    assert json.loads((export(out, tmp_path / "model") / "training.json").read_text())["pairs_from"] == 0.5


def test_heads32_changes_the_heads_at_the_top_level_only_and_survives_export(tmp_path):
    """One head of 32 channels at the 32x32 level trains faster on a CPU; the weights keep their shapes (so
    ``--init`` still carries them) and the exported model is rebuilt with the heads it was trained with."""
    from diffusers import UNet2DConditionModel

    from engine.toyworld import train
    from engine.toyworld.architecture import build_unet
    from engine.toyworld.export import export

    one, four = build_unet(32, True, heads32=1), build_unet(32, True)
    assert {k: v.shape for k, v in one.state_dict().items()} == {k: v.shape for k, v in four.state_dict().items()}
    heads = {n: m.heads for n, m in one.named_modules() if n.endswith("attn1")}
    top = {n for n in heads if n.startswith(("down_blocks.0.", "up_blocks.2."))}
    assert top and {n for n, h in heads.items() if h == 1} == top
    small = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "4",
             "--threads", "1", "--twins", "0", "--n-train", "16", "--attn32"]
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "bad"), "--heads32", "3", "--steps", "1"] + small)  # 3 does not divide 32
    assert train.main(["--out", str(tmp_path / "run"), "--heads32", "1", "--steps", "1"] + small) == 0
    with pytest.raises(SystemExit, match="trained with --heads32 1; resume it with that, not 4"):
        train.main(["--out", str(tmp_path / "run"), "--resume", "--steps", "2"] + small)
    model = export(tmp_path / "run", tmp_path / "model")
    assert json.loads((model / "training.json").read_text())["heads32"] == 1
    loaded = UNet2DConditionModel.from_pretrained(model / "unet")
    assert [m.heads for n, m in loaded.named_modules() if n.endswith("attn1")] == list(heads.values())


def test_only_decoder_self_attention_is_paired(unet):
    """The copying is to be learnt where ConsiStory shares: the up blocks' ``attn1``."""
    paired = install_paired_attention(unet)
    procs = unet.attn_processors
    decoder_self = {n for n in procs if n.startswith("up_blocks.") and n.endswith("attn1.processor")}
    assert len(decoder_self) == 6  # two transformers in each of the toy UNet's 3 up blocks
    assert {n for n, p in procs.items() if p is paired} == decoder_self


def _attention(channels=8, heads=2):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(1)
    return Attention(query_dim=channels, heads=heads, dim_head=channels // heads).eval()


def _stock(attn, h):
    from diffusers.models.attention_processor import AttnProcessor2_0

    with torch.no_grad():
        return AttnProcessor2_0()(attn, h)


def test_subject_keys_read_only_the_partners_creature_patches():
    """As ConsiStory shares: a paired picture reads its partner's creature patches (true mask, area-pooled to the
    layer's grid), never its background."""
    attn, proc = _attention(), PairedSelfAttention()
    proc.n_pairs = 1
    h = torch.randn(3, 16, 8)                       # rows 0-1 pair, row 2 alone; a 4x4 grid of tokens
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)  # 8x8 masks: each token is a 2x2 block of pixels
    masks[1, :4, :4] = True                         # the partner of row 0 shows its creature in the top-left 2x2 tokens
    masks[0, 4:, 4:] = True
    proc.set_subject_masks(masks, dropout=0.0)
    with torch.no_grad():
        out = proc(attn, h)
        inside, outside = h.clone(), h.clone()
        inside[1, 0] += 1.0                         # token (0, 0): inside row 1's creature
        outside[1, 15] += 1.0                       # token (3, 3): its background
        out_in, out_out = proc(attn, inside), proc(attn, outside)
    assert (out_in[0] - out[0]).abs().amax() > 1e-4                 # row 0 reads its partner's creature ...
    assert torch.allclose(out_out[0], out[0], atol=1e-6)             # ... and not its background
    assert torch.allclose(out[2], _stock(attn, h[2:]), atol=1e-6)   # an unpaired row attends as usual
    proc.set_subject_masks(torch.zeros(2, 8, 8, dtype=torch.bool))  # nothing to read: each row as if alone
    with torch.no_grad():
        assert torch.allclose(proc(attn, h), _stock(attn, h), atol=1e-6)
    proc.set_subject_masks(None)                                    # back to all of the partner's tokens
    with torch.no_grad():
        assert (proc(attn, outside)[0] - proc(attn, h)[0]).abs().amax() > 1e-4


def test_subject_key_dropout_is_seeded_and_checked():
    attn, proc = _attention(), PairedSelfAttention()
    proc.n_pairs = 2
    h = torch.randn(4, 64, 8)
    masks = torch.ones(4, 16, 16, dtype=torch.bool)

    def keys(seed):
        proc.set_subject_masks(masks, dropout=0.5, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            out = proc(attn, h)
        return out, proc._key_mask(64, h.device).view(4, 128)

    out_a, kept_a = keys(5)
    out_b, kept_b = keys(5)
    assert torch.equal(kept_a, kept_b) and torch.equal(out_a, out_b)   # one seed, one draw
    assert kept_a[:, :64].all()                                        # a picture's own tokens are never dropped
    assert 0.3 < kept_a[:, 64:].float().mean() < 0.7                   # about half of the partner's creature
    assert not torch.equal(keys(6)[1], kept_a)
    # drawn and placed on the device once per batch and grid, not in every layer that reads them
    assert proc._key_mask(64, h.device) is proc._key_mask(64, h.device)
    assert proc._partners(2, h.device) is proc._partners(2, h.device)
    assert proc._partners(2, h.device).tolist() == [2, 3, 0, 1]
    with pytest.raises(ValueError, match="pair dropout 1.0 must be in"):
        proc.set_subject_masks(masks, dropout=1.0)


def test_training_with_subject_keys_pairs_at_one_noise_level(tmp_path, monkeypatch, capsys):
    from engine.toyworld import train
    from engine.toyworld.export import export

    seen = []
    build = train.build_unet

    def recording_build(*a, **k):
        unet = build(*a, **k)
        unet.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
        return unet

    monkeypatch.setattr(train, "build_unet", recording_build)
    open_captions = []

    def recording_underspecified(scene, shape=None):
        open_captions.append((scene, shape))
        return underspecified(scene, shape)

    monkeypatch.setattr(train, "underspecified", recording_underspecified)
    small = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "8",
             "--log-every", "1", "--threads", "1", "--twins", "0", "--steps", "3", "--n-train", "160"]
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "bad"), "--pairs", "0.5", "--pair-keys", "subject",
                    "--pair-dropout", "1"] + small)
    assert "--pair-dropout 1.0 must be in [0, 1)" in capsys.readouterr().err
    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--pairs", "0.5", "--pair-keys", "subject", "--pair-captions", "open"]
                      + small) == 0
    assert len(seen) == 3
    assert len(open_captions) == 3 * 4   # both pictures of both pairs, every step: the look left open
    for t in seen:   # 2 pairs per batch of 8: rows 0-1 are first pictures, rows 2-3 their partners
        assert torch.equal(t[:2], t[2:4])
    assert any(not torch.equal(t[:2], t[4:6]) for t in seen)   # unpaired rows keep their own noise levels
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    info = next(r for r in rows if r.get("msg") == "paired panels")
    assert info["keys"] == "subject" and info["dropout"] == 0.5 and info["captions"] == "open"
    recorded = json.loads((export(out, tmp_path / "model") / "training.json").read_text())
    assert recorded["pair_keys"] == "subject" and recorded["pair_captions"] == "open"


def test_twins_from_draws_only_one_creature_pictures_first(tmp_path, monkeypatch):
    """``--twins-from`` keeps twins pictures out of every batch before that share of ``--steps``, then draws from
    the whole set again; a set of nothing but twins is refused instead of training on nothing."""
    from engine.toyworld import train
    from engine.toyworld.export import export

    twins_seen: list[int] = []
    creatures = train.make_creatures(160, train.TRAIN_SEED, 0.5)
    real_caption = train.random_caption
    monkeypatch.setattr(train, "random_caption",
                        lambda c, rng: twins_seen.append(c.twin_cx is not None) or real_caption(c, rng))
    args = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "8",
            "--log-every", "1", "--threads", "1", "--twins", "0.5", "--n-train", "160", "--steps", "6"]
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "bad"), "--twins-from", "1.0"] + args)
    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--twins-from", "0.5"] + args) == 0
    assert len(twins_seen) == 6 * 8 and sum(c.twin_cx is not None for c in creatures) > 40
    assert not any(twins_seen[:3 * 8])          # steps 0-2: one creature each
    assert sum(twins_seen[3 * 8:]) >= 3         # steps 3-5: from the whole set, half of it twins
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r.get("msg") == "one creature per picture first")
    assert first["from_step"] == 3 and first["singles"] == sum(c.twin_cx is None for c in creatures)
    assert json.loads((export(out, tmp_path / "model") / "training.json").read_text())["twins_from"] == 0.5


def test_anchor_captions_say_the_first_pictures_look_and_leave_the_partners_open(tmp_path, monkeypatch):
    """``--pair-captions anchor``: in each pair the first picture's caption says its whole look and the second
    leaves it open, so the second can only learn its look from the first."""
    from engine.toyworld import train
    from engine.toyworld.captions import caption

    said, opened = [], []
    real_caption, real_open = train.caption, train.underspecified
    monkeypatch.setattr(train, "caption", lambda c: said.append(c) or real_caption(c))
    monkeypatch.setattr(train, "underspecified", lambda *a: opened.append(a) or real_open(*a))
    small = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "8",
             "--log-every", "1", "--threads", "1", "--twins", "0", "--steps", "3", "--n-train", "160"]
    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--pairs", "0.5", "--pair-keys", "subject", "--pair-captions", "anchor"]
                      + small) == 0
    assert len(said) == 3 * 2 and len(opened) == 3 * 2   # per step: 2 pairs, one said and one open picture each
    assert all(c.colour in caption(c) and c.markings in caption(c) for c in said)   # the whole look said
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert next(r for r in rows if r.get("msg") == "paired panels")["captions"] == "anchor"
