#!/usr/bin/env bash
# Measure the margin of tests/test_transformer_compact_real.py: the compact Transformer and the
# paper's Transformer yaml on the real-data tests' ESC-10 split (train folds 2-4, valid 5,
# test 1), EPOCHS epochs each, discrete softmax pooling, seeds 0..N-1; two runs at once, one
# thread each. Writes OUT/<config>_seed<s>/ (the runs) and prints one line per run.
#   bash scripts/measure_transformer_margin.sh OUT [N_SEEDS=8] [EPOCHS=12]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: measure_transformer_margin.sh OUT [N_SEEDS] [EPOCHS]}
N=${2:-8}
EPOCHS=${3:-12}
DATA=${DATA:-../shared/data/esc10_us8k}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
split='--train_fold_nums=[2,3,4] --valid_fold_nums=[5] --test_fold_nums=[1]'
for s in $(seq 0 $((N - 1))); do
  common="--data_folder=$DATA --cache_folder=$OUT/cache $split --seed=$s --number_of_epochs=$EPOCHS"
  common="$common --attn_domain=discrete --attn_max_activation=softmax"
  echo "$OUT/compact_seed$s hparams/urbansound8k_transformer_compact.yaml $common --warmup_epochs=2"
  echo "$OUT/paper_seed$s hparams/urbansound8k_transformer.yaml $common"
done | PY=$PY bash scripts/train_two_at_once.sh
for s in $(seq 0 $((N - 1))); do
  for cfg in compact paper; do
    echo "$cfg seed $s: $("$PY" -c "import json; print(json.load(open('$OUT/${cfg}_seed$s/results.json'))['test_accuracy'])")"
  done
done
