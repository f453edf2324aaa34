"""Make a small synthetic multi-label dataset in FSD50K's exact layout (demo and test data).

    python recipes/make_demo_data.py --layout fsd50k --out data/demo_fsd50k \\
        [--n-train 120] [--n-val 30] [--n-eval 60] [--sample-rate 44100] [--seed 0] [--force]

writes::

    OUT/FSD50K.ground_truth/vocabulary.csv   no header: index,label,mid (10 classes)
    OUT/FSD50K.ground_truth/dev.csv          fname,labels,mids,split   (train / val rows)
    OUT/FSD50K.ground_truth/eval.csv         fname,labels,mids
    OUT/FSD50K.dev_audio/<fname>.wav         44.1 kHz mono PCM-16, like FSD50K (--sample-rate)
    OUT/FSD50K.eval_audio/<fname>.wav
    OUT/demo_info.json                       the generator's options

``labels`` and ``mids`` are comma-joined lists inside one double-quoted csv field, exactly as in
FSD50K (``1234,"Siren,Hum","/m/demo00,/m/demo01",train``); rows are sorted by fname, train and val
rows interleaved in ``dev.csv``. Default: 120 train / 30 val / 60 eval clips (about 66 MB at 44.1
kHz, 24 MB at 16 kHz; a few seconds). Same options, same bytes; a rerun into a complete demo folder does nothing (so a 16 kHz
cache made from it stays valid); ``--force`` regenerates; a folder holding anything else is never
overwritten.

Each clip mixes 1–3 different classes (1: 40 %, 2: 40 %, 3: 20 %) over faint background noise.
Each class is one event made by the UrbanSound8K demo's synthesizers
(:data:`audioattn_sb.data.synthetic.SOUNDS`, mixed with
:func:`~audioattn_sb.data.synthetic.render_clip`) lasting 50–100 % of the clip (all of a clip
under 1 s) at a random onset and level. Durations 0.3–10 s: about 15 % under 1 s (every split has at least one 0.3 s clip), 60 % 1–5 s, 25 % 5–10 s.
Every class occurs in every split (given at least 10 clips per split). Labels are clip-level (weak)
like FSD50K's: a 1 s chunk may miss an event its clip is labelled with.
"""

import argparse
import csv
import io
import json
import math
import os
import shutil
import sys

import numpy as np
import soundfile as sf

from audioattn_sb.data.synthetic import SOUNDS, render_clip, write_wav

GENERATOR = "audioattn_sb.data.synthetic_fsd50k.make_demo_fsd50k"
GENERATOR_VERSION = 1
SAMPLE_RATE = 44100
SUBTYPE = "PCM_16"
#: (label, mid, synthesizer name); index = position
CLASSES = [(name.capitalize(), f"/m/demo{i:02d}", name) for i, name in enumerate(SOUNDS)]
N_LABELS_WEIGHTS = (0.4, 0.4, 0.2)  # 1, 2, 3 classes per clip
MIN_DURATION, MAX_DURATION = 0.3, 10.0
GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO_DIRS = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def _durations(rng, n):
    out = []
    for _ in range(n):
        u = rng.uniform()
        if u < 0.15:
            out.append(round(rng.uniform(MIN_DURATION, 1.0), 3))
        elif u < 0.75:
            out.append(round(rng.uniform(1.0, 5.0), 3))
        else:
            out.append(round(rng.uniform(5.0, MAX_DURATION), 3))
    if n:
        out[0] = MIN_DURATION  # every split has one 0.3 s clip (FSD50K's shortest)
    return [out[i] for i in rng.permutation(n)]


def _label_sets(rng, n):
    """n sorted lists of class indices; the primary classes cycle so every class occurs."""
    n_classes = len(CLASSES)
    primaries = [int(c) for c in np.concatenate(
        [rng.permutation(n_classes) for _ in range(-(-n // n_classes))])[:n]]
    sets = []
    for p in primaries:
        k = int(rng.choice(3, p=N_LABELS_WEIGHTS)) + 1
        others = [int(c) for c in rng.permutation(n_classes) if c != p][:k - 1]
        sets.append(sorted([p] + others))
    return sets


def _plan(seed, n_train, n_val, n_eval):
    """[(csv, split, fname, duration, class ids)] in generation order (fnames unique)."""
    rng = np.random.default_rng([int(seed), 0])
    fnames = [int(f) for f in rng.choice(np.arange(10000, 1000000), n_train + n_val + n_eval,
                                         replace=False)]
    plan = []
    for which, split, n in (("dev", "train", n_train), ("dev", "val", n_val),
                            ("eval", None, n_eval)):
        durations, label_sets = _durations(rng, n), _label_sets(rng, n)
        for d, labels in zip(durations, label_sets):
            plan.append((which, split, str(fnames.pop(0)), d, labels))
    return plan


def _render(seed, index, duration, class_ids, sr):
    rng = np.random.default_rng([int(seed), 1, index])
    n = max(1, int(math.ceil(duration * sr - 1e-6)))
    events = []
    for c in class_ids:
        length = n if duration < 1.0 else int(n * rng.uniform(0.5, 1.0))
        onset = int(rng.uniform(0, n - length + 1))
        gain = rng.uniform(0.3, 0.8) / math.sqrt(len(class_ids))
        events.append((CLASSES[c][2], onset, length, gain))
    bg_rms = 0.8 * 10 ** (-rng.uniform(25, 40) / 20)
    wave = render_clip(rng, sr, n, 1, events, bg_rms, background_exponent=rng.uniform(0.0, 1.5))
    return wave[:, 0]


def _csv_text(rows, header=None):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _read_info(out_dir):
    try:
        with open(os.path.join(out_dir, "demo_info.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _complete(out_dir, options):
    info = _read_info(out_dir)
    if not info or info.get("generator") != GENERATOR or info.get("options") != options:
        return False
    return all(os.path.isfile(os.path.join(out_dir, AUDIO_DIRS[w], f + ".wav"))
               for w, f in info.get("files", [])) and len(info.get("files", [])) == \
        info.get("n_clips")


def make_demo_fsd50k(out_dir, n_train=120, n_val=30, n_eval=60, seed=0, force=False,
                     sample_rate=SAMPLE_RATE):
    """Write the demo dataset (see the module docstring) into ``out_dir``; returns a summary dict
    (``out_dir, n_clips, counts, classes, sample_rate, min_duration, max_duration, n_under_1s,
    skipped_existing``).

    ``sample_rate``: FSD50K's 44.1 kHz by default; 16000 skips the resampling step of
    preparation (the test suite's fixture uses it to stay fast).

    Example:
        >>> import tempfile
        >>> s = make_demo_fsd50k(tempfile.mkdtemp(), n_train=10, n_val=10, n_eval=10,
        ...                      sample_rate=16000)
        >>> s["counts"], len(s["classes"]), s["min_duration"], s["sample_rate"]
        ({'train': 10, 'val': 10, 'eval': 10}, 10, 0.3, 16000)
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    counts = {"train": int(n_train), "val": int(n_val), "eval": int(n_eval)}
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one clip, got {counts}")
    sample_rate = int(sample_rate)
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    options = {"version": GENERATOR_VERSION, "seed": int(seed), "n_train": counts["train"],
               "n_val": counts["val"], "n_eval": counts["eval"], "sample_rate": sample_rate}
    if os.path.exists(out_dir) and os.listdir(out_dir):
        info = _read_info(out_dir)
        if not info or info.get("generator") != GENERATOR:
            raise FileExistsError(
                f"{out_dir} exists and is not an FSD50K demo folder made by this generator; "
                "choose another --out or empty that folder first")
        if not force and _complete(out_dir, options):
            return {**_summary(out_dir), "skipped_existing": True}
        for sub in (GROUND_TRUTH, *AUDIO_DIRS.values()):
            shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
        os.remove(os.path.join(out_dir, "demo_info.json"))

    plan = _plan(seed, counts["train"], counts["val"], counts["eval"])
    rows = {"dev": [], "eval": []}
    for which in AUDIO_DIRS.values():
        os.makedirs(os.path.join(out_dir, which), exist_ok=True)
    for i, (which, split, fname, duration, class_ids) in enumerate(plan):
        wave = _render(seed, i, duration, class_ids, sample_rate)
        write_wav(os.path.join(out_dir, AUDIO_DIRS[which], fname + ".wav"), wave, sample_rate,
                  SUBTYPE)
        labels = ",".join(CLASSES[c][0] for c in class_ids)
        mids = ",".join(CLASSES[c][1] for c in class_ids)
        rows[which].append([fname, labels, mids] + ([split] if which == "dev" else []))

    gt = os.path.join(out_dir, GROUND_TRUTH)
    os.makedirs(gt, exist_ok=True)
    for which, header in (("dev", ["fname", "labels", "mids", "split"]),
                          ("eval", ["fname", "labels", "mids"])):
        text = _csv_text(sorted(rows[which], key=lambda r: int(r[0])), header)
        with open(os.path.join(gt, f"{which}.csv"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    with open(os.path.join(gt, "vocabulary.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(_csv_text([[i, label, mid] for i, (label, mid, _) in enumerate(CLASSES)]))
    with open(os.path.join(out_dir, "demo_info.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": GENERATOR, "options": options, "n_clips": len(plan),
                   "classes": [c[0] for c in CLASSES],
                   "files": [[w, fn] for w, _, fn, _, _ in plan]}, f, indent=1)
        f.write("\n")
    return {**_summary(out_dir), "skipped_existing": False}


def _summary(out_dir):
    gt = os.path.join(out_dir, GROUND_TRUTH)
    counts, durs, rates = {"train": 0, "val": 0, "eval": 0}, [], set()
    for which in ("dev", "eval"):
        with open(os.path.join(gt, f"{which}.csv"), newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                counts[r.get("split") or "eval"] += 1
                info = sf.info(os.path.join(out_dir, AUDIO_DIRS[which], r["fname"] + ".wav"))
                durs.append(info.duration)
                rates.add(info.samplerate)
    with open(os.path.join(gt, "vocabulary.csv"), newline="", encoding="utf-8") as f:
        classes = [r[1] for r in csv.reader(f)]
    return {"out_dir": out_dir, "n_clips": sum(counts.values()), "counts": counts,
            "classes": classes, "sample_rate": min(rates), "min_duration": round(min(durs), 3),
            "max_duration": round(max(durs), 3), "n_under_1s": sum(d < 1.0 for d in durs)}


def summary_line(s):
    """One line describing a summary dict of :func:`make_demo_fsd50k`."""
    verb = "already complete, kept" if s.get("skipped_existing") else "wrote"
    c = s["counts"]
    return (f"{verb} {s['n_clips']} FSD50K-layout clips (train {c['train']} / val {c['val']} / "
            f"eval {c['eval']}, {len(s['classes'])} classes, 1-3 labels each) in {s['out_dir']}: "
            f"{s['sample_rate']} Hz mono {SUBTYPE}; durations {s['min_duration']}-"
            f"{s['max_duration']} s, {s['n_under_1s']} under 1 s")


def main(argv=None):
    """Command line: see the module docstring (``--help``)."""
    parser = argparse.ArgumentParser(
        prog="make_demo_data.py --layout fsd50k", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/demo_fsd50k",
                        help="output folder (default: data/demo_fsd50k)")
    parser.add_argument("--n-train", type=int, default=120, help="train clips (default 120)")
    parser.add_argument("--n-val", type=int, default=30, help="val clips (default 30)")
    parser.add_argument("--n-eval", type=int, default=60, help="eval clips (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                        help=f"sample rate of the WAV files (default: {SAMPLE_RATE}, FSD50K's)")
    parser.add_argument("--force", action="store_true",
                        help="regenerate even if the folder already holds this exact demo")
    args = parser.parse_args(argv)
    try:
        s = make_demo_fsd50k(args.out, args.n_train, args.n_val, args.n_eval, args.seed,
                             force=args.force, sample_rate=args.sample_rate)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_line(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
