"""The FLOP cost model of the method on the full-size architectures (meta device: no weights, no GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_cost_model.py"
_spec = importlib.util.spec_from_file_location("bench_cost_model", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
cost_model = _module.cost_model


@pytest.mark.parametrize("arch,size", [("sdxl-base", 1024), ("sd15", 512)])
def test_the_schedule_stays_within_the_cost_target(arch, size):
    rows = cost_model(arch, size, size, steps=50, batch=5)
    assert rows["unet_forwards"] == 82 and rows["decoder_copies"] == 5 and rows["partial_passes"] == 1
    # the vanilla copy skips the encoder, and the DIFT pass stops at the DIFT block: both cost less than a pass
    assert 0.3 < rows["decoder_copy_share"] < 0.8 and 0.3 < rows["partial_pass_share"] < 1.0
    assert rows["ratio_flops"] * 50 == pytest.approx(rows["pass_equivalents"], abs=0.01)
    assert rows["ratio_flops"] <= 1.8 and rows["ratio_identity_flops"] <= 2.0
    assert rows["reference_ratio_passes"] == 2.24


def test_more_subject_area_costs_more():
    small = cost_model("sd15", 512, 512, subject_fraction=0.1)
    large = cost_model("sd15", 512, 512, subject_fraction=0.6)
    assert large["sdsa_extra_share"] > small["sdsa_extra_share"] > 0
    assert large["ratio_flops"] > small["ratio_flops"]
