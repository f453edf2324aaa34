"""FSD50K preparation: validated multi-label csvs, 16 kHz mono cache, chunked JSON manifests.

    from audioattn_sb.data.fsd50k import prepare_fsd50k
    paths = prepare_fsd50k("data/FSD50K", "results/run1", cache_folder="data/fsd50k_cache_16k")

Layout read (FSD50K's own, unchanged)::

    <data_folder>/FSD50K.ground_truth/vocabulary.csv   no header: index,label,mid
    <data_folder>/FSD50K.ground_truth/dev.csv          fname,labels,mids,split (train | val)
    <data_folder>/FSD50K.ground_truth/eval.csv         fname,labels,mids
    <data_folder>/FSD50K.dev_audio/<fname>.wav
    <data_folder>/FSD50K.eval_audio/<fname>.wav

``labels`` and ``mids`` are comma-separated lists inside one quoted csv field
(``100002,"Sneeze,Respiratory_sounds","/m/01hsr_,/m/09hlz4",train``); they are read with the
``csv`` module, never by splitting lines on commas.

Splits: train = ``dev.csv`` rows with ``split == train``, valid = ``split == val``, test = every
``eval.csv`` row (FSD50K's protocol: select on val, report on eval). There are no folds.

What it does
------------
1. ``vocabulary.csv`` must list indices 0..K-1 once each, with unique non-empty labels and mids
   (anything else is a :class:`PrepareError`, never skipped: the label space depends on it). A
   header line ``index,label,mid`` is tolerated. The class order of every output is the index order.
2. Every ``dev.csv``/``eval.csv`` row is validated: as many fields as the header (a malformed line,
   e.g. unquoted commas, is reported with its line number), non-empty unique ``fname`` (across both
   files), every label in the vocabulary and listed once, ``mids`` the vocabulary mids of exactly
   those labels, ``split`` ``train``/``val`` in ``dev.csv``. Then the audio file must exist and be
   readable with finite samples. Any problem is a :class:`PrepareError` naming the csv file, line
   and fname and saying what to do; with ``skip_bad_files=True`` the row is skipped, counted,
   logged and listed in ``<save_folder>/prepare_report.json``. A split left empty is always an
   error.
3. Each clip is resampled ONCE to ``sample_rate`` mono float32 into ``cache_folder`` (default
   ``<data_folder>/audioattn_cache_16k``) as ``<cache>/dev/<fname>.wav`` or
   ``<cache>/eval/<fname>.wav`` with the sidecar of :func:`audioattn_sb.data.audio.cache_resampled`
   (a changed source is redone; several runs may share the cache).
4. Writes ``train.json``, ``valid.json``, ``test.json``, ``prepare_options.json`` and
   ``prepare_report.json`` into ``save_folder`` (atomically). A rerun with the same options and
   unchanged sources reuses them without touching any audio.

Chunks (Fonseca et al. 2020's baseline protocol)
------------------------------------------------
Every split's manifest holds **one entry per chunk** (train, valid and test alike), keyed
``<fname>_<k>``::

    {"100001_0": {"wav": "/abs/cache/dev/100001.wav", "clip": "100001", "chunk": 0,
                  "n_chunks": 9, "start": 0, "stop": 16000, "chunk_samples": 16000,
                  "duration": 1.0, "clip_duration": 5.263, "labels": ["Engine", "Human_voice"],
                  "label_ids": [9, 12], "split": "train",
                  "source": "FSD50K.dev_audio/100001.wav"}, ...}

* Chunks are ``chunk_seconds`` long (``L`` samples, default 1 s) with a hop of
  ``H = L − round(chunk_overlap · L)`` (default 50 % overlap), see :func:`chunk_bounds`: starts
  ``0, H, 2H, …`` and, when the audio is not covered exactly, one last chunk ending at the clip's
  end (so no sample is dropped and nothing is zero-padded).
* A clip shorter than ``L`` gives one chunk that is **tiled**: its waveform is repeated end to end
  and cut at ``L`` samples (:func:`load_chunk`; ``stop − start < chunk_samples`` marks it).
* Every chunk inherits all the labels of its clip (FSD50K's labels are clip-level).
* Training samples chunks independently. Validation and test score every chunk and average its
  **probabilities** per clip (``clip``), :func:`audioattn_sb.metrics.aggregate_clip_scores`; the
  metrics are clip-level. One entry per chunk everywhere keeps a single data pipeline, fixed-size
  batches without padding, and a per-chunk feature cache.
"""

import contextlib
import csv
import hashlib
import json
import logging
import math
import os

import numpy as np

from audioattn_sb.data.preparation import (SPLITS, PrepareError, begin_prepare, cache_many,
                                           check_cache_folder, default_cache_folder,
                                           finish_prepare, log_unlisted, resolve_workers,
                                           unlisted_audio_files, unsafe_name)

logger = logging.getLogger(__name__)

GROUND_TRUTH = "FSD50K.ground_truth"
VOCABULARY_CSV = os.path.join(GROUND_TRUTH, "vocabulary.csv")
DEV_CSV = os.path.join(GROUND_TRUTH, "dev.csv")
EVAL_CSV = os.path.join(GROUND_TRUTH, "eval.csv")
DEV_AUDIO = "FSD50K.dev_audio"
EVAL_AUDIO = "FSD50K.eval_audio"
#: manifest split → (csv, value of its ``split`` column or None for every row)
SPLIT_SOURCES = {"train": ("dev", "train"), "valid": ("dev", "val"), "test": ("eval", None)}
PREPARE_VERSION = 1

__all__ = ["PrepareError", "prepare_fsd50k", "load_vocabulary", "load_class_names",
           "chunk_bounds", "chunk_layout", "load_chunk", "build_chunk_datasets"]


# --------------------------------------------------------------------------- chunks
def chunk_layout(sample_rate=16000, chunk_seconds=1.0, chunk_overlap=0.5):
    """``(chunk_samples L, hop_samples H)`` for a chunk length in seconds and an overlap fraction.

    Example:
        >>> chunk_layout(16000, 1.0, 0.5), chunk_layout(16000, 1.0, 0.0)
        ((16000, 8000), (16000, 16000))
        >>> chunk_layout(16000, 2, 0.75)
        (32000, 8000)
    """
    chunk_seconds, chunk_overlap = float(chunk_seconds), float(chunk_overlap)
    if not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    if not 0.0 <= chunk_overlap < 1.0:
        raise ValueError(f"chunk_overlap is a fraction in [0, 1), got {chunk_overlap}")
    length = int(round(chunk_seconds * int(sample_rate)))
    if length < 1:
        raise ValueError(f"chunk_seconds={chunk_seconds} is under one sample at {sample_rate} Hz")
    hop = length - int(round(chunk_overlap * length))
    return length, max(1, hop)


def chunk_bounds(n_samples, chunk_samples, hop_samples):
    """``[(start, stop), …]`` sample bounds of a clip's chunks (see the module docstring).

    ``n ≤ L``: one chunk ``(0, n)`` (tiled to L when loaded if n < L). ``n > L``:
    ``K = 1 + ceil((n − L) / H)`` chunks starting at ``k·H``, the last one moved back to end
    exactly at ``n`` (start ``n − L``), each ``L`` samples long.

    Example (L = 16000, H = 8000, i.e. 1 s chunks with 50 % overlap at 16 kHz):
        >>> chunk_bounds(4800, 16000, 8000)        # 0.3 s: one chunk, tiled at load time
        [(0, 4800)]
        >>> chunk_bounds(16000, 16000, 8000)       # exactly 1 s
        [(0, 16000)]
        >>> chunk_bounds(32000, 16000, 8000)       # 2 s: 1 + (32000-16000)/8000 = 3 chunks
        [(0, 16000), (8000, 24000), (16000, 32000)]
        >>> chunk_bounds(36800, 16000, 8000)       # 2.3 s: 1 + ceil(2.6) = 4, last one moved back
        [(0, 16000), (8000, 24000), (16000, 32000), (20800, 36800)]
        >>> chunk_bounds(19200, 16000, 8000)       # 1.2 s: 2 chunks
        [(0, 16000), (3200, 19200)]
    """
    n, length, hop = int(n_samples), int(chunk_samples), int(hop_samples)
    if n < 1 or length < 1 or hop < 1:
        raise ValueError(f"need n_samples, chunk_samples, hop_samples >= 1, got {n}, {length}, "
                         f"{hop}")
    if n <= length:
        return [(0, n)]
    k = 1 + -(-(n - length) // hop)
    return [(min(i * hop, n - length), min(i * hop, n - length) + length) for i in range(k)]


def load_chunk(wav, start, stop, chunk_samples, audio=None):
    """Samples ``[start, stop)`` of a (cached, mono) file as float32 ``[chunk_samples]`` (read
    from ``audio``, a :class:`~audioattn_sb.data.packed.PackedAudio`, when given).

    When the chunk is shorter than ``chunk_samples`` (a clip under the chunk length), the waveform
    is tiled: repeated end to end and cut at ``chunk_samples`` (``[a, b, c]`` → ``[a, b, c, a, b,
    c, a, …]``), FSD50K's baseline rule for clips under 1 s.

    Example:
        >>> import tempfile, os, soundfile as sf
        >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> sf.write(p, np.array([0.1, 0.2, 0.3], dtype=np.float32), 16000, subtype="FLOAT")
        >>> (load_chunk(p, 0, 3, 7) * 10).round().tolist()
        [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]
        >>> (load_chunk(p, 1, 3, 2) * 10).round().tolist()
        [2.0, 3.0]
    """
    if audio is not None:
        data = audio.read(wav, start, stop)
    else:
        import soundfile as sf

        data, _ = sf.read(wav, start=int(start), stop=int(stop), dtype="float32",
                          always_2d=False)
    if data.ndim != 1:
        data = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if data.shape[0] == 0:
        raise ValueError(f"{wav}: no samples in [{start}, {stop})")
    if data.shape[0] < int(chunk_samples):
        data = np.resize(data, int(chunk_samples))  # cyclic repetition = tiling
    return data[: int(chunk_samples)]


# --------------------------------------------------------------------------- csv reading
def _path(data_folder, relpath, what):
    path = os.path.join(data_folder, relpath)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no FSD50K {what} there. data_folder must hold FSD50K.ground_truth/"
            "{dev,eval,vocabulary}.csv, FSD50K.dev_audio/ and FSD50K.eval_audio/ (the extracted "
            "FSD50K archives); for a small synthetic copy run: "
            "python recipes/make_demo_data.py --layout fsd50k --out data/demo_fsd50k")
    return path


def _csv_rows(path):
    """``(first line number, fields, last line number)`` of every non-blank csv record.

    FSD50K's fields never hold a line break, so a record spanning several lines (an unclosed
    double quote) is reported by the callers. A csv syntax error is a PrepareError.
    """
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        first = 1
        try:
            for fields in reader:
                if fields and not (len(fields) == 1 and not fields[0].strip()):
                    rows.append((first, fields, reader.line_num))
                first = reader.line_num + 1
        except csv.Error as err:
            raise PrepareError(
                f"{path} line {first}: not valid csv ({err}); fix that line (labels "
                "and mids lists must be inside double quotes)") from err
    return rows


def _spans_lines(first, last):
    return (f"an unclosed double quote: this record runs from line {first} to line {last}"
            if last != first else None)


def load_vocabulary(data_folder):
    """``[(label, mid), …]`` in index order from ``FSD50K.ground_truth/vocabulary.csv``.

    Example (the demo data):
        >>> import tempfile
        >>> from audioattn_sb.data.synthetic_fsd50k import make_demo_fsd50k
        >>> d = tempfile.mkdtemp()
        >>> _ = make_demo_fsd50k(d, n_train=10, n_val=10, n_eval=10, sample_rate=16000)
        >>> load_vocabulary(d)[:2]
        [('Siren', '/m/demo00'), ('Hum', '/m/demo01')]
    """
    path = _path(os.fspath(data_folder), VOCABULARY_CSV, "vocabulary")
    rows = _csv_rows(path)
    if rows and [c.strip().lower() for c in rows[0][1]] == ["index", "label", "mid"]:
        rows = rows[1:]  # FSD50K has no header; tolerate one
    entries, seen_label, seen_mid = {}, {}, {}
    for line, fields, last in rows:
        where = f"{path} line {line}"
        if last != line:
            raise PrepareError(f"{where}: {_spans_lines(line, last)}; fix that line")
        if len(fields) != 3:
            raise PrepareError(f"{where}: {len(fields)} fields, expected 3 (index,label,mid; no "
                               "header); fix that line")
        idx_s, label, mid = (c.strip() for c in fields)
        try:
            idx = int(idx_s)
        except ValueError:
            raise PrepareError(f"{where}: index {idx_s!r} is not an integer (vocabulary.csv has "
                               "no header: index,label,mid)") from None
        if not label or not mid:
            raise PrepareError(f"{where}: empty label or mid; fix that line")
        for key, seen, what in ((idx, entries, "index"), (label, seen_label, "label"),
                                (mid, seen_mid, "mid")):
            if key in seen:
                first = seen[key][0] if what == "index" else seen[key]
                raise PrepareError(f"{where}: {what} {key!r} is listed twice (first on line "
                                   f"{first}); each must be unique")
        entries[idx] = (line, label, mid)
        seen_label[label], seen_mid[mid] = line, line
    if not entries:
        raise PrepareError(f"{path}: no classes; it must list index,label,mid lines")
    if sorted(entries) != list(range(len(entries))):
        raise PrepareError(f"{path}: indices must be 0..{len(entries) - 1} without gaps, found "
                           f"{sorted(entries)[:5]}…; renumber the index column")
    return [(entries[i][1], entries[i][2]) for i in range(len(entries))]


def load_class_names(data_folder):
    """Class labels in vocabulary index order (the score columns of every output)."""
    return [label for label, _ in load_vocabulary(data_folder)]


def _read_table(path, required):
    """Header-checked rows of dev.csv / eval.csv: (header, [(line, fields)])."""
    rows = _csv_rows(path)
    if not rows:
        raise PrepareError(f"{path}: empty file; the header must be {','.join(required)}")
    header = [c.strip() for c in rows[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise PrepareError(f"{path}: missing column(s) {missing} in the header {header}; the "
                           f"header must be {','.join(required)}")
    return header, rows[1:]


def _split_list(value):
    return [v.strip() for v in (value or "").split(",")]


def _validate_table(path, which, header, rows, vocab, seen):
    """Parse and check the rows of one csv: (good rows, problems)."""
    col = {name: header.index(name) for name in header}
    label_index = {label: i for i, (label, _) in enumerate(vocab)}
    good, problems = [], []
    for line, fields, last in rows:
        fname = fields[col["fname"]].strip() if len(fields) > col["fname"] else ""
        reason = _spans_lines(line, last)
        if reason is not None:
            pass
        elif len(fields) != len(header):
            reason = (f"{len(fields)} fields where the header has {len(header)} (labels and mids "
                      "lists must each be one double-quoted field)")
        elif not fname:
            reason = "fname is empty"
        elif (unsafe := unsafe_name(fname + ".wav")) is not None:
            reason = unsafe
        elif fname in seen:
            reason = f"fname {fname} is listed twice (first at {seen[fname]})"
        if reason is None:
            labels, mids = _split_list(fields[col["labels"]]), _split_list(fields[col["mids"]])
            split = fields[col["split"]].strip() if which == "dev" else None
            if not any(labels):
                reason = "no labels"
            elif "" in labels:
                reason = f"empty item in labels {fields[col['labels']]!r}"
            else:
                unknown = [lab for lab in labels if lab not in label_index]
                dup = sorted({lab for lab in labels if labels.count(lab) > 1})
                if unknown:
                    reason = (f"unknown label(s) {unknown} (not in vocabulary.csv); add them to "
                              "the vocabulary or fix the labels")
                elif dup:
                    reason = f"label(s) {dup} listed twice"
                elif len(mids) != len(labels):
                    reason = f"{len(labels)} labels but {len(mids)} mids"
                else:
                    want = [vocab[label_index[lab]][1] for lab in labels]
                    if sorted(want) != sorted(mids):
                        bad = [f"{lab}={m}" for lab, m in zip(labels, want) if m not in mids]
                        reason = (f"labels and mids disagree: vocabulary.csv gives {bad} but the "
                                  f"mids are {mids}")
            if reason is None and which == "dev" and split not in ("train", "val"):
                reason = f"split {split!r} is neither 'train' nor 'val'"
        if reason is not None:
            problems.append({"csv": os.path.basename(path), "line": line, "file": fname,
                             "reason": reason})
            continue
        seen[fname] = f"{os.path.basename(path)} line {line}"
        ids = sorted(label_index[lab] for lab in labels)
        good.append({"csv": which, "line": line, "fname": fname, "split": split,
                     "label_ids": ids, "labels": [vocab[i][0] for i in ids]})
    return good, problems


def _problem_text(data_folder, p):
    where = os.path.join(data_folder, GROUND_TRUTH, p["csv"])
    return (f"{where} line {p['line']} ({p['file'] or 'no fname'}): {p['reason']}; fix or delete "
            f"line {p['line']}, or pass skip_bad_files=True (--skip_bad_files=True) to skip it "
            "and list it in prepare_report.json")


def _rows_by_split(rows):
    out = {s: [] for s in SPLITS}
    for r in rows:
        for split, (which, value) in SPLIT_SOURCES.items():
            if r["csv"] == which and (value is None or r["split"] == value):
                out[split].append(r)
    return out


def _split_desc(split):
    which, value = SPLIT_SOURCES[split]
    return f"{which}.csv rows with split={value}" if value else f"{which}.csv rows"


def _source(data_folder, r):
    folder = DEV_AUDIO if r["csv"] == "dev" else EVAL_AUDIO
    return os.path.join(data_folder, folder, r["fname"] + ".wav")


def _cache_item(data_folder, cache_folder, r):
    """``(source path, cache path)`` of a row: ``FSD50K.<dev|eval>_audio/<fname>.wav`` →
    ``<cache>/<dev|eval>/<fname>.wav``."""
    return _source(data_folder, r), os.path.join(cache_folder, r["csv"], r["fname"] + ".wav")


def _fingerprint(data_folder, rows):
    h = hashlib.sha1()
    for r in sorted(rows, key=lambda r: (r["csv"], r["fname"])):
        try:
            st = os.stat(_source(data_folder, r))
            key = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            key = "missing"
        h.update(f"{r['csv']}/{r['fname']}={key}|{r['split']}|{r['label_ids']}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- preparation
def prepare_fsd50k(data_folder, save_folder, cache_folder=None, sample_rate=16000,
                   chunk_seconds=1.0, chunk_overlap=0.5, skip_bad_files=False, progress=True,
                   workers=None):
    """Validate, cache at ``sample_rate`` mono, chunk, and write train/valid/test JSON manifests.

    ``workers``: processes resampling the clips that are not cached yet (None: one per core);
    the manifests, the cache and the report do not depend on it.

    See the module docstring for every check, file and the chunk rules. Returns
    ``{"train": <save_folder>/train.json, "valid": …, "test": …}``. Raises :class:`PrepareError`
    (a ``ValueError``) for a bad vocabulary, row, file or empty split, ``FileNotFoundError`` when a
    csv is missing.

    Example (the demo data; 1 s chunks, 50 % overlap):
        >>> import tempfile, json
        >>> from audioattn_sb.data.synthetic_fsd50k import make_demo_fsd50k
        >>> d = tempfile.mkdtemp()
        >>> _ = make_demo_fsd50k(d + "/data", n_train=12, n_val=10, n_eval=10,
        ...                      sample_rate=16000)
        >>> paths = prepare_fsd50k(d + "/data", d + "/run", cache_folder=d + "/cache",
        ...                        progress=False)
        >>> test = json.load(open(paths["test"]))
        >>> len({e["clip"] for e in test.values()})
        10
    """
    sample_rate = int(sample_rate)
    workers = resolve_workers(workers)
    chunk_samples, hop_samples = chunk_layout(sample_rate, chunk_seconds, chunk_overlap)
    data_folder = os.path.abspath(os.fspath(data_folder))
    save_folder = os.path.abspath(os.fspath(save_folder))
    cache_folder = os.path.abspath(os.fspath(cache_folder)) if cache_folder else \
        default_cache_folder(data_folder, sample_rate)
    vocab = load_vocabulary(data_folder)
    csv_paths = {"dev": _path(data_folder, DEV_CSV, "dev.csv"),
                 "eval": _path(data_folder, EVAL_CSV, "eval.csv")}
    good, by_split, problems = _valid_rows(data_folder, csv_paths, vocab, skip_bad_files)
    stats = {w: os.stat(p) for w, p in csv_paths.items()}
    stats["vocabulary"] = os.stat(os.path.join(data_folder, VOCABULARY_CSV))
    options = {
        "version": PREPARE_VERSION,
        "dataset": "fsd50k",
        "data_folder": data_folder,
        "cache_folder": cache_folder,
        "sample_rate": sample_rate,
        "chunk_seconds": float(chunk_seconds),
        "chunk_overlap": float(chunk_overlap),
        "chunk_samples": chunk_samples,
        "hop_samples": hop_samples,
        "skip_bad_files": bool(skip_bad_files),
        "csv": {w: {"size": st.st_size, "mtime_ns": st.st_mtime_ns} for w, st in stats.items()},
        "sources_fingerprint": _fingerprint(data_folder, good),
    }
    check_cache_folder(cache_folder,
                       [os.path.join(data_folder, d) for d in (DEV_AUDIO, EVAL_AUDIO)], [])
    reused = begin_prepare(save_folder, cache_folder, options)
    if reused is not None:
        return reused
    manifests, clips, skipped, n = _cache_and_chunk(
        data_folder, cache_folder, csv_paths, by_split, sample_rate, chunk_samples,
        hop_samples, skip_bad_files, progress, workers)
    unlisted = unlisted_audio_files(
        {d: os.path.join(data_folder, d) for d in (DEV_AUDIO, EVAL_AUDIO)},
        {r["fname"] + ".wav" for r in good} | {f"{p['file']}.wav" for p in problems})
    log_unlisted(unlisted, "dev.csv / eval.csv")
    skipped = problems + skipped
    chunks = {s: len(manifests[s]) for s in SPLITS}
    summary = (f"prepared {sum(clips.values())} clips (train {clips['train']} / valid "
               f"{clips['valid']} / test {clips['test']}) = {sum(chunks.values())} chunks of "
               f"{chunk_samples / sample_rate:g} s (train {chunks['train']} / valid "
               f"{chunks['valid']} / test {chunks['test']}), {n['tiled']} short clips tiled, "
               f"{len(vocab)} classes, resampled {n['resampled']}, reused from cache "
               f"{n['reused']}, skipped {len(skipped)}"
               + (f", files without a csv row {len(unlisted)}" if unlisted else ""))
    report = {"summary": summary, "counts": clips, "chunk_counts": chunks, "tiled": n["tiled"],
              "n_classes": len(vocab), "resampled": n["resampled"],
              "reused_from_cache": n["reused"], "n_skipped": len(skipped), "skipped": skipped,
              "n_unlisted": len(unlisted), "unlisted": unlisted, "options": options}
    return finish_prepare(save_folder, manifests, report, progress,
                          {split: _split_desc(split) for split in SPLITS}, indent=1)


def _valid_rows(data_folder, csv_paths, vocab, skip_bad_files):
    """``(valid rows of dev.csv and eval.csv, those rows by split, problems)``: a bad row stops
    the preparation unless ``skip_bad_files``; an empty split always does."""
    good, problems, seen = [], [], {}
    for which, required in (("dev", ("fname", "labels", "mids", "split")),
                            ("eval", ("fname", "labels", "mids"))):
        header, rows = _read_table(csv_paths[which], required)
        g, p = _validate_table(csv_paths[which], which, header, rows, vocab, seen)
        good += g
        problems += p
    if problems and not skip_bad_files:
        shown = [_problem_text(data_folder, p) for p in problems[:10]]
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise PrepareError("\n".join(shown) + more)
    by_split = _rows_by_split(good)
    for split in SPLITS:
        if not by_split[split]:
            raise PrepareError(
                f"the {split} split ({_split_desc(split)}) is empty: no valid row in "
                f"{csv_paths[SPLIT_SOURCES[split][0]]}; FSD50K needs train and val rows in "
                "dev.csv and rows in eval.csv")
    return good, by_split, problems


def _cache_and_chunk(data_folder, cache_folder, csv_paths, by_split, sample_rate, chunk_samples,
                     hop_samples, skip_bad_files, progress, workers=1):
    """Resample (or reuse) every clip into the cache (``workers`` processes) and cut it into
    chunks: ``(manifests {split: {<fname>_<k>: entry}}, clips per split, skipped files,
    {"resampled", "reused", "tiled"} counts)``."""
    skipped = []
    manifests = {s: {} for s in SPLITS}
    clips = {s: 0 for s in SPLITS}
    n = {"resampled": 0, "reused": 0, "tiled": 0}
    todo = [(split, r) for split in SPLITS for r in by_split[split]]
    items = [_cache_item(data_folder, cache_folder, r) for _, r in todo]
    check_cache_folder(cache_folder, [], items)  # no cache path onto a source, before any write
    sources = [src for src, _ in items]
    with contextlib.closing(cache_many(items, sample_rate, workers, progress,
                                       desc="prepare FSD50K")) as results:
        for (split, r), src, (info, reason) in zip(todo, sources, results):
            if reason is not None:
                p = {"csv": os.path.basename(csv_paths[r["csv"]]), "line": r["line"],
                     "file": r["fname"], "reason": reason}
                if not skip_bad_files:
                    raise PrepareError(_problem_text(data_folder, p))
                logger.warning("skipping %s", _problem_text(data_folder, p))
                skipped.append(p)
                continue
            n["reused"] += bool(info["reused"])
            n["resampled"] += not info["reused"]
            bounds = chunk_bounds(info["frames"], chunk_samples, hop_samples)
            n["tiled"] += info["frames"] < chunk_samples
            clips[split] += 1
            for k, (start, stop) in enumerate(bounds):
                manifests[split][f"{r['fname']}_{k}"] = {
                    "wav": info["path"],
                    "clip": r["fname"],
                    "chunk": k,
                    "n_chunks": len(bounds),
                    "start": start,
                    "stop": stop,
                    "chunk_samples": chunk_samples,
                    "duration": (stop - start) / sample_rate,
                    "clip_duration": float(info["duration"]),
                    "labels": r["labels"],
                    "label_ids": r["label_ids"],
                    "split": r["split"] or "eval",
                    "source": os.path.relpath(src, data_folder),
                }
    return manifests, clips, skipped, n


# --------------------------------------------------------------------------- datasets
def build_chunk_datasets(manifests, n_classes, feature_cache=None, audio=None):
    """SpeechBrain datasets over chunk manifests (this module's format, any multi-label corpus).

    Each item has ``id``, ``clip`` (the clip id, for chunk → clip averaging), ``targets``
    (multi-hot float ``[n_classes]``) and either ``sig`` (the chunk's 16 kHz waveform, tiled to
    ``chunk_samples``) or, with a ``feature_cache`` (:class:`audioattn_sb.features.FeatureCache`), ``feats`` (its
    features, computed once per chunk); ``audio``: read the chunks from this
    :class:`~audioattn_sb.data.packed.PackedAudio` instead of the WAV files.

    Example:
        >>> import tempfile, json, os, soundfile as sf
        >>> d = tempfile.mkdtemp(); wav = os.path.join(d, "a.wav")
        >>> sf.write(wav, np.arange(5, dtype=np.float32) / 10, 16000, subtype="FLOAT")
        >>> entry = {"wav": wav, "clip": "a", "start": 0, "stop": 5, "chunk_samples": 8,
        ...          "label_ids": [0, 2]}
        >>> _ = open(os.path.join(d, "m.json"), "w").write(json.dumps({"a_0": entry}))
        >>> item = build_chunk_datasets({"test": os.path.join(d, "m.json")}, 3)["test"][0]
        >>> item["clip"], item["targets"].tolist(), (item["sig"] * 10).round().tolist()
        ('a', [1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0])
    """
    import speechbrain as sb
    import torch

    n_classes = int(n_classes)

    def read(wav, start, stop, chunk_samples):
        return torch.from_numpy(load_chunk(wav, start, stop, chunk_samples, audio))

    if feature_cache is None:
        @sb.utils.data_pipeline.takes("wav", "start", "stop", "chunk_samples")
        @sb.utils.data_pipeline.provides("sig")
        def audio_pipeline(wav, start, stop, chunk_samples):
            return read(wav, start, stop, chunk_samples)
        signal_key = "sig"
    else:
        @sb.utils.data_pipeline.takes("wav", "start", "stop", "chunk_samples")
        @sb.utils.data_pipeline.provides("feats")
        def audio_pipeline(wav, start, stop, chunk_samples):
            return feature_cache(f"{wav}|{start}|{stop}|{chunk_samples}",
                                 lambda: read(wav, start, stop, chunk_samples).unsqueeze(0))
        signal_key = "feats"

    @sb.utils.data_pipeline.takes("label_ids")
    @sb.utils.data_pipeline.provides("targets")
    def label_pipeline(label_ids):
        t = torch.zeros(n_classes)
        ids = torch.as_tensor(list(label_ids), dtype=torch.long)
        if ids.numel() and (ids.min() < 0 or ids.max() >= n_classes):
            raise ValueError(f"label ids {label_ids} outside 0..{n_classes - 1}")
        t[ids] = 1.0
        return t

    datasets = {}
    for split, path in manifests.items():
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_json(
            path, dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "clip", signal_key, "targets"],
        )
    return datasets
