r"""Export a trained run's inputs and attention: spectrogram files and attention CSVs.

:func:`save_specs` (``recipes/save_specs.py``)
    For the first N clips of a split (manifest order), ``<out>/<file_id>.npz`` and
    ``<out>/<file_id>.png`` (800 × 300). The ``.npz`` holds:

    ==================  ===========================================================
    ``features``        [T, F] float32, the model's input (after the normaliser)
    ``raw_features``    [T, F] float32, the normaliser's input (the log-mel Fbank)
    ``time_s``          [T] frame centres in seconds (frame i at i·hop; centred STFT)
    ``freqs_hz``        [F] mel-band centre frequencies in Hz (NaN when F ≠ n_mels,
                        e.g. with deltas)
    ``hop_seconds``     frame hop in seconds
    ``source``          ``model_input`` or ``display_fbank`` (below)
    ``file_id``, ``label``, ``fold``, ``duration`` (s), ``sample_rate``
    ==================  ===========================================================

    Models whose ``compute_features`` is not a SpeechBrain ``Fbank`` (e.g. raw-waveform models)
    have no spectrogram input: their files hold a display-only log-mel Fbank (80 bands, 25 ms
    windows, 10 ms hop) of the clip's waveform in both ``features`` and ``raw_features``, with
    ``source = display_fbank``, and a warning is logged.

    Multi-label runs (``dataset: fsd50k``) are chunked: every item of a split is a chunk
    (``<fname>_<k>``, :mod:`audioattn_sb.data.fsd50k`), so the files are per chunk, ``label`` holds
    the clip's labels joined by ``;``, ``fold`` is empty and ``duration`` is the chunk's length as
    the model sees it (``chunk_samples``; a short clip's chunk is tiled to it).

:func:`save_attentions` (``recipes/save_attentions.py``)
    One row per clip of the split in ``<name>.csv``, the densities in ``<name>_density.csv`` and
    a description of the export in ``<name>.json``; all written atomically. Summary columns
    (:data:`SUMMARY_COLUMNS`), R's first (units: :mod:`audioattn_sb.inspection.attention`):

    ===================  ==========================================================
    ``file_id``          the clip's id (its file name without extension)
    ``label``, ``pred``  class names (true, predicted)
    ``duration``         seconds (from the data manifest; R counted samples)
    ``fold``             the clip's fold from the data manifest (R took the command line's)
    ``mu``, ``var``      normalised time [0, 1] of the clip (discrete: moments of the weights)
    ``sigma_sq``         β-Gaussian scale (normalised time²); empty for discrete
    ``supp``             continuous: support width (normalised time; ``inf`` for the
                         Gaussian); discrete: fraction of frames with nonzero weight
    ``alpha``            ``;``-joined discrete frame weights (continuous: those of its
                         discrete encoder, empty without one)
    ``attn_domain``, ``max_activation``, ``alpha_value`` (α of the mapping; empty for ``mean``)
    ``label_id``, ``pred_id``, ``score`` (probability of ``pred``), ``correct`` (0/1),
    ``n_frames`` (valid frames seen by the pooling), ``mu_seconds``, ``supp_seconds``,
    ``support_start_s``, ``support_end_s`` (seconds), ``mass_in_clip``
    ``event_onset_s``,   with ``--events_csv``: the clip's labelled event and its
    ``event_offset_s``,  localisation (:func:`~audioattn_sb.inspection.attention.
    ``mass_in_event``,   event_measures`); empty for clips the csv does not name
    ``event_coverage``,
    ``mu_in_event``,
    ``uniform_mass``
    ===================  ==========================================================

    Density CSV (long format): ``file_id, t_seconds, density, kind``; ``kind = pdf`` for
    continuous attention (a density per second, integrating to ≈1 over its points with the
    trapezoid rule; K points per clip, ``--attn_density_points``), ``frame_weight`` for discrete
    (one row per valid frame; the weights sum to 1).

    **Single-label runs only**: the CSV has one true label, one prediction and a correctness per
    clip (R's columns). A multi-label run (``dataset: fsd50k``) is refused with a ``ValueError``
    that says so before any data is read.
"""

import csv
import hashlib
import io
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from audioattn_sb.inspection.attention import clip_attention, event_measures
from audioattn_sb.utils import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "file_id", "label", "pred", "duration", "fold", "mu", "var", "sigma_sq", "supp", "alpha",
    "attn_domain", "max_activation", "alpha_value",
    "label_id", "pred_id", "score", "correct", "n_frames", "mu_seconds", "supp_seconds",
    "support_start_s", "support_end_s", "mass_in_clip",
    "event_onset_s", "event_offset_s", "mass_in_event", "event_coverage", "mu_in_event",
    "uniform_mass",
)
EVENT_COLUMNS = SUMMARY_COLUMNS[-6:]
DENSITY_COLUMNS = ("file_id", "t_seconds", "density", "kind")
_FLOAT_COLUMNS = ("duration", "mu", "var", "sigma_sq", "supp", "alpha_value", "score",
                  "mu_seconds", "supp_seconds", "support_start_s", "support_end_s",
                  "mass_in_clip", "event_onset_s", "event_offset_s", "mass_in_event",
                  "event_coverage", "uniform_mass")
_INT_COLUMNS = ("label_id", "pred_id", "correct", "n_frames", "mu_in_event")


# --------------------------------------------------------------------------- formatting
def fmt(value):
    """CSV text of a number: ``""`` for None/NaN, ``inf``/``-inf``, else 7 significant digits.

    Example:
        >>> [fmt(v) for v in (None, float("nan"), float("inf"), 0.1234567891, 3)]
        ['', '', 'inf', '0.1234568', '3']
    """
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.7g}"


def _parse_float(text):
    text = (text or "").strip()
    return float(text) if text else math.nan


def density_csv_path(csv_path):
    """``<dir>/<stem>_density.csv`` next to a summary CSV.

    Example:
        >>> density_csv_path("run/saved_attentions/x.csv")
        'run/saved_attentions/x_density.csv'
    """
    p = os.fspath(csv_path)
    stem = p[:-4] if p.lower().endswith(".csv") else p
    return stem + "_density.csv"


def meta_json_path(csv_path):
    """``<dir>/<stem>.json`` next to a summary CSV."""
    p = os.fspath(csv_path)
    return (p[:-4] if p.lower().endswith(".csv") else p) + ".json"


def _csv_text(columns, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


# --------------------------------------------------------------------------- rows
def summary_row(file_id, entry, record, scores, class_names, event=None):
    """One summary CSV row (a dict over :data:`SUMMARY_COLUMNS`) of a clip.

    ``entry`` is the clip's manifest entry (``classID``, ``fold``, ``duration``…, may be empty
    for files outside a dataset), ``record`` its :func:`clip_attention`, ``scores`` its class
    probabilities, ``event`` its labelled ``(onset_s, offset_s)`` or None.
    """
    loc = {}
    if event is not None:
        loc = {"event_onset_s": event[0], "event_offset_s": event[1],
               **event_measures(record, *event)}
    scores = np.asarray(scores, dtype=np.float64)
    pred_id = int(scores.argmax())
    label_id = entry.get("classID")
    name = (lambda i: class_names[i] if i is not None and 0 <= i < len(class_names) else "")
    weights = record.get("weights")
    return {
        "file_id": file_id,
        "label": entry.get("class_string") or name(label_id),
        "pred": name(pred_id),
        "duration": fmt(record["duration"]),
        "fold": "" if entry.get("fold") is None else str(entry["fold"]),
        "mu": fmt(record["mu"]),
        "var": fmt(record["var"]),
        "sigma_sq": fmt(record["sigma_sq"]),
        "supp": fmt(record["supp"]),
        "alpha": "" if weights is None else ";".join(fmt(w) for w in weights),
        "attn_domain": record["attn_domain"],
        "max_activation": record["max_activation"],
        "alpha_value": fmt(record["alpha_value"]),
        "label_id": "" if label_id is None else str(int(label_id)),
        "pred_id": str(pred_id),
        "score": fmt(scores[pred_id]),
        "correct": "" if label_id is None else str(int(int(label_id) == pred_id)),
        "n_frames": fmt(record["n_frames"]),
        "mu_seconds": fmt(record["mu_seconds"]),
        "supp_seconds": fmt(record["supp_seconds"]),
        "support_start_s": fmt(record["support_start_s"]),
        "support_end_s": fmt(record["support_end_s"]),
        "mass_in_clip": fmt(record["mass_in_clip"]),
        **{k: fmt(loc.get(k)) for k in EVENT_COLUMNS},
    }


def density_rows(file_id, record):
    """Long-format density rows ``(file_id, t_seconds, density, kind)`` of a clip."""
    kind = record["density_kind"]
    return [(file_id, fmt(t), fmt(d), kind)
            for t, d in zip(record["density_t"], record["density"])]


def read_attention_csv(csv_path, with_density=True):
    """Rows of a summary CSV as dicts (numbers parsed; NaN for empty), each with the attention
    record fields :mod:`audioattn_sb.plots` draws (``density_t``, ``density``, ``density_kind``
    from the density CSV when present).
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "file_id" not in rows[0]:
        raise ValueError(f"{csv_path}: not an attention CSV of save_attentions.py (no file_id "
                         "column)")
    for r in rows:
        if "family" in r and "max_activation" not in r:  # the column's name before 2026-12
            r["max_activation"] = r.pop("family")
        for k in _FLOAT_COLUMNS:
            if k in r:
                r[k] = _parse_float(r[k])
        for k in _INT_COLUMNS:
            if k in r and (r[k] or "").strip():
                r[k] = int(float(r[k]))
        text = r.get("alpha") or ""
        r["weights"] = np.array([float(w) for w in text.split(";")]) if text else None
    dens_path = density_csv_path(csv_path)
    if with_density and os.path.isfile(dens_path):
        dens = read_density_csv(dens_path)
        for r in rows:
            t, d, kind = dens.get(r["file_id"], (np.zeros(0), np.zeros(0), ""))
            r["density_t"], r["density"], r["density_kind"] = t, d, kind
    return rows


def read_density_csv(path):
    """``{file_id: (t_seconds array, density array, kind)}`` of a density CSV."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            t, d, kinds = out.setdefault(r["file_id"], ([], [], set()))
            t.append(float(r["t_seconds"]))
            d.append(float(r["density"]))
            kinds.add(r.get("kind", ""))
    return {k: (np.array(t), np.array(d), ",".join(sorted(kinds))) for k, (t, d, kinds)
            in out.items()}


# --------------------------------------------------------------------------- data of a run
INSPECTION_DIR = "inspection"


def inspection_manifest_folder(run):
    """Where the manifests of the data being inspected go: ``None`` (the run's own folder) when
    it is the data the run was trained on, else ``<run>/inspection/<name>-<hash>/`` — so that
    inspecting another copy of the corpus (e.g. events in noise, ``--data_folder``) never
    rewrites the run's own ``train/valid/test.json``."""
    from audioattn_sb.hparams import peek_hparams

    real = os.path.realpath(str(run.hparams["data_folder"]))
    saved = Path(run.run_folder) / "hyperparams.yaml"
    trained_on = peek_hparams(saved).get("data_folder") if saved.is_file() else None
    if trained_on is None or os.path.realpath(str(trained_on)) == real:
        return None
    tag = hashlib.sha1(real.encode()).hexdigest()[:8]
    return str(Path(run.run_folder) / INSPECTION_DIR / f"{os.path.basename(real)}-{tag}")


def inspection_cache_folder(run):
    """The cache of another copy of the corpus than the run's: the cache folder given, unless it
    is the one the run trained with (a retyped training command), whose entries have the same
    paths as the copy's clips (a noisy copy keeps the file names): then the copy's default cache,
    so that its clips never replace the training data's cached ones."""
    from audioattn_sb.data.preparation import default_cache_folder
    from audioattn_sb.hparams import peek_hparams

    given = run.hparams.get("cache_folder")
    saved = Path(run.run_folder) / "hyperparams.yaml"
    trained = peek_hparams(saved).get("cache_folder") if saved.is_file() else None
    if given is None or (trained is not None and
                         os.path.realpath(str(given)) == os.path.realpath(str(trained))):
        return default_cache_folder(os.path.abspath(str(run.hparams["data_folder"])),
                                    int(run.hparams.get("sample_rate", 16000)))
    return given


def split_data(run, split="test", limit=None, with_manifest=False):
    """``(dataset, manifest entries, class names)`` of a split of the run's data (and the
    split's manifest path with ``with_manifest``).

    The manifests come from the corpus's own preparation
    (:func:`audioattn_sb.data.corpora.prepare_manifests`, which reuses the run's manifests when
    the data and options are unchanged; another data folder than the run's gets its own
    manifests, :func:`inspection_manifest_folder`); the dataset is the corpus's (clips, or
    chunks for multi-label runs; with the feature cache when the hparams use it), limited to
    its first ``limit`` items.
    """
    from audioattn_sb.data.corpora import get_corpus, prepare_manifests
    from audioattn_sb.features import FeatureCache

    corpus = get_corpus(run.hparams)
    folder = inspection_manifest_folder(run)
    if folder is None:
        manifests, class_names = prepare_manifests(run.hparams, corpus)
    else:
        manifests, class_names = prepare_manifests(
            run.hparams, corpus, data_folder=run.hparams["data_folder"], save_folder=folder,
            cache_folder=inspection_cache_folder(run))
    if split not in manifests:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(manifests)}")
    cache = FeatureCache.for_hparams(run.hparams, run.brain.modules["compute_features"],
                                     run.device)
    dataset = corpus.datasets({split: manifests[split]}, run.hparams, cache)[split]
    if limit is not None and limit >= 0:
        dataset = dataset.filtered_sorted(select_n=int(limit))
    with open(manifests[split], encoding="utf-8") as f:
        entries = json.load(f)
    if with_manifest:
        return dataset, entries, class_names, manifests[split]
    return dataset, entries, class_names


def iterate_batches(run, dataset, progress=True, desc="clips", capture_features=True,
                    self_attention=False):
    """Yield :class:`~audioattn_sb.inspection.trained_run.BatchOutput` over ``dataset`` in order
    (the hparams' ``test_dataloader_options`` batch size, no shuffling), with a tqdm bar.
    ``capture_features`` / ``self_attention``: see :meth:`TrainedRun.run_batch`."""
    from speechbrain.dataio.dataloader import make_dataloader
    from tqdm import tqdm

    opts = dict(run.hparams.get("test_dataloader_options")
                or run.hparams.get("dataloader_options") or {})
    loader = make_dataloader(dataset, batch_size=int(opts.get("batch_size", 32)), shuffle=False,
                             num_workers=0)
    with tqdm(total=len(dataset), desc=desc, unit="clip", disable=not progress,
              dynamic_ncols=True) as bar:
        for batch in loader:
            out = run.run_batch(batch, capture_features=capture_features,
                                self_attention=self_attention)
            bar.update(len(out.ids))
            yield out


# --------------------------------------------------------------------------- specs
def fbank_axes(fbank, n_frames, n_feats):
    """(time_s [T], freqs_hz [F], hop_seconds) of a SpeechBrain Fbank's output."""
    stft = fbank.compute_STFT
    hop_s = float(stft.hop_length) / float(stft.sample_rate)
    time_s = np.arange(n_frames) * hop_s
    centres = fbank.compute_fbanks.f_central.detach().cpu().double().numpy()
    freqs = centres if centres.size == n_feats else np.full(n_feats, np.nan)
    return time_s, freqs, hop_s


_DISPLAY_FBANK = {}


def display_fbank(wave, sample_rate, n_mels=80):
    """A log-mel Fbank [T, n_mels] (25 ms windows, 10 ms hop) of a 1-D waveform, for display."""
    import torch
    from speechbrain.lobes.features import Fbank

    key = (int(sample_rate), int(n_mels))
    if key not in _DISPLAY_FBANK:
        _DISPLAY_FBANK[key] = Fbank(sample_rate=int(sample_rate), n_mels=int(n_mels))
    fb = _DISPLAY_FBANK[key]
    with torch.no_grad():
        feats = fb(torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1))[0]
    return fb, feats.numpy()


def entry_waveform(entry):
    """The waveform a manifest entry feeds the model: the whole (cached 16 kHz) file, or for a
    chunk entry (``chunk_samples``, multi-label manifests) the chunk, tiled when short."""
    import soundfile as sf

    if "chunk_samples" in entry:
        from audioattn_sb.data.fsd50k import load_chunk

        return load_chunk(entry["wav"], entry["start"], entry["stop"], entry["chunk_samples"])
    return sf.read(entry["wav"], dtype="float32")[0]


def entry_label(entry):
    """A manifest entry's label text: the class name, or the ``;``-joined labels of a
    multi-label entry ("" when unknown).

    Example:
        >>> entry_label({"class_string": "dog_bark"}), entry_label({"labels": ["Bark", "Dog"]})
        ('dog_bark', 'Bark;Dog')
    """
    if entry.get("class_string"):
        return str(entry["class_string"])
    return ";".join(str(x) for x in entry.get("labels", []))


def entry_duration(entry, sample_rate):
    """Seconds of audio an entry feeds the model: ``chunk_samples`` for chunks, else its
    ``duration`` (None when unknown)."""
    if "chunk_samples" in entry:
        return int(entry["chunk_samples"]) / float(sample_rate)
    return entry.get("duration")


def spec_arrays(run, out, index, entry, wave_loader):
    """The ``.npz`` content (dict) of clip ``index`` of a batch output (module docstring)."""
    fbank = run.fbank()
    if fbank is not None and out.model_input is not None:
        feats = out.model_input[index]
        raw = out.raw_features[index] if out.raw_features is not None else feats
        time_s, freqs, hop_s = fbank_axes(fbank, feats.shape[0], feats.shape[1])
        source = "model_input"
    else:
        fb, raw = display_fbank(wave_loader(), run.sample_rate)
        feats = raw
        time_s, freqs, hop_s = fbank_axes(fb, raw.shape[0], raw.shape[1])
        source = "display_fbank"
    return {
        "features": np.asarray(feats, dtype=np.float32),
        "raw_features": np.asarray(raw, dtype=np.float32),
        "time_s": time_s, "freqs_hz": freqs, "hop_seconds": np.float64(hop_s),
        "sample_rate": np.int64(run.sample_rate), "source": np.str_(source),
        "file_id": np.str_(out.ids[index]),
        "label": np.str_(entry_label(entry)),
        "fold": np.str_("" if entry.get("fold") is None else str(entry["fold"])),
        "duration": np.float64(entry_duration(entry, run.sample_rate) or len(time_s) * hop_s),
    }


def write_spec(path, arrays):
    """Write a spec ``.npz`` atomically."""
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".tmp.npz")
    return path


def load_spec(path):
    """A spec ``.npz`` as a dict of arrays; 0-d entries become Python scalars/strings."""
    with np.load(path, allow_pickle=False) as data:
        out = {}
        for k in data.files:
            v = data[k]
            out[k] = v.item() if v.ndim == 0 else v
    return out


def save_specs(run, out_dir, n_clips=10, split="test", progress=True):
    """Save the input features of the first ``n_clips`` clips of ``split`` (module docstring).

    Returns the list of ``.npz`` paths written.
    """
    from audioattn_sb import plots

    out_dir = Path(out_dir)
    dataset, entries, _ = split_data(run, split, limit=n_clips)
    if run.fbank() is None:
        logger.warning("compute_features is not a SpeechBrain Fbank: the spectrograms saved are "
                       "a display log-mel Fbank of the waveform, not the model's input")
    written = []
    for out in iterate_batches(run, dataset, progress, desc=f"specs ({split})"):
        for i, fid in enumerate(out.ids):
            entry = entries[fid]
            arrays = spec_arrays(run, out, i, entry, lambda e=entry: entry_waveform(e))
            path = write_spec(out_dir / f"{fid}.npz", arrays)
            plots.plot_spectrogram(out_dir / f"{fid}.png", load_spec(path))
            written.append(str(path))
    return written


# --------------------------------------------------------------------------- attentions
def support_summary(rows):
    """Support widths (``supp``, normalised to the clip) of summary rows: ``support_median``
    over all clips and ``supports_by_class`` {label: [width, ...]}. An unbounded support (the
    Gaussian) is None in the lists and makes the median None.

    Example:
        >>> i, j = SUMMARY_COLUMNS.index("label"), SUMMARY_COLUMNS.index("supp")
        >>> def row(label, supp):
        ...     r = [""] * len(SUMMARY_COLUMNS); r[i], r[j] = label, supp; return r
        >>> support_summary([row("dog", "0.2"), row("dog", "0.4"), row("rain", "1.0")])
        {'support_median': 0.4, 'supports_by_class': {'dog': [0.2, 0.4], 'rain': [1.0]}}
    """
    i, j = SUMMARY_COLUMNS.index("label"), SUMMARY_COLUMNS.index("supp")
    by_class = {}
    for r in rows:
        width = float(r[j]) if r[j] not in ("", None) else math.nan
        if math.isnan(width):
            continue
        by_class.setdefault(r[i], []).append(None if math.isinf(width) else width)
    widths = [math.inf if w is None else w for ws in by_class.values() for w in ws]
    median = float(np.median(widths)) if widths else math.nan
    return {"support_median": None if not math.isfinite(median) else median,
            "supports_by_class": by_class}


def save_attentions(run, csv_path, split="test", density_points=200, progress=True,
                    command=None, events=None, limit=None):
    """Write the attention summary CSV, its density CSV and ``<name>.json`` for every clip of
    ``split`` (its first ``limit`` clips when given; module docstring). ``events``:
    ``{file_id: (onset_s, offset_s)}``
    (:func:`audioattn_sb.data.noisy.read_events_csv`) adds the localisation columns. Returns a
    summary dict (paths, counts, accuracy, and with events the mean localisation figures)."""
    if run.multilabel:
        raise ValueError(
            f"save_attentions.py is single-label only (one label, prediction and correctness "
            f"per clip), and {run.run_folder} is a multi-label run (dataset: "
            f"{run.hparams.get('dataset')}); for its inputs use save_specs.py, for a clip's "
            "scores and pooling attention classify.py, for a Transformer's self-attention "
            "save_self_attention.py")
    csv_path = Path(csv_path)
    dataset, entries, class_names, manifest = split_data(run, split, limit=limit,
                                                         with_manifest=True)
    config = run.attention_config()
    rows, dens = [], []
    for out in iterate_batches(run, dataset, progress, desc=f"attention ({split})",
                               capture_features=False):
        for i, fid in enumerate(out.ids):
            entry = entries[fid]
            record = clip_attention(out.info.clip(i), config, entry["duration"],
                                    density_points)
            event = None if events is None else events.get(fid)
            row = summary_row(fid, entry, record, out.scores[i], class_names, event)
            rows.append([row[c] for c in SUMMARY_COLUMNS])
            dens.extend(density_rows(fid, record))
    if not rows:
        raise ValueError(f"the {split} split has no clip")
    correct = [r[SUMMARY_COLUMNS.index("correct")] for r in rows]
    accuracy = sum(c == "1" for c in correct) / len(correct)
    localisation = {}
    if events is not None:
        for col in ("mass_in_event", "event_coverage", "mu_in_event", "uniform_mass"):
            vals = [float(r[SUMMARY_COLUMNS.index(col)]) for r in rows
                    if r[SUMMARY_COLUMNS.index(col)] != ""]
            localisation[col] = float(np.mean(vals)) if vals else None
        localisation["n_clips_with_event"] = sum(
            1 for r in rows if r[SUMMARY_COLUMNS.index("mass_in_event")] != "")
        localisation.update(support_summary(rows))
        if not localisation["n_clips_with_event"]:
            raise ValueError(f"the events csv names none of the {len(rows)} {split} clips (its "
                             "file names must be the clips' slice_file_name)")
    dens_path = density_csv_path(csv_path)
    atomic_write_text(dens_path, _csv_text(DENSITY_COLUMNS, dens))
    atomic_write_text(csv_path, _csv_text(SUMMARY_COLUMNS, rows))
    meta = {
        "summary_csv": str(csv_path), "density_csv": str(dens_path),
        "run_folder": str(run.run_folder), "checkpoint": str(run.checkpoint),
        "checkpoint_meta": {k: (v if isinstance(v, (int, float, str)) else str(v))
                            for k, v in run.checkpoint_meta.items()},
        "split": split, "manifest": str(manifest),
        "data_folder": str(run.hparams["data_folder"]),
        "n_clips": len(rows), "accuracy": accuracy,
        "attention": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                      for k, v in config.items()},
        "class_names": list(class_names), "density_points": int(density_points),
        "units": {"mu/var/sigma_sq/supp": "normalised time of the clip's valid frames [0, 1]",
                  "*_seconds, *_s, duration, t_seconds": "seconds",
                  "density (pdf)": "per second; trapezoid integral over its points ≈ 1",
                  "density (frame_weight)": "weight of the frame; sums to 1 per clip"},
        "command": command,
        "localisation": localisation or None,
    }
    atomic_write_text(meta_json_path(csv_path), json.dumps(meta, indent=2) + "\n")
    return {"csv": str(csv_path), "density_csv": dens_path, "n_clips": len(rows),
            "n_density_rows": len(dens), "accuracy": accuracy, "attention": config,
            "localisation": localisation or None}


__all__ = ["DENSITY_COLUMNS", "SUMMARY_COLUMNS", "density_csv_path", "density_rows",
           "display_fbank", "entry_duration", "entry_label", "entry_waveform", "fbank_axes",
           "fmt", "inspection_manifest_folder", "iterate_batches", "load_spec", "meta_json_path",
           "read_attention_csv", "read_density_csv", "save_attentions", "save_specs",
           "spec_arrays", "split_data", "summary_row", "write_spec"]
