#!/usr/bin/env bash
# Measure the thresholds of tests/test_compact_recipe.py's real-data tests on this machine: the
# compact ACRNN (25 epochs, continuous sparsemax, the yaml's defaults) and the seed ACRNN (20
# epochs) on the real-data tests' ESC-10 split (train folds 2-4, valid 5, test 1), seeds
# 0..N-1, two runs at once, one thread each; then each compact run's attention on the test
# fold's events in noise (loudest 1.5 s, make_noisy_folds.py --max_event_s 1.5, as the test):
# mass in event − uniform mass and the median support. Prints one line per seed and the
# mean ± std of each; writes OUT/{compact,seed}_seed<s>/ (the runs) and OUT/summary.json.
#   bash scripts/measure_compact_thresholds.sh OUT [N_SEEDS=6]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: measure_compact_thresholds.sh OUT [N_SEEDS]}
N=${2:-6}
DATA=${DATA:-../shared/data/esc10_us8k}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
split='--train_fold_nums=[2,3,4] --valid_fold_nums=[5] --test_fold_nums=[1]'
for s in $(seq 0 $((N - 1))); do
  common="--data_folder=$DATA --cache_folder=$OUT/cache $split --seed=$s"
  common="$common --attn_domain=continuous --attn_max_activation=sparsemax"
  echo "$OUT/compact_seed$s hparams/urbansound8k_acrnn_compact.yaml $common --number_of_epochs=25"
  echo "$OUT/seed_seed$s hparams/urbansound8k_acrnn.yaml $common --number_of_epochs=20"
done | PY=$PY bash scripts/train_two_at_once.sh
[ -f "$OUT/events/metadata/events.csv" ] || \
  "$PY" recipes/make_noisy_folds.py "$DATA" --out "$OUT/events" --max_event_s 1.5 > /dev/null
OMP_NUM_THREADS=1 "$PY" recipes/localise_folds.py "$OUT"/compact_seed*/ --noisy_folder "$OUT/events" \
  > "$OUT/localise.log" 2>&1
"$PY" - "$OUT" "$N" <<'PY'
import glob, json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
rows = []
for s in range(n):
    comp = json.load(open(f"{out}/compact_seed{s}/results.json"))["test_accuracy"]
    seed = json.load(open(f"{out}/seed_seed{s}/results.json"))["test_accuracy"]
    loc = json.load(open(sorted(glob.glob(f"{out}/compact_seed{s}/saved_attentions/*_events.json"))[-1]))
    loc = loc.get("localisation", loc)
    rows.append({"seed": s, "compact": comp, "seed_acrnn": seed, "difference": comp - seed,
                 "mass_minus_uniform": loc["mass_in_event"] - loc["uniform_mass"],
                 "support_median": loc["support_median"]})
    print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()))
summary = {}
for k in ("compact", "seed_acrnn", "difference", "mass_minus_uniform", "support_median"):
    v = [r[k] for r in rows]
    summary[k] = {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}
    print(f"{k}: {summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}")
json.dump({"rows": rows, "summary": summary}, open(f"{out}/summary.json", "w"), indent=1)
PY
