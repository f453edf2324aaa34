#!/usr/bin/env python3
"""Where do trained runs attend? Their attention on events-in-noise copies of their test folds.

Usage:
    python recipes/localise_folds.py RESULTS [RESULTS ...] --noisy_folder DIR
        [--events_csv DIR/metadata/events.csv] [--out PREFIX] [--support_classes CLASS ...]

RESULTS are run folders (searched recursively for results.json), results.json files or glob
patterns, e.g. everything recipes/run_folds.py wrote for one experiment. DIR is a copy of the
corpus made by recipes/make_noisy_folds.py (each clip's event at a known time in noise); it must
hold the runs' test folds. For each run the checkpoint its test used is evaluated on its test
folds read from DIR, and <run>/saved_attentions/<tag>_events.csv (+ _density.csv, .json) is
written as by save_attentions.py --events_csv: per clip mass_in_event, event_coverage,
mu_in_event, uniform_mass. With --out, the fold table (recipes/aggregate_folds.py) is written with
the "mass in event (uniform)" column (mean ± std over the runs of each configuration) and the
median support width (normalised to the clip: 1 = as wide as the clip; discrete: the fraction of
frames with nonzero weight) over all test clips, and with --support_classes over the clips of
those classes (e.g. transient sounds).

Example (5-fold ESC-10):
    python recipes/make_noisy_folds.py ../shared/data/esc10_us8k --out data/esc10_noisy
    python recipes/localise_folds.py results/esc10_compact_aug --noisy_folder data/esc10_noisy \\
        --out results/esc10_compact_aug/localisation_table \\
        --support_classes dog rooster sneezing clock_tick
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.inspection.cli import localise_folds_main, run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(localise_folds_main)
