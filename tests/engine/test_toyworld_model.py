"""The shipped toy model loads offline as source ``toy`` and draws the colour it is asked for; the training
script runs, checkpoints and resumes (on a miniature run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.model_loader import TOY_MODEL_DIR

SHIPPED = (TOY_MODEL_DIR / "model_index.json").exists()
needs_model = pytest.mark.skipif(
    not SHIPPED, reason="the toy model is not in resources/models/toy (python -m engine.toyworld.train, then "
                        "python -m engine.toyworld.export)")


@pytest.fixture(scope="module")
def toy():
    from engine.model_loader import load_model

    return load_model("toy")


@needs_model
def test_shipped_folder_is_a_small_standard_pipeline():
    from engine.toyworld.export import folder_size

    index = json.loads((TOY_MODEL_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert sorted(p.name for p in TOY_MODEL_DIR.rglob("*.safetensors")) == [
        "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors", "model.safetensors"]
    assert not list(TOY_MODEL_DIR.rglob("*.bin"))
    assert folder_size(TOY_MODEL_DIR) <= 30 * 2**20


@needs_model
def test_shipped_model_knows_the_words_the_app_lets_through():
    """The app's toy vocabulary is the world's words the shipped tokenizer holds as one token; every word the
    shipped captions need (one creature: colour, markings, shape, hat, scene) is among them."""
    from app.model_profiles import profile_for
    from engine.toyworld.captions import caption
    from engine.toyworld.render import BODY_COLOURS, HAT_COLOURS, MARKINGS, SCENES, SHAPES, Creature

    tok_vocab = json.loads((TOY_MODEL_DIR / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    known = profile_for("toy").vocabulary
    assert all(f"{w}</w>" in tok_vocab for w in known)
    needed = {w for colour in BODY_COLOURS for shape in SHAPES for hat in (None, *HAT_COLOURS) for scene in SCENES
              for markings in MARKINGS for w in caption(Creature(colour, shape, hat, scene, markings=markings)).split()}
    assert needed <= known


@needs_model
def test_toy_draws_the_requested_colour(toy):
    from engine.generate import generate
    from engine.request import GenerationSpec
    from engine.toyworld.judge import judge

    assert toy.family == "sd15" and toy.pipe.vae_scale_factor == 2
    colours = ("red", "blue", "green")
    prompts = tuple(f"a {c} round creature with no hat in the snow" for c in colours for _ in range(2))
    result = generate(toy, GenerationSpec(prompts=prompts, seeds=tuple(range(len(prompts))), width=64, height=64,
                                          steps=12, guidance=4.0))
    judged = [judge(img) for img in result.images]
    wanted = [c for c in colours for _ in range(2)]
    right = sum(j.colour == w for j, w in zip(judged, wanted))
    assert right >= 5, [j.identity for j in judged]
    assert sum(j.scene == "snow" for j in judged) >= 5


@needs_model
def test_toy_draws_the_requested_markings(toy):
    from engine.generate import generate
    from engine.request import GenerationSpec
    from engine.toyworld.judge import judge
    from engine.toyworld.render import MARKINGS

    wanted = [m for m in MARKINGS for _ in range(2)]
    prompts = tuple(f"a green {m} square creature with no hat on the beach" for m in wanted)
    result = generate(toy, GenerationSpec(prompts=prompts, seeds=tuple(range(10, 10 + len(prompts))), width=64,
                                          height=64, steps=12, guidance=4.0))
    judged = [judge(img) for img in result.images]
    assert sum(j.markings == w for j, w in zip(judged, wanted)) >= 5, [j.identity for j in judged]


def test_training_script_checkpoints_and_resumes(tmp_path, capsys):
    from engine.toyworld import train
    from engine.toyworld.export import build_pipeline

    out = tmp_path / "run"
    small = ["--out", str(out), "--n-train", "48", "--n-held", "8", "--vae-psnr", "1", "--vae-eval-every", "2",
             "--vae-batch", "4", "--batch", "4", "--log-every", "1", "--threads", "1"]
    assert train.main(small + ["--steps", "2"]) == 0
    with pytest.raises(SystemExit):  # a second run into the same folder needs --resume
        train.main(small + ["--steps", "2"])
    with pytest.raises(SystemExit):  # the cached latents were drawn with another share of twins
        train.main(small + ["--steps", "3", "--resume", "--twins", "0.2"])
    assert "with twins 0.5, but --n-train is 48 and --twins 0.2" in capsys.readouterr().err
    assert train.main(small + ["--steps", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "unet" and "loss" in r] == [1, 2, 3]
    assert sum(r["phase"] == "data" for r in rows) == 1  # the resumed run did not draw the pictures again
    assert any(r.get("msg") == "resumed" and r["step"] == 2 for r in rows)
    pipe = build_pipeline(out)
    assert pipe.vae.config.scaling_factor == pytest.approx(
        next(r["scaling"] for r in rows if r["phase"] == "latents"), abs=1e-4)
    assert Path(out / "unet.pt").exists()
    from engine.toyworld.export import export

    shipped = json.loads((export(out, tmp_path / "model") / "training.json").read_text())
    assert (shipped["unet_steps"], shipped["twins"], shipped["attn32"], shipped["ema"]) == (3, 0.5, False, True)


def test_init_carries_each_words_embedding_to_its_new_id():
    """``--init`` from a model with another vocabulary: every token string keeps its embedding row wherever the
    new tokenizer puts it; tokens the old model never saw start at the old rows' mean; other weights are copied."""
    import torch

    from engine.toyworld.architecture import build_text_encoder, build_tokenizer
    from engine.toyworld.train import _carry_embeddings

    new_vocab = build_tokenizer().get_vocab()
    torch.manual_seed(0)
    old = build_text_encoder()
    # the old model knew three words, at ids of its own (reversed order), and nothing else
    known = ["red</w>", "striped</w>", "<|endoftext|>"]
    old_vocab = {tok: len(known) - 1 - i for i, tok in enumerate(known)}
    old_rows = old.get_input_embeddings().weight.detach().clone()
    new = build_text_encoder()
    fresh = _carry_embeddings(new, old, old_vocab)
    emb = new.get_input_embeddings().weight.detach()
    assert fresh == len(new_vocab) - len(known)
    for tok in known:
        assert torch.equal(emb[new_vocab[tok]], old_rows[old_vocab[tok]]), tok
    other = new_vocab["blue</w>"]
    assert torch.allclose(emb[other], old_rows.mean(0))
    pos = next(k for k in new.state_dict() if k.endswith("position_embedding.weight"))
    assert torch.equal(new.state_dict()[pos], old.state_dict()[pos])


@needs_model
def test_consistency_benchmark_measures_one_small_set(toy, load_bench):
    """The benchmark's sets name the kind of creature and leave its look open; one tiny set runs end to end in both
    modes and every rate is a share of pairs or images."""
    bench = load_bench("bench_consistency")
    sets = bench.make_sets(4, 3, "kind")
    assert [s[3] for s in sets] == ["round", "square", "triangle", "round"]
    assert sets[1][1][0] == "a square creature on the beach" and len(set(sets[1][0])) == 3
    assert bench.make_sets(1, 2, "open")[0][1] == ("a creature in the snow", "a creature on the beach")
    fresh = bench.make_sets(2, 3, "kind", first=40)  # a second sample: sets 40 and 41, seeds no earlier set used
    assert [s[2] for s in fresh] == [(40000, 40001, 40002), (41000, 41001, 41002)]
    assert fresh == bench.make_sets(42, 3, "kind")[40:]
    for mode in ("plain", "consistory"):
        res = bench.run_mode(toy, mode, sets[:1], steps=4, guidance=4.0)
        rates = ("consistency", "consistency_with_hat", "colour_agreement", "markings_agreement", "shape_agreement",
                 "hat_agreement", "layout_overlap", "alignment", "kind_alignment", "distinct_identities")
        assert all(0.0 <= res[k] <= 1.0 for k in rates), res
        assert res["consistency"] <= min(res["colour_agreement"], res["markings_agreement"], res["shape_agreement"])
        assert res["consistency_with_hat"] <= res["consistency"]
        assert res["chance_consistency"] is None  # one set: no pair of sets to compare
        assert (res["subject_mask_iou"] is None) == (mode == "plain")
        # 3 images, anchors 0 and 1: one anchor pair and two anchor-other pairs, weighted back to the whole
        pc = res["pair_consistency"]
        assert set(pc) == {"anchor_anchor", "anchor_other"}
        assert pc["anchor_anchor"] + 2 * pc["anchor_other"] == pytest.approx(3 * res["consistency"])
    # chance: pairs across sets of one kind only; a look without a colour agrees with nothing
    red, blue, none = ("red", "plain", "round"), ("blue", "plain", "round"), (None, None, None)
    assert bench.chance_agreement([[red, red], [red, blue], [red, red]], ["round", "round", "square"]) == 0.5
    assert bench.chance_agreement([[none], [none]], ["round", "round"]) == 0.0
    assert bench.chance_agreement([[red], [red]], ["round", "square"]) is None
    assert [bench._pair_kind(i, j, 2) for i, j in ((0, 1), (1, 2), (2, 3))] == \
        ["anchor_anchor", "anchor_other", "other_other"]
    assert bench.mode_config("one_anchor").anchors == 1
    assert bench.mode_config("no_masks").masks is False and bench.mode_config("full_inject").inject_alpha == 1.0


@needs_model
def test_bench_decisions_follows_the_final_trajectory(toy, load_bench):
    """The decisions bench judges one prediction per step of the trajectory that made the pictures (ConsiStory's
    run 2 replaces run 1 from the first injection step) and puts the schedulers back afterwards."""
    import engine.consistory.pipeline as consistory_pipeline
    import engine.denoise_loop as loop

    bench = load_bench("bench_decisions")
    assert bench.settle_step(["a", "b", "a", "a"]) == 2 and bench.settle_step(["a"]) == 0
    assert bench.settle_step(["a", "b"]) == 1 and bench.settle_step(["b", "b", "b"]) == 0
    assert bench.final_trajectory([(900, "r1"), (500, "r1b"), (500, "r2"), (100, "r2b")]) == ["r1", "r2", "r2b"]
    original = loop.make_scheduler
    sets = load_bench("bench_consistency").make_sets(1, 3)
    for mode, inject in (("plain", None), ("consistory", [0, 2])):   # 6 steps: injection on 10 % .. 1/3 of them
        res = bench.run_mode(toy, mode, sets, steps=6, guidance=4.0)
        assert res["inject_steps"] == inject
        for a in bench.ATTRIBUTES:
            assert len(res["agreement_by_step"][a]) == 6
            assert all(0.0 <= v <= 1.0 for v in res["agreement_by_step"][a])
            assert sum(res["settle_steps"][a].values()) == 3 and all(0 <= k < 6 for k in res["settle_steps"][a])
    assert loop.make_scheduler is original and consistory_pipeline.make_scheduler is original


@needs_model
def test_bench_pair_gain_compares_a_picture_alone_and_with_its_partner(toy, load_bench):
    """The pair-gain bench renders pairs of one look in different scenes, and measures the prediction error with and
    without the partner's creature patches at one noise level; the UNet's processors are put back."""
    bench = load_bench("bench_pair_gain")
    renders, creatures = bench.make_pairs(3, seed=2)
    assert len(renders) == len(creatures) == 6
    for a, b in zip(creatures[:3], creatures[3:]):
        assert (a.colour, a.shape, a.markings, a.hat) == (b.colour, b.shape, b.markings, b.hat)
        assert a.scene != b.scene
    before = dict(toy.pipe.unet.attn_processors)
    res = bench.pair_gain(toy, n_pairs=2, timesteps=(600, 300))
    assert set(res) == {600, 300}
    for r in res.values():
        assert r["error_alone"] > 0 and r["error_partner"] > 0
        assert r["gain"] == pytest.approx(1 - r["error_partner"] / r["error_alone"])
        assert r["error_alone"] != r["error_partner"]   # the partner was read
    assert dict(toy.pipe.unet.attn_processors) == before


@needs_model
def test_shipped_model_draws_twins_that_match(toy, load_bench):
    """Trained on twins, the shipped model draws two creatures of one look when asked (the benchmark's measure of
    copying within a picture); a model that never saw twins is refused by name."""
    bench = load_bench("bench_commitment")
    res = bench.twin_agreement(toy, [0, 1], steps=20, guidance=4.0)
    assert res["images"] == 6
    assert res["agree"]["colour"] >= 5 / 6 and 0.0 <= res["agree"]["look"] <= res["agree"]["markings"]

    class NoTwins:
        source = "old-toy"
        pipe = type("P", (), {"tokenizer": type("T", (), {"get_vocab": staticmethod(lambda: {"creature</w>": 1})})})

    with pytest.raises(SystemExit, match="old-toy was not trained on twins"):
        bench.twin_agreement(NoTwins, [0], steps=2, guidance=4.0)


def test_init_into_a_unet_with_attention_at_32x32_starts_as_the_old_model(tmp_path):
    """``--init`` into ``--attn32`` (attention added at the top level): the convolutions carry over by name and the
    new attention layers start as no-ops, so before any step the new UNet predicts exactly what the old one did."""
    import torch

    from engine.toyworld import train
    from engine.toyworld.export import build_pipeline, export

    small = ["--n-train", "32", "--n-held", "8", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4",
             "--batch", "4", "--log-every", "1", "--threads", "1"]
    assert train.main(["--out", str(tmp_path / "a"), "--steps", "2"] + small) == 0
    old = export(tmp_path / "a", tmp_path / "a-model")
    assert train.main(["--out", str(tmp_path / "b"), "--steps", "0", "--init", str(old), "--attn32"] + small) == 0
    a, b = build_pipeline(tmp_path / "a").unet, build_pipeline(tmp_path / "b").unet
    assert not any("down_blocks.0.attentions" in k for k in a.state_dict())
    assert any("down_blocks.0.attentions" in k for k in b.state_dict())
    torch.manual_seed(0)
    z, t, text = torch.randn(2, 4, 32, 32), torch.tensor([500, 900]), torch.randn(2, 16, 128)
    with torch.no_grad():
        assert torch.allclose(a(z, t, text).sample, b(z, t, text).sample, atol=1e-5)
