#!/usr/bin/env bash
# Quality benchmark: train each shipped config on its real dataset and collect test metrics
# (leave-one-out, full ranking, seen items filtered) into benchmarks/results/.
# Usage: bash benchmarks/train_quality.sh [DATA_ROOT] [extra overrides...]
#   e.g. bash benchmarks/train_quality.sh ../shared/data training.num_epochs=30
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:-../shared/data}
shift || true
mkdir -p runs
run() {  # config dataset-folder
  python train.py --config "configs/$1.yaml" --data-dir "$DATA_ROOT/$2" --output-dir "runs/$1" "${@:3}"
}
run sasrec-ml100k ml-100k "$@"
run sasrec-ml1m ml-1m "$@"
run sasrec-paper-ml1m ml-1m "$@"
run bert4rec-ml1m ml-1m "$@"
run gru4rec-ml1m ml-1m "$@"
run narm-ml1m ml-1m "$@"
python benchmarks/collect_results.py runs/* > benchmarks/results/quality.md
