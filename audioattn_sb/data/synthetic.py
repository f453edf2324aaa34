"""Make a small synthetic dataset in UrbanSound8K's exact layout (the embedded demo data).

    python recipes/make_demo_data.py --out data/demo_us8k [--clips-per-class-per-fold 3] [--seed 0]

writes ``OUT/audio/fold1..fold10/<fsID>-<classID>-<occurrence>-<slice>.wav``,
``OUT/metadata/UrbanSound8K.csv`` (``slice_file_name,fsID,start,end,salience,fold,classID,class``,
rows sorted by file name like the real csv) and ``OUT/demo_info.json`` (the generator's options).
Default: 10 folds x 10 classes x 3 = 300 clips (about 110 MB, ~3 s). Same options, same
bytes. A rerun with the same options into a complete demo folder does nothing (so a 16 kHz cache
made from it stays valid); ``--force`` regenerates. A folder holding something other than this
demo is never overwritten.

Classes (classID: name) — each clip is background noise plus one synthesized event at a random
onset, occupying 25-80 % of the clip (all of a clip under 0.5 s), at a random level (event peak
0.2-0.9, background 18-35 dB below it):

    0 siren         tone whose pitch oscillates (600-1500 Hz, 0.5-3 Hz LFO), 2 harmonics
    1 hum           steady 50-120 Hz fundamental with 1/k harmonics, slight wobble
    2 click_train   short decaying clicks repeated at 4-25 Hz
    3 noise_bursts  50-150 ms white-noise bursts separated by gaps
    4 pink_noise    continuous pink (1/f) noise
    5 chirp_up      repeated fast (0.1-0.4 s) exponential sweeps up, 300-600 Hz → 2-3.4 kHz
    6 chirp_down    the same sweeps downwards
    7 am_tone       800-2500 Hz tone, amplitude-modulated at 4-12 Hz
    8 bark          1-4 bursts of a 300-600 Hz pulse train through two formant resonators
    9 thump         1-4 decaying low sines (60-150 Hz, falling pitch) with a noise attack

UrbanSound8K's quirks are reproduced: durations 0.05-4 s (most 4 s, a third between 1 and 4 s, a
few under 1 s, always at least one 0.05 s and one 0.3 s clip); sample rates 8, 11.025, 16, 22.05,
44.1, 48 and 96 kHz; WAV subtypes PCM_U8, PCM_16, PCM_24, FLOAT and DOUBLE; mono and stereo. Every
value of every quirk occurs at least once whatever the size (given at least 7 clips), every fold
holds every class, and the slices of one ``fsID`` stay in one fold (as in the real corpus).

The sound synthesizers (``SOUNDS``: name → ``fn(rng, n, sr) -> float64 [n]``, peak 1) and
:func:`render_clip` are shared building blocks: a multi-label FSD50K-layout generator can mix
several events per clip with the same functions.
"""

import argparse
import csv
import io
import json
import math
import os
import shutil
import sys

import struct

import numpy as np
import soundfile as sf

GENERATOR_VERSION = 1

CSV_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]

SAMPLE_RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000)
SAMPLE_RATE_WEIGHTS = (0.06, 0.08, 0.20, 0.23, 0.31, 0.10, 0.02)
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "FLOAT", "DOUBLE")
SUBTYPE_WEIGHTS = (0.05, 0.70, 0.19, 0.05, 0.01)
CHANNELS = (1, 2)
CHANNEL_WEIGHTS = (0.5, 0.5)
SHORT_DURATIONS = (0.05, 0.3)  # always present, like UrbanSound8K's shortest clips
MAX_DURATION = 4.0
NOISE_FMAX = 8000.0  # noise is band-limited so that its 16 kHz version is rate-independent


# --------------------------------------------------------------------------- sound synthesizers
def _max_freq(sr):
    return 0.45 * sr


def _normalize(x):
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 0 else x


def colored_noise(rng, n, sr, exponent=0.0, fmin=20.0, fmax=NOISE_FMAX):
    """Gaussian noise with power spectrum ∝ 1/f^exponent between fmin and min(fmax, 0.45 sr).

    0 = white, 1 = pink, 2 = brown. Unit RMS (before any later normalization).
    """
    if n <= 1:
        return np.zeros(n)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    band = (f >= fmin) & (f <= min(fmax, _max_freq(sr)))
    shape = np.zeros_like(f)
    shape[band] = f[band] ** (-exponent / 2.0)
    x = np.fft.irfft(spec * shape, n)
    rms = np.sqrt(np.mean(x ** 2))
    return x / rms if rms > 0 else x


def _fade(x, sr, ms=5.0):
    k = min(int(sr * ms / 1000.0), len(x) // 4)
    if k > 1:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
        x[:k] *= ramp
        x[-k:] *= ramp[::-1]
    return x


def _decay_env(n, sr, tau):
    return np.exp(-np.arange(n) / (sr * tau))


def synth_siren(rng, n, sr):
    t = np.arange(n) / sr
    center, depth = rng.uniform(800, 1100), rng.uniform(200, 400)
    lfo_rate = rng.uniform(0.5, 3.0)
    f = center + depth * np.sin(2 * np.pi * lfo_rate * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.sin(phase)
    for k, a in ((2, 0.4), (3, 0.2)):
        if k * (center + depth) < _max_freq(sr):
            x += a * np.sin(k * phase)
    return _normalize(x)


def synth_hum(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(50, 120)
    f = f0 * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.zeros(n)
    for k in range(1, 12):
        if k * f0 * 1.02 < _max_freq(sr):
            x += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    return _normalize(x)


def synth_click_train(rng, n, sr):
    rate = rng.uniform(4, 25)
    click_len = max(2, int(0.004 * sr))
    click = colored_noise(rng, click_len, sr, 0.0, fmin=500.0) * _decay_env(click_len, sr, 0.0008)
    x = np.zeros(n)
    pos = int(rng.uniform(0, sr / rate))
    while pos < n:
        m = min(click_len, n - pos)
        x[pos:pos + m] += click[:m] * rng.uniform(0.7, 1.0)
        pos += max(1, int(sr / rate * rng.uniform(0.9, 1.1)))
    return _normalize(x)


def synth_noise_bursts(rng, n, sr):
    x = np.zeros(n)
    noise = colored_noise(rng, n, sr, 0.0)
    pos = int(rng.uniform(0, 0.05) * sr)
    while pos < n:
        length = int(rng.uniform(0.05, 0.15) * sr)
        m = min(length, n - pos)
        x[pos:pos + m] = _fade(noise[pos:pos + m].copy(), sr, 3.0)
        pos += m + int(rng.uniform(0.04, 0.12) * sr)
    if not np.any(x):
        x = noise
    return _normalize(x)


def synth_pink_noise(rng, n, sr):
    return _normalize(colored_noise(rng, n, sr, 1.0))


def _sweep(rng, n, sr, upwards):
    """Repeated fast exponential sweeps (0.1-0.4 s each, short gaps), all up or all down."""
    f_lo = rng.uniform(300, 600)
    f_hi = min(rng.uniform(2000, 3400), _max_freq(sr))
    x = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, max(2, int(rng.uniform(0.1, 0.4) * sr)))
        t = np.arange(length) / max(length - 1, 1)
        f = f_lo * (f_hi / f_lo) ** (t if upwards else 1 - t)
        x[pos:pos + length] = _fade(np.sin(2 * np.pi * np.cumsum(f) / sr), sr, 3.0)
        pos += length + int(rng.uniform(0.02, 0.15) * sr)
    return _normalize(x)


def synth_chirp_up(rng, n, sr):
    return _sweep(rng, n, sr, True)


def synth_chirp_down(rng, n, sr):
    return _sweep(rng, n, sr, False)


def synth_am_tone(rng, n, sr):
    t = np.arange(n) / sr
    fc = min(rng.uniform(800, 2500), _max_freq(sr))
    fm, depth = rng.uniform(4, 12), rng.uniform(0.7, 1.0)
    env = 1 - depth * 0.5 * (1 + np.cos(2 * np.pi * fm * t + rng.uniform(0, 2 * np.pi)))
    return _normalize(env * np.sin(2 * np.pi * fc * t))


def _resonator(x, sr, freq, bw):
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bw / sr)
    theta = 2 * math.pi * freq / sr
    return lfilter([1 - r], [1, -2 * r * math.cos(theta), r * r], x)


def synth_bark(rng, n, sr):
    x = np.zeros(n)
    n_barks = int(rng.integers(1, 5))
    slot = n // n_barks
    for b in range(n_barks):
        length = min(slot, int(rng.uniform(0.08, 0.2) * sr))
        if length < 4:
            length = slot
        start = b * slot + int(rng.uniform(0, max(slot - length, 0) + 1e-9))
        f0 = rng.uniform(300, 600)
        pulses = np.zeros(length)
        period = sr / f0
        pulses[(np.arange(0, length, period)).astype(int)] = 1.0
        src = pulses + 0.05 * colored_noise(rng, length, sr)
        y = _resonator(src, sr, min(rng.uniform(700, 1000), _max_freq(sr)), 150)
        y += 0.7 * _resonator(src, sr, min(rng.uniform(1400, 1900), _max_freq(sr)), 200)
        env = (1 - np.exp(-np.arange(length) / (0.005 * sr))) * _decay_env(length, sr, 0.06)
        x[start:start + length] += _normalize(y) * env
    return _normalize(x)


def synth_thump(rng, n, sr):
    x = np.zeros(n)
    n_hits = int(rng.integers(1, 5))
    slot = n // n_hits
    for h in range(n_hits):
        length = slot
        start = h * slot
        t = np.arange(length) / sr
        f0 = rng.uniform(60, 150)
        f = f0 * (1 + 0.8 * np.exp(-t / 0.03))
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * _decay_env(length, sr, rng.uniform(0.08, 0.2))
        k = min(length, max(2, int(0.01 * sr)))
        y[:k] += 0.5 * colored_noise(rng, k, sr, 1.0)[:k] * _decay_env(k, sr, 0.002) / 3
        x[start:start + length] += y * rng.uniform(0.7, 1.0)
    return _normalize(x)


#: name → synthesizer ``fn(rng, n, sr) -> float64 [n]`` with peak 1. Order = UrbanSound8K classID.
SOUNDS = {
    "siren": synth_siren,
    "hum": synth_hum,
    "click_train": synth_click_train,
    "noise_bursts": synth_noise_bursts,
    "pink_noise": synth_pink_noise,
    "chirp_up": synth_chirp_up,
    "chirp_down": synth_chirp_down,
    "am_tone": synth_am_tone,
    "bark": synth_bark,
    "thump": synth_thump,
}
CLASS_NAMES = list(SOUNDS)


# --------------------------------------------------------------------------- clip rendering
def render_clip(rng, sr, n, channels, events, background_rms, background_exponent=0.5):
    """Mix events over background noise: float64 ``[n, channels]`` clipped to [-1, 1).

    ``events``: list of ``(sound_name, onset_sample, length_samples, peak_gain)``; each event is
    synthesized once (peak 1), faded in/out over 5 ms, scaled per channel by ``peak_gain`` times a
    random 0.6-1.0 stereo gain, and added at its onset. The background is independent per channel
    (colored noise of the given exponent at ``background_rms``).
    """
    out = np.zeros((n, channels))
    for c in range(channels):
        out[:, c] = background_rms * colored_noise(rng, n, sr, background_exponent)
    for name, onset, length, gain in events:
        length = max(1, min(int(length), n - int(onset)))
        ev = _fade(SOUNDS[name](rng, length, sr), sr)
        for c in range(channels):
            pan = 1.0 if channels == 1 else rng.uniform(0.6, 1.0)
            out[int(onset):int(onset) + length, c] += gain * pan * ev
    return np.clip(out, -1.0, 1.0 - 2.0 ** -15)


def _n_samples(duration, sr):
    return max(1, int(math.ceil(duration * sr - 1e-6)))


def _spread(rng, n, values, weights):
    """n draws from values with the given weights, each value at least once (when n allows)."""
    forced = list(values)[:n]
    rest = rng.choice(len(values), size=n - len(forced), p=np.asarray(weights) / np.sum(weights))
    out = forced + [values[i] for i in rest]
    return [out[i] for i in rng.permutation(n)]


def _durations(rng, n):
    forced = list(SHORT_DURATIONS)[:n]
    out = list(forced)
    for _ in range(n - len(forced)):
        u = rng.uniform()
        if u < 0.6:
            out.append(MAX_DURATION)
        elif u < 0.9:
            out.append(round(rng.uniform(1.0, MAX_DURATION), 3))
        else:
            out.append(round(rng.uniform(0.1, 1.0), 3))
    return [out[i] for i in rng.permutation(n)]


def _zero_peak_timestamp(path):
    """Zero the timestamp libsndfile puts in the PEAK chunk of float WAVs (for identical bytes)."""
    with open(path, "r+b") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = os.fstat(f.fileno()).st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, n = struct.unpack("<4sI", f.read(8))
            if cid == b"PEAK":
                f.seek(pos + 8 + 4)  # after the version field
                f.write(b"\0\0\0\0")
                return
            pos += 8 + n + (n & 1)


def write_wav(path, data, sr, subtype):
    """``soundfile.write`` as WAV, made byte-deterministic (no PEAK-chunk timestamp)."""
    sf.write(path, data, sr, subtype=subtype, format="WAV")
    if subtype in ("FLOAT", "DOUBLE"):
        _zero_peak_timestamp(path)


def _fmt(x):
    return repr(round(float(x), 6))


def _is_our_demo(out_dir):
    return os.path.isfile(os.path.join(out_dir, "demo_info.json"))


def _complete_demo(out_dir, options):
    """True when out_dir already holds a complete demo made with exactly these options."""
    try:
        with open(os.path.join(out_dir, "demo_info.json"), encoding="utf-8") as f:
            info = json.load(f)
        if info.get("options") != options:
            return False
        with open(os.path.join(out_dir, "metadata", "UrbanSound8K.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return False
    if len(rows) != info.get("n_clips"):
        return False
    return all(os.path.isfile(os.path.join(out_dir, "audio", f"fold{r['fold']}",
                                           r["slice_file_name"])) for r in rows)


def make_demo_urbansound8k(out_dir, clips_per_class_per_fold=3, seed=0, folds=tuple(range(1, 11)),
                           force=False):
    """Write the demo dataset (see the module docstring) into ``out_dir``; returns a summary dict.

    ``folds``: which of the 10 folds to write (all by default; tests can make fewer). Returns
    ``{"out_dir", "n_clips", "folds", "classes", "sample_rates", "subtypes", "channels",
    "min_duration", "max_duration", "skipped_existing"}``.

    Example:
        >>> import tempfile
        >>> s = make_demo_urbansound8k(tempfile.mkdtemp(), clips_per_class_per_fold=1, folds=[1])
        >>> s["n_clips"], len(s["classes"]), s["min_duration"]
        (10, 10, 0.05)
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    folds = sorted({int(f) for f in folds})
    if not folds or not all(1 <= f <= 10 for f in folds):
        raise ValueError(f"folds must be a non-empty subset of 1..10, got {folds}")
    k = int(clips_per_class_per_fold)
    if k < 1:
        raise ValueError(f"clips_per_class_per_fold must be >= 1, got {clips_per_class_per_fold}")
    options = {"version": GENERATOR_VERSION, "clips_per_class_per_fold": k, "seed": int(seed),
               "folds": folds}

    if os.path.exists(out_dir) and os.listdir(out_dir):
        if not _is_our_demo(out_dir):
            raise FileExistsError(
                f"{out_dir} exists and is not a demo folder made by this generator (no "
                "demo_info.json); choose another --out or empty that folder first")
        if not force and _complete_demo(out_dir, options):
            return {**_summary_from_disk(out_dir), "skipped_existing": True}
        for sub in ("audio", "metadata"):
            shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
        os.remove(os.path.join(out_dir, "demo_info.json"))

    rng = np.random.default_rng([int(seed), 0])
    n_classes = len(CLASS_NAMES)
    plan = [(fold, cid, j) for fold in folds for cid in range(n_classes) for j in range(k)]
    n = len(plan)
    rates = _spread(rng, n, SAMPLE_RATES, SAMPLE_RATE_WEIGHTS)
    subtypes = _spread(rng, n, SUBTYPES, SUBTYPE_WEIGHTS)
    channels = _spread(rng, n, CHANNELS, CHANNEL_WEIGHTS)
    durations = _durations(rng, n)

    # fsIDs: unique per (fold, class, source); two consecutive clips share a source (slices 0, 1)
    fs_ids, used = {}, set()
    for fold, cid, j in plan:
        key = (fold, cid, j // 2)
        if key not in fs_ids:
            while True:
                fid = int(rng.integers(1000, 200000))
                if fid not in used:
                    break
            used.add(fid)
            fs_ids[key] = fid

    rows = []
    for i, (fold, cid, j) in enumerate(plan):
        crng = np.random.default_rng([int(seed), 1, fold, cid, j])
        sr, dur = rates[i], durations[i]
        n_samp = _n_samples(dur, sr)
        if dur < 0.5:
            ev_len, onset = n_samp, 0
        else:
            ev_len = int(n_samp * crng.uniform(0.25, 0.8))
            onset = int(crng.uniform(0, n_samp - ev_len))
        gain = crng.uniform(0.2, 0.9)
        bg_rms = gain * 10 ** (-crng.uniform(18, 35) / 20)
        wave = render_clip(crng, sr, n_samp, channels[i], [(CLASS_NAMES[cid], onset, ev_len, gain)],
                           bg_rms, background_exponent=crng.uniform(0.0, 1.5))
        fid = fs_ids[(fold, cid, j // 2)]
        name = f"{fid}-{cid}-0-{j % 2}.wav"
        folder = os.path.join(out_dir, "audio", f"fold{fold}")
        os.makedirs(folder, exist_ok=True)
        data = wave[:, 0] if channels[i] == 1 else wave
        write_wav(os.path.join(folder, name), data, sr, subtypes[i])
        start = (j % 2) * MAX_DURATION + crng.uniform(0, 20)
        rows.append([name, fid, _fmt(start), _fmt(start + n_samp / sr), int(crng.integers(1, 3)),
                     fold, cid, CLASS_NAMES[cid]])

    rows.sort(key=lambda r: r[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    w.writerows(rows)
    os.makedirs(os.path.join(out_dir, "metadata"), exist_ok=True)
    with open(os.path.join(out_dir, "metadata", "UrbanSound8K.csv"), "w", encoding="utf-8",
              newline="") as f:
        f.write(buf.getvalue())
    with open(os.path.join(out_dir, "demo_info.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "audioattn_sb.data.synthetic.make_demo_urbansound8k",
                   "options": options, "n_clips": n, "classes": CLASS_NAMES}, f, indent=1)
        f.write("\n")
    return {**_summary_from_disk(out_dir), "skipped_existing": False}


def _summary_from_disk(out_dir):
    with open(os.path.join(out_dir, "metadata", "UrbanSound8K.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    infos = [sf.info(os.path.join(out_dir, "audio", f"fold{r['fold']}", r["slice_file_name"]))
             for r in rows]
    durs = [i.frames / i.samplerate for i in infos]
    return {
        "out_dir": out_dir,
        "n_clips": len(rows),
        "folds": sorted({int(r["fold"]) for r in rows}),
        "classes": [n for _, n in sorted({(int(r["classID"]), r["class"]) for r in rows})],
        "sample_rates": sorted({i.samplerate for i in infos}),
        "subtypes": sorted({i.subtype for i in infos}),
        "channels": sorted({i.channels for i in infos}),
        "min_duration": round(min(durs), 3),
        "max_duration": round(max(durs), 3),
    }


def summary_line(s):
    """One line describing a summary dict of :func:`make_demo_urbansound8k`."""
    verb = "already complete, kept" if s.get("skipped_existing") else "wrote"
    return (f"{verb} {s['n_clips']} clips ({len(s['folds'])} folds x {len(s['classes'])} classes) "
            f"in {s['out_dir']}: rates {','.join(str(r) for r in s['sample_rates'])} Hz; "
            f"subtypes {','.join(s['subtypes'])}; channels {','.join(map(str, s['channels']))}; "
            f"durations {s['min_duration']}-{s['max_duration']} s")


def main(argv=None):
    """Command line: see the module docstring (``--help``)."""
    parser = argparse.ArgumentParser(
        prog="make_demo_data.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/demo_us8k",
                        help="output folder (default: data/demo_us8k)")
    parser.add_argument("--clips-per-class-per-fold", type=int, default=3,
                        help="clips of each class in each fold (default: 3 → 300 clips)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--force", action="store_true",
                        help="regenerate even if the folder already holds this exact demo")
    args = parser.parse_args(argv)
    try:
        s = make_demo_urbansound8k(args.out, args.clips_per_class_per_fold, args.seed,
                                   force=args.force)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_line(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
