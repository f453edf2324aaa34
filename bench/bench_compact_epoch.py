#!/usr/bin/env python3
"""Benchmark: training epoch time of the compact ACRNN (and Zhang's) on ESC-10, 240 clips.

Usage:
    python bench/bench_compact_epoch.py [--data_folder ../shared/data/esc10_us8k] [--epochs 4]
        [--threads 2] [--zhang_steps 3] [--no_zhang] [--no_compact] [--out bench/_out]

Each configuration runs `recipes/train.py` in its own process (OMP_NUM_THREADS=--threads) on
train folds 3-5 = 240 clips of 5 s (valid 2, test 1), discrete softmax attention, feature cache
on. Reported, all measured in this one run: seconds per training epoch (median of epochs 2..N;
epoch 1 also fills the feature caches), peak RSS of the process (VmHWM), parameters, and the
ratio of each configuration's epoch to the compact fp32 one:
  * compact, augmentation on (time-domain augmentation: train features computed per batch), fp32;
  * the same with --precision=bf16 (CPUs with AMX/AVX-512 BF16 run the convolutions faster);
  * the same with --average_epochs=10 (the weight average: its update at each epoch's end is
    inside the epoch's time; its copy of the model inside the peak RSS);
  * compact, --augment=False --mixup_alpha=0 (every split from the feature cache), fp32;
  * Zhang et al.'s ACRNN (hparams/urbansound8k_acrnn_zhang.yaml, 6.2 M parameters) with
    --time_pools=[2, 2, 1, 1] and with the paper's [1, 1, 1, 1]: an epoch takes minutes here, so
    --zhang_steps training steps (batch 32 of 5 s clips of random features, 128 mel bands,
    forward + backward + Adam) are timed in this process after one warm-up step, and the epoch
    is extrapolated (steps per epoch = ceil(240 / 32)).
Targets (issue 10): compact ≤ 1.5 M parameters, one epoch ≤ 3 s with 2 threads.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

from bench_acrnn_epoch import REPO, run_train


def zhang_epoch_estimate(time_pools, steps, batch=32, n_train=240, frames=501):
    """Seconds per 240-clip training epoch of the Zhang yaml's model, from timed steps."""
    import math
    import time

    import torch
    from hyperpyyaml import load_hyperpyyaml

    with open(os.path.join(REPO, "hparams", "urbansound8k_acrnn_zhang.yaml")) as f:
        hp = load_hyperpyyaml(f, f"output_folder: {tempfile.mkdtemp()}\n"
                                 f"time_pools: {list(time_pools)}")
    model = hp["model"].train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, frames, hp["n_mels"])
    y = torch.randint(0, hp["n_classes"], (batch,))

    def step():
        out, _ = model(x, torch.ones(batch))
        loss = torch.nn.functional.nll_loss(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    return per_step * math.ceil(n_train / batch), sum(p.numel() for p in model.parameters())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_folder", default=os.path.join(REPO, "..", "shared", "data",
                                                         "esc10_us8k"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--zhang_steps", type=int, default=3)
    p.add_argument("--no_zhang", action="store_true")
    p.add_argument("--no_compact", action="store_true", help="only the Zhang estimates")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "_out"))
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_folder):
        sys.exit(f"no data at {args.data_folder}: pass --data_folder (UrbanSound8K layout)")
    work = tempfile.mkdtemp(prefix="bench_compact_")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    base = [f"--data_folder={args.data_folder}", f"--cache_folder={os.path.join(work, 'cache')}",
            "--train_fold_nums=[3, 4, 5]", "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
            "--noprogressbar", "--ckpt_interval_minutes=0"]
    configs = [
        ("compact, augmentation, fp32", "urbansound8k_acrnn_compact.yaml",
         [f"--number_of_epochs={args.epochs}", "--warmup_epochs=1"]),
        ("compact, augmentation, bf16", "urbansound8k_acrnn_compact.yaml",
         [f"--number_of_epochs={args.epochs}", "--warmup_epochs=1", "--precision=bf16"]),
        ("compact, augmentation, bf16, --average_epochs=10", "urbansound8k_acrnn_compact.yaml",
         [f"--number_of_epochs={args.epochs}", "--warmup_epochs=1", "--precision=bf16",
          "--average_epochs=10"]),
        ("compact, no augmentation, fp32", "urbansound8k_acrnn_compact.yaml",
         [f"--number_of_epochs={args.epochs}", "--warmup_epochs=1", "--augment=False",
          "--mixup_alpha=0"]),
    ]
    rows = []
    for i, (name, hp, extra) in enumerate([] if args.no_compact else configs):
        res, rss = run_train(base + extra, os.path.join(work, f"run{i}"), hparams=hp, env=env)
        eps = res["train_epoch_seconds"]
        ep = statistics.median(eps[1:] if len(eps) > 1 else eps)
        rows.append({"config": name, "epoch_s": ep, "peak_gb": rss,
                     "n_parameters": res["n_parameters"], "n_train": res["n_clips"]["train"]})
        print(f"{name}: {ep:.2f} s / epoch, {rss:.2f} GB", flush=True)
    if not args.no_zhang:
        import torch

        torch.set_num_threads(args.threads)
        for pools in ([2, 2, 1, 1], [1, 1, 1, 1]):
            ep, n_params = zhang_epoch_estimate(pools, args.zhang_steps)
            rows.append({"config": f"Zhang, time_pools {pools}, fp32 (from {args.zhang_steps} "
                                   "steps)", "epoch_s": ep, "peak_gb": float("nan"),
                         "n_parameters": n_params, "n_train": 240})
            print(f"{rows[-1]['config']}: {ep:.1f} s / epoch", flush=True)
    ref = rows[0]["epoch_s"] if rows else 1.0
    lines = [f"| configuration | parameters | train clips | s / epoch ({args.threads} threads) | "
             "÷ compact fp32 | peak RSS GB |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['n_parameters']:,} | {r['n_train']} | "
                     f"{r['epoch_s']:.2f} | {r['epoch_s'] / ref:.2f}× | "
                     f"{'–' if r['peak_gb'] != r['peak_gb'] else format(r['peak_gb'], '.2f')} |")
    print("\n".join(lines))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_compact_epoch.json"), "w") as f:
        json.dump({"rows": rows, "epochs": args.epochs, "threads": args.threads}, f, indent=2)


if __name__ == "__main__":
    main()
