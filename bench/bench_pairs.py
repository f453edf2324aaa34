#!/usr/bin/env python3
"""Benchmark: today's commit against an earlier one, whole `train.py` runs alternated in pairs.

Usage:
    python bench/bench_pairs.py --old REV [--pairs 3] [--epochs 5]
        [--data_folder ../shared/data/esc10_us8k] [--cache_folder data/esc10_cache]

Checks REV out into a temporary git worktree and alternates, --pairs times, one whole
`recipes/train.py` run of the old tree and one of this tree (each with its own code on
PYTHONPATH, the same interpreter, data copy and warm cache; torch's default threads): the seed
ACRNN, discrete softmax, the predecessor's protocol of ../shared/docs/REFERENCE.md §9 (train
folds 2-5, valid = test = fold 1, --allow_valid_test_overlap=True), --epochs epochs. Prints the
wall times, their medians and the ratio old / new. With REFERENCE §9's paired figure for the
predecessor R against REV (R / REV = 22.7 s / 13.8 s = 1.65× for this exact run, when REV is the
commit that pairing used, or one with the same timings), R / today = 1.65 × (REV / today): a
chain of paired measurements, never a ratio against a constant from another day.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R_OVER_REFERENCE = 22.7 / 13.8  # REFERENCE §9: R / ours, discrete softmax, 5 epochs


def run(tree, out, a):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = tree
    cmd = [sys.executable, os.path.join(tree, "recipes", "train.py"),
           os.path.join(tree, "hparams", "urbansound8k_acrnn.yaml"),
           f"--data_folder={a.data_folder}", f"--cache_folder={a.cache_folder}",
           f"--output_folder={out}", "--train_fold_nums=[2, 3, 4, 5]", "--valid_fold_nums=[1]",
           "--test_fold_nums=[1]", "--allow_valid_test_overlap=True",
           f"--number_of_epochs={a.epochs}", "--noprogressbar"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tree)
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the earlier commit")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--data_folder",
                   default=os.path.join(REPO, "..", "shared", "data", "esc10_us8k"))
    p.add_argument("--cache_folder", default=os.path.join(REPO, "data", "esc10_cache"))
    a = p.parse_args(argv)
    a.data_folder, a.cache_folder = map(os.path.abspath, (a.data_folder, a.cache_folder))
    work = tempfile.mkdtemp(prefix="audioattn_pairs_")
    old_tree = os.path.join(work, "old")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", old_tree, a.old],
                   check=True)
    new_rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
    times = {"old": [], "new": []}
    try:
        run(REPO, os.path.join(work, "warm"), a)  # fills the OS file cache for both
        for i in range(a.pairs):
            for name, tree in (("old", old_tree), ("new", REPO)):
                times[name].append(run(tree, os.path.join(work, f"{name}{i}"), a))
                print(f"pair {i + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", old_tree])
        shutil.rmtree(work, ignore_errors=True)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"\nwhole {a.epochs}-epoch run, medians of {a.pairs} alternated pairs: {a.old} "
          f"{old:.2f} s, {new_rev} (this tree) {new:.2f} s; old / new = {old / new:.2f}× "
          f"(per pair: {', '.join(f'{o / n:.2f}' for o, n in zip(times['old'], times['new']))})")
    print(f"with REFERENCE §9's paired R / ours = {R_OVER_REFERENCE:.2f}× for the commit it used: "
          f"R / today = {R_OVER_REFERENCE * old / new:.2f}× (target ≥ 2×)")


if __name__ == "__main__":
    main()
