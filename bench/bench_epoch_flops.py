#!/usr/bin/env python3
"""Benchmark: the compact ACRNN and the compact Transformer's training epoch against this CPU's
FLOP bound (issue 30).

Usage:
    python bench/bench_epoch_flops.py [--threads 2] [--steps 5] [--warmup 2]
        [--runs ACRNN_RUN TRANSFORMER_RUN] [--json out.json] [--precision fp32|bf16]
        [--transformer_overrides "d_model: 128\nn_heads: 4"] [--compile]

For each of hparams/urbansound8k_acrnn_compact.yaml and hparams/urbansound8k_transformer_compact.yaml
(their default models, discrete softmax pooling, 10 classes), all measured in this one process:
  * FLOPs of one training step, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls
    and convolutions, forward + backward) on a batch of 16 clips of 5 s (ESC-10's, no padding):
    features (the ACRNN's Fbank, the Transformer's waveform), normalisation and model, NLL loss;
  * the step time (forward + backward + AdamW step, train mode), median of ``--steps`` after
    ``--warmup``, and the epoch of ESC-10's 3 training folds (240 clips = 15 steps) it implies;
  * this CPU's achieved float32 matmul rate (a 1024³ matmul, GFLOP/s, timed before every step);
    with ``--precision bf16`` the step runs under ``torch.autocast("cpu", torch.bfloat16)`` (as
    the recipe's ``--precision=bf16``) and the probe is a bf16 matmul (AMX / avx512_bf16 CPUs);
  * the FLOP bound of the epoch = 15 · FLOPs per step / matmul rate, and the ratio
    ``step time / bound`` (issue 30's target for the Transformer: within 3×).
With ``--compile`` each model is measured a second time as ``torch.compile(model)`` (inductor;
the same FLOPs, counted on the eager model; the first ``--warmup`` steps, which compile, are not
timed: their total is reported as ``compile_s``).
The process's memory settings are the recipe's (``audioattn_sb.runtime``; run it with
``AUDIOATTN_CPU_ALLOCATOR=default`` for the defaults: bench/bench_allocator.py alternates both).
With ``--runs`` (a finished run of each yaml on ESC-10 folds 3-5), the measured end-of-run
epoch time of the recipe (``results.json``'s median ``train_epoch_seconds``: data loading and
augmentation included, on that run's machine and threads) is set against the same bound.
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from audioattn_sb.results import RunResults  # noqa: E402
from audioattn_sb.runtime import describe, tune_cpu_allocator  # noqa: E402

ALLOCATOR = tune_cpu_allocator()  # as recipes/train.py does, before torch is imported

import torch  # noqa: E402

from bench_transformer import MatmulProbe  # noqa: E402

YAMLS = {"compact ACRNN": "hparams/urbansound8k_acrnn_compact.yaml",
         "compact Transformer": "hparams/urbansound8k_transformer_compact.yaml"}
BATCH, SECONDS, N_TRAIN = 16, 5.0, 240


def build(yaml_path, out, overrides=""):
    """The yaml's modules (compute_features, mean_var_norm, model) with its defaults (and
    ``overrides``, a yaml string)."""
    import yaml
    from hyperpyyaml import load_hyperpyyaml

    extra = yaml.safe_load(overrides) if overrides else {}
    with open(os.path.join(REPO, yaml_path), encoding="utf-8") as f:
        hp = load_hyperpyyaml(f, {"output_folder": out, "data_folder": out, **(extra or {})})
    return hp["compute_features"], hp["mean_var_norm"], hp["model"]


def step(feat, norm, model, wavs, lens, labels, bf16=False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = feat(wavs)
        if isinstance(norm, torch.nn.Module) and type(norm).__name__ != "PassThroughNorm":
            feats = norm(feats, lens)
        out, _ = model(feats, lens)
    loss = torch.nn.functional.nll_loss(out.float(), labels)
    loss.backward()
    return loss


def measure(name, yaml_path, steps, warmup, probe, bf16=False, overrides="", compile=False):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        feat, norm, model = build(yaml_path, out, overrides)
    model.train()
    if isinstance(norm, torch.nn.Module):
        norm.train()
    wavs = 0.1 * torch.randn(BATCH, int(SECONDS * 16000))
    lens = torch.ones(BATCH)
    labels = torch.randint(0, 10, (BATCH,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    counter = FlopCounterMode(display=False)
    with counter:
        step(feat, norm, model, wavs, lens, labels, bf16)
    flops = counter.get_total_flops()
    opt.zero_grad(set_to_none=True)
    run_model = torch.compile(model) if compile else model
    times, rates, warm_s = [], [], 0.0
    for i in range(warmup + steps):
        rate = probe.rate()
        t = time.perf_counter()
        step(feat, norm, run_model, wavs, lens, labels, bf16)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
            rates.append(rate)
        else:
            warm_s += time.perf_counter() - t
    step_s, rate = statistics.median(times), statistics.median(rates)
    steps_per_epoch = math.ceil(N_TRAIN / BATCH)
    bound_s = steps_per_epoch * flops / (rate * 1e9)
    return {"model": name + (" (torch.compile)" if compile else ""),
            "compile_s": warm_s if compile else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "gflop_per_step": flops / 1e9, "gflop_per_epoch": steps_per_epoch * flops / 1e9,
            "step_s": step_s, "epoch_s_model_only": steps_per_epoch * step_s,
            "matmul_gflops": rate, "bound_epoch_s": bound_s,
            "x_bound": steps_per_epoch * step_s / bound_s}


def run_epoch_seconds(run):
    """The median of a finished run's ``train_epoch_seconds`` (results.json), None if it has none."""
    secs = RunResults.load(run).train_epoch_seconds
    return statistics.median(secs) if secs else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", nargs=2, default=None, metavar=("ACRNN_RUN", "TRANSFORMER_RUN"))
    p.add_argument("--json", default=None)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: autocast steps against a bf16 matmul bound")
    p.add_argument("--transformer_overrides", default="",
                   help="yaml overrides of the Transformer's yaml (e.g. a variant's sizes)")
    p.add_argument("--compile", action="store_true",
                   help="also measure each model under torch.compile (inductor)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16"
    print(f"threads {torch.get_num_threads()}; {args.precision}; load average "
          f"{os.getloadavg()[0]:.2f}; {describe(ALLOCATOR)}")
    probe = MatmulProbe(1024, 1024, 1024, torch.bfloat16 if bf16 else torch.float32)
    rows = [measure(n, y, args.steps, args.warmup, probe, bf16,
                    args.transformer_overrides if "Transformer" in n else "", compiled)
            for n, y in YAMLS.items() for compiled in ((False, True) if args.compile else (False,))]
    if args.runs:
        for row, run in zip([r for r in rows if r["compile_s"] is None], args.runs):
            row["run"], row["run_epoch_s"] = run, run_epoch_seconds(run)
            if row["run_epoch_s"]:
                row["run_x_bound"] = row["run_epoch_s"] / row["bound_epoch_s"]
    print("| model | parameters | GFLOP / step | GFLOP / epoch | matmul GFLOP/s | bound s/epoch "
          "| model-only s/epoch | × bound |" + (" recipe s/epoch | × bound |" if args.runs else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if args.runs else ""))
    for r in rows:
        line = (f"| {r['model']} | {r['parameters']:,} | {r['gflop_per_step']:.1f} | "
                f"{r['gflop_per_epoch']:.0f} | {r['matmul_gflops']:.0f} | "
                f"{r['bound_epoch_s']:.2f} | {r['epoch_s_model_only']:.2f} | "
                f"**{r['x_bound']:.2f}** |")
        if args.runs:
            line += (f" {r.get('run_epoch_s') or float('nan'):.2f} | "
                     f"{r.get('run_x_bound', float('nan')):.2f} |")
        print(line)
    for r in rows:
        if r["compile_s"] is not None:
            print(f"{r['model']}: the {args.warmup} compiling warm-up steps took "
                  f"{r['compile_s']:.1f} s")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
