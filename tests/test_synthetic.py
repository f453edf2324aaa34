"""The embedded demo dataset: UrbanSound8K layout, quirks, determinism, CLI, learnability."""

import filecmp
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data import synthetic
from audioattn_sb.data.synthetic import CLASS_NAMES, SOUNDS, make_demo_urbansound8k
from conftest import read_csv_rows

HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"


def _all_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, fs in os.walk(folder) for f in fs)


def test_layout_and_header_exact(demo_us8k):
    assert sorted(os.listdir(demo_us8k)) == ["audio", "demo_info.json", "metadata"]
    assert sorted(os.listdir(demo_us8k / "audio")) == sorted(f"fold{k}" for k in range(1, 11))
    assert os.listdir(demo_us8k / "metadata") == ["UrbanSound8K.csv"]
    text = (demo_us8k / "metadata" / "UrbanSound8K.csv").read_text()
    assert text.splitlines()[0] == HEADER
    rows = read_csv_rows(demo_us8k)
    assert len(rows) == 300
    assert [r["slice_file_name"] for r in rows] == sorted(r["slice_file_name"] for r in rows)
    listed = set()
    for r in rows:
        m = re.fullmatch(r"(\d+)-(\d)-(\d+)-(\d+)\.wav", r["slice_file_name"])
        assert m, r["slice_file_name"]
        assert m.group(1) == r["fsID"] and m.group(2) == r["classID"]
        assert r["class"] == CLASS_NAMES[int(r["classID"])]
        assert r["salience"] in ("1", "2")
        path = demo_us8k / "audio" / f"fold{r['fold']}" / r["slice_file_name"]
        assert path.is_file()
        info = sf.info(path)
        assert abs(float(r["end"]) - float(r["start"]) - info.frames / info.samplerate) < 2e-6
        listed.add(os.path.relpath(path, demo_us8k))
    wavs = {f for f in _all_files(demo_us8k) if f.endswith(".wav")}
    assert wavs == listed  # no audio file outside the csv
    # the slices of one recording (fsID) stay in one fold, as in the real corpus
    folds_of = {}
    for r in rows:
        folds_of.setdefault(r["fsID"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in folds_of.values())
    assert len(folds_of) < len(rows)  # some recordings have several slices


def test_every_fold_has_every_class(demo_us8k):
    rows = read_csv_rows(demo_us8k)
    counts = Counter((int(r["fold"]), int(r["classID"])) for r in rows)
    assert counts == {(f, c): 3 for f in range(1, 11) for c in range(10)}


def test_quirks_present(demo_us8k):
    rows = read_csv_rows(demo_us8k)
    infos = [sf.info(demo_us8k / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
             for r in rows]
    assert {i.samplerate for i in infos} == {8000, 11025, 16000, 22050, 44100, 48000, 96000}
    assert {i.subtype for i in infos} == {"PCM_U8", "PCM_16", "PCM_24", "FLOAT", "DOUBLE"}
    assert {i.channels for i in infos} == {1, 2}
    assert {i.format for i in infos} == {"WAV"}
    durs = np.array([i.frames / i.samplerate for i in infos])
    assert 0.05 <= durs.min() < 0.051
    assert durs.max() == 4.0
    assert np.any(np.abs(durs - 0.3) < 1e-3)
    assert np.mean((durs >= 1.0) & (durs <= 4.0)) > 0.75  # most clips 1-4 s
    assert np.mean(durs == 4.0) > 0.4
    assert np.sum(durs < 1.0) >= 3


def test_quirks_guaranteed_even_when_small(tmp_path):
    s = make_demo_urbansound8k(tmp_path / "d", clips_per_class_per_fold=1, folds=[4])
    assert s["n_clips"] == 10 and s["folds"] == [4]
    assert len(s["sample_rates"]) == 7 and len(s["subtypes"]) == 5 and s["channels"] == [1, 2]
    assert s["min_duration"] == 0.05 and s["max_duration"] <= 4.0


def test_deterministic_byte_identical(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        make_demo_urbansound8k(out, clips_per_class_per_fold=1, seed=seed, folds=[1, 2])
    files = _all_files(a)
    assert files == _all_files(b) and len(files) == 22
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    # float WAVs carry a PEAK chunk: its timestamp must not make the bytes differ
    assert any(sf.info(a / f).subtype in ("FLOAT", "DOUBLE") for f in files if f.endswith(".wav"))
    # another seed gives another dataset
    assert (a / "metadata" / "UrbanSound8K.csv").read_bytes() != \
        (c / "metadata" / "UrbanSound8K.csv").read_bytes()


def test_events_are_placed_in_time(tmp_path):
    """The event occupies part of a long clip: the loudest 0.25 s is far above the quietest."""
    make_demo_urbansound8k(tmp_path / "d", clips_per_class_per_fold=2, folds=[1])
    ratios = []
    for r in read_csv_rows(tmp_path / "d"):
        x, sr = sf.read(tmp_path / "d" / "audio" / "fold1" / r["slice_file_name"],
                        always_2d=True)
        if len(x) / sr < 3.0:
            continue
        w = int(0.25 * sr)
        e = [np.sqrt(np.mean(x[i:i + w] ** 2)) for i in range(0, len(x) - w + 1, w)]
        ratios.append(max(e) / max(min(e), 1e-9))
    assert ratios and np.median(ratios) > 5  # > 14 dB between event and background


def test_rerun_keeps_complete_demo_and_force_regenerates(tmp_path):
    out = tmp_path / "d"
    s1 = make_demo_urbansound8k(out, clips_per_class_per_fold=1, folds=[1])
    f = out / "metadata" / "UrbanSound8K.csv"
    mtime = os.stat(f).st_mtime_ns
    s2 = make_demo_urbansound8k(out, clips_per_class_per_fold=1, folds=[1])
    assert s2["skipped_existing"] and not s1["skipped_existing"]
    assert os.stat(f).st_mtime_ns == mtime
    s3 = make_demo_urbansound8k(out, clips_per_class_per_fold=1, folds=[1], force=True)
    assert not s3["skipped_existing"]
    # other options: the old demo is replaced, no stale files remain
    make_demo_urbansound8k(out, clips_per_class_per_fold=1, folds=[2])
    assert sorted(os.listdir(out / "audio")) == ["fold2"]


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a demo folder"):
        make_demo_urbansound8k(tmp_path, clips_per_class_per_fold=1, folds=[1])
    assert (tmp_path / "mine.txt").read_text() == "precious"


@pytest.mark.parametrize("kwargs", [{"clips_per_class_per_fold": 0}, {"folds": [0]},
                                    {"folds": [11]}, {"folds": []}])
def test_bad_options(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_demo_urbansound8k(tmp_path / "d", **kwargs)


def test_cli_main(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["--out", str(out), "--clips-per-class-per-fold", "1", "--seed", "3"]
    assert synthetic.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote 100 clips (10 folds x 10 classes)")
    assert len(read_csv_rows(out)) == 100
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("x")
    assert synthetic.main(["--out", str(tmp_path / "foreign")]) == 2


def test_recipe_script_help(repo_root):
    r = subprocess.run([sys.executable, str(repo_root / "recipes" / "make_demo_data.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "--clips-per-class-per-fold" in r.stdout and "UrbanSound8K" in r.stdout
    for name in CLASS_NAMES:
        assert name in r.stdout


@pytest.mark.parametrize("name", list(SOUNDS))
@pytest.mark.parametrize("sr,n", [(8000, 400), (96000, 384000), (11025, 1)])
def test_synthesizers_finite_peak_one(name, sr, n):
    x = SOUNDS[name](np.random.default_rng(0), n, sr)
    assert x.shape == (n,) and np.isfinite(x).all()
    assert np.max(np.abs(x)) == pytest.approx(1.0) or n == 1


def test_demo_is_learnable_from_log_mel(demo_us8k_prepared):
    """A linear classifier on pooled 80-band log-mel features (+ one sweep-direction feature)
    separates the classes: train folds 1-8, test folds 9-10. A CNN should do at least as well."""
    import json

    import torch
    import torchaudio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, hop_length=160, n_mels=80)
    X, y, fold = [], [], []
    for split in ("train", "valid", "test"):
        with open(demo_us8k_prepared["manifests"][split]) as f:
            entries = json.load(f)
        for e in entries.values():
            w, _ = sf.read(e["wav"], dtype="float32")
            w = np.pad(w, (0, max(0, 1024 - len(w))))
            m = torch.log(mel(torch.from_numpy(w)) + 1e-6).numpy()
            z = (m - m.mean()) / (m.std() + 1e-6)
            loud = np.argsort(m.mean(0))[-max(1, m.shape[1] // 4):]
            slope = ((z[1:, 1:] * z[:-1, :-1]).mean() - (z[:-1, 1:] * z[1:, :-1]).mean()
                     if m.shape[1] > 1 else 0.0)
            X.append(np.concatenate([m[:, loud].mean(1), m[:, loud].std(1), m.mean(1), [slope]]))
            y.append(e["classID"])
            fold.append(e["fold"])
    X, y, fold = np.array(X), np.array(y), np.array(fold)
    tr, te = fold <= 8, fold >= 9
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(X[tr], y[tr])
    acc = float(np.mean(clf.predict(X[te]) == y[te]))
    assert acc >= 0.8, acc
