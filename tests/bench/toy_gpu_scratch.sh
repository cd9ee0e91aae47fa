#!/usr/bin/env bash
# Issue #8 on a CUDA GPU: the toy model trained from scratch in minutes, then judged like the shipped one.
#   bash tests/bench/toy_gpu_scratch.sh [OUT_DIR] [UNET_MINUTES]
# 1. data, VAE (to 28 dB) and latents, then UNet + text encoder for UNET_MINUTES (default 5) at batch 128 with the
#    recipe that met every target in tests/bench/toy_gpu_sweep.sh (recipe d): one-creature pictures and full captions
#    for the first 60 % of the minutes, then twins and a quarter of each batch in paired panels (--time-schedule: the
#    shares and the learning-rate decay follow the clock; every step checked for host waits); OUT_DIR/train.log;
# 2. the EMA weights exported to OUT_DIR/model;
# 3. `evaluate --n 60` (fully specified prompts: the fidelity targets) with a grid, OUT_DIR/fid.png and fid.txt;
# 4. `bench_consistency.py --sets 40 --modes consistory,plain` (OUT_DIR/bench.json).
set -u
out=${1:-out/toy-gpu}
minutes=${2:-5}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
echo "== train ($minutes UNet-minutes at most)"
start=$(date +%s)
"$py" -m engine.toyworld.train --out "$out/run" --device cuda --threads 8 --batch 128 --lr 1e-3 --attn32 \
    --heads32 1 --twins 0.5 --twins-from 0.6 --pairs 0.25 --pair-keys subject --pair-captions open --pairs-from 0.6 \
    --steps 1000000 --minutes "$minutes" --time-schedule --vae-batch 64 --check-host-waits >"$out/train.log" 2>&1
echo "rc=$? wall_s=$(( $(date +%s) - start ))"
grep -E '"phase": "(data|latents)"|"psnr"|"stopped"|begin"' "$out/train.log" | tail -6
grep -E '"it_s"' "$out/train.log" | awk 'NR % 20 == 0' | tail -6
echo "== export"
"$py" -m engine.toyworld.export --run "$out/run" --out "$out/model" && rm -f "$out/run/latents.pt"
echo "== evaluate --n 60"
"$py" -m engine.toyworld.evaluate --model "$out/model" --n 60 --threads 8 --device cuda --dtype fp32 \
    --grid "$out/fid.png" 2>&1 | tail -12
echo "== bench_consistency --sets 40"
"$py" tests/bench/bench_consistency.py --model "$out/model" --sets 40 --modes consistory,plain --threads 8 \
    --device cuda --dtype fp32 --json \
    >"$out/bench.json" 2>"$out/bench.err"
echo "rc=$?"
grep -E '"(consistency|consistency_with_hat|colour_agreement|markings_agreement|hat_agreement|alignment|subject_mask_iou)"' "$out/bench.json" | head -16
