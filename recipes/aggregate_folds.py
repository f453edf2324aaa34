#!/usr/bin/env python3
"""Table of mean ± std test accuracy over folds, per configuration, from results.json files.

Usage:
    python recipes/aggregate_folds.py RESULTS [RESULTS ...] [--out PREFIX]
        [--support_classes CLASS ...] [--paired_to EXPERIMENT]

RESULTS are folders (searched recursively for results.json), results.json files or glob patterns.
Runs are grouped by (experiment_name, attention tag, number_of_epochs); std is the sample standard
deviation (ddof = 1) over the runs of a group. Writes PREFIX.csv, PREFIX.md (Markdown table) and
PREFIX.png (box plot, one box per configuration, fold accuracies as dots), and prints the table.
Runs localised by recipes/localise_folds.py also get the mass on the event, the uniform baseline
and the median support width (over the clips of --support_classes too, when given).
--paired_to EXPERIMENT compares every other configuration with that experiment (an
experiment_name among RESULTS) on the runs they share (same attention, test and validation folds,
seed): the mean paired difference of test and noisy accuracy, wins / ties / losses and the paired
t-test and Wilcoxon p-values, printed and written to PREFIX_paired.txt.

Example:
    python recipes/aggregate_folds.py results/urbansound8k_acrnn --out results/us8k_table
    python recipes/aggregate_folds.py results/esc10_base results/esc10_new --paired_to esc10_base
"""

import argparse
import sys

from audioattn_sb.folds import aggregate, collect_results, paired_to, rows_to_markdown, write_table
from audioattn_sb.utils import atomic_write_text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="folders, results.json files or glob patterns")
    p.add_argument("--out", default="results/folds_table",
                   help="output prefix for .csv/.md/.png (default: results/folds_table)")
    p.add_argument("--support_classes", nargs="+", default=None, metavar="CLASS",
                   help="median support width over the clips of these classes as well")
    p.add_argument("--paired_to", default=None, metavar="EXPERIMENT",
                   help="paired differences of every other configuration against this "
                        "experiment_name on the runs they share")
    args = p.parse_args(argv)
    try:
        runs = collect_results(args.results)
        paired = paired_to(runs, args.paired_to) if args.paired_to else None
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = aggregate(runs, support_classes=args.support_classes)
    paths = list(write_table(rows, args.out))
    print(rows_to_markdown(rows))
    if paired is not None:
        paths.append(f"{args.out}_paired.txt")
        atomic_write_text(paths[-1], "\n".join(paired) + "\n")
        print("\n".join(paired))
    print(f"{len(runs)} runs in {len(rows)} configurations -> {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
