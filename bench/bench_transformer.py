#!/usr/bin/env python3
"""Benchmark: training throughput of the large raw-waveform Transformer vs its FLOP bound.

Usage:
    python bench/bench_transformer.py [--batch 64] [--seconds 1.0] [--steps 5] [--warmup 1]
        [--variant large] [--mappings softmax softmax_weights entmax15 sparsemax entmax1333]
        [--threads 1] [--json out.json]

What is measured, all in this one run and process:
  * the training step time (forward + backward, no optimizer step) of ``AudioTransformer`` (default
    variant large: 6 layers, d_model 64, 8 heads, FF 1536, front end 2048; 200 logit outputs with
    a BCE loss, like FSD50K; train mode, dropout on) on a batch of ``--batch`` chunks of
    ``--seconds`` s (no padding), median of ``--steps`` steps after ``--warmup`` steps, for each
    self-attention mapping (``softmax`` = the SDPA path; ``softmax_weights`` = softmax through the
    explicit-weights path, as with ``return_attention=True``);
  * the machine's achieved float32 matmul rate (GFLOP/s) of a 1024³ square matmul, timed right
    before every training step (so that both see the same load from other jobs), median; the
    model's front-end matmul shape ([batch·40, 400] @ [400, 2048]) is reported for reference;
  * the analytic FLOPs of one training chunk (matmuls only: every Linear 2·in·out per token forward,
    twice that backward, except the first front-end layer, whose input needs no gradient; the
    attention products QKᵀ and AV 2·L²·d each forward, twice that backward; LayerNorm, softmax /
    entmax, ReLU, dropout, bias adds and the positional encoding are not counted);
  * the FLOP bound = FLOPs per step / matmul rate, and the ratio step time / bound (target for
    softmax: within 3×), plus each mapping's step time relative to softmax.
Both the model and the matmul probe run on ``--threads`` threads (default 1; 0 = torch's default).
The whole run takes under a minute with 1 thread (entmax1333's bisection dominates).
The load average is printed before and after: on a shared machine the figures move with it.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from audioattn_sb.models.transformer import VARIANTS, AudioTransformer  # noqa: E402

MAPPINGS = {
    "softmax": ("softmax", None),
    "softmax_weights": ("softmax", None),
    "entmax15": ("entmax15", None),
    "sparsemax": ("sparsemax", None),
    "entmax1333": ("entmax1333", None),
}


def training_flops(n_samples, n_layers=6, pool_between_layers=False, d=64, ff=1536,
                   frontend=2048, patch=400, n_classes=200):
    """Matmul FLOPs of one chunk's forward + backward (see the module docstring)."""
    tokens = -(-n_samples // patch)
    fwd_front = 2 * tokens * (patch * frontend + frontend * d)
    bwd_front = 2 * fwd_front - 2 * tokens * patch * frontend  # no input gradient for layer 1
    fwd_layers = 0
    length = tokens
    for i in range(n_layers):
        linear = 2 * length * (3 * d * d + d * d + 2 * d * ff)
        attention = 2 * (2 * length * length * d)                 # QKᵀ and AV, all heads
        fwd_layers += linear + attention
        if pool_between_layers and i % 2 == 1 and i < n_layers - 1:
            length = -(-length // 2)
    fwd_head = 2 * d * n_classes
    fwd = fwd_front + fwd_layers + fwd_head
    bwd = bwd_front + 2 * (fwd_layers + fwd_head)
    return fwd + bwd, fwd


class MatmulProbe:
    """Times an [m, k] @ [k, n] matmul (float32, or ``dtype``); ``rate()`` is one measurement
    in GFLOP/s."""

    def __init__(self, m, k, n, dtype=torch.float32):
        self.a, self.b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        self.flops = 2 * m * k * n
        for _ in range(2):
            self.a @ self.b

    def rate(self, repeats=3):
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            self.a @ self.b
            best = min(best, time.perf_counter() - t)
        return self.flops / best / 1e9


def time_training(mapping, alpha, need_weights, variant, batch, n_samples, steps, warmup,
                  probe):
    """(median step seconds, median matmul GFLOP/s measured before each step, parameters)."""
    torch.manual_seed(0)
    model = AudioTransformer(200, **VARIANTS[variant], max_activation=mapping, alpha=alpha,
                             output="logits")
    model.train()
    x = torch.randn(batch, n_samples) * 0.1
    target = (torch.rand(batch, 200) < 0.05).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times, rates = [], []
    for i in range(warmup + steps):
        rate = probe.rate()
        t = time.perf_counter()
        out, _ = model(x, None, return_attention=need_weights)
        loss_fn(out, target).backward()
        model.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
            rates.append(rate)
    return (statistics.median(times), statistics.median(rates),
            sum(p.numel() for p in model.parameters()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=1.0, help="chunk length (16 kHz)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--variant", default="large", choices=list(VARIANTS))
    p.add_argument("--mappings", nargs="+", default=list(MAPPINGS), choices=list(MAPPINGS))
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: a per-core figure, stable on a machine shared "
                        "with other jobs, where 2 threads stall on each other; 0 = torch's "
                        "default)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_samples = int(round(args.seconds * 16000))
    tokens = -(-n_samples // 400)
    load0 = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load0[0]:.2f} (1 min)")

    probe = MatmulProbe(1024, 1024, 1024)
    rate_front = MatmulProbe(args.batch * tokens, 400, 2048).rate(5)
    print(f"matmul float32: 1024^3 {probe.rate(5):.1f} GFLOP/s, front-end shape "
          f"[{args.batch * tokens}, 400]@[400, 2048] {rate_front:.1f} GFLOP/s (best of 5)")

    cfg = VARIANTS[args.variant]
    flops_chunk, fwd_chunk = training_flops(n_samples, cfg["n_layers"],
                                            cfg["pool_between_layers"])
    flops_step = flops_chunk * args.batch
    print(f"variant {args.variant}: {flops_chunk / 1e6:.1f} MFLOP per {args.seconds:g} s chunk "
          f"(forward {fwd_chunk / 1e6:.1f}), {flops_step / 1e9:.1f} GFLOP per step of "
          f"{args.batch}")

    rows, base = [], None
    for name in args.mappings:
        mapping, alpha = MAPPINGS[name]
        step, rate, n_par = time_training(mapping, alpha, name == "softmax_weights",
                                          args.variant, args.batch, n_samples, args.steps,
                                          args.warmup, probe)
        if name == "softmax":
            base = step
        bound = flops_step / (rate * 1e9)
        rows.append({
            "mapping": name, "step_ms": step * 1e3, "chunks_per_s": args.batch / step,
            "gflops": flops_step / step / 1e9, "matmul_gflops": rate,
            "bound_ms": bound * 1e3, "x_bound": step / bound,
            "rel_softmax": (step / base) if base else None, "n_parameters": n_par,
        })
    load1 = os.getloadavg()

    print()
    print(f"| mapping | ms/step (batch {args.batch}) | chunks/s | model GFLOP/s | "
          f"matmul GFLOP/s | bound ms/step | × bound | × softmax |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rel = f"{r['rel_softmax']:.2f}" if r["rel_softmax"] else "—"
        print(f"| {r['mapping']} | {r['step_ms']:.0f} | {r['chunks_per_s']:.1f} | "
              f"{r['gflops']:.1f} | {r['matmul_gflops']:.0f} | {r['bound_ms']:.0f} | "
              f"{r['x_bound']:.2f} | {rel} |")
    print(f"\nload average after: {load1[0]:.2f} (1 min); parameters {rows[0]['n_parameters']:,}")
    soft = [r for r in rows if r["mapping"] == "softmax"]
    if soft:
        verdict = "within" if soft[0]["x_bound"] <= 3 else "NOT within"
        print(f"softmax: {soft[0]['x_bound']:.2f}x the FLOP bound ({verdict} the 3x target)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "frontend_matmul_gflops": rate_front,
                       "flops_per_chunk": flops_chunk, "load_average": [load0, load1],
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
