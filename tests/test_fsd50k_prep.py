"""FSD50K preparation (manifests vs csv, multi-hot, chunks, tiling, bad inputs) and the
FSD50K-layout demo generator."""

import csv
import filecmp
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data import fsd50k
from audioattn_sb.data.fsd50k import (PrepareError, build_chunk_datasets, chunk_bounds,
                                      chunk_layout, load_chunk, load_class_names,
                                      load_vocabulary, prepare_fsd50k)
from audioattn_sb.data.synthetic_fsd50k import CLASSES, main as demo_main, make_demo_fsd50k

GT = "FSD50K.ground_truth"
SPLIT_OF = {"train": ("dev", "train"), "valid": ("dev", "val"), "test": ("eval", None)}


def _load(path):
    with open(path) as f:
        return json.load(f)


def _rows(data, which):
    """csv rows of dev/eval.csv as dicts with ``_line`` (header = line 1)."""
    with open(os.path.join(data, GT, f"{which}.csv"), newline="") as f:
        reader = csv.DictReader(f)
        out = []
        for r in reader:
            r["_line"] = reader.line_num
            out.append(r)
    return out


def _prep(data, tmp_path, save="save", **kw):
    kw.setdefault("cache_folder", tmp_path / "cache")
    kw.setdefault("progress", False)
    return prepare_fsd50k(data, tmp_path / save, **kw)


def _replace_line(data, which, fname, new_line):
    """Replace the csv line of ``fname`` by ``new_line`` (None deletes it); returns its number."""
    path = os.path.join(data, GT, f"{which}.csv")
    with open(path, newline="") as f:
        lines = f.read().split("\n")
    idx = next(i for i, line in enumerate(lines) if line.split(",", 1)[0] == fname)
    if new_line is None:
        del lines[idx]
    else:
        lines[idx] = new_line
    with open(path, "w", newline="") as f:
        f.write("\n".join(lines))
    return idx + 1


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def prepared(demo_fsd50k, tmp_path_factory):
    root = tmp_path_factory.mktemp("fsd50k_prep")
    paths = prepare_fsd50k(demo_fsd50k, root / "save", cache_folder=root / "cache",
                           progress=False)
    return {"data": demo_fsd50k, "root": root, "paths": paths}


@pytest.fixture(scope="session")
def _small_master(tmp_path_factory):
    out = tmp_path_factory.mktemp("small_fsd50k_master")
    make_demo_fsd50k(out, n_train=6, n_val=4, n_eval=4, seed=3, sample_rate=16000)
    return out


@pytest.fixture
def small(_small_master, tmp_path):
    """A private, writable 14-clip FSD50K-layout demo (6 train / 4 val / 4 eval)."""
    dst = tmp_path / "small_fsd50k"
    shutil.copytree(_small_master, dst)
    return dst


# --------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("n,expected", [
    (1, [(0, 1)]),
    (4800, [(0, 4800)]),                                 # 0.3 s → 1 chunk, tiled when loaded
    (15999, [(0, 15999)]),
    (16000, [(0, 16000)]),
    (16001, [(0, 16000), (1, 16001)]),                   # 1 sample over: 2 chunks
    (24000, [(0, 16000), (8000, 24000)]),                # 1.5 s: exactly 2
    (24001, [(0, 16000), (8000, 24000), (8001, 24001)]),
    (40000, [(0, 16000), (8000, 24000), (16000, 32000), (24000, 40000)]),  # 2.5 s: 4
])
def test_chunk_bounds_hand_worked(n, expected):
    assert chunk_bounds(n, 16000, 8000) == expected


def test_chunk_bounds_without_overlap_and_other_hops():
    assert chunk_layout(16000, 1.0, 0.0) == (16000, 16000)
    assert chunk_bounds(40000, 16000, 16000) == [(0, 16000), (16000, 32000), (24000, 40000)]
    assert chunk_layout(16000, 1.0, 0.75) == (16000, 4000)
    assert chunk_bounds(20000, 16000, 4000) == [(0, 16000), (4000, 20000)]
    assert chunk_layout(16000, 0.5, 0.5) == (8000, 4000)
    for bad in ((1.0, 1.0), (1.0, -0.1), (0.0, 0.5)):
        with pytest.raises(ValueError):
            chunk_layout(16000, *bad)


@pytest.mark.parametrize("n", [1, 777, 15999, 16000, 16001, 23999, 31999, 32000, 160000, 470001])
@pytest.mark.parametrize("length,hop", [(16000, 8000), (16000, 16000), (16000, 5333)])
def test_chunk_bounds_cover_the_clip(n, length, hop):
    b = chunk_bounds(n, length, hop)
    starts = [s for s, _ in b]
    assert b[0][0] == 0 and b[-1][1] == n
    assert starts == sorted(set(starts))
    if n <= length:
        assert b == [(0, n)]
    else:
        assert all(e - s == length for s, e in b)
        assert all(0 < b2 - b1 <= hop for b1, b2 in zip(starts, starts[1:]))
        assert len(b) == 1 + -(-(n - length) // hop)


def test_load_chunk_tiles_short_audio_and_reads_slices(tmp_path):
    x = np.linspace(-0.5, 0.5, 4800).astype(np.float32)  # 0.3 s
    p = tmp_path / "a.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    tiled = load_chunk(p, 0, 4800, 16000)
    assert tiled.shape == (16000,) and tiled.dtype == np.float32
    np.testing.assert_array_equal(tiled[:4800], x)
    np.testing.assert_array_equal(tiled[4800:9600], x)
    np.testing.assert_array_equal(tiled[14400:], x[:1600])
    np.testing.assert_array_equal(load_chunk(p, 1000, 3000, 2000), x[1000:3000])


# --------------------------------------------------------------------------- manifests
def test_manifests_match_the_csvs(prepared):
    data, root = prepared["data"], prepared["root"]
    vocab = load_vocabulary(data)
    index = {label: i for i, (label, _) in enumerate(vocab)}
    assert set(os.listdir(root / "save")) == {"train.json", "valid.json", "test.json",
                                               "prepare_options.json", "prepare_report.json"}
    rows = {"dev": _rows(data, "dev"), "eval": _rows(data, "eval")}
    total_chunks = 0
    for split, (which, value) in SPLIT_OF.items():
        manifest = _load(prepared["paths"][split])
        want = {r["fname"]: r for r in rows[which] if value is None or r["split"] == value}
        by_clip = {}
        for key, e in manifest.items():
            by_clip.setdefault(e["clip"], []).append((key, e))
        assert set(by_clip) == set(want)
        for fname, chunks in by_clip.items():
            labels = want[fname]["labels"].split(",")  # the csv module removed the quotes
            assert all(e["labels"] == sorted(labels, key=index.get) for _, e in chunks)
            assert chunks[0][1]["label_ids"] == sorted(index[lab] for lab in labels)
            info = sf.info(chunks[0][1]["wav"])
            assert info.samplerate == 16000 and info.channels == 1
            bounds = chunk_bounds(info.frames, 16000, 8000)
            assert [(e["start"], e["stop"]) for _, e in chunks] == bounds
            assert [k for k, _ in chunks] == [f"{fname}_{i}" for i in range(len(bounds))]
            assert all(e["n_chunks"] == len(bounds) and e["chunk_samples"] == 16000
                       for _, e in chunks)
            assert chunks[0][1]["source"] == os.path.join(
                "FSD50K.dev_audio" if which == "dev" else "FSD50K.eval_audio", fname + ".wav")
            assert chunks[0][1]["wav"].startswith(str(root / "cache" / which))
        total_chunks += len(manifest)
    report = _load(root / "save" / "prepare_report.json")
    assert report["counts"] == {"train": 120, "valid": 30, "test": 60}
    assert sum(report["chunk_counts"].values()) == total_chunks
    assert report["n_skipped"] == 0 and report["tiled"] >= 3
    # nothing written into the data folder
    assert sorted(os.listdir(data)) == sorted([GT, "FSD50K.dev_audio", "FSD50K.eval_audio",
                                               "demo_info.json"])


def test_multi_hot_targets_and_tiled_signals(prepared):
    n = len(load_class_names(prepared["data"]))
    ds = build_chunk_datasets({"valid": prepared["paths"]["valid"]}, n)["valid"]
    manifest = _load(prepared["paths"]["valid"])
    short = 0
    for i, (key, e) in enumerate(manifest.items()):
        item = ds[i]
        assert item["id"] == key and item["clip"] == e["clip"]
        want = np.zeros(n, dtype=np.float32)
        want[e["label_ids"]] = 1
        np.testing.assert_array_equal(item["targets"].numpy(), want)
        assert item["sig"].shape == (16000,)
        if e["stop"] - e["start"] < 16000:
            short += 1
            clip, _ = sf.read(e["wav"], dtype="float32")
            assert clip.shape[0] == e["stop"] < 16000
            np.testing.assert_array_equal(item["sig"].numpy(), np.resize(clip, 16000))
    assert short >= 1  # every demo split has a 0.3 s clip


def test_feature_cache_path_gives_features(prepared):
    from audioattn_sb.features import FeatureCache

    from speechbrain.lobes.features import Fbank

    cache = FeatureCache(Fbank(n_mels=80))
    ds = build_chunk_datasets({"test": prepared["paths"]["test"]}, 10, cache)["test"]
    assert ds[0]["feats"].shape == (101, 80) and len(cache.store) == 1


def test_rerun_reuses_and_option_change_reprepares(small, tmp_path):
    _prep(small, tmp_path)
    opts = tmp_path / "save" / "prepare_options.json"
    mtime = os.stat(opts).st_mtime_ns
    _prep(small, tmp_path)
    assert os.stat(opts).st_mtime_ns == mtime  # reused, nothing rewritten
    paths = _prep(small, tmp_path, chunk_overlap=0.0)
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["resampled"] == 0 and report["reused_from_cache"] == 14
    for e in _load(paths["train"]).values():
        assert e["start"] % 16000 == 0 or e["stop"] == round(e["clip_duration"] * 16000)


def test_44k_sources_are_resampled_once(tmp_path):
    data = tmp_path / "d44"
    make_demo_fsd50k(data, n_train=2, n_val=1, n_eval=1, seed=5)
    assert sf.info(next((data / "FSD50K.eval_audio").iterdir())).samplerate == 44100
    paths = _prep(data, tmp_path)
    for e in _load(paths["test"]).values():
        info = sf.info(e["wav"])
        assert info.samplerate == 16000 and info.subtype == "FLOAT"
        assert abs(info.frames - e["clip_duration"] * 16000) < 1
        assert e["clip_duration"] == pytest.approx(
            sf.info(data / e["source"]).duration, abs=1 / 16000)


# --------------------------------------------------------------------------- csv parsing
def test_quoted_fields_parse_and_vocabulary_order(small):
    d = str(small)
    rows = _rows(d, "dev")
    r = rows[0]
    labels = [CLASSES[0][0], CLASSES[3][0], CLASSES[7][0]]  # written in a non-sorted order
    mids = [CLASSES[0][1], CLASSES[3][1], CLASSES[7][1]]
    line = (f'{r["fname"]},"{labels[2]},{labels[0]},{labels[1]}",'
            f'"{mids[2]},{mids[0]},{mids[1]}",{r["split"]}')
    _replace_line(d, "dev", r["fname"], line)
    save = small.parent / "save"
    paths = prepare_fsd50k(d, save, cache_folder=small.parent / "cache", progress=False)
    split = "train" if r["split"] == "train" else "valid"
    e = _load(paths[split])[f"{r['fname']}_0"]
    assert e["label_ids"] == [0, 3, 7] and e["labels"] == labels


def test_vocabulary_header_tolerated_and_bad_vocabularies_refused(small):
    path = small / GT / "vocabulary.csv"
    text = path.read_text()
    path.write_text("index,label,mid\n" + text)
    assert load_class_names(small) == [c[0] for c in CLASSES]
    for bad, match in [
        (text.replace("1,Hum,", "11,Hum,"), "without gaps"),
        (text.replace("1,Hum,", "1,Siren,"), "label 'Siren' is listed twice"),
        (text.replace("/m/demo01", "/m/demo00"), "mid '/m/demo00' is listed twice"),
        (text.replace("1,Hum,/m/demo01", "1,Hum"), "2 fields, expected 3"),
        (text.replace("1,Hum,", "one,Hum,"), "not an integer"),
        ("", "no classes"),
    ]:
        path.write_text(bad)
        with pytest.raises(PrepareError, match=match):
            load_vocabulary(small)


def test_missing_csv_says_what_to_do(small, tmp_path):
    os.remove(small / GT / "eval.csv")
    with pytest.raises(FileNotFoundError, match="make_demo_data.py --layout fsd50k"):
        _prep(small, tmp_path)


# --------------------------------------------------------------------------- bad rows
def _bad_row(kind, folder):
    """Corrupt one row (dev train unless stated); returns (which csv, fname, expected text)."""
    dev = _rows(folder, "dev")
    r = next(x for x in dev if x["split"] == "train")
    f = r["fname"]
    audio = folder / "FSD50K.dev_audio" / f"{f}.wav"
    if kind == "unknown_label":
        _replace_line(folder, "dev", f, f'{f},"Siren,Kazoo","/m/demo00,/m/x",train')
        return "dev", f, "unknown label(s) ['Kazoo']"
    if kind == "label_mid_mismatch":
        _replace_line(folder, "dev", f, f'{f},"Siren,Hum","/m/demo00,/m/demo02",train')
        return "dev", f, "labels and mids disagree"
    if kind == "mid_count":
        _replace_line(folder, "dev", f, f'{f},"Siren,Hum",/m/demo00,train')
        return "dev", f, "2 labels but 1 mids"
    if kind == "unquoted":
        _replace_line(folder, "dev", f, f"{f},Siren,Hum,/m/demo00,/m/demo01,train")
        return "dev", f, "6 fields where the header has 4"
    if kind == "missing_field":
        _replace_line(folder, "dev", f, f"{f},Siren,/m/demo00")
        return "dev", f, "3 fields where the header has 4"
    if kind == "bad_split":
        _replace_line(folder, "dev", f, f"{f},Siren,/m/demo00,test")
        return "dev", f, "split 'test' is neither"
    if kind == "no_labels":
        _replace_line(folder, "dev", f, f'{f},"","",train')
        return "dev", f, "no labels"
    if kind == "duplicate_label":
        _replace_line(folder, "dev", f, f'{f},"Siren,Siren","/m/demo00,/m/demo00",train')
        return "dev", f, "listed twice"
    if kind == "duplicate_fname":
        e = _rows(folder, "eval")[0]
        _replace_line(folder, "eval", e["fname"], f'{f},{e["labels"]!s},{e["mids"]!s}'
                      if "," not in e["labels"] else
                      f'{f},"{e["labels"]}","{e["mids"]}"')
        return "eval", f, f"fname {f} is listed twice"
    if kind == "missing_audio":
        os.remove(audio)
        return "dev", f, "audio file missing"
    if kind == "unreadable":
        audio.write_bytes(b"this is not a wav file at all" * 10)
        return "dev", f, "unreadable audio"
    if kind == "empty_file":
        audio.write_bytes(b"")
        return "dev", f, "empty file"
    if kind == "nan":
        x = np.zeros(8000, dtype=np.float32)
        x[10] = np.nan
        sf.write(audio, x, 16000, subtype="FLOAT")
        return "dev", f, "NaN/infinite"
    raise AssertionError(kind)


BAD_KINDS = ["unknown_label", "label_mid_mismatch", "mid_count", "unquoted", "missing_field",
             "bad_split", "no_labels", "duplicate_label", "duplicate_fname", "missing_audio",
             "unreadable", "empty_file", "nan"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_a_clear_error_naming_file_and_line(small, tmp_path, kind):
    which, fname, expected = _bad_row(kind, small)
    line = next((r["_line"] for r in _rows(small, which) if r["fname"] == fname), None)
    with pytest.raises(PrepareError) as err:
        _prep(small, tmp_path)
    msg = str(err.value)
    assert expected in msg
    assert f"{which}.csv line" in msg and fname in msg
    if line is not None and kind not in ("duplicate_fname",):
        assert f"line {line}" in msg
    assert "skip_bad_files=True" in msg
    assert not (tmp_path / "save" / "train.json").exists()


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_skipped_and_counted(small, tmp_path, kind):
    which, fname, expected = _bad_row(kind, small)
    paths = _prep(small, tmp_path, skip_bad_files=True)
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["n_skipped"] == 1 and len(report["skipped"]) == 1
    p = report["skipped"][0]
    assert p["csv"] == f"{which}.csv" and p["file"] == fname and expected in p["reason"]
    kept = {e["clip"] for s in ("train", "valid", "test") for e in _load(paths[s]).values()}
    assert len(kept) == 13
    if kind == "duplicate_fname":  # the first occurrence (dev) is kept, the eval copy skipped
        assert fname in kept
        assert fname not in {e["clip"] for e in _load(paths["test"]).values()}
    else:
        assert fname not in kept
    assert "skipped 1" in report["summary"]


def test_empty_split_is_always_an_error(small, tmp_path):
    for r in _rows(small, "dev"):
        if r["split"] == "val":
            _replace_line(small, "dev", r["fname"], None)
    for skip in (False, True):
        with pytest.raises(PrepareError, match=r"the valid split \(dev.csv rows with split=val\) "
                                               "is empty"):
            _prep(small, tmp_path, skip_bad_files=skip)


def test_split_emptied_by_skipped_files_is_an_error(small, tmp_path):
    for r in _rows(small, "eval"):
        os.remove(small / "FSD50K.eval_audio" / f"{r['fname']}.wav")
    with pytest.raises(PrepareError, match="the test split .* all its rows were skipped"):
        _prep(small, tmp_path, skip_bad_files=True)
    assert _load(tmp_path / "save" / "prepare_report.json")["n_skipped"] == 4


def test_csv_syntax_error_names_the_line(small, tmp_path):
    r = _rows(small, "dev")[2]
    line = _replace_line(small, "dev", r["fname"], f'{r["fname"]},"Siren,/m/demo00,train')
    with pytest.raises(PrepareError, match=f"line {line} .*an unclosed double quote: this "
                                           f"record runs from line {line} to line {line + 1}"):
        _prep(small, tmp_path)
    _replace_line(small, "dev", r["fname"], f'{r["fname"]},"Siren"x,/m/demo00,train')
    with pytest.raises(PrepareError, match=f"line {line}"):
        prepare_fsd50k(small, tmp_path / "s2", cache_folder=tmp_path / "c2", progress=False)


# --------------------------------------------------------------------------- demo generator
def test_demo_layout_and_exact_csv_format(demo_fsd50k):
    d = demo_fsd50k
    assert sorted(os.listdir(d / GT)) == ["dev.csv", "eval.csv", "vocabulary.csv"]
    dev_text = (d / GT / "dev.csv").read_text()
    assert dev_text.splitlines()[0] == "fname,labels,mids,split"
    assert (d / GT / "eval.csv").read_text().splitlines()[0] == "fname,labels,mids"
    assert (d / GT / "vocabulary.csv").read_text().splitlines()[0] == "0,Siren,/m/demo00"
    multi = [line for line in dev_text.splitlines()[1:] if line.count('"') == 4]
    assert multi and all(line.split(",", 1)[1].startswith('"') for line in multi)
    n_labels, durations = [], []
    for which, n in (("dev", 150), ("eval", 60)):
        rows = _rows(d, which)
        assert len(rows) == n
        assert [int(r["fname"]) for r in rows] == sorted(int(r["fname"]) for r in rows)
        for r in rows:
            labels = r["labels"].split(",")
            n_labels.append(len(labels))
            assert len(set(labels)) == len(labels)
            info = sf.info(d / ("FSD50K.dev_audio" if which == "dev" else "FSD50K.eval_audio")
                           / f"{r['fname']}.wav")
            durations.append(info.duration)
        split_labels = {}
        for r in rows:
            split_labels.setdefault(r.get("split"), set()).update(r["labels"].split(","))
        assert all(v == {c[0] for c in CLASSES} for v in split_labels.values())
    assert set(n_labels) == {1, 2, 3}
    assert min(durations) == pytest.approx(0.3) and max(durations) <= 10.0
    assert sum(x < 1.0 for x in durations) >= 10


def test_demo_is_deterministic_and_rerun_is_a_no_op(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert demo_main(["--out", str(out), "--n-train", "4", "--n-val", "2", "--n-eval", "2",
                          "--sample-rate", "22050"]) == 0
    files = [os.path.relpath(os.path.join(r, f), a) for r, _, fs in os.walk(a) for f in fs]
    assert len(files) == 12
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    mtime = os.stat(a / GT / "dev.csv").st_mtime_ns
    s = make_demo_fsd50k(a, n_train=4, n_val=2, n_eval=2, sample_rate=22050)
    assert s["skipped_existing"] and os.stat(a / GT / "dev.csv").st_mtime_ns == mtime
    assert make_demo_fsd50k(a, n_train=4, n_val=2, n_eval=3, sample_rate=22050)["n_clips"] == 9
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("x")
    assert demo_main(["--out", str(tmp_path / "foreign")]) == 2
    assert "not an FSD50K demo folder" in capsys.readouterr().err


def test_make_demo_data_script_layout_option(repo_root, tmp_path):
    script = str(repo_root / "recipes" / "make_demo_data.py")
    r = subprocess.run([sys.executable, script, "--layout", "fsd50k", "--out",
                        str(tmp_path / "d"), "--n-train", "3", "--n-val", "2", "--n-eval", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote 7 FSD50K-layout clips")
    assert (tmp_path / "d" / GT / "dev.csv").is_file()
    r = subprocess.run([sys.executable, script, "--layout=nope"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "us8k, fsd50k" in r.stderr


def test_module_constants_describe_the_layout():
    assert fsd50k.DEV_CSV == os.path.join(GT, "dev.csv")
    assert fsd50k.SPLIT_SOURCES["valid"] == ("dev", "val")


def test_file_without_a_row_is_counted_logged_and_unused(small, tmp_path, caplog):
    src = next((small / "FSD50K.eval_audio").glob("*.wav"))
    shutil.copy(src, small / "FSD50K.eval_audio" / "999999.wav")
    with caplog.at_level(logging.INFO, logger="audioattn_sb.data"):
        paths = _prep(small, tmp_path)
    assert "1 audio file(s) have no row in dev.csv / eval.csv" in caplog.text
    report = json.loads((tmp_path / "save" / "prepare_report.json").read_text())
    assert report["unlisted"] == ["FSD50K.eval_audio/999999.wav"]
    assert not any(e["clip"] == "999999" for e in _load(paths["test"]).values())
