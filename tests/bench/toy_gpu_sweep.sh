#!/usr/bin/env bash
# Issue #8 on one CUDA GPU: the toy model from scratch in minutes, several recipes side by side.
#   bash tests/bench/toy_gpu_sweep.sh [OUT_DIR] [UNET_MINUTES] [DEADLINE_S]
# 1. the GPU tests (pytest -m gpu) in the background while the data phase draws;
# 2. data, VAE and latents once (OUT_DIR/prelude), shared by every recipe;
# 3. the recipes below at once, each for UNET_MINUTES (default 5) with --time-schedule, so each one's curriculum and
#    learning-rate decay fit the minutes whatever its speed (the training step is bound by the host, so runs side by
#    side share one GPU well); recipe a also checks every step for host waits;
# 4. each exported and judged (`evaluate --n 60` in fp32 on the GPU, grid OUT_DIR/<recipe>.png, OUT_DIR/<recipe>.fid);
# 5. the best by its worst target ratio: `bench_consistency --sets 40` until DEADLINE_S seconds after the start;
# 6. OUT_DIR/results.tar.gz (logs, judgements, grids) and OUT_DIR/best.tar (the best model folder).
# DEVICE=cpu with small PRELUDE_ARGS and EVAL_N dry-runs it (tests do not run this script).
set -u
out=${1:-out/toy-sweep}
minutes=${2:-5}
deadline=${3:-100000}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
mkdir -p "$out"
tests_pid=""
if [ "$device" = cuda ]; then
    "$py" -m pytest -m gpu tests/engine -q -p no:cacheprovider >"$out/pytest_gpu.log" 2>&1 &
    tests_pid=$!
fi
common="--device $device --threads 3 --attn32 --heads32 1 --twins 0.5 --pair-keys subject --pair-captions open"
# name|arguments; the pairs' and twins' shares are of the minutes (--time-schedule)
recipes=(
    "a|--batch 64 --lr 5e-4 --twins-from 0.5 --pairs 0.5 --pairs-from 0.5"
    "b|--batch 128 --lr 1e-3 --twins-from 0.5 --pairs 0.5 --pairs-from 0.5"
    "c|--batch 256 --lr 1e-3 --twins-from 0.5 --pairs 0.5 --pairs-from 0.5"
    "d|--batch 128 --lr 1e-3 --twins-from 0.6 --pairs 0.25 --pairs-from 0.6"
)
echo "== prelude: data, VAE, latents (t=$(elapsed) s)"
"$py" -m engine.toyworld.train --out "$out/prelude" --device "$device" --threads 8 --twins 0.5 --steps 0 \
    --vae-batch 64 --vae-minutes 1.5 ${PRELUDE_ARGS:-} >"$out/prelude.log" 2>&1 || { cat "$out/prelude.log"; exit 1; }
grep -E '"phase": "(data|latents)"|"done": true|"psnr"' "$out/prelude/log.jsonl" | tail -3
pids=()
echo "== ${#recipes[@]} recipes, $minutes UNet-minutes each (t=$(elapsed) s)"
for r in "${recipes[@]}"; do
    name=${r%%|*}
    mkdir -p "$out/$name"
    cp "$out/prelude/vae.pt" "$out/prelude/latents.pt" "$out/$name/"
    grep -v '"phase": "unet"' "$out/prelude/log.jsonl" >"$out/$name/log.jsonl"
    guard=""
    [ "$name" = a ] && [ "$device" = cuda ] && guard="--check-host-waits"
    # shellcheck disable=SC2086
    "$py" -m engine.toyworld.train --out "$out/$name" --resume $common ${r#*|} --steps 1000000 --minutes "$minutes" \
        --time-schedule --log-every 100 $guard ${PRELUDE_ARGS:-} >"$out/$name.train.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
echo "== trained (t=$(elapsed) s)"
for r in "${recipes[@]}"; do
    name=${r%%|*}
    echo "$name: ${r#*|}"
    grep -E '"msg": "(stopped|twins begin|pairs begin)"' "$out/$name/log.jsonl" | tr -d '\n'; echo
    grep -E '"it_s"' "$out/$name/log.jsonl" | awk 'NR % 10 == 1' | tail -3
    tail -2 "$out/$name.train.log" | grep -i error
done
echo "== judge (t=$(elapsed) s)"
pids=()
for r in "${recipes[@]}"; do
    name=${r%%|*}
    ( "$py" -m engine.toyworld.export --run "$out/$name" --out "$out/$name/model" >/dev/null 2>"$out/$name.export.err" &&
      "$py" -m engine.toyworld.evaluate --model "$out/$name/model" --n "${EVAL_N:-60}" --threads 3 \
          --device "$device" --dtype fp32 --grid "$out/$name.png" 2>"$out/$name.eval.err" | tail -1 >"$out/$name.fid"
      rm -f "$out/$name/latents.pt" "$out/$name/vae.pt" ) &
    pids+=($!)
done
wait "${pids[@]}"
best=$("$py" - "$out" "${recipes[@]}" <<'EOF'
import json, sys
targets = {"colour": 0.9, "shape": 0.8, "hat_present": 0.8, "scene": 0.95}
scores = {}
for r in sys.argv[2:]:
    name = r.split("|")[0]
    try:
        f = json.loads(open(f"{sys.argv[1]}/{name}.fid").read())
    except (OSError, ValueError):
        continue
    scores[name] = min(f[k] / t for k, t in targets.items())
    print(name, json.dumps(f), "worst ratio to target", round(scores[name], 3), file=sys.stderr)
print(max(scores, key=scores.get) if scores else "")
EOF
)
echo "best: ${best:-none} (t=$(elapsed) s)"
if [ -n "$best" ]; then
    left=$(( deadline - $(elapsed) - 25 ))
    if [ "$left" -gt 30 ]; then
        echo "== bench_consistency on $best, at most $left s"
        timeout "$left" "$py" tests/bench/bench_consistency.py --model "$out/$best/model" --sets "${BENCH_SETS:-40}" \
            --modes consistory,plain --threads 8 --device "$device" --dtype fp32 --json >"$out/bench.json" \
            2>"$out/bench.err"
        echo "rc=$?"
        grep -E '"(consistency|consistency_with_hat|colour_agreement|markings_agreement|shape_agreement|hat_agreement|alignment|subject_mask_iou|seconds_per_set)"' \
            "$out/bench.json" | head -18
    fi
    tar -C "$out/$best" -cf "$out/best.tar" model
fi
if [ -n "$tests_pid" ]; then wait "$tests_pid"; echo "== pytest -m gpu"; tail -3 "$out/pytest_gpu.log"; fi
tar -C "$out" -czf "$out.results.tar.gz" --exclude='*.pt' --exclude=model --exclude=best.tar . && mv "$out.results.tar.gz" "$out/results.tar.gz"
echo "== done (t=$(elapsed) s)"
