#!/usr/bin/env python3
"""Table of mean ± std test accuracy over folds, per configuration, from results.json files.

Usage:
    python recipes/aggregate_folds.py RESULTS [RESULTS ...] [--out PREFIX]
        [--support_classes CLASS ...]

RESULTS are folders (searched recursively for results.json), results.json files or glob patterns.
Runs are grouped by (experiment_name, attention tag, number_of_epochs); std is the sample standard
deviation (ddof = 1) over the runs of a group. Writes PREFIX.csv, PREFIX.md (Markdown table) and
PREFIX.png (box plot, one box per configuration, fold accuracies as dots), and prints the table.
Runs localised by recipes/localise_folds.py also get the mass on the event, the uniform baseline
and the median support width (over the clips of --support_classes too, when given).

Example:
    python recipes/aggregate_folds.py results/urbansound8k_acrnn --out results/us8k_table
"""

import argparse
import sys

from audioattn_sb.folds import aggregate, collect_results, rows_to_markdown, write_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="folders, results.json files or glob patterns")
    p.add_argument("--out", default="results/folds_table",
                   help="output prefix for .csv/.md/.png (default: results/folds_table)")
    p.add_argument("--support_classes", nargs="+", default=None, metavar="CLASS",
                   help="median support width over the clips of these classes as well")
    args = p.parse_args(argv)
    try:
        runs = collect_results(args.results)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = aggregate(runs, support_classes=args.support_classes)
    paths = write_table(rows, args.out)
    print(rows_to_markdown(rows))
    print(f"{len(runs)} runs in {len(rows)} configurations -> {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
