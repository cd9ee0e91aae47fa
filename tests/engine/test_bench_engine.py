"""The engine benchmark's measuring parts on the tiny model: timed rounds, the rows derived from them, and the
profiled run that says where a mode's time goes (the GPU run of issue #3 reads these)."""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="module")
def bench_and_spec(tiny_sdxl, load_bench):
    from engine.request import GenerationSpec

    bench = load_bench("bench_engine")
    spec = GenerationSpec(prompts=bench.PROMPTS[:3], seeds=(0, 1, 2), width=64, height=64, steps=3, guidance=5.0)
    return bench, spec


def test_timed_rounds_give_ratios_and_prove_the_loop_equals_stock(tiny_sdxl, bench_and_spec):
    bench, spec = bench_and_spec
    res = bench.measure_modes(["vanilla", "stock", "consistory"], tiny_sdxl, spec, repeats=2)
    rows = bench.derived_rows(res)
    assert len(rows["vanilla_all_s"]) == 2 and rows["vanilla_s"] > 0
    assert rows["ratio_time"] == pytest.approx(res["consistory"]["seconds"] / res["vanilla"]["seconds"], rel=1e-3)
    assert rows["max_pixel_diff_vanilla_vs_stock"] == 0
    assert rows["vanilla_unet_passes"] == 3 and rows["unet_passes"] > 3
    assert rows["vanilla_peak_mb"] is None  # CPU: peak memory comes from the fresh-process runs instead


def test_ablation_modes_switch_one_part_off_and_are_timed_against_vanilla(tiny_sdxl, bench_and_spec, monkeypatch):
    """What each part of the method costs: ``consistory_no_<part>`` runs the set with that part off (and only it)."""
    from engine import generate as generate_module

    bench, spec = bench_and_spec
    seen = []
    real = generate_module.generate
    monkeypatch.setattr(generate_module, "generate", lambda model, s: seen.append(s.consistory) or real(model, s))
    res = bench.measure_modes(["vanilla", "consistory_no_inject", "consistory_no_freeu"], tiny_sdxl, spec, repeats=1)
    rows = bench.derived_rows(res)
    assert rows["ratio_time_no_inject"] > 0 and rows["ratio_time_no_freeu"] > 0 and "ratio_time" not in rows
    configs = [c for c in seen if c is not None]
    assert {(c.inject, c.freeu, c.share, c.query_blend) for c in configs} == {(False, None, True, True),
                                                                              (True, False, True, True)}
    assert set(bench.ABLATIONS) == {"no_share", "no_dropout", "no_blend", "no_inject", "no_freeu"}


def test_profile_writes_a_table_per_mode_and_counts_the_work(tiny_sdxl, bench_and_spec, tmp_path):
    bench, spec = bench_and_spec
    rows = bench.profile_modes(["vanilla", "consistory"], tiny_sdxl, dataclasses.replace(spec, steps=2), tmp_path)
    for mode in ("vanilla", "consistory"):
        table = (tmp_path / f"profile_{mode}.txt").read_text(encoding="utf-8")
        assert "aten::" in table and "Self CPU" in table
        assert rows[f"{mode}_prof_wall_s"] > 0
        assert rows[f"{mode}_prof_syncs"] == 0  # no CUDA on this machine: nothing waits for a GPU
        assert f"{mode}_prof_kernel_s" not in rows
    assert rows["consistory_prof_ops"] > rows["vanilla_prof_ops"] > 0


def test_the_profiled_run_takes_its_own_step_count(load_bench, tmp_path, capsys, monkeypatch):
    """``--profile-steps``: a profiled 50-step SDXL set took minutes to tabulate on the H100, so the profiled runs are
    shorter than the timed ones (and the report says how long)."""
    import json

    from pathlib import Path

    bench = load_bench("bench_engine")
    monkeypatch.syspath_prepend(str(Path(bench.__file__).parent))   # its report module, as when run as a script
    assert bench.main(["--model", "tiny", "--steps", "3", "--repeats", "1", "--modes", "vanilla", "--profile",
                       str(tmp_path), "--profile-steps", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["profile_steps"] == 2 and rows["steps"] == 3 and rows["vanilla_unet_passes"] == 3
    assert "(3 steps)" in rows["timing"]   # the warm-up: at most WARMUP_STEPS, never more than the timed run
    assert (tmp_path / "profile_vanilla.txt").is_file()
