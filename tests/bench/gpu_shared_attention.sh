#!/usr/bin/env bash
# Issue #3 on one CUDA GPU: where ConsiStory's extra time goes, and its acceptance numbers, in one short run.
#   bash tests/bench/gpu_shared_attention.sh [OUT_DIR] [REPEATS]
# 0. the GPU tests (pytest -m gpu);
# 1. one decoder self-attention layer alone (bench_shared_attention.py): shared against stock attention at SDXL's
#    1024x1024 shapes, GPU time against host time, and each SDPA backend with fixed and varying key lengths;
# 2. the engine on the full-size SDXL architecture with random weights, 1024x1024 fp16, 50 steps, 2 anchors +
#    3 panels, REPEATS (default 2) interleaved rounds of plain / ConsiStory (its default shared attention:
#    gathered_attention.py) / the same with the shared attention in one Triton call on every layer / in two calls
#    (PyTorch's attention, then Triton) on every layer / ConsiStory without sharing / without FreeU, then one
#    profiled 6-step run of each (tables: OUT_DIR/profile_<mode>.txt by GPU time, profile_<mode>_host.txt by host
#    time). Targets: ratio_time <= 1.8, ratio_peak_mem <= 1.3.
set -u
out=${1:-out/gpu-sdsa}
repeats=${2:-2}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
t0=$(date +%s)
mkdir -p "$out"
echo "== pytest -m gpu"
"$py" -m pytest -m gpu tests/engine -q -p no:cacheprovider 2>&1 | tail -3
echo "== one layer"
"$py" tests/bench/bench_shared_attention.py --device cuda --iters 30 --json >"$out/layer.json" 2>"$out/layer.err"
echo "rc=$? $(( $(date +%s) - t0 )) s"
echo "== engine, 50 steps"
"$py" tests/bench/bench_engine.py --model sdxl-random --size 1024x1024 --dtype fp16 --steps 50 --batch 5 \
    --repeats "$repeats" --device cuda --profile "$out" --profile-steps 6 \
    --modes vanilla,consistory,consistory_one_kernel,consistory_two_calls,consistory_no_share,consistory_no_freeu \
    --json >"$out/bench_sdxl.json" 2>"$out/bench_sdxl.err"
echo "rc=$? $(( $(date +%s) - t0 )) s"
grep -E '"(ratio_[a-z_]+|[a-z_]+_s|[a-z_]+_peak_mb|[a-z_]+_passes|[a-z_]+_prof_[a-z_]+)"' "$out/bench_sdxl.json"
tail -3 "$out/bench_sdxl.err"
