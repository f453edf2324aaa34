"""The events-in-noise generator (recipes/make_noisy_folds.py, audioattn_sb.data.noisy)."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data.noisy import active_region, make_noisy_folds, place_in_noise
from tests.conftest import read_csv_rows, run_script


def test_active_region_finds_a_burst_in_silence_and_in_quiet_noise():
    sr = 16000
    rng = np.random.default_rng(0)
    x = 1e-4 * rng.standard_normal(3 * sr)            # -80 dB background
    x[sr:sr + 8000] += 0.5 * np.sin(np.arange(8000) / 3.0)
    start, stop = active_region(x, sr, active_db=35)
    assert abs(start - sr) <= 320 and abs(stop - (sr + 8000)) <= 320
    assert active_region(np.zeros(1000), sr) == (0, 1000)


@pytest.mark.parametrize("noise", ["white", "pink"])
@pytest.mark.parametrize("snr", [0.0, 12.0])
def test_place_in_noise_gives_the_asked_snr_and_keeps_the_event(noise, snr):
    rng = np.random.default_rng(1)
    event = 0.05 * np.sin(np.arange(16000) / 4.0) * np.hanning(16000)
    mix = place_in_noise(event, 80000, 20000, snr, noise, rng)
    assert mix.shape == (80000,) and mix.dtype == np.float32
    noise_part = np.concatenate([mix[:20000], mix[36000:]])
    ev_rms = np.sqrt(np.mean(event ** 2))
    measured = 20 * np.log10(ev_rms / np.sqrt(np.mean(noise_part.astype(np.float64) ** 2)))
    assert abs(measured - snr) < 0.5
    assert np.abs(mix).max() <= 0.99 + 1e-6
    with pytest.raises(ValueError, match="does not fit"):
        place_in_noise(event, 20000, 10000, snr, noise, rng)
    with pytest.raises(ValueError, match="unknown noise"):
        place_in_noise(event, 80000, 0, snr, "brown", rng)


def test_make_noisy_folds_layout_events_and_determinism(small_us8k, tmp_path):
    out1, out2 = tmp_path / "n1", tmp_path / "n2"
    s = make_noisy_folds(small_us8k, out1, snr_low=3, snr_high=6, seed=4, progress=False)
    src_rows = read_csv_rows(small_us8k)
    rows = read_csv_rows(out1)
    assert s["clips"] == len(src_rows) == len(rows)
    assert [(r["slice_file_name"], r["fold"], r["classID"]) for r in rows] == \
        [(r["slice_file_name"], r["fold"], r["classID"]) for r in src_rows]
    with open(out1 / "metadata" / "events.csv", newline="") as f:
        events = {e["slice_file_name"]: e for e in csv.DictReader(f)}
    assert set(events) == {r["slice_file_name"] for r in rows}
    for r in rows:
        wav, sr = sf.read(out1 / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
        src_info = sf.info(small_us8k / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
        assert sr == 16000 and wav.ndim == 1
        assert abs(len(wav) / sr - src_info.duration) < 0.01       # as long as the original
        e = events[r["slice_file_name"]]
        on, off = float(e["onset_s"]), float(e["offset_s"])
        assert 0 <= on < off <= len(wav) / sr + 1e-3
        assert 3 <= float(e["snr_db"]) <= 6 and e["noise"] in ("white", "pink")
    opts = json.loads((out1 / "metadata" / "noisy_folds.json").read_text())
    assert opts["seed"] == 4 and opts["snr_low"] == 3
    # same seed, a subset of folds → the same bytes for those clips
    make_noisy_folds(small_us8k, out2, snr_low=3, snr_high=6, seed=4, folds=[2], progress=False)
    for r in read_csv_rows(out2):
        assert r["fold"] == "2"
        name = f"audio/fold2/{r['slice_file_name']}"
        assert (out2 / name).read_bytes() == (out1 / name).read_bytes()


def test_make_noisy_folds_cli_and_errors(small_us8k, tmp_path):
    p = run_script("make_noisy_folds.py", small_us8k, "--out", tmp_path / "o", "--folds", "1")
    assert "noisy clips written" in p.stdout
    p = run_script("make_noisy_folds.py", small_us8k, "--out", tmp_path / "o2", "--snr_low", "9",
                   "--snr_high", "3", check=False)
    assert p.returncode == 2 and "snr_low" in p.stderr and "Traceback" not in p.stderr
    p = run_script("make_noisy_folds.py", small_us8k, "--out", small_us8k, check=False)
    assert p.returncode == 2 and "must differ" in p.stderr
    assert "events-in-noise" in run_script("make_noisy_folds.py", "--help").stdout.lower() or \
        "events in noise" in run_script("make_noisy_folds.py", "--help").stdout.lower()


def test_max_event_s_keeps_the_loudest_window(small_us8k, tmp_path):
    from audioattn_sb.data.noisy import loudest_window

    x = np.zeros(20000)
    x[3000:3100] = 0.2
    x[12000:12800] = 1.0
    # every 1600-sample window holding the loud burst ties; the first one is returned
    assert loudest_window(x, 16000, 0.1) == (11200, 12800)
    assert loudest_window(x, 16000, 5.0) == (0, 20000)
    with pytest.raises(ValueError, match="max_event_s"):
        loudest_window(x, 16000, 0)
    make_noisy_folds(small_us8k, tmp_path / "o", max_event_s=0.25, progress=False)
    with open(tmp_path / "o" / "metadata" / "events.csv", newline="") as f:
        lengths = [float(e["offset_s"]) - float(e["onset_s"]) for e in csv.DictReader(f)]
    assert lengths and max(lengths) <= 0.25 + 1e-3


def test_demo_events_layout_writes_clips_and_their_events(tmp_path):
    """make_demo_data.py --layout events: the demo's clips in noise, one event row per clip,
    each event inside its clip and at most --max_event_s long, the corpus preparable."""
    from audioattn_sb.data.noisy import read_events_csv

    out = tmp_path / "events"
    p = run_script("make_demo_data.py", "--layout", "events", "--out", str(out),
                   "--clips-per-class-per-fold", "1", "--max_event_s", "0.5")
    assert "metadata/events.csv" in p.stdout
    with open(out / "metadata" / "UrbanSound8K.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    events = read_events_csv(out / "metadata" / "events.csv")
    stem = {r["slice_file_name"]: r["slice_file_name"].rsplit(".", 1)[0] for r in rows}
    assert len(rows) == 100 and set(events) == set(stem.values())  # keyed by file id
    for r in rows:
        on, off = events[stem[r["slice_file_name"]]]
        info = sf.info(str(out / "audio" / f"fold{r['fold']}" / r["slice_file_name"]))
        assert 0.0 <= on < off <= info.duration + 1e-3 and off - on <= 0.5 + 1e-3
    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    manifests = prepare_urbansound8k(out, tmp_path / "save", list(range(3, 11)), [2], [1],
                                     cache_folder=tmp_path / "cache", progress=False)
    assert set(manifests) == {"train", "valid", "test"}
