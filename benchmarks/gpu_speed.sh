#!/usr/bin/env bash
# Issue 15's side-by-side on one GPU, under 4 minutes: NExNet Seg and UNet in one process, training
# images/s at batch 16 and 64 and batch-1 latency eager, as a replayed CUDA graph and through
# torch.compile(mode="reduce-overhead") (bf16 autocast, 224 px, medians after warm-up). Runs from the
# repository root without installing; arguments go to benchmarks/gpu_speed.py:
#   bash benchmarks/gpu_speed.sh [--json FILE]
#   bash benchmarks/gpu_speed.sh --models nexnet_seg,nexnet_seg:form=revised,unet   # today's form against the revised one
#   bash benchmarks/gpu_speed.sh --device cpu --image-size 64 --batches 2 --steps 2   # a toy run on CPU
set -uo pipefail
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
fi
timeout "${GPU_SPEED_TIMEOUT:-230}" "$PY" benchmarks/gpu_speed.py "$@"
