#!/usr/bin/env python3
"""Benchmark: training epoch time and peak memory of the seed ACRNN on ESC-10 (320 clips).

Usage:
    python bench/bench_acrnn_epoch.py [--data_folder ../shared/data/esc10_us8k] [--epochs 6]
        [--variants discrete:softmax discrete:sparsemax] [--out bench/_out]

Each variant runs `recipes/train.py` in its own process on train folds 2-5 (320 clips; valid and
test fold 1, with --allow_valid_test_overlap=True: only time and memory are measured here, never
accuracy). Reported per variant, all measured in this one run:
  * seconds per training epoch (median of epochs 2..N; epoch 1 also fills the feature cache),
  * the same with the feature cache off (features recomputed from the audio every epoch), and
    the ratio between the two,
  * peak RSS of the training process (VmHWM of the child),
  * ratios to the predecessor's figures measured on this machine kind (REFERENCE §9: 2.0 s per
    epoch and 0.77 GB, discrete attention) — those two are constants, not measured here.
The resample cache is made once before timing (its cost is printed: cold vs warm preparation).
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
R_EPOCH_SECONDS = 2.0
R_PEAK_GB = 0.77


# peak RSS of the training process itself: VmHWM of its own address space (ru_maxrss would
# carry over the parent's peak across fork + exec on Linux)
_WRAPPER = (
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "finally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "    print('PEAK_RSS_KB', hwm.split()[1])\n"
)


def run_train(args, out, hparams="urbansound8k_acrnn.yaml", env=None):
    """Run train.py in a child process; returns (results dict, peak RSS of that process in GB)."""
    cmd = [sys.executable, "-c", _WRAPPER, os.path.join(REPO, "recipes", "train.py"),
           os.path.join(REPO, "hparams", hparams), *args,
           f"--output_folder={out}", "--noprogressbar"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"train.py failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    peak_kb = int(p.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    return res, peak_kb / 1024 ** 2


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_folder", default=os.path.join(REPO, "..", "shared", "data", "esc10_us8k"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--variants", nargs="+", default=["discrete:softmax", "discrete:sparsemax"])
    p.add_argument("--out", default=os.path.join(REPO, "bench", "_out"))
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_folder):
        sys.exit(f"no data at {args.data_folder}: pass --data_folder (UrbanSound8K layout)")
    work = tempfile.mkdtemp(prefix="bench_acrnn_")
    cache = os.path.join(work, "cache")
    base = [f"--data_folder={args.data_folder}", f"--cache_folder={cache}",
            "--train_fold_nums=[2, 3, 4, 5]", "--valid_fold_nums=[1]", "--test_fold_nums=[1]",
            "--allow_valid_test_overlap=True", f"--number_of_epochs={args.epochs}"]

    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    prep = dict(data_folder=args.data_folder, train_fold_nums=[2, 3, 4, 5], valid_fold_nums=[1],
                test_fold_nums=[1], cache_folder=cache, allow_valid_test_overlap=True,
                progress=False)
    t0 = time.perf_counter()
    prepare_urbansound8k(save_folder=os.path.join(work, "prep1"), **prep)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepare_urbansound8k(save_folder=os.path.join(work, "prep2"), **prep)
    warm = time.perf_counter() - t0
    print(f"preparation of 400 clips: cold {cold:.2f} s, warm (cache reused) {warm:.2f} s, "
          f"ratio {cold / warm:.1f}x")

    rows = []
    for spec in args.variants:
        domain, act = spec.split(":")[:2]
        extra = [f"--attn_domain={domain}", f"--attn_max_activation={act}"]
        if spec.count(":") == 2:
            extra.append(f"--attn_alpha={spec.split(':')[2]}")
        res_c, rss_c = run_train(base + extra, os.path.join(work, spec.replace(":", "_") + "_c"))
        res_n, rss_n = run_train(base + extra + ["--feature_cache=False"],
                                 os.path.join(work, spec.replace(":", "_") + "_n"))
        ep_c = statistics.median(res_c["train_epoch_seconds"][1:])
        ep_n = statistics.median(res_n["train_epoch_seconds"][1:])
        rows.append({"variant": spec, "epoch_s": ep_c, "epoch_s_no_cache": ep_n,
                     "cache_speedup": ep_n / ep_c, "peak_gb": rss_c, "peak_gb_no_cache": rss_n,
                     "vs_R_speed": R_EPOCH_SECONDS / ep_c, "vs_R_memory": R_PEAK_GB / rss_c,
                     "n_train": res_c["n_clips"]["train"]})
    lines = ["| variant | train clips | s / epoch | s / epoch, no feature cache | cache speed-up "
             "| peak RSS GB | R / ours, time | R / ours, memory |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['n_train']} | {r['epoch_s']:.3f} | "
                     f"{r['epoch_s_no_cache']:.3f} | {r['cache_speedup']:.2f}x | {r['peak_gb']:.2f} | "
                     f"{r['vs_R_speed']:.1f}x | {r['vs_R_memory']:.1f}x |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_acrnn_epoch.json"), "w") as f:
        json.dump({"rows": rows, "prep_cold_s": cold, "prep_warm_s": warm,
                   "epochs": args.epochs, "torch_threads": os.environ.get("OMP_NUM_THREADS")}, f,
                  indent=2)


if __name__ == "__main__":
    main()
