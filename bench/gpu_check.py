#!/usr/bin/env python3
"""GPU readiness: what the CPU-only suite cannot check, on one machine with NVIDIA GPUs.

Usage (bench/gpu_check.sh installs nothing and calls this; see its header):
    python bench/gpu_check.py [--out gpu_check.md] [--quick]

Checks, each a row of one table (also written to --out):
  1. the device: torch / CUDA versions, GPU name, NCCL;
  2. every attention mapping on CUDA against the CPU in float64 (outputs and input gradients):
     discrete softmax / entmax-4/3 / entmax-1.5 / sparsemax / entmax α = 1.7, continuous
     Gaussian / triweight / biweight / sparsemax / α = 1.7 (the closed-form and quadrature
     paths of the continuous expectations), and the same in float32;
  3. bf16 and fp16 autocast on CUDA: the compact ACRNN (continuous biweight) and the large
     Transformer, forward + backward finite, and the logits' largest difference from float32;
  4. ``torchrun --nproc_per_node=<GPUs>`` with the nccl backend: recipes/train.py, seed ACRNN,
     2 epochs on the generated demo data, bf16; results.json written, every test clip scored once;
  5. the compact and Zhang's ACRNN training steps (clips/s, ESC-10 and UrbanSound8K epoch
     times, features cached) and the large raw-waveform Transformer's training throughput (bf16 autocast, AdamW step, batch of
     1 s chunks) against its FLOP bound: the analytic FLOPs of bench/bench_transformer.py over a
     bf16 matmul rate measured here (8192³);
  6. the loader: 1 s chunks/s of one process (= one DataLoader worker) from the WAV files and from
     the packed format (bench/bench_scale.py's generated corpus), and how many workers the
     Transformer's rate needs.
Without CUDA it runs every check on the CPU and says so (rows marked "cpu": not a GPU check).
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

ROWS = []


def row(check, ok, figure, detail=""):
    ROWS.append((check, "ok" if ok else "FAIL", figure, detail))
    print(f"[{'ok' if ok else 'FAIL'}] {check}: {figure} {detail}", flush=True)


def device_row(dev):
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        nccl = torch.distributed.is_nccl_available()
        row("device", True, f"{p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}",
            f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"{torch.cuda.device_count()} GPU(s), nccl {'yes' if nccl else 'no'}")
    else:
        row("device", False, "no CUDA device: every check below ran on the CPU (cpu)",
            f"torch {torch.__version__}")


def _max_diff(a, b):
    return float((a.detach().cpu().double() - b.detach().cpu().double()).abs().max())


def attention_rows(dev):
    from audioattn_sb.attention import build_pooling

    torch.manual_seed(0)
    cases = [("discrete", n, None) for n in ("softmax", "entmax1333", "entmax15", "sparsemax")]
    cases += [("discrete", "entmax", 1.7)]
    cases += [("continuous", n, None) for n in ("gaussian", "triweight", "biweight", "sparsemax")]
    cases += [("continuous", "entmax", 1.7)]
    lengths = torch.tensor([1.0, 0.7, 0.3, 1.0])
    for domain, name, alpha in cases:
        worst = {}
        for dtype, tol in ((torch.float64, 1e-7), (torch.float32, 2e-3)):
            torch.manual_seed(1)
            ref = build_pooling(domain, name, 16, alpha=alpha,
                                continuous={"num_centres": 16}).double()
            x = torch.randn(4, 50, 16, dtype=torch.float64, requires_grad=True)
            out_ref, _ = ref(x, lengths)
            (g_ref,) = torch.autograd.grad(out_ref.square().sum(), x)
            pool = build_pooling(domain, name, 16, alpha=alpha, continuous={"num_centres": 16})
            pool.load_state_dict(ref.state_dict())
            pool = pool.to(dev, dtype)
            xd = x.detach().to(dev, dtype).requires_grad_(True)
            out, _ = pool(xd, lengths.to(dev))
            (g,) = torch.autograd.grad(out.float().square().sum(), xd)
            d = max(_max_diff(out, out_ref), _max_diff(g, g_ref))
            finite = bool(torch.isfinite(out).all() and torch.isfinite(g).all())
            worst[str(dtype).split(".")[-1]] = (d, finite and d <= tol)
        label = name if alpha is None else f"{name} α={alpha}"
        row(f"attention {domain} {label} ({dev.type})", all(ok for _, ok in worst.values()),
            ", ".join(f"{k} max abs Δ {d:.1e}" for k, (d, _) in worst.items()),
            "vs CPU float64 (output and input gradient)")


def autocast_rows(dev):
    from audioattn_sb.attention import build_pooling
    from audioattn_sb.models.acrnn import ACRNN
    from audioattn_sb.models.transformer import VARIANTS, AudioTransformer

    def acrnn():
        return ACRNN(64, 10, build_pooling("continuous", "biweight", 128,
                                           continuous={"num_centres": 64}),
                     conv_channels=[8, 16, 32, 64], conv2d=True, freq_pool=2,
                     time_pools=[2, 1, 1, 1], rnn_type="gru", rnn_neurons=64, dropout=0.0)

    def transformer():
        return AudioTransformer(200, **VARIANTS["large"], output="logits", dropout=0.0)

    models = {"compact ACRNN, continuous biweight": (acrnn, lambda: torch.randn(8, 251, 64)),
              "large Transformer, softmax": (transformer, lambda: 0.1 * torch.randn(8, 16000))}
    lengths = torch.tensor([1.0, 0.9, 0.5, 1.0, 0.25, 1.0, 0.75, 1.0])
    for label, (make, data) in models.items():
        torch.manual_seed(0)
        model = make().to(dev).train()  # no dropout: train mode is deterministic (cuDNN RNN
        x = data().to(dev)              # backward needs it)
        with torch.no_grad():
            ref, _ = model(x, lengths.to(dev))
        for dtype in (torch.bfloat16, torch.float16):
            if dev.type == "cpu" and dtype == torch.float16:
                continue
            model.zero_grad()
            with torch.autocast(dev.type, dtype=dtype):
                out, _ = model(x, lengths.to(dev))
            out.float().square().mean().backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            finite = bool(torch.isfinite(out).all()) and all(torch.isfinite(g).all()
                                                             for g in grads)
            d = _max_diff(out, ref)
            scale = float(ref.abs().max())
            row(f"autocast {str(dtype).split('.')[-1]} {label} ({dev.type})",
                finite and d <= 0.1 * max(scale, 1.0),
                f"max abs Δ logits {d:.3f} (max abs logit {scale:.2f})",
                "forward + backward finite")


def acrnn_rows(dev, steps):
    """Training step time of the compact and of Zhang's ACRNN (their yamls' models, discrete
    softmax, their batch sizes, 4 s clips, bf16 autocast, AdamW): clips/s and the time of an
    ESC-10 epoch (240 clips) and of a 10-fold UrbanSound8K one (~7,000 clips)."""
    from hyperpyyaml import load_hyperpyyaml

    for name in ("urbansound8k_acrnn_compact", "urbansound8k_acrnn_zhang"):
        with open(os.path.join(REPO, "hparams", f"{name}.yaml")) as f:
            hp = load_hyperpyyaml(f, {"data_folder": "unused"})
        torch.manual_seed(0)
        model = hp["model"].to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = int(hp["batch_size"])
        frames = 4 * hp["sample_rate"] // hp["hop_samples"] + 1
        x = torch.randn(batch, frames, hp["n_mels"], device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                out, _ = model(x, None)
            torch.nn.functional.nll_loss(out.float(), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        _sync(dev)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(dev)
        sec = (time.perf_counter() - t) / steps
        n_par = sum(p.numel() for p in model.parameters())
        row(f"{name} training, batch {batch} × 4 s, bf16 ({dev.type})", math.isfinite(sec),
            f"{batch / sec:,.0f} clips/s ({1e3 * sec:.1f} ms/step)",
            f"{n_par / 1e6:.2f} M parameters; ESC-10 epoch (240 clips) {240 * sec / batch:.2f} s, "
            f"UrbanSound8K 10-fold epoch (~7,000 clips) {7000 * sec / batch:.1f} s "
            "(model only, features cached)")


def torchrun_row(dev, work):
    from audioattn_sb.data.synthetic import make_demo_urbansound8k

    data = os.path.join(work, "demo")
    make_demo_urbansound8k(data)
    n_proc = torch.cuda.device_count() if dev.type == "cuda" else 1
    backend = "nccl" if dev.type == "cuda" else "gloo"
    out = os.path.join(work, "ddp")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={n_proc}"]
    cmd = torchrun + [os.path.join(REPO, "recipes", "train.py"),
                      os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml"),
                      f"--data_folder={data}", f"--cache_folder={work}/cache",
                      f"--output_folder={out}", "--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10]",
                      "--valid_fold_nums=[2]", "--test_fold_nums=[1]", "--number_of_epochs=2",
                      f"--distributed_backend={backend}", "--precision=bf16",
                      f"--device={'cuda:0' if dev.type == 'cuda' else 'cpu'}", "--noprogressbar"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    seconds = time.perf_counter() - t
    ok = p.returncode == 0 and os.path.isfile(os.path.join(out, "results.json"))
    detail = ""
    if ok:
        res = json.load(open(os.path.join(out, "results.json")))
        test = res["items_per_process"]["test"]
        ok = sum(test) == 30 and sum(map(sum, res["test_confusion_matrix"])) == 30
        detail = (f"test clips per process {test}, accuracy {res['test_accuracy']:.3f}, "
                  f"epochs {res.get('epochs_completed')}")
    else:
        detail = (p.stderr or p.stdout)[-600:].replace("\n", " ")
    row(f"torchrun {n_proc} process(es), {backend} ({dev.type})", ok, f"{seconds:.0f} s",
        detail)


def matmul_rate(dev, n):
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(dev)
    t = time.perf_counter()
    reps = 10 if dev.type == "cuda" else 2
    for _ in range(reps):
        a @ b
    _sync(dev)
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def transformer_row(dev, batch, steps):
    from bench_transformer import training_flops

    from audioattn_sb.models.transformer import VARIANTS, AudioTransformer

    torch.manual_seed(0)
    model = AudioTransformer(200, **VARIANTS["large"], output="logits").to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = 0.1 * torch.randn(batch, 16000, device=dev)
    target = (torch.rand(batch, 200, device=dev) < 0.05).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    amp = torch.bfloat16

    def step():
        with torch.autocast(dev.type, dtype=amp):
            out, _ = model(x, None)
        loss_fn(out.float(), target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        _sync(dev)
        t = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    flops, _ = training_flops(16000, **{k: v for k, v in _variant_flops_args().items()})
    rate = matmul_rate(dev, 8192 if dev.type == "cuda" else 1024)
    bound = flops * batch / rate
    chunks_per_s = batch / sec
    row(f"Transformer large training, batch {batch} × 1 s, bf16 ({dev.type})",
        math.isfinite(sec), f"{chunks_per_s:,.0f} chunks/s ({1e3 * sec:.1f} ms/step)",
        f"{flops / 1e9:.2f} GFLOP/chunk; matmul {rate / 1e12:.3g} TFLOP/s → bound "
        f"{1e3 * bound:.2f} ms/step, step / bound = {sec / bound:.0f}×")
    return chunks_per_s


def _variant_flops_args():
    from audioattn_sb.models.transformer import VARIANTS

    v = VARIANTS["large"]
    return {"n_layers": v.get("n_layers", 6), "d": v.get("d_model", 64),
            "ff": v.get("ff_dim", 1536), "frontend": v.get("frontend_dim", 2048),
            "pool_between_layers": bool(v.get("pool_between_layers", False))}


def loader_row(work, n_clips, model_rate):
    from bench_scale import chunk_manifest, loader_rate, make_corpus

    from audioattn_sb.data.packed import ensure_packed
    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    data = os.path.join(work, "corpus")
    make_corpus(data, n_clips)
    paths = prepare_urbansound8k(data, os.path.join(work, "prep"),
                                 list(range(1, 9)), [9], [10],
                                 cache_folder=os.path.join(work, "prep_cache"), progress=False)
    audio = ensure_packed(paths, progress=False)
    chunks = os.path.join(work, "chunks.json")
    n = chunk_manifest(paths, chunks)
    files = loader_rate(chunks, None, 4000)
    packed = loader_rate(chunks, audio, 4000)
    need = model_rate / packed
    cores = len(os.sched_getaffinity(0))
    row("loader, one process (one DataLoader worker)", packed >= 10_000,
        f"packed {packed:,.0f} chunks/s, WAV files {files:,.0f} ({packed / files:.1f}×)",
        f"{n} chunks of {n_clips} clips; the Transformer's {model_rate:,.0f} chunks/s need "
        f"{need:.1f} packed workers ({cores} cores here)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    p.add_argument("--quick", action="store_true",
                   help="smaller batch and corpus (for trying the script on a CPU)")
    a = p.parse_args(argv)
    dev = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    work = tempfile.mkdtemp(prefix="audioattn_gpu_check_")
    try:
        device_row(dev)
        for name, fn in (("attention", lambda: attention_rows(dev)),
                         ("autocast", lambda: autocast_rows(dev)),
                         ("acrnn", lambda: acrnn_rows(dev, 3 if a.quick else 20)),
                         ("torchrun", lambda: torchrun_row(dev, work))):
            try:
                fn()
            except Exception as err:  # a broken check is a row, the others still run
                row(name, False, "error", f"{type(err).__name__}: {err}"[:400])
        rate = 0.0
        try:
            rate = transformer_row(dev, 16 if a.quick else 512, 3 if a.quick else 10)
        except Exception as err:
            row("Transformer throughput", False, "error", f"{type(err).__name__}: {err}"[:400])
        try:
            loader_row(work, 40 if a.quick else 400, rate)
        except Exception as err:
            row("loader", False, "error", f"{type(err).__name__}: {err}"[:400])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| check | result | figure | detail |", "|---|---|---|---|"]
    lines += [f"| {c} | {r} | {f} | {d} |" for c, r, f, d in ROWS]
    table = "\n".join(lines)
    print("\n" + table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(table + "\n")
    n_fail = sum(r == "FAIL" for _, r, _, _ in ROWS)
    print(f"\n{len(ROWS) - n_fail} ok, {n_fail} failed")
    return 1 if n_fail and dev.type == "cuda" else 0


if __name__ == "__main__":
    sys.exit(main())
