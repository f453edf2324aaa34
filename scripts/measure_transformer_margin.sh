#!/usr/bin/env bash
# Measure the margin of tests/test_transformer_compact_real.py: the compact Transformer and the
# paper's Transformer yaml on the real-data tests' ESC-10 split (train folds 2-4, valid 5,
# test 1), EPOCHS epochs each, discrete softmax pooling, seeds 0..N-1; two runs at once, one
# thread each. Writes OUT/<config>_seed<s>/ (the runs) and prints one line per run.
#   bash scripts/measure_transformer_margin.sh OUT [N_SEEDS=4] [EPOCHS=12]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: measure_transformer_margin.sh OUT [N_SEEDS] [EPOCHS]}
N=${2:-4}
EPOCHS=${3:-12}
DATA=${DATA:-../shared/data/esc10_us8k}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
jobs=()
for s in $(seq 0 $((N - 1))); do
  jobs+=("compact $s urbansound8k_transformer_compact.yaml --warmup_epochs=2")
  jobs+=("paper $s urbansound8k_transformer.yaml")
done
printf '%s\n' "${jobs[@]}" | OMP_NUM_THREADS=1 xargs -P 2 -L 1 bash -c '
  cfg=$0; seed=$1; yaml=$2; shift 2
  out='"$OUT"'/${cfg}_seed${seed}
  [ -f "$out/results.json" ] || '"$PY"' recipes/train.py hparams/$yaml --data_folder='"$DATA"' \
    --cache_folder='"$OUT"'/cache --output_folder=$out "--train_fold_nums=[2, 3, 4]" \
    "--valid_fold_nums=[5]" "--test_fold_nums=[1]" --seed=$seed --number_of_epochs='"$EPOCHS"' \
    --attn_domain=discrete --attn_max_activation=softmax --noprogressbar "$@" > $out.log 2>&1
  echo "$cfg seed $seed: $(python3 -c "import json; print(json.load(open(\"$out/results.json\"))[\"test_accuracy\"])")"
'
