#!/usr/bin/env bash
# The open GPU measurements of issues 12 and 15 in one device call, about 8.5 minutes on one H100:
#   1. gpu_speed: NExNet Seg in its default (residual) form, in the revised form (the default of the
#      last H100 runs: the before/after) and UNet, side by side in one process (about 1.5 minutes;
#      the torch.compile rows are left out, measured before);
#   2. gpu_kvasir: nexnet_seg and unet trained side by side on Kvasir-SEG for 5 minutes each, then
#      evaluated honestly, with the validation-chosen threshold and flip TTA as a second table.
# The whole script stops itself by DEVICE_CHECK_SECONDS (default 570, under the device's 600 s per
# command) and copies out what it has. Seven small files go to OUT_DIR (the device's $OUT: at most 8
# come back). From the repository root, with .data/kvasir_seg carried to the device:
#   bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]            (KVASIR_DIR: .data/kvasir_seg)
#   DEVICE_CHECK_TOY=1 bash benchmarks/device_check.sh /tmp/dc DIR  (a toy run on the CPU, 2 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]}
DATA=${2:-.data/kvasir_seg}
DEADLINE=$((SECONDS + ${DEVICE_CHECK_SECONDS:-570}))
RUNS=/tmp/device_check_kvasir
mkdir -p "$OUT"
if [ "${DEVICE_CHECK_TOY:-0}" = 1 ]; then
    SPEED=(--device cpu --image-size 64 --batches 2 --steps 1 --rounds 1 --warmup 1 --latency-repeats 2)
    KVASIR=(--device cpu --image-size 32 --epochs 1 --no-amp --also-tuned)
else
    SPEED=(--device cuda)
    KVASIR=(--minutes 5 --also-tuned)
fi

copy_out() {  # whatever gpu_kvasir has written, also after a timeout
    [ -f "$RUNS/table.md" ] && cp "$RUNS/table.md" "$OUT/gpu_kvasir_table.md"
    [ -f "$RUNS/results.json" ] && cp "$RUNS/results.json" "$OUT/gpu_kvasir_results.json"
    for m in nexnet_seg unet; do  # each run's per-epoch log, for docs/evidence
        [ -f "$RUNS/$m/log.csv" ] && cp "$RUNS/$m/log.csv" "$OUT/${m}_log.csv"
    done
    return 0
}

{ date; git log --oneline -1; } > "$OUT/gpu_speed.log" 2>&1
GPU_SPEED_TIMEOUT=${GPU_SPEED_TIMEOUT:-200} bash benchmarks/gpu_speed.sh \
    --models nexnet_seg,nexnet_seg:form=revised,unet --compile-timeout 0 --json "$OUT/gpu_speed.json" \
    "${SPEED[@]}" 2>&1 | tee -a "$OUT/gpu_speed.log"
speed_rc=${PIPESTATUS[0]}

rm -rf "$RUNS"
left=$((DEADLINE - SECONDS))
[ "$left" -lt 1 ] && left=1  # timeout 0 would mean no limit
timeout "$left" bash benchmarks/gpu_kvasir.sh "$DATA" "$RUNS" "${KVASIR[@]}" 2>&1 | tee "$OUT/gpu_kvasir.log"
kvasir_rc=${PIPESTATUS[0]}
[ "$kvasir_rc" = 124 ] && echo "device_check: gpu_kvasir stopped after ${left}s; partial results copied" \
    | tee -a "$OUT/gpu_kvasir.log"
copy_out
ls -l "$OUT"
echo "device_check: gpu_speed exit $speed_rc, gpu_kvasir exit $kvasir_rc"
[ "$speed_rc" = 0 ] && [ "$kvasir_rc" = 0 ]
