#!/usr/bin/env bash
# The demo, from a fresh clone, end to end (about 3-4 minutes on 2 CPU cores):
#   1. install (.venv/, CPU torch) and make the demo data with strong labels: synthetic sound
#      events at known times in noise (UrbanSound8K layout + metadata/events.csv);
#   2. train the compact ACRNN (a few epochs) with one discrete (sparsemax) and one continuous
#      (biweight) attention on test fold 1, validation fold 2;
#   3. look inside both runs by their folders: save their attentions (with the mass of attention
#      on the labelled event) and spectrograms, plot them (spectrogram + both attentions + the
#      true event) and build the HTML attention browser;
#   4. print the results table and the paths of the PNGs and the HTML page.
#   bash scripts/demo.sh [EXTRA TRAIN.PY OVERRIDES, e.g. --number_of_epochs=12]
#   DEMO_DATA=DIR DEMO_OUT=DIR bash scripts/demo.sh   # elsewhere than data/demo_events, results/demo
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
export VENV
bash "$here/scripts/install.sh" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
cd "$here"
PY="$VENV/bin/python"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=${DEMO_DATA:-data/demo_events}
OUT=${DEMO_OUT:-results/demo}
EXP=$OUT/urbansound8k_acrnn_compact
"$PY" recipes/make_demo_data.py --layout events --out "$DATA"
"$PY" recipes/run_folds.py hparams/urbansound8k_acrnn_compact.yaml --data_folder="$DATA" \
  --folds 1 --jobs 2 --variants discrete:sparsemax continuous:biweight --results_root "$OUT" \
  -- --number_of_epochs=8 --warmup_epochs=1 --noprogressbar "$@"
DISC=$EXP/discrete-sparsemax/test1_valid2/seed0
CONT=$EXP/continuous-biweight/test1_valid2/seed0
for RUN in "$DISC" "$CONT"; do
  "$PY" recipes/save_attentions.py "$RUN" --events_csv "$DATA/metadata/events.csv" --noprogressbar
  "$PY" recipes/save_specs.py "$RUN" --attn_num_samples 6 --noprogressbar
done
"$PY" recipes/plot_attentions.py "$CONT/saved_attentions/continuous-biweight.csv" \
  --compare "$DISC/saved_attentions/discrete-sparsemax.csv" --max_clips 3 --out "$OUT/plots"
"$PY" recipes/browse_attentions.py "$DISC" "$CONT" --out "$OUT/report.html"
echo
cat "$EXP/folds_table.md"
echo
echo "Runs (results.json, train_log.txt, checkpoints): $DISC  $CONT"
echo "Attention plots (spectrogram, both attentions, the true event in gold): $(ls "$OUT"/plots/compare_*.png | head -3 | tr '\n' ' ')"
echo "Attention browser (open in a web browser, works offline): $OUT/report.html"
