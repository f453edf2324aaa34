"""Events in noise: a noisy, strongly labelled copy of an UrbanSound8K-layout corpus.

For every clip of the chosen folds: read it (any rate, downmixed, resampled to 16 kHz), keep its
**active part** (from the first to the last 20 ms frame whose energy is within ``active_db`` dB
of the loudest frame; with ``max_event_s``, only its loudest window of that length), and place that event at a uniformly random onset inside a background of
white or pink noise as long as the original clip, at a uniformly random SNR in
[``snr_low``, ``snr_high``] dB (RMS of the event's active part over RMS of the noise). The copy
keeps UrbanSound8K's layout and csv columns (same file names, folds and labels), so every recipe
and ``--noisy_test_folder`` read it like the original, and ``metadata/events.csv`` gives the
event's true time per clip (``slice_file_name,onset_s,offset_s,snr_db,noise``), for localisation
measures.

Deterministic: each clip's draws come from ``(seed, file name)``, whatever the order or the subset
of folds. Files are written atomically; the csvs last.

    python recipes/make_noisy_folds.py ../shared/data/esc10_us8k --out data/esc10_noisy

Example:
    >>> import numpy as np
    >>> sr = 16000
    >>> x = np.zeros(sr, dtype=np.float32); x[3200:6400] = np.sin(np.arange(3200) / 3.0)
    >>> active_region(x, sr)          # 20 ms frames: the event's frames 10..19
    (3200, 6400)
"""

import csv
import io
import json
import logging
import os
import sys
import zlib

import numpy as np

from audioattn_sb.data.audio import read_audio, resample, to_mono
from audioattn_sb.data.synthetic import colored_noise
from audioattn_sb.utils import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

NOISES = {"white": 0.0, "pink": 1.0}
EVENTS_CSV = os.path.join("metadata", "events.csv")
EVENTS_COLUMNS = ["slice_file_name", "onset_s", "offset_s", "snr_db", "noise"]


def active_region(wave, sample_rate, active_db=35.0, frame_s=0.02):
    """``(start, stop)`` samples of the active part: first to last frame within ``active_db`` dB
    of the loudest frame (frames of ``frame_s``; ``stop`` is the end of the last active frame,
    at most the clip's end). A silent clip is active everywhere."""
    wave = np.asarray(wave, dtype=np.float64)
    n = len(wave)
    hop = max(1, int(round(frame_s * sample_rate)))
    n_frames = -(-n // hop)
    padded = np.zeros(n_frames * hop)
    padded[:n] = wave
    energy = (padded.reshape(n_frames, hop) ** 2).mean(axis=1)
    if energy.max() <= 0:
        return 0, n
    db = 10 * np.log10(energy + 1e-20)
    active = np.flatnonzero(db >= db.max() - active_db)
    return int(active[0] * hop), int(min(n, (active[-1] + 1) * hop))


def loudest_window(wave, sample_rate, max_seconds):
    """``(start, stop)`` of the ``max_seconds`` window of ``wave`` with the most energy (the whole
    wave when it is shorter).

    Example:
        >>> x = np.zeros(16000); x[9000:9500] = 1.0
        >>> loudest_window(x, 16000, 0.1)          # 1600 samples holding the whole burst
        (7900, 9500)
    """
    n = len(wave)
    k = int(round(max_seconds * sample_rate))
    if k <= 0:
        raise ValueError(f"max_event_s must be > 0, got {max_seconds}")
    if n <= k:
        return 0, n
    c = np.concatenate([[0.0], np.cumsum(np.square(np.asarray(wave, dtype=np.float64)))])
    start = int(np.argmax(c[k:] - c[:-k]))
    return start, start + k


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def place_in_noise(event, n_total, onset, snr_db, noise, rng, sample_rate=16000):
    """The event added at sample ``onset`` to ``noise`` (``white``/``pink``) noise of ``n_total``
    samples, scaled so that RMS(event) / RMS(noise) = 10^(snr_db / 20); the mixture is scaled
    down (both parts alike, SNR unchanged) if its peak would exceed 0.99.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ev = 0.1 * np.sin(np.arange(4000) / 5.0)
        >>> mix = place_in_noise(ev, 32000, 8000, 6.0, "pink", rng)
        >>> noise_rms = np.sqrt(np.mean(np.delete(mix, np.s_[8000:12000]) ** 2))
        >>> round(float(20 * np.log10(np.sqrt(np.mean(ev ** 2)) / noise_rms)))
        6
    """
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; valid: {', '.join(NOISES)}")
    event = np.asarray(event, dtype=np.float64)
    if onset < 0 or onset + len(event) > n_total:
        raise ValueError(f"the event ({len(event)} samples at {onset}) does not fit in "
                         f"{n_total} samples")
    bg = colored_noise(rng, n_total, sample_rate, exponent=NOISES[noise])
    ev_rms = _rms(event)
    scale = ev_rms / (10 ** (snr_db / 20.0)) if ev_rms > 0 else 1e-3
    mix = bg * scale
    mix[onset:onset + len(event)] += event
    peak = np.abs(mix).max()
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix.astype(np.float32)


def read_events_csv(path):
    """``{file_id: (onset_s, offset_s)}`` from an events csv (``slice_file_name`` or FSD50K's
    ``fname`` column, plus ``onset_s``, ``offset_s``; other columns ignored). ``file_id`` is the
    file name without its extension. Bad rows raise a ``ValueError`` naming the file and line.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "events.csv")
        >>> _ = open(p, "w").write("slice_file_name,onset_s,offset_s\\na-1.wav,0.5,1.25\\n")
        >>> read_events_csv(p)
        {'a-1': (0.5, 1.25)}
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no events csv there (recipes/make_noisy_folds.py writes "
                                "<out>/metadata/events.csv)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        key = "slice_file_name" if "slice_file_name" in cols else "fname" if "fname" in cols \
            else None
        if key is None or "onset_s" not in cols or "offset_s" not in cols:
            raise ValueError(f"{path}: the header must hold slice_file_name (or fname), onset_s "
                             f"and offset_s; it has {', '.join(cols) or 'nothing'}")
        events = {}
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            try:
                on, off = float(row["onset_s"]), float(row["offset_s"])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: onset_s/offset_s must be numbers in seconds, got "
                                 f"{row['onset_s']!r}, {row['offset_s']!r}") from None
            if not (0 <= on < off):
                raise ValueError(f"{where}: need 0 ≤ onset_s < offset_s, got {on}, {off}")
            fid = os.path.splitext(str(row[key]).strip())[0]
            if fid in events:
                raise ValueError(f"{where}: {row[key]} appears twice")
            events[fid] = (on, off)
    if not events:
        raise ValueError(f"{path}: no event rows")
    return events


def _clip_rng(seed, name):
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def make_noisy_folds(src, out, snr_low=0.0, snr_high=12.0, noises=("pink", "white"), seed=0,
                     folds=None, sample_rate=16000, active_db=35.0, max_event_s=None,
                     progress=True):
    """Write the noisy copy of ``src`` (UrbanSound8K layout) into ``out``; returns a summary dict
    (clips written per fold, mean event length, SNR range). ``max_event_s``: keep at most that
    much of each active part, its loudest window (short events for localisation measures:
    stationary sounds such as rain are otherwise active over the whole clip)."""
    from tqdm import tqdm

    from audioattn_sb.data.urbansound8k import CSV_RELPATH, read_metadata_rows

    if snr_low > snr_high:
        raise ValueError(f"snr_low ({snr_low}) must be ≤ snr_high ({snr_high})")
    noises = list(noises)
    bad = [n for n in noises if n not in NOISES]
    if bad or not noises:
        raise ValueError(f"unknown noise(s) {bad}; valid: {', '.join(NOISES)}")
    if os.path.abspath(src) == os.path.abspath(out):
        raise ValueError("--out must differ from the source folder (it would overwrite it)")
    rows = read_metadata_rows(src)
    fieldnames = [k for k in rows[0] if k != "_line"] if rows else []
    if folds is not None:
        folds = {int(f) for f in folds}
        rows = [r for r in rows if int(r["fold"]) in folds]
    if not rows:
        raise ValueError(f"{os.path.join(src, CSV_RELPATH)}: no rows in folds {sorted(folds)}")
    events, written, lengths = [], {}, []
    for row in tqdm(rows, desc="noisy clips", unit="clip", disable=not progress):
        name, fold = row["slice_file_name"], int(row["fold"])
        path = os.path.join(src, "audio", f"fold{fold}", name)
        wave, sr = read_audio(path)
        wave = resample(to_mono(wave), sr, sample_rate)
        start, stop = active_region(wave, sample_rate, active_db)
        event = wave[start:stop]
        if max_event_s is not None:
            a, b = loudest_window(event, sample_rate, max_event_s)
            event = event[a:b]
        rng = _clip_rng(seed, name)
        onset = int(rng.integers(0, len(wave) - len(event) + 1))
        snr = float(rng.uniform(snr_low, snr_high))
        noise = noises[int(rng.integers(len(noises)))]
        mix = place_in_noise(event, len(wave), onset, snr, noise, rng, sample_rate)
        dst = os.path.join(out, "audio", f"fold{fold}", name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        import soundfile as sf

        atomic_write(dst, lambda p, m=mix: sf.write(p, m, sample_rate, subtype="PCM_16",
                                                    format="WAV"), suffix=".wav")
        events.append({"slice_file_name": name, "onset_s": f"{onset / sample_rate:.4f}",
                       "offset_s": f"{(onset + len(event)) / sample_rate:.4f}",
                       "snr_db": f"{snr:.2f}", "noise": noise})
        written[fold] = written.get(fold, 0) + 1
        lengths.append(len(event) / sample_rate)

    def csv_text(cols, items):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(items)
        return buf.getvalue()

    atomic_write_text(os.path.join(out, EVENTS_CSV), csv_text(EVENTS_COLUMNS, events))
    options = {"source": os.path.abspath(src), "snr_low": snr_low, "snr_high": snr_high,
               "noises": noises, "seed": seed, "sample_rate": sample_rate,
               "active_db": active_db, "max_event_s": max_event_s, "folds": sorted(written)}
    atomic_write_text(os.path.join(out, "metadata", "noisy_folds.json"),
                      json.dumps(options, indent=2) + "\n")
    atomic_write_text(os.path.join(out, CSV_RELPATH), csv_text(fieldnames, rows))
    summary = {"clips": len(events), "per_fold": {str(k): v for k, v in sorted(written.items())},
               "mean_event_s": float(np.mean(lengths)), "out": out}
    logger.info("noisy folds: %s", summary)
    return summary


def make_demo_events(out, clips_per_class_per_fold=3, seed=0, snr_low=0.0, snr_high=12.0,
                     max_event_s=1.0, progress=True):
    """The strongly labelled demo: the synthetic UrbanSound8K demo
    (:func:`audioattn_sb.data.synthetic.make_demo_urbansound8k`, made in a temporary folder) with
    each clip's event (its loudest ``max_event_s`` seconds) placed at a random onset in noise,
    written by :func:`make_noisy_folds` into ``out`` with ``metadata/events.csv``: training,
    ``--noisy_test_folder`` and ``save_attentions.py --events_csv`` all work on it on a fresh
    machine. Returns make_noisy_folds's summary."""
    import shutil
    import tempfile

    from audioattn_sb.data.synthetic import make_demo_urbansound8k

    tmp = tempfile.mkdtemp(prefix="demo_us8k_")
    try:
        make_demo_urbansound8k(os.path.join(tmp, "demo"), clips_per_class_per_fold, seed)
        return make_noisy_folds(os.path.join(tmp, "demo"), out, snr_low=snr_low,
                                snr_high=snr_high, seed=seed, max_event_s=max_event_s,
                                progress=progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def demo_events_main(argv=None):
    """``make_demo_data.py --layout events [--out DIR] [--clips-per-class-per-fold N]
    [--seed S] [--snr_low DB] [--snr_high DB] [--max_event_s S]``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="make_demo_data.py --layout events",
        description="The synthetic UrbanSound8K demo with each clip's event at a known time in "
                    "white/pink noise, and metadata/events.csv (slice_file_name, onset_s, "
                    "offset_s, snr_db, noise): strong labels for the localisation measures.")
    p.add_argument("--out", default="data/demo_events", help="default: data/demo_events")
    p.add_argument("--clips-per-class-per-fold", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr_low", type=float, default=0.0)
    p.add_argument("--snr_high", type=float, default=12.0)
    p.add_argument("--max_event_s", type=float, default=1.0,
                   help="length of each clip's loudest part kept as the event (default 1 s)")
    args = p.parse_args(argv)
    try:
        s = make_demo_events(args.out, args.clips_per_class_per_fold, args.seed, args.snr_low,
                             args.snr_high, args.max_event_s)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {s['clips']} clips with their events in noise (mean event "
          f"{s['mean_event_s']:.2f} s) and metadata/events.csv to {s['out']}")
    return 0

