#!/usr/bin/env bash
# The demo, from a fresh clone: install, generate the embedded demo data (UrbanSound8K layout),
# train and test the seed ACRNN with softmax and sparsemax attention on test fold 1 (valid fold 2),
# and print the results table. About 2-3 minutes on 2 CPU cores.
#   bash scripts/demo.sh [EXTRA TRAIN.PY OVERRIDES, e.g. --number_of_epochs=5]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
export VENV
bash "$here/scripts/install.sh" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
cd "$here"
PY="$VENV/bin/python"
"$PY" recipes/make_demo_data.py --out data/demo_us8k
"$PY" recipes/run_folds.py hparams/urbansound8k_acrnn.yaml --data_folder=data/demo_us8k \
  --folds 1 --variants discrete:softmax discrete:sparsemax --results_root results/demo \
  -- --number_of_epochs=15 --noprogressbar "$@"
echo
cat results/demo/urbansound8k_acrnn/folds_table.md
echo
echo "Per-run outputs (results.json, train_log.txt, checkpoints): results/demo/urbansound8k_acrnn/*/test1_valid2/seed0/"
echo "Table and box plot: results/demo/urbansound8k_acrnn/folds_table.{md,csv,png}"
