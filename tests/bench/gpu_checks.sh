#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run (issue #3's acceptance numbers):
#   bash tests/bench/gpu_checks.sh [OUT_DIR]
# 1. the GPU tests (pytest -m gpu);
# 2. the engine benchmark on the full-size SDXL architecture with random weights, 1024x1024 fp16, 50 steps, 2 anchors
#    + 3 panels, 3 interleaved rounds, then one profiled 12-step run per mode (tables in OUT_DIR/profile_<mode>.txt);
# 3. one round of each ablation (one part of the method off) against the plain set: what each part costs
#    (OUT_DIR/bench_ablations.json, rows ratio_time_no_<part>).
# 4. the toy model's training from scratch for 90 s of UNet steps at batch 64 with pairs from the start (the slow
#    phase), every step after the first checked for
#    host waits (--check-host-waits): its it/s rows (OUT_DIR/toy_train.log).
# Rows land in OUT_DIR/bench_sdxl.json; targets: ratio_time <= 1.8, ratio_peak_mem <= 1.3.
set -u
out=${1:-out/gpu-checks}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
echo "== pytest -m gpu"
"$py" -m pytest -m gpu tests/engine -q -p no:cacheprovider 2>&1 | tail -3
echo "== bench_engine sdxl-random"
"$py" tests/bench/bench_engine.py --model sdxl-random --size 1024x1024 --dtype fp16 --steps 50 --batch 5 \
    --repeats 3 --device cuda --profile "$out" --profile-steps 12 --json >"$out/bench_sdxl.json" 2>"$out/bench_sdxl.err"
echo "rc=$?"
grep -E '"(ratio_[a-z_]+|[a-z_]+_s|[a-z_]+_peak_mb|unet_passes|[a-z_]+_prof_[a-z_]+)"' "$out/bench_sdxl.json"
echo "== ablations"
modes=vanilla,consistory,consistory_no_share,consistory_no_dropout,consistory_no_blend
modes=$modes,consistory_no_inject,consistory_no_freeu
"$py" tests/bench/bench_engine.py --model sdxl-random --size 1024x1024 --dtype fp16 --steps 50 --batch 5 \
    --repeats 1 --device cuda --modes "$modes" \
    --json >"$out/bench_ablations.json" 2>"$out/bench_ablations.err"
echo "rc=$?"
grep -E '"(ratio_time[a-z_]*|[a-z_]+_s)"' "$out/bench_ablations.json"
echo "== toy training, 90 s"
"$py" -m engine.toyworld.train --out "$out/toy-run" --device cuda --threads 8 --batch 64 --attn32 --heads32 1 \
    --twins 0.5 --pairs 0.5 --pair-keys subject --pair-captions open --steps 6400 \
    --minutes 1.5 --check-host-waits >"$out/toy_train.log" 2>&1
echo "rc=$?"
grep -E '"(phase|msg)": "(data|latents|stopped)|"psnr"' "$out/toy_train.log" | tail -3
grep -E '"it_s"' "$out/toy_train.log" | tail -4
rm -rf "$out/toy-run"
