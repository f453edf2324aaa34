#!/usr/bin/env python3
"""Make a noisy, strongly labelled copy of an UrbanSound8K-layout corpus (events in noise).

Usage:
    python recipes/make_noisy_folds.py SRC --out DST [--snr_low 0] [--snr_high 12]
        [--noises pink white] [--folds 1 2 ...] [--seed 0] [--active_db 35] [--max_event_s S]

Each clip of SRC's folds (all by default) is trimmed to its active part (first to last 20 ms frame
within --active_db dB of the loudest; with --max_event_s, only its loudest window of S seconds,
for short events that localisation measures can tell from uniform attention) and placed at a random onset in white or pink noise as
long as the original clip, at a random SNR in [--snr_low, --snr_high] dB (event RMS over noise
RMS). DST has UrbanSound8K's layout (audio/foldN/, metadata/UrbanSound8K.csv with the same rows),
plus metadata/events.csv (slice_file_name,onset_s,offset_s,snr_db,noise) and
metadata/noisy_folds.json (the options). Same seed, same files.

Use it as a noisy test set of a training run (the run's test folds are read from DST):
    python recipes/train.py hparams/urbansound8k_acrnn_compact.yaml --data_folder=SRC \\
        --noisy_test_folder=DST ...          # results.json gets test_noisy_accuracy

Example (ESC-10 in UrbanSound8K layout, 0-12 dB):
    python recipes/make_noisy_folds.py ../shared/data/esc10_us8k --out data/esc10_noisy
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)


def main(argv=None):
    import argparse

    from audioattn_sb.data.noisy import make_noisy_folds
    from audioattn_sb.utils import run_cli

    def run(args_list):
        p = argparse.ArgumentParser(description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("src")
        p.add_argument("--out", required=True)
        p.add_argument("--snr_low", type=float, default=0.0)
        p.add_argument("--snr_high", type=float, default=12.0)
        p.add_argument("--noises", nargs="+", default=["pink", "white"])
        p.add_argument("--folds", type=int, nargs="+")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--active_db", type=float, default=35.0)
        p.add_argument("--max_event_s", type=float, default=None)
        a = p.parse_args(args_list)
        s = make_noisy_folds(a.src, a.out, a.snr_low, a.snr_high, a.noises, a.seed, a.folds,
                             active_db=a.active_db, max_event_s=a.max_event_s)
        print(f"{s['clips']} noisy clips written to {a.out} (per fold {s['per_fold']}; "
              f"mean event {s['mean_event_s']:.2f} s; SNR {a.snr_low:g}-{a.snr_high:g} dB)")

    run_cli(run, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
