"""What the model dialog checks before any model work: the size still to download for a hub id is the engine's own
estimate for the chosen device and precision, or one sentence when it cannot be known."""

from __future__ import annotations

import pytest
import torch

import engine.hub_download
from app.model_sources import SourceKind, classify, hub_download_size
from engine.model_loader import describe_source


def test_the_download_size_is_the_loaders_estimate_for_the_chosen_precision(monkeypatch):
    asked = []
    monkeypatch.setattr(engine.hub_download, "hub_download_size",
                        lambda repo_id, dtype: asked.append((repo_id, dtype)) or 6_900_000_000)
    assert hub_download_size("someone/xl", "cpu", "float16") == 6_900_000_000
    assert hub_download_size("someone/xl", "auto", "auto") == 6_900_000_000
    expected_auto = torch.float16 if torch.cuda.is_available() else torch.float32  # what the loader picks
    assert asked == [("someone/xl", torch.float16), ("someone/xl", expected_auto)]


def test_an_unknown_size_or_a_missing_device_is_one_sentence(monkeypatch):
    with pytest.raises(OSError, match=r"^Could not ask the hub about 'someone/xl'\. .*HF_HUB_OFFLINE"):
        hub_download_size("someone/xl")  # the tests run offline
    if not torch.cuda.is_available():
        with pytest.raises(OSError, match="CUDA was requested but no CUDA GPU is available"):
            hub_download_size("someone/xl", "cuda", "auto")


def test_a_checkpoint_name_in_capitals_is_a_checkpoint_for_the_dialog_and_the_loader():
    assert classify("/models/XL.SAFETENSORS") is SourceKind.safetensors
    assert describe_source("/models/XL.SAFETENSORS") == "single-file"


@pytest.mark.parametrize("name", ["model.ckpt", "MODEL.CKPT", "weights.pt"])
def test_a_pickle_checkpoint_is_named_as_one_whether_it_exists_or_not(tmp_path, name):
    from app.model_sources import check_source

    (tmp_path / name).write_bytes(b"pickle")
    for source in (str(tmp_path / name), f"models/{name}"):
        problem = check_source(source)
        assert problem and "pickle checkpoint" in problem and ".safetensors" in problem, problem
