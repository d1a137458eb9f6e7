#!/usr/bin/env bash
# The GPU rows of docs/performance.md: the three ratio benchmarks on CUDA (float32 and bf16
# autocast, nexnet's layout and plain NCHW), Table 4 on CUDA, a short CUDA+AMP training run on
# synthetic data, and torch.compile last. Runs from the repository root without installing:
#   bash benchmarks/run_gpu.sh [LOG_DIR]
set -uo pipefail
LOG=${1:-gpu_logs}
mkdir -p "$LOG"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
step() { echo; echo "### $*"; "$@" 2>&1 | tail -n 12; }

$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported())"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
B=benchmarks
step $PY $B/bench_inference.py --device cuda --rounds 7 --repeats 20
step $PY $B/bench_inference.py --device cuda --amp --rounds 7 --repeats 20
step $PY $B/bench_inference.py --device cuda --amp --rounds 7 --repeats 20 --default-layout
step $PY $B/bench_train.py --device cuda --batch 16 --rounds 5 --repeats 5
step $PY $B/bench_train.py --device cuda --batch 16 --rounds 5 --repeats 5 --amp
step $PY $B/bench_train.py --device cuda --batch 16 --rounds 5 --repeats 5 --amp --default-layout
step $PY $B/bench_efficiency.py --device cuda --batch 16 --steps 10 --matmul 8192
step $PY $B/bench_efficiency.py --device cuda --batch 16 --steps 10 --matmul 8192 --amp
step $PY -m nexnet profile --models all --device cuda --repeats 50 --warmup 10 \
    --json "$LOG/table4_cuda.json" --markdown "$LOG/table4_cuda.md"
# CUDA + AMP through the engine: synthetic data, 15 epochs, then evaluate.
$PY -c "from nexnet.synthetic import make_synthetic_dataset; make_synthetic_dataset('/tmp/syn', n=240, seed=0)" >/dev/null
step $PY -m nexnet train --model nexnet_seg --dataset folder --data-root /tmp/syn --split seeded --image-size 224 \
    --batch-size 16 --epochs 15 --set train.warmup_epochs=1 --device cuda --amp --out /tmp/run_gpu --quiet
cat /tmp/run_gpu/log.csv
step $PY -m nexnet evaluate --checkpoint /tmp/run_gpu/best --dataset folder --data-root /tmp/syn --device cuda \
    --out /tmp/eval_gpu
step timeout 150 $PY $B/bench_inference.py --device cuda --amp --rounds 5 --repeats 20 --compile
step timeout 150 $PY $B/bench_train.py --device cuda --batch 16 --rounds 3 --repeats 5 --amp --compile
