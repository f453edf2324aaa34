#!/usr/bin/env python3
"""Benchmark: one checkpoint save of a training run, SpeechBrain's Checkpointer vs ours.

Usage:
    python bench/bench_checkpoint.py [--hparams hparams/urbansound8k_acrnn_compact.yaml]
        [--repeats 30]

Builds the yaml's recoverables (model, normaliser, LR scheduler, epoch counter) and times
``save_and_keep_only(meta={"error": e, "epoch": k}, min_keys=["error"])`` — what the Brain does
after each validation — with ``speechbrain.utils.checkpoints.Checkpointer`` and with
``audioattn_sb.checkpoints.AtomicCheckpointer`` (files fsync'ed, meta written last through a
temporary file, incomplete folders swept), alternating the two, each into its own temporary
folder. Prints the median seconds of each and their ratio (atomic / SpeechBrain), all measured in
this one run; the bytes of one checkpoint.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hparams", default=os.path.join(REPO, "hparams",
                                                     "urbansound8k_acrnn_compact.yaml"))
    p.add_argument("--repeats", type=int, default=30)
    ns = p.parse_args(argv)

    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.checkpoints import Checkpointer

    from audioattn_sb.checkpoints import AtomicCheckpointer

    with open(ns.hparams) as f:
        hp = load_hyperpyyaml(f, f"output_folder: {tempfile.mkdtemp()}")
    recoverables = dict(hp["checkpointer"].recoverables)
    kinds = {"speechbrain": Checkpointer, "atomic": AtomicCheckpointer}
    ckpters = {k: cls(tempfile.mkdtemp(), recoverables=recoverables) for k, cls in kinds.items()}
    times = {k: [] for k in kinds}
    for i in range(ns.repeats):
        for k, ck in ckpters.items():
            t0 = time.perf_counter()
            ck.save_and_keep_only(meta={"error": 1.0 / (i + 1), "epoch": i + 1},
                                  min_keys=["error"])
            times[k].append(time.perf_counter() - t0)
    (ckpt,) = ckpters["atomic"].list_checkpoints()
    size = sum(f.stat().st_size for f in ckpt.path.iterdir())
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:12s} median {v * 1000:7.2f} ms per save_and_keep_only ({ns.repeats} saves)")
    print(f"ratio atomic / speechbrain: {med['atomic'] / med['speechbrain']:.2f}; "
          f"one checkpoint {size / 1e6:.2f} MB ({os.path.basename(ns.hparams)})")


if __name__ == "__main__":
    main()
