#!/usr/bin/env python3
"""Benchmark: the pretrained-encoder self-attention export and the log-mel MHA baseline's epoch.

Usage:
    python bench/bench_pretrained.py [--seconds 10] [--family wav2vec2] [--esc10 DIR]

  * export: a base-size encoder (12 layers × 12 heads, hidden 768, FF 3072, wav2vec 2.0's
    convolutional encoder; random weights built from the config, saved to a temporary folder —
    the same work as a downloaded base model) and a --seconds s wav, through
    `recipes/save_self_attention.py --hf_model` in a fresh process: wall time (interpreter and
    model loading included), the child's peak RSS, and the size of the .npz (float32 and
    --float16);
  * the log-mel MHA baseline (hparams/urbansound8k_logmel_mha.yaml): one ESC-10 training epoch
    (240 clips of train folds 2-4; valid 5, test 1; augmentation on, feature cache on) read from
    train_log.txt's epoch_seconds, with --esc10 (default ../shared/data/esc10_us8k).

Targets (issue 14): export ≤ 10 s and ≤ 2 GB RSS on these 2 cores; baseline epoch ≤ 2 s.
The load average is printed: on a shared machine the figures move with it.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_model(folder, family):
    import transformers

    prefix = {"wav2vec2": "Wav2Vec2", "hubert": "Hubert", "wavlm": "WavLM"}[family]
    config = getattr(transformers, f"{prefix}Config")()  # the base-size defaults
    model = getattr(transformers, f"{prefix}Model")(config)
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return config


def export(folder, wav, out, extra=()):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "recipes", "save_self_attention.py"),
                    "--hf_model", folder, "--wav", wav, "--attn_out_folder", out, *extra],
                   check=True, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB, max over children
    return seconds, peak, before


def baseline_epoch(esc10, work):
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = os.path.join(work, "mha")
    subprocess.run([sys.executable, os.path.join(REPO, "recipes", "train.py"),
                    os.path.join(REPO, "hparams", "urbansound8k_logmel_mha.yaml"),
                    f"--data_folder={esc10}", f"--cache_folder={work}/cache",
                    f"--output_folder={out}", "--train_fold_nums=[2, 3, 4]",
                    "--valid_fold_nums=[5]", "--test_fold_nums=[1]", "--number_of_epochs=4",
                    "--warmup_epochs=1", "--noprogressbar"], check=True, capture_output=True,
                   text=True, env=env, cwd=REPO)
    log = open(os.path.join(out, "train_log.txt")).read()
    return [float(x) for x in re.findall(r"epoch_seconds: ([0-9.]+)", log)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--family", default="wav2vec2", choices=["wav2vec2", "hubert", "wavlm"])
    p.add_argument("--esc10", default=os.path.join(REPO, "..", "shared", "data", "esc10_us8k"))
    a = p.parse_args(argv)
    import soundfile as sf

    print(f"load average before: {os.getloadavg()}")
    work = tempfile.mkdtemp(prefix="audioattn_bench_pretrained_")
    folder = os.path.join(work, "base")
    config = base_model(folder, a.family)
    wav = os.path.join(work, "speech.wav")
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(int(a.seconds * 16000)),
             16000, subtype="PCM_16")
    secs, peak, _ = export(folder, wav, os.path.join(work, "f32"))
    secs16, peak16, _ = export(folder, wav, os.path.join(work, "f16"), ["--float16"])
    size32 = os.path.getsize(os.path.join(work, "f32", "speech.npz"))
    size16 = os.path.getsize(os.path.join(work, "f16", "speech.npz"))
    print(f"\n| export ({a.family} base: {config.num_hidden_layers} layers × "
          f"{config.num_attention_heads} heads, {a.seconds:g} s wav) | wall s | peak RSS GB | "
          ".npz MB |")
    print("|---|---|---|---|")
    print(f"| float32 | {secs:.1f} | {peak / 2**20:.2f} | {size32 / 2**20:.0f} |")
    print(f"| --float16 | {secs16:.1f} | {peak16 / 2**20:.2f} | {size16 / 2**20:.0f} |")
    if os.path.isdir(a.esc10):
        epochs = baseline_epoch(a.esc10, work)
        print(f"\nlog-mel MHA baseline, ESC-10 training epoch (240 clips, augmentation on): "
              f"{', '.join(f'{e:.2f}' for e in epochs)} s (epochs 1-{len(epochs)}; "
              f"median {np.median(epochs[1:]):.2f} s without the first)")
    else:
        print(f"\n(no ESC-10 at {a.esc10}: baseline epoch not measured)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
