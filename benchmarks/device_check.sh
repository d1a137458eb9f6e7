#!/usr/bin/env bash
# The open GPU measurements in one device call, under 10 minutes on one H200:
#   1. gpu_frontier (issue 26, first: the open claim): `nexnet frontier` at 224 px, NExNet Seg and
#      UNet at widths 1/2 and 1, budgets of 2 and 5 minutes, one seed, bf16 autocast, four runs
#      sharing the GPU at a time (the four 2-minute runs, then the four 5-minute ones), each
#      evaluated honestly on the Kvasir-SEG pranet test split; about 8 minutes;
#   2. gpu_speed, if more than a minute is left: NExNet Seg's default (residual) form, its revised
#      form and UNet, side by side in one process (about 1.5 minutes; the torch.compile rows left out).
#      Where the frontier leaves too little, it is a second call of its own:
#        PYTHONPATH=src bash benchmarks/gpu_speed.sh --models nexnet_seg,nexnet_seg:form=revised,unet \
#            --compile-timeout 0 --device cuda --json $OUT/gpu_speed.json
# The script stops itself by DEVICE_CHECK_SECONDS (default 570, under the device's 600 s per command)
# and copies out what it has (at most 8 files to OUT_DIR, the device's $OUT). From the repository
# root, without installing, with .data/kvasir_seg carried to the device:
#   bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]            (KVASIR_DIR: .data/kvasir_seg)
#   DEVICE_CHECK_TOY=1 bash benchmarks/device_check.sh /tmp/dc      (a toy run on the CPU, synthetic data)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/device_check.sh OUT_DIR [KVASIR_DIR]}
DATA=${2:-.data/kvasir_seg}
DEADLINE=$((SECONDS + ${DEVICE_CHECK_SECONDS:-570}))
RUNS=/tmp/device_check_frontier
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ "${DEVICE_CHECK_TOY:-0}" = 1 ]; then
    DATA=/tmp/device_check_toy_data
    $PY -c "from nexnet.synthetic import make_synthetic_dataset as m; m('$DATA', n=24, size_range=(40, 56))"
    FRONTIER=(--dataset folder --split seeded --image-size 32 --batch-size 8 --budgets 0.05,0.1 --device cpu
              --jobs 2 --threads 1)
    SPEED=(--device cpu --image-size 64 --batches 2 --steps 1 --rounds 1 --warmup 1 --latency-repeats 2)
else
    if [ ! -d "$DATA/images" ]; then
        echo "device_check.sh: $DATA has no images/ folder; pass the Kvasir-SEG folder as the second argument" >&2
        exit 2
    fi
    FRONTIER=(--dataset kvasir --split pranet --image-size 224 --batch-size 16 --budgets 2,5 --device cuda
              --jobs 4 --threads 4 --set train.amp=true)
    SPEED=(--device cuda)
fi

copy_out() {  # whatever the frontier has written, also after a timeout
    for f in frontier.json frontier.md frontier.png; do
        [ -f "$RUNS/$f" ] && cp "$RUNS/$f" "$OUT/gpu_$f"
    done
    [ -d "$RUNS/points" ] && tar -czf "$OUT/gpu_frontier_points.tar.gz" -C "$RUNS" points logs
    return 0
}

{ date; git log --oneline -1; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"; } > "$OUT/gpu_frontier.log" 2>&1
rm -rf "$RUNS"
left=$((DEADLINE - SECONDS - 15))  # leave the copying its time
[ "$left" -lt 1 ] && left=1         # timeout 0 would mean no limit
timeout "$left" $PY -m nexnet frontier --data-root "$DATA" --models nexnet_seg,unet --widths 1/2,1 --seeds 1 \
    "${FRONTIER[@]}" --out "$RUNS" 2>&1 | tr '\r' '\n' | grep -v '^frontier (' | tee -a "$OUT/gpu_frontier.log"
frontier_rc=${PIPESTATUS[0]}
[ "$frontier_rc" = 124 ] && echo "device_check: the frontier stopped after ${left}s; finished points copied" \
    | tee -a "$OUT/gpu_frontier.log"
copy_out

left=$((DEADLINE - SECONDS))
speed_rc=skipped
if [ "$left" -gt 60 ]; then
    GPU_SPEED_TIMEOUT=$((left - 10)) bash benchmarks/gpu_speed.sh \
        --models nexnet_seg,nexnet_seg:form=revised,unet --compile-timeout 0 --json "$OUT/gpu_speed.json" \
        "${SPEED[@]}" > "$OUT/gpu_speed.log" 2>&1
    speed_rc=$?
fi
ls -l "$OUT"
echo "device_check: frontier exit $frontier_rc, gpu_speed exit $speed_rc"
[ "$frontier_rc" = 0 ]
