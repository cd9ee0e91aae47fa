"""``python -m engine.toyworld.evaluate``: judges the shipped toy model on fully specified prompts, on the device and
in the precision asked for, and says in one sentence why it cannot."""

from __future__ import annotations

import json

import pytest
import torch

from engine.toyworld import evaluate


def test_evaluate_judges_on_the_device_and_precision_asked_and_saves_a_grid(tmp_path, capsys):
    grid = tmp_path / "grid.png"
    assert evaluate.main(["--n", "2", "--steps", "2", "--device", "cpu", "--dtype", "fp32", "--grid", str(grid)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 2 and set(summary) >= {"colour", "markings", "shape", "hat_present", "hat", "scene"}
    assert all(0.0 <= summary[k] <= 1.0 for k in ("colour", "shape", "scene"))
    assert grid.stat().st_size > 0
    assert len(grid.with_suffix(".txt").read_text().splitlines()) == 2


def test_evaluate_refuses_an_unknown_precision_in_one_sentence(capsys):
    with pytest.raises(SystemExit, match=r"^evaluate: Unknown precision 'fp64'\. Use fp16, bf16 or fp32\.$"):
        evaluate.main(["--n", "2", "--dtype", "fp64"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_evaluate_refuses_cuda_without_a_gpu():
    with pytest.raises(SystemExit, match="^evaluate: CUDA was requested but no CUDA GPU is available"):
        evaluate.main(["--n", "2", "--device", "cuda"])
