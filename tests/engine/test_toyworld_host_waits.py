"""The toy model's training step never makes the host wait for the GPU (so Python's batch building overlaps the
GPU's work), and ``--check-host-waits`` proves it on a CUDA machine. On the CPU: the copies keep their values and
the check is refused with a reason."""

from __future__ import annotations

import pytest
import torch

from engine.toyworld import train
from engine.toyworld.device_copy import host_wait_guard, queued_copy

def cuda(test):
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test))

SMALL = ["--n-held", "4", "--vae-psnr", "1", "--vae-eval-every", "2", "--vae-batch", "4", "--batch", "8",
         "--log-every", "1000", "--threads", "1", "--twins", "0.5", "--n-train", "160", "--steps", "5",
         "--pairs", "0.5", "--pair-keys", "subject", "--pair-captions", "open", "--pairs-from", "0.4",
         "--twins-from", "0.4"]


def test_queued_copy_on_the_cpu_is_the_tensor_itself():
    t = torch.arange(6).view(2, 3)
    assert queued_copy(t, "cpu") is t
    with host_wait_guard(False):  # inactive: nothing is armed, nothing needs CUDA
        assert t.sum().item() == 15


def test_checking_host_waits_needs_cuda(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "run"), "--check-host-waits"] + SMALL)
    assert "--check-host-waits watches CUDA's queue; it needs --device cuda, not cpu" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()   # refused before anything was written


@cuda
def test_the_guard_catches_a_host_wait_and_lets_a_queued_copy_through():
    x = torch.ones(4, device="cuda")
    with host_wait_guard(True):
        y = queued_copy(torch.arange(4.0), "cuda") + x
        with pytest.raises(RuntimeError, match="synchroniz"):
            y.sum().item()
        with pytest.raises(RuntimeError, match="synchroniz"):
            torch.arange(4.0).to("cuda")   # from pageable memory: waits for the queue
    assert torch.cuda.get_sync_debug_mode() == 0
    assert y.tolist() == [1.0, 2.0, 3.0, 4.0]


@cuda
def test_training_steps_with_pairs_and_twins_never_wait_on_cuda(tmp_path):
    out = tmp_path / "run"
    assert train.main(["--out", str(out), "--device", "cuda", "--check-host-waits"] + SMALL) == 0
    state = torch.load(out / "unet.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 5
