"""How a toy-model training run spends its steps: ``--time-schedule`` (the curriculum and the learning-rate decay follow
the clock, for GPU runs of a fixed length) and the creature masks kept from the data phase for the paired panels."""

from __future__ import annotations

import json
import shutil
import time as real_time

import numpy as np
import pytest
import torch

from engine.toyworld import train
from engine.toyworld.dataset import TRAIN_SEED, make_set
from engine.toyworld.export import export
from engine.toyworld.render import render

SMALL = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "8",
         "--log-every", "1", "--threads", "1", "--twins", "0.5", "--n-train", "160", "--pairs", "0.5",
         "--pair-keys", "subject", "--pair-captions", "open"]


class FakeClock:
    """``train``'s ``time`` module with a clock that moves two seconds per reading: runs repeat exactly."""

    def __init__(self):
        self.now = 1_000_000.0

    def time(self) -> float:
        self.now += 2.0
        return self.now

    strftime = staticmethod(real_time.strftime)


@pytest.fixture(scope="module")
def prelude(tmp_path_factory):
    """A run folder after the data phase (VAE and latents, no UNet step), shared by the runs below."""
    out = tmp_path_factory.mktemp("toy") / "prelude"
    assert train.main(["--out", str(out), "--steps", "0"] + SMALL) == 0
    return out


def _from(prelude, out, latents: dict | None = None):
    out.mkdir()
    shutil.copy(prelude / "vae.pt", out / "vae.pt")
    if latents is None:
        shutil.copy(prelude / "latents.pt", out / "latents.pt")
    else:
        torch.save(latents, out / "latents.pt")
    return str(out)


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _warmed_lr(row: dict, lr: float) -> float:
    """The logged learning rate over what the 200-step warm-up alone gives at that step (1.0: not decayed)."""
    return row["lr"] / (lr * min(1.0, row["step"] / 200))


def test_time_schedule_fits_the_curriculum_and_the_decay_into_the_minutes(prelude, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "time", FakeClock())
    args = SMALL + ["--resume", "--steps", "1000", "--minutes", "2", "--twins-from", "0.5", "--pairs-from", "0.5",
                    "--lr", "1e-3", "--batch", "4"]
    plain, timed = tmp_path / "plain", tmp_path / "timed"
    assert train.main(["--out", _from(prelude, plain)] + args) == 0
    assert train.main(["--out", _from(prelude, timed), "--time-schedule"] + args) == 0
    for out in (plain, timed):  # both stopped by the clock, long before --steps
        stopped = next(r for r in _rows(out) if r.get("msg") == "stopped")
        assert 4 < stopped["step"] < 40
    # by the steps alone, 1,000 steps away, the pairs and twins never begin and the rate never decays
    assert not [r for r in _rows(plain) if r.get("msg", "").endswith(" begin")]
    assert all(_warmed_lr(r, 1e-3) == pytest.approx(1.0) for r in _rows(plain) if "lr" in r)
    # by the clock: both begin at half the minutes, and the last steps run at a fully decayed rate
    rows = _rows(timed)
    stopped = next(r for r in rows if r.get("msg") == "stopped")["step"]
    begun = {r["msg"]: r["step"] for r in rows if r.get("msg", "").endswith(" begin")}
    assert set(begun) == {"twins begin", "pairs begin"}
    assert 0.3 * stopped < begun["pairs begin"] == begun["twins begin"] < 0.7 * stopped
    rates = [_warmed_lr(r, 1e-3) for r in rows if "lr" in r]
    assert rates[0] == pytest.approx(1.0) and rates[-1] < 0.1
    assert all(a >= b - 1e-3 for a, b in zip(rates, rates[1:]))   # the log rounds the rate to 7 places
    assert json.loads((export(timed, tmp_path / "model") / "training.json").read_text())["time_schedule"] is True


def test_a_resumed_time_schedule_goes_on_where_its_clock_stood(prelude, tmp_path, monkeypatch):
    """With --time-schedule, --minutes count the whole UNet phase: a run stopped early and resumed begins the pairs
    and stops about where one uninterrupted run does (a fresh clock would start the curriculum over)."""
    monkeypatch.setattr(train, "time", FakeClock())
    args = SMALL + ["--resume", "--minutes", "2", "--time-schedule", "--twins-from", "0.5", "--pairs-from", "0.5",
                    "--batch", "4"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert train.main(["--out", _from(prelude, whole), "--steps", "1000"] + args) == 0
    calls = []
    real_caption = train.random_caption

    def stop_after_four_steps(c, rng):  # as SIGTERM does: checkpoint and stop, here after 4 steps of 4 pictures
        calls.append(1)
        if len(calls) == 16:
            train._STOP["now"] = True
        return real_caption(c, rng)

    monkeypatch.setattr(train, "random_caption", stop_after_four_steps)
    assert train.main(["--out", _from(prelude, cut), "--steps", "1000"] + args) == 0
    assert [r["step"] for r in _rows(cut) if r.get("msg") == "stopped"] == [4]
    monkeypatch.setattr(train, "random_caption", real_caption)
    assert train.main(["--out", str(cut), "--steps", "1000"] + args) == 0

    def marks(out):
        rows = _rows(out)
        return ([r["step"] for r in rows if r.get("msg") == "pairs begin"],
                [r["step"] for r in rows if r.get("msg") == "stopped"][-1])

    (begun_whole,), stopped_whole = marks(whole)
    (begun_cut,), stopped_cut = marks(cut)
    assert 4 < begun_whole and abs(begun_cut - begun_whole) <= 2 and abs(stopped_cut - stopped_whole) <= 2


def test_time_schedule_needs_minutes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "run"), "--time-schedule", "--steps", "5"] + SMALL)
    assert "--time-schedule follows the clock: give the run's length with --minutes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_paired_panels_read_the_masks_the_data_phase_drew(prelude, tmp_path, monkeypatch):
    """The data phase keeps every training picture's creature mask (1 bit per pixel) in ``latents.pt``; the paired
    panels use them instead of drawing each picture again, and a ``latents.pt`` from before still trains, drawing
    the masks as it goes. Either way the paired attention gets exactly the renderer's masks."""
    seen: list[tuple[list[int], torch.Tensor]] = []
    drawn: list[list[int]] = []
    real_draw = train.draw_pairs
    monkeypatch.setattr(train, "draw_pairs", lambda *a: (lambda fs: drawn.append(fs[0] + fs[1]) or fs)(real_draw(*a)))
    real_install = train.install_paired_attention

    def recording_install(unet):
        paired = real_install(unet)
        real_set = paired.set_subject_masks
        paired.set_subject_masks = lambda m, *a: seen.append((drawn[-1], m.clone())) or real_set(m, *a)
        return paired

    monkeypatch.setattr(train, "install_paired_attention", recording_install)
    lat = torch.load(prelude / "latents.pt", weights_only=False)
    assert lat["masks"].dtype == torch.uint8 and lat["masks"].shape == (160, 64, 8)
    truth = make_set(160, TRAIN_SEED, twins=0.5).masks
    assert np.array_equal(np.unpackbits(lat["masks"].numpy(), axis=-1).astype(bool), truth)
    assert train.main(["--out", _from(prelude, tmp_path / "kept"), "--resume", "--steps", "3"] + SMALL) == 0
    assert len(seen) == 3
    old = {k: v for k, v in lat.items() if k != "masks"}   # a latents.pt from before the masks were kept
    assert train.main(["--out", _from(prelude, tmp_path / "old", old), "--resume", "--steps", "3"] + SMALL) == 0
    assert len(seen) == 6
    assert [i for i, _ in seen[:3]] == [i for i, _ in seen[3:]]   # same seeds, same pairs
    for indices, masks in seen:
        assert torch.equal(masks, torch.stack([torch.from_numpy(render(c).mask) for c in
                                               (train.make_creatures(160, TRAIN_SEED, 0.5)[i] for i in indices)]))


def _top_proj_out(out) -> list[torch.Tensor]:
    state = torch.load(out / "unet.pt", weights_only=False)
    return [v for k, v in state["unet"].items() if k.endswith("proj_out.weight")
            and (k.startswith("down_blocks.0.") or k.startswith("up_blocks.2."))]


def test_the_32x32_attention_is_skipped_first_then_joins_as_a_no_op_and_learns(prelude, tmp_path):
    """--attn32-from: while skipped, the 32x32 blocks get no gradient (their zeroed output projection stays zero,
    as it would not if they ran); once they join, it learns."""
    args = SMALL + ["--resume", "--attn32", "--heads32", "1", "--lr", "1e-3"]
    skipped, joined = tmp_path / "skipped", tmp_path / "joined"
    assert train.main(["--out", _from(prelude, skipped), "--steps", "3", "--attn32-from", "0.99"] + args) == 0
    tops = _top_proj_out(skipped)
    assert len(tops) == 3 and all(not t.any() for t in tops)   # one down, two up
    assert not [r for r in _rows(skipped) if r.get("msg") == "32x32 attention begin"]
    assert train.main(["--out", _from(prelude, joined), "--steps", "4", "--attn32-from", "0.5"] + args) == 0
    assert [r["step"] for r in _rows(joined) if r.get("msg") == "32x32 attention begin"] == [2]
    assert all(t.abs().sum() > 0 for t in _top_proj_out(joined))


def test_attn32_from_needs_the_32x32_attention(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "run"), "--attn32-from", "0.5", "--steps", "5"] + SMALL)
    assert "--attn32-from 0.5 must be in [0, 1), with --attn32" in capsys.readouterr().err


def test_subject_weight_weighs_the_creature_and_needs_the_kept_masks(prelude, tmp_path, capsys):
    args = SMALL + ["--resume", "--steps", "2", "--pairs", "0"]
    plain, weighted = tmp_path / "plain", tmp_path / "weighted"
    assert train.main(["--out", _from(prelude, plain)] + args) == 0
    assert train.main(["--out", _from(prelude, weighted), "--subject-weight", "4"] + args) == 0
    loss = [[r["loss"] for r in _rows(out) if "loss" in r] for out in (plain, weighted)]
    assert len(loss[0]) == 2 and loss[0] != loss[1]   # same pictures, same noise: only the weights differ
    lat = torch.load(prelude / "latents.pt", weights_only=False)
    old = {k: v for k, v in lat.items() if k != "masks"}
    with pytest.raises(SystemExit):
        train.main(["--out", _from(prelude, tmp_path / "old", old), "--subject-weight", "4"] + args)
    assert "--subject-weight needs the creature masks" in capsys.readouterr().err


def test_pairs_can_train_at_the_noisy_timesteps_and_weigh_more(prelude, tmp_path, monkeypatch, capsys):
    """--pair-t-from T draws the paired pictures' timesteps from [T, 1000) (the two of a pair still share one), the
    other pictures' from [0, 1000); --pair-weight W weighs the paired pictures' loss W times."""
    drawn: list[torch.Tensor] = []
    real_copy = train.queued_copy

    def recording_copy(x, device):
        y = real_copy(x, device)
        if x.dtype == torch.int64 and x.dim() == 1:   # the batch's timesteps (the token ids are 2-D)
            drawn.append(y)
        return y

    monkeypatch.setattr(train, "queued_copy", recording_copy)
    args = SMALL + ["--resume", "--steps", "3"]   # batch 8, --pairs 0.5: rows 0-1 and 2-3 are the two pairs
    banded, weighted = tmp_path / "banded", tmp_path / "weighted"
    assert train.main(["--out", _from(prelude, banded), "--pair-t-from", "700"] + args) == 0
    assert len(drawn) == 3
    for t in drawn:
        assert (t[:4] >= 700).all() and torch.equal(t[2:4], t[:2])
    assert (torch.cat([t[4:] for t in drawn]) < 700).any()   # the unpaired pictures are drawn as before
    assert train.main(["--out", _from(prelude, weighted), "--pair-t-from", "700", "--pair-weight", "3"] + args) == 0
    assert [torch.equal(a, b) for a, b in zip(drawn[:3], drawn[3:])] == [True] * 3   # same pictures and noise
    loss = [[r["loss"] for r in _rows(out) if "loss" in r] for out in (banded, weighted)]
    assert len(loss[0]) == 3 and all(w > b for b, w in zip(*loss))   # only the pairs' weight differs
    state = torch.load(weighted / "unet.pt", weights_only=False)
    assert (state["pair_t_from"], state["pair_weight"]) == (700, 3.0)
    for bad in (["--pair-t-from", "1000"], ["--pair-weight", "0"]):
        with pytest.raises(SystemExit):
            train.main(["--out", str(tmp_path / "bad")] + bad + SMALL)
        assert "--pair-t-from" in capsys.readouterr().err
