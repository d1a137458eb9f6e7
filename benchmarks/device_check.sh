#!/usr/bin/env bash
# The open GPU measurements of issues 12 and 15 in one device call, about 10 minutes on one H100:
#   1. gpu_speed: NExNet Seg in its default (lean) form, in the revised form (the previous default:
#      the before/after of the lean form) and UNet, side by side in one process (about 3 minutes);
#   2. gpu_kvasir: nexnet_seg and unet trained side by side on Kvasir-SEG for 5 minutes each, then
#      evaluated honestly, with the validation-chosen threshold and flip TTA as a second table.
# Seven small files go to OUT_DIR (the device's $OUT: at most 8 come back). From the repository root:
#   bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]          (KVASIR_DIR: .data/kvasir_seg)
#   DEVICE_CHECK_TOY=1 bash benchmarks/device_check.sh /tmp/dc DIR  (a toy run on the CPU, minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]}
DATA=${2:-.data/kvasir_seg}
mkdir -p "$OUT"
if [ "${DEVICE_CHECK_TOY:-0}" = 1 ]; then
    SPEED=(--device cpu --image-size 64 --batches 2 --steps 1 --rounds 1 --warmup 1 --latency-repeats 2
           --compile-timeout 0)
    KVASIR=(--device cpu --image-size 32 --epochs 1 --no-amp)
else
    SPEED=()
    KVASIR=(--minutes 5 --also-tuned)
fi
{ date; git log --oneline -1; } > "$OUT/gpu_speed.log" 2>&1
GPU_SPEED_TIMEOUT=${GPU_SPEED_TIMEOUT:-220} bash benchmarks/gpu_speed.sh \
    --models nexnet_seg,nexnet_seg:form=revised,unet --json "$OUT/gpu_speed.json" "${SPEED[@]}" \
    2>&1 | tee -a "$OUT/gpu_speed.log"
RUNS=/tmp/device_check_kvasir
rm -rf "$RUNS"
bash benchmarks/gpu_kvasir.sh "$DATA" "$RUNS" "${KVASIR[@]}" 2>&1 | tee "$OUT/gpu_kvasir.log"
[ -f "$RUNS/table.md" ] && cp "$RUNS/table.md" "$OUT/gpu_kvasir_table.md"
[ -f "$RUNS/results.json" ] && cp "$RUNS/results.json" "$OUT/gpu_kvasir_results.json"
for m in nexnet_seg unet; do  # each run's per-epoch log, for docs/evidence
    [ -f "$RUNS/$m/log.csv" ] && cp "$RUNS/$m/log.csv" "$OUT/${m}_log.csv"
done
ls -l "$OUT"
