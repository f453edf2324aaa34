#!/usr/bin/env python3
"""Benchmark: the recipe's CPU memory settings (audioattn_sb.runtime) against the defaults,
whole `train.py` runs and model-only steps alternated in pairs.

Usage:
    python bench/bench_allocator.py [--pairs 3] [--epochs 8]
        [--data_folder ../shared/data/esc10_us8k] [--cache_folder data/esc10_cache]
        [--yaml hparams/urbansound8k_transformer_compact.yaml] [--no_model_only]

Alternates, --pairs times, the same two processes with AUDIOATTN_CPU_ALLOCATOR=default
(glibc's and PyTorch's defaults) and without it (the recipe's settings: glibc mallopt and
THP_MEM_ALLOC_ENABLE=1), one thread each (OMP_NUM_THREADS=1, as run_folds.py runs its jobs):
  * a whole `recipes/train.py` run of --yaml on ESC-10 (train folds 3-5, valid 2, test 1,
    discrete softmax, --epochs epochs): the median of its results.json's `train_epoch_seconds`
    after the first epoch (augmentation and data loading included);
  * with the model-only part (default on), `bench/bench_epoch_flops.py --threads 1 --steps 5
    --warmup 2`: each compact model's step against this CPU's FLOP bound (its `× bound`).
Prints each pair, the medians per setting, the ratio default / tuned, and whether every run's
train_log.txt (epoch times removed) is identical between the two settings: the settings must
not change a number.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from audioattn_sb.results import RunResults  # noqa: E402

SETTINGS = ("default", "tuned")


def _env(setting):
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUDIOATTN_CPU_ALLOCATOR", "THP_MEM_ALLOC_ENABLE")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    if setting == "default":
        env["AUDIOATTN_CPU_ALLOCATOR"] = "default"
    return env


def train_run(setting, out, a):
    """(median epoch seconds after the first, the train log without its epoch times)."""
    cmd = [sys.executable, os.path.join(REPO, "recipes", "train.py"), a.yaml,
           f"--data_folder={a.data_folder}", f"--cache_folder={a.cache_folder}",
           f"--output_folder={out}", "--train_fold_nums=[3, 4, 5]", "--valid_fold_nums=[2]",
           "--test_fold_nums=[1]", f"--number_of_epochs={a.epochs}", "--noprogressbar"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(setting), cwd=REPO)
    if p.returncode != 0:  # the recipe's own one-line error (e.g. --epochs under the warm-up)
        sys.exit(f"bench_allocator: train.py failed ({setting}):\n{p.stderr.strip()[-2000:]}")
    secs = RunResults.load(out).train_epoch_seconds
    with open(os.path.join(out, "train_log.txt"), encoding="utf-8") as f:
        log = re.sub(r"epoch_seconds: [0-9.e+-]+", "", f.read())
    return statistics.median(secs[1:] or secs), log


def model_only(setting):
    """{model: × bound} of one bench_epoch_flops.py process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.json")
        subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench_epoch_flops.py"),
                        "--threads", "1", "--steps", "5", "--warmup", "2", "--json", path],
                       check=True, capture_output=True, text=True, env=_env(setting), cwd=REPO)
        rows = json.load(open(path, encoding="utf-8"))
    return {r["model"]: r["x_bound"] for r in rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8,
                   help="epochs per run (more than the yaml's warmup_epochs, 5)")
    p.add_argument("--data_folder", default=os.path.join(REPO, "..", "shared", "data",
                                                         "esc10_us8k"))
    p.add_argument("--cache_folder", default=os.path.join(REPO, "data", "esc10_cache"))
    p.add_argument("--yaml", default=os.path.join(REPO, "hparams",
                                                  "urbansound8k_transformer_compact.yaml"))
    p.add_argument("--no_model_only", action="store_true", help="whole runs only")
    a = p.parse_args(argv)
    epoch = {s: [] for s in SETTINGS}
    bound = {s: {} for s in SETTINGS}
    logs = {s: set() for s in SETTINGS}
    work = tempfile.mkdtemp(prefix="bench_allocator_")
    try:
        for i in range(a.pairs):
            line = [f"pair {i + 1}:"]
            for s in SETTINGS:
                secs, log = train_run(s, os.path.join(work, f"{s}{i}"), a)
                epoch[s].append(secs)
                logs[s].add(log)
                line.append(f"{s} {secs:.2f} s/epoch")
                if not a.no_model_only:
                    for model, x in model_only(s).items():
                        bound[s].setdefault(model, []).append(x)
                        line.append(f"{model} {x:.2f}× bound")
            print("; ".join(line), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| setting | recipe s/epoch (median of {a.pairs}) |"
          + "".join(f" {m}: × bound |" for m in bound["tuned"]))
    print("|---|---|" + "---|" * len(bound["tuned"]))
    for s in SETTINGS:
        print(f"| {s} | {statistics.median(epoch[s]):.2f} |"
              + "".join(f" {statistics.median(v):.2f} |" for v in bound[s].values()))
    print(f"default / tuned, recipe epoch: "
          f"{statistics.median(epoch['default']) / statistics.median(epoch['tuned']):.3f}×")
    same = len(logs["default"] | logs["tuned"]) == 1
    print("train logs (epoch times removed) identical across settings and runs:", same)
    return {"epoch": epoch, "bound": bound, "identical_logs": same}


if __name__ == "__main__":
    main()
