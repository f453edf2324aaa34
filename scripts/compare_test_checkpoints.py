#!/usr/bin/env python3
"""Test and noisy-test accuracy of each finished run under both ``test_checkpoint`` rules.

Usage:
    python scripts/compare_test_checkpoints.py RESULTS_ROOT [--out FILE.csv]

For every finished single-label run under RESULTS_ROOT (``<variant>/test<k>_valid<j>/seed<s>/``
with ``results.json``, as ``recipes/run_folds.py`` writes them), the run's two kept checkpoints
are evaluated on its test manifest (``test.json``) and, when the run had one, its noisy test
manifest (``noisy_test/test.json``): ``best_valid`` (lowest valid error) and ``last`` (the newest
end-of-epoch checkpoint; the checkpointer keeps both). Evaluation only, nothing is trained or
changed in the runs. Writes one CSV row per run (default ``RESULTS_ROOT/test_checkpoints.csv``)
and prints, per variant, the mean ± std of each rule, then the paired difference last − best
over all runs (wins / ties / losses, paired t-test and Wilcoxon p-values).

The accuracy under the rule the run was trained with equals its ``results.json`` (checked: a
mismatch stops the script).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch


def evaluate(run_folder):
    """``{rule_test, rule_noisy, rule_epoch}`` for both rules of one run folder."""
    from audioattn_sb.brains.base import TEST_CHECKPOINT_RULES, checkpoint_rule_key
    from audioattn_sb.checkpoints import AtomicCheckpointer
    from audioattn_sb.inspection.trained_run import load_checkpoint_weights, load_trained_run
    from audioattn_sb.results import RunResults

    run = load_trained_run(run_folder, device="cpu")
    res = RunResults.load(os.path.join(run_folder, "results.json"))
    recoverables = dict(run.hparams["checkpointer"].recoverables)
    ckpter = AtomicCheckpointer(os.path.join(run_folder, "save"))
    manifests = {"test": os.path.join(run_folder, "test.json"),
                 "noisy": os.path.join(run_folder, "noisy_test", "test.json")}
    row = {"run": run_folder, "reported_test": res.test_accuracy,
           "reported_rule": run.hparams.get("test_checkpoint", "best_valid")}
    for rule in TEST_CHECKPOINT_RULES:
        ckpt = ckpter.find_checkpoint(**checkpoint_rule_key(rule, {"min_key": "error"}))
        load_checkpoint_weights(recoverables, ckpt.path)
        run.brain.modules.eval()
        row[f"{rule}_epoch"] = ckpt.meta.get("epoch")
        for split, path in manifests.items():
            if not os.path.isfile(path):
                row[f"{rule}_{split}"] = ""
                continue
            entries = json.loads(open(path).read())
            right = 0
            for entry in entries.values():
                scores = run.forward_waveform(run.read_audio(entry["wav"]),
                                              capture_features=False).scores[0]
                right += int(np.argmax(scores) == int(entry["classID"]))
            row[f"{rule}_{split}"] = right / len(entries)
    if abs(row[f"{row['reported_rule']}_test"] - row["reported_test"]) > 1e-9:
        sys.exit(f"{run_folder}: accuracy {row[row['reported_rule'] + '_test']} under its own "
                 f"rule differs from results.json's {row['reported_test']}")
    return row


def summary(rows):
    """Lines of the per-variant table and the paired comparison (last − best_valid)."""
    from audioattn_sb.folds import paired_summary

    return paired_summary(rows, lambda r: r["run"].rstrip("/").split("/")[-3],
                          ("best_valid", "last"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_root")
    p.add_argument("--out", default=None, help="CSV (default RESULTS_ROOT/test_checkpoints.csv)")
    ns = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from audioattn_sb.folds import fold_run_results, write_rows_csv

    runs = [os.path.dirname(f) for f in fold_run_results(ns.results_root)]
    if not runs:
        sys.exit(f"{ns.results_root}: no finished run (<variant>/test<k>_valid<j>/seed<s>/"
                 "results.json)")
    from tqdm import tqdm

    rows = [evaluate(r) for r in tqdm(runs, desc="runs", unit="run")]
    out = ns.out or os.path.join(ns.results_root, "test_checkpoints.csv")
    write_rows_csv(out, rows)
    print("\n".join(summary(rows)))
    print(f"{len(rows)} runs → {out}")
    return rows


if __name__ == "__main__":
    main()
