"""UrbanSound8K preparation: validated fold split, 16 kHz mono cache, SpeechBrain JSON manifests.

    from audioattn_sb.data.urbansound8k import prepare_urbansound8k
    paths = prepare_urbansound8k("data/UrbanSound8K", "results/run1",
                                 train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10],
                                 valid_fold_nums=[2], test_fold_nums=[1],
                                 cache_folder="data/us8k_cache_16k")

Layout read: ``<data_folder>/metadata/UrbanSound8K.csv`` (``slice_file_name,fsID,start,end,
salience,fold,classID,class``) and ``<data_folder>/audio/fold<k>/<slice_file_name>``.

What it does
------------
1. :func:`check_folds`: fold numbers are ints in 1..10, each list non-empty, train disjoint from
   valid and test. Valid overlapping test (the predecessor's and SpeechBrain's recipe protocol:
   the checkpoint is chosen on test data) is an error unless ``allow_valid_test_overlap=True``,
   which logs a loud warning.
2. Every csv row is validated: ``fold`` an int in 1..10, ``classID`` an int, ``class`` non-empty
   and always the same for the same ``classID`` (and vice versa; the majority wins, the
   disagreeing rows are reported), ``slice_file_name`` unique. Then, for the rows of the chosen
   folds only, the audio file must exist and be readable with finite samples (an all-zero clip is
   fine). Any problem is a :class:`PrepareError` naming the csv line and file and saying what to
   do; with ``skip_bad_files=True`` the row is skipped, counted, logged and listed in
   ``<save_folder>/prepare_report.json``. A split left empty is always an error.
3. Each clip is resampled ONCE to ``sample_rate`` mono float32 into ``cache_folder``
   (default ``<data_folder>/audioattn_cache_16k``) as ``<cache>/fold<k>/<stem>.wav`` with a
   ``.wav.json`` sidecar keyed on the source's path, size and mtime: see
   :mod:`audioattn_sb.data.audio`. A changed source is redone; several runs may share the cache.
4. Writes ``train.json``, ``valid.json``, ``test.json`` into ``save_folder`` (atomically)::

       {"100032-0-0-0": {"wav": "/abs/cache/fold1/100032-0-0-0.wav", "duration": 4.0,
                         "fold": 1, "classID": 0, "class_string": "dog",
                         "source": "audio/fold1/100032-0-0-0.wav"}, ...}

   plus ``prepare_options.json`` (the options, the csv's size/mtime and a fingerprint of the
   chosen source files' size/mtime) and ``prepare_report.json`` (counts, skipped rows). A rerun
   whose options and fingerprint match, with the manifests and cached files present, reuses them
   without touching any audio.
"""

import contextlib
import csv
import hashlib
import json
import logging
import operator
import os
from collections import Counter, OrderedDict

from audioattn_sb.data.preparation import (SPLITS, PrepareError, begin_prepare, cache_many,
                                           check_cache_folder, default_cache_folder,
                                           finish_prepare, log_unlisted, resolve_workers,
                                           unlisted_audio_files, unsafe_name)

logger = logging.getLogger(__name__)

NUM_FOLDS = 10
CSV_RELPATH = os.path.join("metadata", "UrbanSound8K.csv")
REQUIRED_COLUMNS = ("slice_file_name", "fold", "classID", "class")
PREPARE_VERSION = 1


# --------------------------------------------------------------------------- folds
def _as_fold_list(value, name):
    if value is None:
        raise ValueError(f"{name} is missing: give a list of fold numbers in 1..{NUM_FOLDS}")
    items = [value] if not isinstance(value, (list, tuple, set)) else list(value)
    folds = []
    for v in items:
        if isinstance(v, bool):
            raise ValueError(f"{name}: {v!r} is not a fold number (ints 1..{NUM_FOLDS})")
        try:
            f = operator.index(v)
        except TypeError:
            raise ValueError(
                f"{name}: {v!r} is not a fold number; write e.g. {name}=[1, 2] "
                f"(ints 1..{NUM_FOLDS})") from None
        if not 1 <= f <= NUM_FOLDS:
            raise ValueError(f"{name}: fold {f} is outside 1..{NUM_FOLDS}")
        if f in folds:
            raise ValueError(f"{name}: fold {f} is listed twice")
        folds.append(f)
    if not folds:
        raise ValueError(f"{name} is empty: give at least one fold number in 1..{NUM_FOLDS}")
    return folds


def check_folds(train, valid, test, allow_valid_test_overlap=False):
    """Validate the fold lists; returns them as ``(train, valid, test)`` lists of ints.

    Train must be disjoint from valid and from test. Valid overlapping test (e.g. valid == test,
    the predecessor's and SpeechBrain's recipe protocol) selects the checkpoint on test data and
    biases the test figure: a ``ValueError`` unless ``allow_valid_test_overlap=True``, which logs
    a loud warning instead.

    Example:
        >>> check_folds([3, 4, 5, 6, 7, 8, 9, 10], [2], [1])
        ([3, 4, 5, 6, 7, 8, 9, 10], [2], [1])
        >>> check_folds([2, 3], [1], [1])
        Traceback (most recent call last):
        ...
        ValueError: valid folds [1] and test folds [1] overlap (fold 1): ...
    """
    train = _as_fold_list(train, "train_fold_nums")
    valid = _as_fold_list(valid, "valid_fold_nums")
    test = _as_fold_list(test, "test_fold_nums")
    for name, other in (("valid", valid), ("test", test)):
        common = sorted(set(train) & set(other))
        if common:
            raise ValueError(
                f"train folds {train} and {name} folds {other} share fold(s) {common}: a clip "
                f"must never be both trained on and {'validated' if name == 'valid' else 'tested'}"
                f" on; remove {common} from train_fold_nums or from {name}_fold_nums")
    common = sorted(set(valid) & set(test))
    if common:
        which = ", ".join(str(f) for f in common)
        if not allow_valid_test_overlap:
            raise ValueError(
                f"valid folds {valid} and test folds {test} overlap (fold {which}): the "
                "checkpoint would be selected on test data, so the test accuracy would be "
                "optimistically biased (the predecessor's and SpeechBrain's recipe protocol). "
                "Use a different valid fold (the usual choice: test k, valid k mod 10 + 1, see "
                "audioattn_sb.folds.fold_split), or pass allow_valid_test_overlap=True "
                "(--allow_valid_test_overlap=True) to reproduce that biased protocol knowingly.")
        for line in (
            "=" * 78,
            f"WARNING: VALID AND TEST FOLDS OVERLAP (fold {which}; allow_valid_test_overlap=True).",
            "The checkpoint will be SELECTED ON TEST DATA: the test accuracy of this run is",
            "optimistically BIASED and not comparable with unbiased UrbanSound8K results.",
            "This reproduces the predecessor's / SpeechBrain recipe protocol; use it only to",
            "replicate their figures. Unbiased: test k, valid k mod 10 + 1 (folds.fold_split).",
            "=" * 78,
        ):
            logger.warning(line)
    return train, valid, test


# --------------------------------------------------------------------------- metadata
def _csv_path(data_folder):
    path = os.path.join(data_folder, CSV_RELPATH)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no UrbanSound8K metadata there. data_folder must hold metadata/"
            "UrbanSound8K.csv and audio/fold1..fold10/ (the extracted UrbanSound8K archive); for "
            "a small synthetic copy run: python recipes/make_demo_data.py --out data/demo_us8k")
    return path


def read_metadata_rows(data_folder):
    """All csv rows as dicts with their csv line number under ``"_line"``."""
    path = _csv_path(data_folder)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PrepareError(
                f"{path}: missing column(s) {missing}; the header must be "
                "slice_file_name,fsID,start,end,salience,fold,classID,class")
        rows = []
        for row in reader:
            row["_line"] = reader.line_num
            rows.append(row)
    return rows


def _parse_int(value):
    s = (value or "").strip()
    try:
        return int(s)
    except ValueError:
        f = float(s)  # "3.0" is accepted; "3.5" / "abc" are not
        if f.is_integer():
            return int(f)
        raise


def _class_maps(parsed):
    """Majority class name per classID and majority classID per name, from parsed rows."""
    names_by_id, ids_by_name = OrderedDict(), OrderedDict()
    for r in parsed:
        names_by_id.setdefault(r["classID"], Counter())[r["class"]] += 1
        ids_by_name.setdefault(r["class"], Counter())[r["classID"]] += 1
    name_of = {cid: c.most_common(1)[0][0] for cid, c in names_by_id.items()}
    id_of = {name: c.most_common(1)[0][0] for name, c in ids_by_name.items()}
    return name_of, id_of, names_by_id, ids_by_name


def _validate_rows(rows):
    """Parse and check every csv row: (good rows, problems). Each problem: line, file, reason."""
    parsed, problems, seen = [], [], {}
    for row in rows:
        line = row["_line"]
        name = (row.get("slice_file_name") or "").strip()
        fold_s, cid_s = row.get("fold"), row.get("classID")
        cls = (row.get("class") or "").strip()
        reason = None
        if not name:
            reason = "slice_file_name is empty"
        elif (unsafe := unsafe_name(name)) is not None:
            reason = unsafe
        else:
            try:
                fold = _parse_int(fold_s)
            except (TypeError, ValueError):
                fold, reason = None, f"fold {fold_s!r} is not an integer"
            if reason is None and not 1 <= fold <= NUM_FOLDS:
                reason = f"fold {fold} is outside 1..{NUM_FOLDS}"
            if reason is None:
                try:
                    cid = _parse_int(cid_s)
                except (TypeError, ValueError):
                    reason = f"classID {cid_s!r} is not an integer"
            if reason is None and cid < 0:
                reason = f"classID {cid} is negative"
            if reason is None and not cls:
                reason = "class is empty"
            if reason is None and name in seen:
                reason = f"{name} is listed twice (first on line {seen[name]})"
        if reason is not None:
            problems.append({"line": line, "file": name, "fold": (fold_s or "").strip(),
                             "reason": reason})
            continue
        seen[name] = line
        parsed.append({"line": line, "file": name, "fold": fold, "classID": cid, "class": cls})

    name_of, id_of, names_by_id, ids_by_name = _class_maps(parsed)
    good = []
    for r in parsed:
        reason = None
        if r["class"] != name_of[r["classID"]]:
            n = names_by_id[r["classID"]][name_of[r["classID"]]]
            reason = (f"classID {r['classID']} is class {r['class']!r} here but "
                      f"{name_of[r['classID']]!r} in {n} other row(s)")
        elif r["classID"] != id_of[r["class"]]:
            n = ids_by_name[r["class"]][id_of[r["class"]]]
            reason = (f"class {r['class']!r} has classID {r['classID']} here but "
                      f"{id_of[r['class']]} in {n} other row(s)")
        if reason is not None:
            problems.append({"line": r["line"], "file": r["file"], "fold": r["fold"],
                             "reason": reason})
        else:
            good.append(r)
    problems.sort(key=lambda p: p["line"])
    return good, problems


def _problem_text(csv_path, p):
    return (f"{csv_path} line {p['line']} ({p['file'] or 'no file name'}): {p['reason']}; "
            f"fix or delete line {p['line']}, or pass skip_bad_files=True "
            "(--skip_bad_files=True) to skip it and list it in prepare_report.json")


def load_class_names(data_folder):
    """Class names ordered by classID (``[name of 0, name of 1, …]``) from the csv.

    The majority name of each classID is used (prepare reports disagreeing rows). classIDs must
    be 0..K-1 without gaps.

    Example (the demo data):
        >>> import tempfile
        >>> from audioattn_sb.data.synthetic import make_demo_urbansound8k
        >>> d = tempfile.mkdtemp()
        >>> _ = make_demo_urbansound8k(d, clips_per_class_per_fold=1, folds=[1])
        >>> load_class_names(d)[:3]
        ['siren', 'hum', 'click_train']
    """
    good, _ = _validate_rows(read_metadata_rows(data_folder))
    name_of, _, _, _ = _class_maps(good)
    if not name_of:
        raise PrepareError(f"{_csv_path(data_folder)}: no valid rows, so no class names")
    ids = sorted(name_of)
    if ids != list(range(len(ids))):
        raise PrepareError(
            f"{_csv_path(data_folder)}: classIDs must be 0..K-1 without gaps, found {ids}; "
            "renumber the classID column")
    return [name_of[i] for i in ids]


# --------------------------------------------------------------------------- preparation
def _file_fingerprint(data_folder, rows):
    h = hashlib.sha1()
    for r in sorted(rows, key=lambda r: r["file"]):
        src = os.path.join(data_folder, "audio", f"fold{r['fold']}", r["file"])
        try:
            st = os.stat(src)
            key = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            key = "missing"
        h.update(f"{r['fold']}/{r['file']}={key}|{r['classID']}|{r['class']}\n".encode())
    return h.hexdigest()


def prepare_urbansound8k(data_folder, save_folder, train_fold_nums, valid_fold_nums,
                         test_fold_nums, cache_folder=None, sample_rate=16000,
                         allow_valid_test_overlap=False, skip_bad_files=False, progress=True,
                         workers=None):
    """Validate, cache at ``sample_rate`` mono, and write train/valid/test JSON manifests.

    ``workers``: processes resampling the clips that are not cached yet (None: one per core);
    the manifests, the cache and the report do not depend on it.

    See the module docstring for every check and file. Returns
    ``{"train": <save_folder>/train.json, "valid": …, "test": …}``.
    Raises ``ValueError`` for bad fold lists, :class:`PrepareError` (a ``ValueError``) for a bad
    row, file or empty split, ``FileNotFoundError`` when the csv is missing.
    """
    train, valid, test = check_folds(train_fold_nums, valid_fold_nums, test_fold_nums,
                                     allow_valid_test_overlap)
    workers = resolve_workers(workers)
    folds = {"train": train, "valid": valid, "test": test}
    sample_rate = int(sample_rate)
    data_folder = os.path.abspath(os.fspath(data_folder))
    save_folder = os.path.abspath(os.fspath(save_folder))
    cache_folder = os.path.abspath(os.fspath(cache_folder)) if cache_folder else \
        default_cache_folder(data_folder, sample_rate)
    rows, chosen, problems = _chosen_rows(data_folder, folds, skip_bad_files)
    st = os.stat(_csv_path(data_folder))
    options = {
        "version": PREPARE_VERSION,
        "data_folder": data_folder,
        "cache_folder": cache_folder,
        "train_fold_nums": train, "valid_fold_nums": valid, "test_fold_nums": test,
        "sample_rate": sample_rate,
        "allow_valid_test_overlap": bool(allow_valid_test_overlap),
        "skip_bad_files": bool(skip_bad_files),
        "csv": {"size": st.st_size, "mtime_ns": st.st_mtime_ns},
        "sources_fingerprint": _file_fingerprint(data_folder, chosen),
    }
    check_cache_folder(cache_folder, [os.path.join(data_folder, "audio")], [])
    reused = begin_prepare(save_folder, cache_folder, options)
    if reused is not None:
        return reused
    manifests, skipped, n_resampled, n_reused = _cache_clips(
        data_folder, cache_folder, sample_rate, chosen, folds, skip_bad_files, progress, workers)
    unlisted = unlisted_audio_files(
        {f"fold{k}": os.path.join(data_folder, "audio", f"fold{k}")
         for k in sorted(set(train) | set(valid) | set(test))},
        {r.get("slice_file_name") for r in rows})
    log_unlisted(unlisted, _csv_path(data_folder))
    counts = {s: len(manifests[s]) for s in SPLITS}
    skipped = problems + skipped
    summary = (f"prepared {len(set().union(*manifests.values()))} clips (train {counts['train']}"
               f" / valid {counts['valid']} / test {counts['test']}), resampled {n_resampled}, "
               f"reused from cache {n_reused}, skipped {len(skipped)}"
               + (f", files without a csv row {len(unlisted)}" if unlisted else ""))
    report = {"summary": summary, "counts": counts, "resampled": n_resampled,
              "reused_from_cache": n_reused, "n_skipped": len(skipped), "skipped": skipped,
              "n_unlisted": len(unlisted), "unlisted": unlisted, "options": options}
    return finish_prepare(save_folder, manifests, report, progress,
                          {split: f"folds {f}" for split, f in folds.items()})


def _chosen_rows(data_folder, folds, skip_bad_files):
    """``(all csv rows, the valid rows of the chosen folds, the problems found)``: a bad row
    stops the preparation unless ``skip_bad_files``; a split without rows always does."""
    csv_path = _csv_path(data_folder)
    rows = read_metadata_rows(data_folder)
    good, problems = _validate_rows(rows)
    if problems and not skip_bad_files:
        shown = [_problem_text(csv_path, p) for p in problems[:10]]
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise PrepareError("\n".join(shown) + more)
    wanted = set().union(*folds.values())
    chosen = [r for r in good if r["fold"] in wanted]
    present = sorted({r["fold"] for r in good})
    for split, split_folds in folds.items():
        if not any(r["fold"] in split_folds for r in chosen):
            raise PrepareError(
                f"the {split} split (folds {split_folds}) is empty: {csv_path} has no valid rows "
                f"in those folds (folds present: {present}); choose {split}_fold_nums among them")
    return rows, chosen, list(problems)


def _cache_items(data_folder, cache_folder, chosen):
    """``[(source path, cache path), ...]`` of the chosen rows: ``audio/fold<k>/<name>`` →
    ``<cache>/fold<k>/<stem>.wav``."""
    return [(os.path.join(data_folder, "audio", f"fold{r['fold']}", r["file"]),
             os.path.join(cache_folder, f"fold{r['fold']}", os.path.splitext(r["file"])[0]
                          + ".wav"))
            for r in chosen]


def _cache_clips(data_folder, cache_folder, sample_rate, chosen, folds, skip_bad_files,
                 progress, workers=1):
    """Resample (or reuse) every chosen clip into the cache (``workers`` processes) and build the
    manifests: ``(manifests {split: {stem: entry}}, skipped files, n resampled, n reused)``."""
    csv_path = _csv_path(data_folder)
    fold_split = {}
    for split, split_folds in folds.items():
        for f in split_folds:
            fold_split.setdefault(f, []).append(split)
    skipped = []
    manifests = {s: {} for s in SPLITS}
    n_resampled = n_reused = 0
    items = _cache_items(data_folder, cache_folder, chosen)
    check_cache_folder(cache_folder, [], items)  # no cache path onto a source, before any write
    sources = [src for src, _ in items]
    stems = [os.path.splitext(r["file"])[0] for r in chosen]
    with contextlib.closing(cache_many(items, sample_rate, workers, progress,
                                       desc="prepare UrbanSound8K")) as results:
        for r, src, stem, (info, reason) in zip(chosen, sources, stems, results):
            if reason is not None:
                p = {"line": r["line"], "file": r["file"], "fold": r["fold"], "reason": reason}
                if not skip_bad_files:
                    raise PrepareError(_problem_text(csv_path, p))
                logger.warning("skipping %s", _problem_text(csv_path, p))
                skipped.append(p)
                continue
            if info["reused"]:
                n_reused += 1
            else:
                n_resampled += 1
            entry = {
                "wav": info["path"],
                "duration": float(info["duration"]),
                "fold": r["fold"],
                "classID": r["classID"],
                "class_string": r["class"],
                "source": os.path.relpath(src, data_folder),
            }
            for split in fold_split[r["fold"]]:
                manifests[split][stem] = entry
    return manifests, skipped, n_resampled, n_reused


def build_single_label_datasets(manifests, feature_cache=None, audio=None):
    """SpeechBrain datasets of the prepared manifests (``{split: path}``) yielding ``label`` (class
    index) and either ``feats`` (cached features, when ``feature_cache`` is given, e.g. a
    :class:`~audioattn_sb.features.FeatureCache`) or ``sig`` (the cached float32 audio, read from
    its file or, with ``audio`` (:class:`~audioattn_sb.data.packed.PackedAudio`), the pack)."""
    import soundfile as sf
    import speechbrain as sb
    import torch

    def read(wav):
        if audio is not None:
            return torch.from_numpy(audio.read(wav))
        data, _ = sf.read(wav, dtype="float32", always_2d=False)
        return torch.from_numpy(data)

    if feature_cache is None:
        @sb.utils.data_pipeline.takes("wav")
        @sb.utils.data_pipeline.provides("sig")
        def audio_pipeline(wav):
            return read(wav)
        signal_key = "sig"
    else:
        @sb.utils.data_pipeline.takes("wav")
        @sb.utils.data_pipeline.provides("feats")
        def audio_pipeline(wav):
            return feature_cache(wav, lambda: read(wav).unsqueeze(0))
        signal_key = "feats"

    @sb.utils.data_pipeline.takes("classID")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(class_id):
        return torch.tensor([int(class_id)], dtype=torch.long)

    datasets = {}
    for split, path in manifests.items():
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_json(
            path, dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", signal_key, "label"],
        )
    return datasets
