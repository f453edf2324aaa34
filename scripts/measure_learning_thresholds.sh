#!/usr/bin/env bash
# Measure tests/test_learning.py's MEASURED table on this machine: the seed ACRNN, 3 epochs, on the
# default demo (make_demo_data.py; train folds 3-10, valid 2, test 1), every attention family,
# seeds 0..N-1, two runs at once, one thread each; prints one line per family with its test
# accuracies and mean − 3 std, and the lowest of them (the test's THRESHOLD).
#   bash scripts/measure_learning_thresholds.sh OUT [N_SEEDS=3]   (N_SEEDS ≥ 2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: measure_learning_thresholds.sh OUT [N_SEEDS]}
N=${2:-3}
if ! [ "$N" -ge 2 ] 2>/dev/null; then
  echo "error: N_SEEDS must be a number ≥ 2 (a standard deviation needs two runs), got '$N'" >&2
  exit 2
fi
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
[ -f "$OUT/demo/metadata/UrbanSound8K.csv" ] || "$PY" recipes/make_demo_data.py --out "$OUT/demo" > /dev/null
split='--train_fold_nums=[3,4,5,6,7,8,9,10] --valid_fold_nums=[2] --test_fold_nums=[1]'
for fam in discrete:softmax discrete:entmax1333 discrete:entmax15 discrete:sparsemax \
           continuous:gaussian continuous:triweight continuous:biweight continuous:sparsemax; do
  for s in $(seq 0 $((N - 1))); do
    echo "$OUT/${fam%%:*}-${fam##*:}-seed$s hparams/urbansound8k_acrnn.yaml" \
      "--data_folder=$OUT/demo --cache_folder=$OUT/cache $split --number_of_epochs=3 --seed=$s" \
      "--attn_domain=${fam%%:*} --attn_max_activation=${fam##*:}"
  done
done | PY=$PY bash scripts/train_two_at_once.sh
"$PY" - "$OUT" "$N" <<'PY'
import glob, json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
lows = {}
for path in sorted(glob.glob(f"{out}/*-seed0/results.json")):
    fam = path.split("/")[-2][:-len("-seed0")]
    accs = [json.load(open(f"{out}/{fam}-seed{s}/results.json"))["test_accuracy"] for s in range(n)]
    lows[fam] = statistics.fmean(accs) - 3 * statistics.stdev(accs)
    print(f"{fam}: {' '.join(f'{a:.3f}' for a in accs)}  mean − 3 std {lows[fam]:.3f}")
print(f"lowest: {min(lows.values()):.3f} ({min(lows, key=lows.get)})")
PY
