#!/usr/bin/env python3
"""Benchmark: does the cost of preparation, manifests and loading grow linearly with the corpus?

Usage:
    python bench/bench_scale.py [--sizes 500 1000 2000 4000] [--workdir /tmp/audioattn_scale]
        [--entries 10000 40000 160000] [--fsd_sizes 250 1000] [--keep] [--cold]

For each size N it generates a synthetic corpus in UrbanSound8K's layout with the real corpus's
duration and sample-rate mix (80 % of clips 4 s, the rest 0.5-4 s; 44.1 kHz 60 %, 48 kHz 30 %,
96 / 24 / 22.05 / 11.025 kHz the rest; 90 % stereo; 16- and 24-bit PCM; low-level noise, not
committed, deleted afterwards unless --keep) and measures, in this one run:

  * preparation (validation, downmix, resampling to 16 kHz into a cold cache, manifests) with 1 and
    with 2 worker processes (--prepare_workers), as time per clip;
  * packing the prepared clips (recipes/pack_corpus.py's format) per clip; each timed step starts
    after ``os.sync()``, so the gigabytes the previous steps wrote are not written back during it;
  * loader throughput over 1 s chunks with 50 % overlap (FSD50K's items) of those clips, read
    in one process (the rate of one DataLoader worker) from the WAV files (today's path) and
    from the packed file, chunks/s and the ratio; each path read twice (the second pass has
    every page in memory), with --cold a third time after dropping the page cache (root), and
    the fraction of the files' bytes in the page cache (``fincore``) before packing and reading;
  * FSD50K-layout corpora (--fsd_sizes; the demo generator: dev.csv / eval.csv, 44.1 kHz,
    0.3-10 s clips): preparation with chunking, 1 and 2 workers;
  * a manifest's load time and RSS per entry: SpeechBrain's DynamicItemDataset.from_json over
    synthetic FSD50K-style chunk manifests of --entries entries, each in a fresh process, and the
    packed index of as many clips.

Then it extrapolates to full UrbanSound8K (8,732 clips, 7.3 h) and FSD50K (51,197 clips, 108 h;
~600 k one-second chunks per dev epoch) from the measured rates per second of audio. Prints
markdown tables (bench/README.md keeps the last figures).

Targets (issue 13): time per clip and RSS per entry flat within ±20 % from the smallest to the
largest size; full UrbanSound8K preparation ≤ 5 min and FSD50K ≤ 1 h on 2 cores; ≥ 10,000 one-
second chunks/s per worker from the packed format; an FSD50K-size index ≤ 1 GB RSS.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

RATES = [(44100, 0.60), (48000, 0.30), (96000, 0.04), (24000, 0.02), (22050, 0.02),
         (11025, 0.02)]
US8K = {"clips": 8732, "hours": 7.3}
FSD50K = {"clips": 51197, "hours": 108.0, "chunks": 600_000}


def make_corpus(folder, n, seed=0):
    """An UrbanSound8K-layout corpus of ``n`` clips with the real duration / rate mix; returns
    the seconds of audio written."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rates, probs = zip(*RATES)
    rows, seconds = [], 0.0
    for i in range(n):
        fold, cls = i % 10 + 1, (i // 10) % 10
        sr = int(rng.choice(rates, p=probs))
        dur = 4.0 if rng.random() < 0.8 else float(rng.uniform(0.5, 4.0))
        ch = 2 if rng.random() < 0.9 else 1
        subtype = "PCM_16" if rng.random() < 0.7 else "PCM_24"
        x = (0.05 * rng.standard_normal((int(dur * sr), ch))).astype(np.float32)
        name = f"{100000 + i}-{cls}-0-0.wav"
        os.makedirs(os.path.join(folder, "audio", f"fold{fold}"), exist_ok=True)
        sf.write(os.path.join(folder, "audio", f"fold{fold}", name), x, sr, subtype=subtype)
        rows.append([name, 100000 + i, 0.0, dur, 1, fold, cls, f"class{cls}"])
        seconds += dur
    os.makedirs(os.path.join(folder, "metadata"), exist_ok=True)
    with open(os.path.join(folder, "metadata", "UrbanSound8K.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                    "class"])
        w.writerows(rows)
    return seconds


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def chunk_manifest(manifests, path):
    """FSD50K-style 1 s / 50 % chunk entries over the prepared clips; returns the entry count."""
    from audioattn_sb.data.fsd50k import chunk_bounds

    entries = {}
    for split_path in manifests.values():
        with open(split_path) as f:
            for key, e in json.load(f).items():
                frames = int(round(e["duration"] * 16000))
                for k, (a, b) in enumerate(chunk_bounds(frames, 16000, 8000)):
                    entries[f"{key}_{k}"] = {"wav": e["wav"], "clip": key, "start": a,
                                             "stop": b, "chunk_samples": 16000,
                                             "label_ids": [int(e["classID"])]}
    with open(path, "w") as f:
        json.dump(entries, f)
    return len(entries)


def loader_rate(manifest, audio, limit):
    """Chunks/s of reading ``limit`` items of a chunk dataset in this process."""
    from audioattn_sb.data.fsd50k import build_chunk_datasets

    ds = build_chunk_datasets({"x": manifest}, 10, audio=audio)["x"]
    n = min(limit, len(ds))
    t, _ = timed(lambda: [ds[i]["sig"] for i in range(n)])
    return n / t


def resident_fraction(paths):
    """Fraction of the files' bytes in the page cache (util-linux ``fincore``), ``None`` when
    ``fincore`` is not installed."""
    exe = shutil.which("fincore")
    if exe is None or not paths:
        return None
    res = size = 0
    paths = list(paths)
    for i in range(0, len(paths), 1000):
        out = subprocess.run([exe, "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE",
                              *paths[i:i + 1000]], capture_output=True, text=True,
                             check=True).stdout
        for line in out.split("\n"):
            if line.strip():
                r, s = line.split()
                res, size = res + min(int(r), int(s)), size + int(s)
    return res / size if size else None


def drop_page_cache():
    """Write back and drop the page cache (root only); False when this process may not."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def loader_passes(chunks, wavs, audio, limit, cold):
    """Loader rates of the WAV files and the packed file: the first pass, the same items again
    (warm: every page they touch is in memory), and with ``cold`` a pass after dropping the
    page cache (every page read from disk); with the fraction of the files' bytes resident
    before each first pass (``wavs``: the cached files the chunks read)."""
    pack = [os.path.join(audio.folder, "audio.f32")]
    row = {"cache_resident": resident_fraction(wavs), "pack_resident": resident_fraction(pack)}
    row["files_chunks_per_s"] = loader_rate(chunks, None, limit)
    row["files_warm_chunks_per_s"] = loader_rate(chunks, None, limit)
    row["packed_chunks_per_s"] = loader_rate(chunks, audio, limit)
    row["packed_warm_chunks_per_s"] = loader_rate(chunks, audio, limit)
    if cold and drop_page_cache():
        row["files_cold_chunks_per_s"] = loader_rate(chunks, None, limit)
        drop_page_cache()
        row["packed_cold_chunks_per_s"] = loader_rate(chunks, audio, limit)
    return row


def one_size(n, work, keep, cold=False):
    from audioattn_sb.data.packed import ensure_packed, manifest_wavs
    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    data = os.path.join(work, f"us8k_{n}")
    gen_s, seconds = timed(lambda: make_corpus(data, n))
    row = {"clips": n, "audio_h": seconds / 3600, "generate_s": gen_s}
    os.sync()  # the corpus's dirty pages written back before any timed step
    folds = dict(train_fold_nums=list(range(1, 9)), valid_fold_nums=[9], test_fold_nums=[10])
    for workers in (1, 2):
        root = os.path.join(work, f"prep_{n}_{workers}")
        t, paths = timed(lambda: prepare_urbansound8k(
            data, os.path.join(root, "save"), cache_folder=os.path.join(root, "cache"),
            progress=False, workers=workers, **folds))
        row[f"prepare_{workers}_ms_per_clip"] = 1e3 * t / n
        row[f"prepare_{workers}_s_per_audio_h"] = t / (seconds / 3600)
        os.sync()
    row["speedup_2_workers"] = row["prepare_1_ms_per_clip"] / row["prepare_2_ms_per_clip"]
    wavs = manifest_wavs(paths)
    row["cache_resident_before_pack"] = resident_fraction(wavs)
    t, audio = timed(lambda: ensure_packed(paths, progress=False))
    row["pack_ms_per_clip"] = 1e3 * t / n
    os.sync()
    chunks = os.path.join(work, f"chunks_{n}.json")
    row["chunks"] = chunk_manifest(paths, chunks)
    limit = 4000
    row.update(loader_passes(chunks, wavs, audio, limit, cold))
    row["packed_over_files"] = row["packed_chunks_per_s"] / row["files_chunks_per_s"]
    if not keep:
        shutil.rmtree(data)
        for w in (1, 2):
            shutil.rmtree(os.path.join(work, f"prep_{n}_{w}"))
        os.remove(chunks)
    return row


def one_fsd_size(n, work, keep):
    """FSD50K layout (dev.csv / eval.csv, 44.1 kHz, 0.3-10 s clips, 1-3 labels; the demo
    generator at ``n`` clips): preparation (resampling + 1 s / 50 % chunking) with 1 and 2
    workers, per clip and per hour of audio."""
    import soundfile as sf

    from audioattn_sb.data.fsd50k import prepare_fsd50k
    from audioattn_sb.data.synthetic_fsd50k import make_demo_fsd50k

    data = os.path.join(work, f"fsd_{n}")
    gen_s, _ = timed(lambda: make_demo_fsd50k(data, n_train=int(0.6 * n), n_val=int(0.15 * n),
                                              n_eval=n - int(0.6 * n) - int(0.15 * n)))
    seconds = sum(sf.info(os.path.join(d, f)).duration
                  for d, _, fs in os.walk(data) for f in fs if f.endswith(".wav"))
    os.sync()
    row = {"clips": n, "audio_h": seconds / 3600, "generate_s": gen_s}
    for workers in (1, 2):
        root = os.path.join(work, f"fsdprep_{n}_{workers}")
        t, paths = timed(lambda: prepare_fsd50k(data, os.path.join(root, "save"),
                                                cache_folder=os.path.join(root, "cache"),
                                                progress=False, workers=workers))
        row[f"prepare_{workers}_ms_per_clip"] = 1e3 * t / n
        row[f"prepare_{workers}_s_per_audio_h"] = t / (seconds / 3600)
        os.sync()
    row["chunks"] = sum(len(json.load(open(p))) for p in paths.values())
    if not keep:
        shutil.rmtree(data)
        for w in (1, 2):
            shutil.rmtree(os.path.join(work, f"fsdprep_{n}_{w}"))
    return row


RSS_CHILD = r"""
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
import speechbrain as sb
from audioattn_sb.data.packed import PackedAudio
kind, path = sys.argv[1], sys.argv[2]
before = rss(); t0 = time.perf_counter()
if kind == "manifest":
    obj = sb.dataio.dataset.DynamicItemDataset.from_json(path)
else:
    obj = PackedAudio(path)
print(json.dumps({"seconds": time.perf_counter() - t0, "rss": rss() - before}))
"""


def manifest_rss(n_entries, work):
    """Load time and RSS growth of an FSD50K-style chunk manifest of ``n_entries`` entries and
    of a packed index of as many clips, each in a fresh process."""
    from audioattn_sb.data.packed import INDEX_FILE, PACK_VERSION

    path = os.path.join(work, f"manifest_{n_entries}.json")
    entries = {f"{100000 + i // 7}_{i % 7}": {
        "wav": f"/data/FSD50K/cache/dev/{100000 + i // 7}.wav", "clip": str(100000 + i // 7),
        "chunk": i % 7, "n_chunks": 7, "start": 8000 * (i % 7), "stop": 8000 * (i % 7) + 16000,
        "chunk_samples": 16000, "duration": 1.0, "clip_duration": 4.0,
        "labels": ["Speech", "Male_speech_and_man_speaking"], "label_ids": [154, 97],
        "split": "train", "source": f"FSD50K.dev_audio/{100000 + i // 7}.wav"}
        for i in range(n_entries)}
    with open(path, "w") as f:
        json.dump(entries, f)
    pack = os.path.join(work, f"pack_{n_entries}")
    os.makedirs(pack, exist_ok=True)
    clips = {f"/data/FSD50K/cache/dev/{100000 + i}.wav": [i * 64000, 64000]
             for i in range(n_entries)}
    with open(os.path.join(pack, INDEX_FILE), "w") as f:
        json.dump({"version": PACK_VERSION, "n_samples": n_entries * 64000, "clips": clips,
                   "sources": {k: [0, 0] for k in clips}}, f)
    out = {"entries": n_entries}
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for kind, target in (("manifest", path), ("index", pack)):
        p = subprocess.run([sys.executable, "-c", RSS_CHILD, kind, target], capture_output=True,
                           text=True, check=True, env=env)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        out[f"{kind}_load_s"] = r["seconds"]
        out[f"{kind}_bytes_per_entry"] = r["rss"] / n_entries
    os.remove(path)
    shutil.rmtree(pack)
    return out


def spread(values):
    """(max − min) / mean, the flatness of a cost over sizes."""
    values = np.asarray(values, dtype=float)
    return float((values.max() - values.min()) / values.mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    p.add_argument("--entries", type=int, nargs="+", default=[10000, 40000, 160000])
    p.add_argument("--fsd_sizes", type=int, nargs="*", default=[250, 1000],
                   help="FSD50K-layout corpora (0 sizes: skip)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--cold", action="store_true",
                   help="also read after dropping the page cache (root only: "
                        "/proc/sys/vm/drop_caches); skipped otherwise")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    work = a.workdir or tempfile.mkdtemp(prefix="audioattn_scale_")
    os.makedirs(work, exist_ok=True)
    rows = []
    for n in a.sizes:
        rows.append(one_size(n, work, a.keep, a.cold))
        print(json.dumps(rows[-1]), flush=True)
    fsd = [one_fsd_size(n, work, a.keep) for n in a.fsd_sizes]
    for r in fsd:
        print(json.dumps(r), flush=True)
    mem = [manifest_rss(n, work) for n in a.entries]
    for m in mem:
        print(json.dumps(m), flush=True)

    print("\n| clips | audio h | prepare 1 worker ms/clip | 2 workers ms/clip | speed-up | "
          "pack ms/clip | 1 s chunks | files chunks/s | packed chunks/s | packed / files |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clips']} | {r['audio_h']:.2f} | {r['prepare_1_ms_per_clip']:.1f} | "
              f"{r['prepare_2_ms_per_clip']:.1f} | {r['speedup_2_workers']:.2f}× | "
              f"{r['pack_ms_per_clip']:.2f} | {r['chunks']} | {r['files_chunks_per_s']:.0f} | "
              f"{r['packed_chunks_per_s']:.0f} | {r['packed_over_files']:.1f}× |")

    def pct(x):
        return "–" if x is None else f"{100 * x:.0f} %"

    def rate(r, k):
        return f"{r[k]:.0f}" if k in r else "–"

    print("\n| clips | cache in page cache before packing / before reading | pack in page cache "
          "| files chunks/s: first / again / cold | packed chunks/s: first / again / cold |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clips']} | {pct(r['cache_resident_before_pack'])} / "
              f"{pct(r['cache_resident'])} | {pct(r['pack_resident'])} | "
              f"{rate(r, 'files_chunks_per_s')} / {rate(r, 'files_warm_chunks_per_s')} / "
              f"{rate(r, 'files_cold_chunks_per_s')} | {rate(r, 'packed_chunks_per_s')} / "
              f"{rate(r, 'packed_warm_chunks_per_s')} / {rate(r, 'packed_cold_chunks_per_s')} |")
    if fsd:
        print("\n| FSD50K-layout clips | audio h | 1 s chunks | prepare 1 worker ms/clip | "
              "2 workers ms/clip | 2 workers s per audio hour |")
        print("|---|---|---|---|---|---|")
        for r in fsd:
            print(f"| {r['clips']} | {r['audio_h']:.2f} | {r['chunks']} | "
                  f"{r['prepare_1_ms_per_clip']:.1f} | {r['prepare_2_ms_per_clip']:.1f} | "
                  f"{r['prepare_2_s_per_audio_h']:.1f} |")
        print(f"FSD50K (108 h) extrapolated from {fsd[-1]['clips']} FSD50K-layout clips, 2 "
              f"workers: {fsd[-1]['prepare_2_s_per_audio_h'] * FSD50K['hours'] / 60:.1f} min")
    print("\n| manifest entries | load s | RSS bytes/entry | packed index load s | "
          "index bytes/clip |")
    print("|---|---|---|---|---|")
    for m in mem:
        print(f"| {m['entries']} | {m['manifest_load_s']:.2f} | "
              f"{m['manifest_bytes_per_entry']:.0f} | {m['index_load_s']:.2f} | "
              f"{m['index_bytes_per_entry']:.0f} |")

    flat = {k: spread([r[k] for r in rows]) for k in
            ("prepare_1_ms_per_clip", "prepare_2_ms_per_clip", "pack_ms_per_clip")}
    flat["manifest_bytes_per_entry"] = spread([m["manifest_bytes_per_entry"] for m in mem])
    print("\nspread (max − min) / mean over sizes (target ≤ 0.4, i.e. ±20 %): "
          + ", ".join(f"{k} {v:.2f}" for k, v in flat.items()))
    big = rows[-1]
    per_h_2 = big["prepare_2_s_per_audio_h"]
    last = mem[-1]
    print(f"extrapolated from {big['clips']} clips, 2 workers: full UrbanSound8K preparation "
          f"{per_h_2 * US8K['hours'] / 60:.1f} min (target ≤ 5), FSD50K "
          f"{per_h_2 * FSD50K['hours'] / 60:.1f} min (target ≤ 60); FSD50K dev manifest of "
          f"{FSD50K['chunks']} chunks ≈ {last['manifest_bytes_per_entry'] * FSD50K['chunks'] / 1e9:.2f}"
          f" GB RSS (target ≤ 1), packed index of {FSD50K['clips']} clips ≈ "
          f"{last['index_bytes_per_entry'] * FSD50K['clips'] / 1e9:.3f} GB; packed loader "
          f"{big['packed_chunks_per_s']:.0f} chunks/s per worker (target ≥ 10,000), "
          f"{big['packed_over_files']:.1f}× the WAV files")
    if not a.keep and a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
