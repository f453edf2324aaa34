#!/usr/bin/env bash
# Train the runs listed on standard input, two at once with one thread each: one line per run,
# "RUN_FOLDER HPARAMS [train.py arguments ...]" (no space inside an argument: fold lists as
# [2,3,4]). A run whose results.json exists is skipped; a run's output goes to RUN_FOLDER.log.
# Fails when a run fails. The scripts/measure_*.sh scripts list their runs through it.
#   printf '%s\n' "out/a hparams/x.yaml --seed=0" "out/b hparams/x.yaml --seed=1" |
#       bash scripts/train_two_at_once.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OMP_NUM_THREADS=1 xargs -P 2 -L 1 bash -c '
  out=$0; hp=$1; shift
  mkdir -p "$(dirname "$out")"
  [ -f "$out/results.json" ] || "'"$PY"'" recipes/train.py "$hp" --output_folder="$out" \
    --noprogressbar "$@" > "$out.log" 2>&1
'
