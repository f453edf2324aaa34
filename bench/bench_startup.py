#!/usr/bin/env python3
"""Benchmark: the fixed cost of a short training run, split into its steps.

Usage:
    python bench/bench_startup.py [--data_folder ../shared/data/esc10_us8k] [--repeats 3]
        [--threads 2] [--hparams hparams/urbansound8k_acrnn.yaml] [--out bench/_out]

A short `recipes/train.py` run pays costs that do not depend on how long it trains: starting the
interpreter, imports, reading the yaml, checking the (warm) preparation cache, building the Brain,
the first batch, the test stage and writing results.json. This script measures each of them, all
in this one run (medians over --repeats):

  * interpreter start (`python -c pass`) and each import in a fresh interpreter: torch,
    speechbrain, torchaudio, matplotlib.pyplot, pandas, scipy, audioattn_sb.recipe (the
    training path), and which heavy modules the training path loads without needing them;
  * the steps of `recipes/train.py` timed in one fresh process per repeat, seed ACRNN, discrete
    softmax, ESC-10 train folds 2-4 / valid 5 / test 1, 1 epoch, the preparation cache already
    warm: command line, yaml + experiment folder, preparation, datasets, Brain, training epoch
    (its first batch separately), test stage, results.json;
  * the whole `python recipes/train.py ... --number_of_epochs=1` wall time, and
    fixed cost = whole run − (the epoch's train + valid stages − the first batch).

Target (issue 17): fixed cost ≤ 3 s on this machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPORTS = ("torch", "speechbrain", "torchaudio", "matplotlib.pyplot", "pandas", "scipy",
           "audioattn_sb.recipe")
HEAVY = ("matplotlib", "pandas", "sklearn", "scipy", "torchaudio", "praatio", "transformers")

#: runs recipes/train.py's steps with a timer around each (same calls as its main())
HARNESS = r'''
import json, sys, time
t0 = time.perf_counter()
import speechbrain as sb
from audioattn_sb import recipe
from audioattn_sb.data.corpora import prepare_manifests
times = {"imports": time.perf_counter() - t0}

def step(name, fn):
    t = time.perf_counter(); out = fn(); times[name] = time.perf_counter() - t; return out

argv = json.loads(sys.argv[1])
hparams_file, run_opts, overrides, corpus = step("command line",
                                                 lambda: recipe.parse_command_line(argv))
hparams = step("yaml + experiment folder", lambda: recipe.load_hparams(hparams_file, overrides))
manifests, names = step("preparation (warm cache)", lambda: prepare_manifests(hparams, corpus))
hparams["class_names"] = names
datasets = step("datasets", lambda: recipe.build_datasets(hparams, manifests, corpus))
recipe.set_lr_schedule(hparams, len(datasets["train"]))
brain = step("Brain", lambda: recipe.make_brain(hparams, run_opts, corpus))
train_opts, test_opts = recipe.loader_options(hparams)
first = {}
orig = brain.fit_batch
def timed_fit_batch(batch):
    t = time.perf_counter(); out = orig(batch)
    first.setdefault("first batch", time.perf_counter() - t)
    return out
brain.fit_batch = timed_fit_batch
step("training epoch (train + valid)", lambda: brain.fit(
    hparams["epoch_counter"], datasets["train"], datasets["valid"],
    train_loader_kwargs=train_opts, valid_loader_kwargs=test_opts))
times.update(first)
epoch_train = brain.epoch_seconds[0]
times["training epoch: train stage"] = epoch_train
tests = step("test stage", lambda: recipe.Evaluations(clean=brain.evaluate_split(
    datasets["test"], test_opts, as_test=True, checkpoint_key=brain.checkpoint_key)))
step("results.json", lambda: recipe.write_results(recipe.build_results(
    hparams, brain, corpus, manifests, tests, hparams_file=hparams_file, overrides=overrides,
    argv=argv, epochs_completed=1, train_seconds=0.0), hparams, brain))
print("TIMES " + json.dumps(times))
'''


def _python(code, env, args=()):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=env, cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return time.perf_counter() - t, p.stdout


def import_times(env, repeats):
    """Seconds of each import in a fresh interpreter (median), interpreter start subtracted."""
    base = statistics.median(_python("pass", env)[0] for _ in range(repeats))
    out = {"interpreter start": base}
    for mod in IMPORTS:
        code = (f"import time; t = time.perf_counter()\ntry:\n import {mod}\n"
                f"except ImportError:\n print('MISSING')\nprint(time.perf_counter() - t)")
        vals = []
        for _ in range(repeats):
            _, text = _python(code, env)
            if "MISSING" in text:
                break
            vals.append(float(text.split()[-1]))
        out[f"import {mod}"] = statistics.median(vals) if vals else None
    _, text = _python("import sys, audioattn_sb.recipe\n"
                      f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))", env)
    out["heavy modules loaded by the training path"] = text.strip()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_folder", default=os.path.join(REPO, "..", "shared", "data",
                                                          "esc10_us8k"))
    p.add_argument("--hparams", default=os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=os.path.join(REPO, "bench", "_out"))
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.data_folder, "metadata", "UrbanSound8K.csv")):
        sys.exit(f"error: {args.data_folder}: no UrbanSound8K-layout data (metadata/"
                 "UrbanSound8K.csv); pass --data_folder")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    work = tempfile.mkdtemp(prefix="bench_startup_")
    common = [args.hparams, f"--data_folder={args.data_folder}",
              f"--cache_folder={os.path.join(work, 'cache')}", "--train_fold_nums=[2, 3, 4]",
              "--valid_fold_nums=[5]", "--test_fold_nums=[1]", "--number_of_epochs=1",
              "--noprogressbar"]
    # warm the preparation cache once
    subprocess.run([sys.executable, os.path.join(REPO, "recipes", "train.py"), *common,
                    f"--output_folder={os.path.join(work, 'warm')}"], env=env, cwd=REPO,
                   check=True, capture_output=True)
    imports = import_times(env, args.repeats)
    steps, whole = [], []
    for k in range(args.repeats):
        argv_k = [*common, f"--output_folder={os.path.join(work, f'steps{k}')}"]
        _, text = _python(HARNESS, env, [json.dumps(argv_k)])
        steps.append(json.loads(text.split("TIMES ", 1)[1]))
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(REPO, "recipes", "train.py"), *common,
                        f"--output_folder={os.path.join(work, f'whole{k}')}"], env=env,
                       cwd=REPO, check=True, capture_output=True)
        whole.append(time.perf_counter() - t)
    med = {name: statistics.median(s[name] for s in steps) for name in steps[0]}
    whole_med = statistics.median(whole)
    # what grows with the epochs (and the data): the epoch's train and valid stages, less the
    # first batch (one-off work: allocations, kernel selection)
    per_epoch = med["training epoch (train + valid)"] - med["first batch"]
    result = {"imports": imports, "steps": med, "whole_run_s": whole_med,
              "fixed_cost_s": whole_med - per_epoch, "threads": args.threads,
              "repeats": args.repeats}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "startup.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"{'step':55s} seconds")
    for name, v in imports.items():
        print(f"{name:55s} {v if isinstance(v, str) else ('-' if v is None else f'{v:.3f}')}")
    for name, v in med.items():
        print(f"{'train.py: ' + name:55s} {v:.3f}")
    print(f"{'whole train.py run (1 epoch)':55s} {whole_med:.3f}")
    print(f"{'fixed cost = whole run - (epoch - first batch)':55s} "
          f"{result['fixed_cost_s']:.3f}   (target ≤ 3 s)")
    return result


if __name__ == "__main__":
    main()
