#!/usr/bin/env python3
"""Test and noisy-test accuracy of each finished run with and without its weight average.

Usage:
    python scripts/compare_weight_average.py RESULTS_ROOT [--out FILE.csv]

For every finished run under RESULTS_ROOT (``<variant>/test<k>_valid<j>/seed<s>/results.json``,
as ``recipes/run_folds.py`` writes them) trained with ``--average_epochs=N`` > 0, results.json
holds the test of the averaged weights (``test_accuracy``, ``test_noisy_accuracy``) and of the
same checkpoint's own weights (``without_weight_average``): train.py measured both, so nothing is
evaluated here. Writes one CSV row per run (default ``RESULTS_ROOT/weight_average.csv``) and
prints, per variant, the mean ± std of each, then the paired difference averaged − own over all
runs (wins / ties / losses, paired t-test and Wilcoxon p-values). Runs without an average are
counted and skipped; none with one is an error.
"""

import argparse
import os
import sys


def row_of(path):
    """The CSV row of one results.json, or None when the run had no weight average."""
    from audioattn_sb.results import RunResults

    res = RunResults.load(path)
    own = res.without_weight_average
    if not own:
        return None
    return {"run": os.path.dirname(path), "variant": path.split(os.sep)[-4],
            "average_epochs": res.average_epochs, "tested_epoch": res.tested_epoch,
            "averaged_test": res.test_score, "own_test": own[f"test_{res.metric}"],
            "averaged_noisy": res.get("test_noisy_accuracy", ""),
            "own_noisy": own.get("test_noisy_accuracy", "")}


def summary(rows):
    """Lines of the per-variant table and the paired comparison (averaged − own)."""
    from audioattn_sb.folds import paired_summary

    return paired_summary(rows, lambda r: r["variant"], ("own", "averaged"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_root")
    p.add_argument("--out", default=None, help="CSV (default RESULTS_ROOT/weight_average.csv)")
    ns = p.parse_args(argv)
    from audioattn_sb.folds import fold_run_results, write_rows_csv

    paths = fold_run_results(ns.results_root)
    rows = [r for r in map(row_of, paths) if r is not None]
    if not rows:
        sys.exit(f"{ns.results_root}: no finished run with a weight average among {len(paths)} "
                 "(train with --average_epochs=N > 0)")
    out = ns.out or os.path.join(ns.results_root, "weight_average.csv")
    write_rows_csv(out, rows)
    print("\n".join(summary(rows)))
    print(f"{len(rows)} runs with a weight average ({len(paths) - len(rows)} without, skipped) "
          f"→ {out}")
    return rows


if __name__ == "__main__":
    main()
