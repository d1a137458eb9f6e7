#!/usr/bin/env bash
# NExNet Seg (default form and recipe) and UNet trained side by side on Kvasir-SEG (pranet) on one
# CUDA GPU, the same budget each (5 minutes of training by default, or --epochs N for the same
# steps), then evaluated honestly on the test split; one table. About 6.5 minutes on one H100.
# From the repository root, without installing:
#   bash benchmarks/gpu_kvasir.sh [KVASIR_DIR] [OUT_DIR] [--minutes M | --epochs N]
# KVASIR_DIR defaults to .data/kvasir_seg (a copy that travels with the working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-.data/kvasir_seg}
OUT=${2:-/tmp/gpu_kvasir}
shift $(( $# < 2 ? $# : 2 ))
if [ ! -d "$DATA/images" ]; then
    echo "gpu_kvasir.sh: $DATA has no images/ folder; pass the Kvasir-SEG folder as the first argument" >&2
    exit 2
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
exec $PY benchmarks/gpu_kvasir.py --data-root "$DATA" --out "$OUT" "$@"
