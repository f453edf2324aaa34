"""UrbanSound8K preparation: folds, manifests vs csv, quirks, cache, every bad input, ESC-10."""

import json
import logging
import math
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data import audio
from audioattn_sb.data import urbansound8k as us8k
from audioattn_sb.data.synthetic import CLASS_NAMES
from audioattn_sb.data.urbansound8k import (PrepareError, check_folds, load_class_names,
                                            prepare_urbansound8k)
from conftest import read_csv_rows, write_csv_rows

SPLIT_FILES = {"train.json", "valid.json", "test.json", "prepare_options.json",
               "prepare_report.json"}


def _load(path):
    with open(path) as f:
        return json.load(f)


def _tmp_files(*folders):
    return [os.path.join(d, f) for folder in folders for d, _, fs in os.walk(folder)
            for f in fs if f.endswith(".tmp")]


def _prep(data, tmp_path, train=(1,), valid=(2,), test=(3,), save="save", **kw):
    kw.setdefault("cache_folder", tmp_path / "cache")
    kw.setdefault("progress", False)
    return prepare_urbansound8k(data, tmp_path / save, list(train), list(valid), list(test), **kw)


def _src(folder, row):
    return folder / "audio" / f"fold{row['fold']}" / row["slice_file_name"]


# --------------------------------------------------------------------------- folds
@pytest.mark.parametrize("train,valid,test", [
    ([3, 4, 5, 6, 7, 8, 9, 10], [2], [1]), ([1], [2], [3]), (2, 3, 4), ((1, 2), [3], (4, 5)),
    ([np.int64(1)], [2], [3])])
def test_check_folds_ok(train, valid, test):
    tr, va, te = check_folds(train, valid, test)
    assert all(isinstance(f, int) for f in tr + va + te)


@pytest.mark.parametrize("train,valid,test,match", [
    ([0], [2], [3], "outside 1..10"), ([1], [11], [3], "outside 1..10"),
    ([], [2], [3], "empty"), ([1], [], [3], "empty"), ([1], [2], None, "missing"),
    ([1, 2], [2], [3], "share fold"), ([1, 3], [2], [3], "share fold"),
    ([1, 1], [2], [3], "twice"), (["a"], [2], [3], "not a fold number"),
    ([True], [2], [3], "not a fold number"), ([1.5], [2], [3], "not a fold number")])
def test_check_folds_errors(train, valid, test, match):
    with pytest.raises(ValueError, match=match):
        check_folds(train, valid, test)


@pytest.mark.parametrize("valid,test", [([1], [1]), ([1, 2], [2, 3])])
def test_valid_test_overlap_is_an_error_explained(valid, test):
    with pytest.raises(ValueError) as e:
        check_folds([5, 6], valid, test)
    msg = str(e.value)
    assert "test data" in msg and "biased" in msg and "allow_valid_test_overlap=True" in msg


def test_valid_test_overlap_allowed_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="audioattn_sb.data"):
        assert check_folds([2, 3], [1], [1], allow_valid_test_overlap=True) == ([2, 3], [1], [1])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) >= 3
    text = "\n".join(r.getMessage() for r in warnings)
    assert "SELECTED ON TEST DATA" in text and "BIASED" in text


# --------------------------------------------------------------------------- the demo, all folds
def test_manifests_equal_the_csv(demo_us8k_prepared):
    p = demo_us8k_prepared
    rows = read_csv_rows(p["data_folder"])
    want = {"train": set(range(1, 9)), "valid": {9}, "test": {10}}
    seen = {}
    for split, folds in want.items():
        m = _load(p["manifests"][split])
        expected = {os.path.splitext(r["slice_file_name"])[0]: r for r in rows
                    if int(r["fold"]) in folds}
        assert set(m) == set(expected), split
        for clip_id, e in m.items():
            r = expected[clip_id]
            assert set(e) == {"wav", "duration", "fold", "classID", "class_string", "source"}
            assert e["fold"] == int(r["fold"]) and e["classID"] == int(r["classID"])
            assert e["class_string"] == r["class"]
            assert e["source"] == f"audio/fold{r['fold']}/{r['slice_file_name']}"
            assert os.path.isabs(e["wav"])
            assert e["wav"] == str(p["cache_folder"] / f"fold{r['fold']}" / f"{clip_id}.wav")
            assert clip_id not in seen
            seen[clip_id] = split
    assert len(seen) == len(rows) == 300
    assert p["class_names"] == CLASS_NAMES
    report = _load(p["save_folder"] / "prepare_report.json")
    assert report["counts"] == {"train": 240, "valid": 30, "test": 30}
    assert report["n_skipped"] == 0 and report["resampled"] == 300
    assert report["summary"] == ("prepared 300 clips (train 240 / valid 30 / test 30), "
                                 "resampled 300, reused from cache 0, skipped 0")


def test_every_quirk_read_correctly(demo_us8k_prepared):
    p = demo_us8k_prepared
    rows = {os.path.splitext(r["slice_file_name"])[0]: r for r in read_csv_rows(p["data_folder"])}
    seen = {"rate": set(), "subtype": set(), "channels": set()}
    for split in ("train", "valid", "test"):
        for clip_id, e in _load(p["manifests"][split]).items():
            src = sf.info(p["data_folder"] / e["source"])
            seen["rate"].add(src.samplerate)
            seen["subtype"].add(src.subtype)
            seen["channels"].add(src.channels)
            c = sf.info(e["wav"])
            assert (c.samplerate, c.channels, c.subtype) == (16000, 1, "FLOAT")
            assert e["duration"] == c.frames / 16000
            assert c.frames == math.ceil(src.frames * 16000 / src.samplerate)
            assert abs(e["duration"] - src.frames / src.samplerate) <= 1 / 16000
            r = rows[clip_id]
            assert abs(e["duration"] - (float(r["end"]) - float(r["start"]))) <= 1 / 16000 + 1e-6
            x, _ = sf.read(e["wav"], dtype="float32")
            assert np.isfinite(x).all() and np.abs(x).max() > 0.01
    assert len(seen["rate"]) == 7 and len(seen["subtype"]) == 5 and seen["channels"] == {1, 2}


def test_cached_audio_matches_source(demo_us8k_prepared):
    """Downmixed and resampled content equals an independent scipy resampling of the source.

    Compared in the band below 0.35 x min(source rate, 16 kHz): the two anti-aliasing filters
    legitimately differ in their transition bands near the Nyquist frequencies."""
    from scipy.signal import resample_poly

    p = demo_us8k_prepared
    checked = 0
    for e in _load(p["manifests"]["train"]).values():
        x, sr = sf.read(p["data_folder"] / e["source"], always_2d=True)
        if len(x) / sr < 1.0 or sr == 16000:
            continue
        g = math.gcd(sr, 16000)
        ref = resample_poly(x.mean(1), 16000 // g, sr // g)
        y, _ = sf.read(e["wav"])
        assert abs(len(y) - len(ref)) <= 1
        n = min(len(ref), len(y))
        A, B = np.fft.rfft(ref[:n]), np.fft.rfft(y[:n])
        band = np.fft.rfftfreq(n, 1 / 16000) < 0.35 * min(sr, 16000)
        rel = np.sqrt(np.sum(np.abs(A[band] - B[band]) ** 2) / np.sum(np.abs(A[band]) ** 2))
        assert rel < 0.02, (e["source"], sr, rel)
        checked += 1
    assert checked >= 50


def test_manifests_only_in_save_folder(demo_us8k_prepared):
    p = demo_us8k_prepared
    assert set(os.listdir(p["save_folder"])) == SPLIT_FILES
    assert sorted(os.listdir(p["data_folder"])) == ["audio", "demo_info.json", "metadata"]
    assert _tmp_files(p["save_folder"], p["cache_folder"], p["data_folder"]) == []
    opts = _load(p["save_folder"] / "prepare_options.json")
    assert opts["valid_fold_nums"] == [9] and opts["sample_rate"] == 16000


def test_second_run_same_cache_reads_no_source(demo_us8k_prepared, tmp_path, monkeypatch):
    p = demo_us8k_prepared

    def boom(*a, **k):
        raise AssertionError("a source file was read although the cache is valid")

    monkeypatch.setattr(audio, "read_audio", boom)
    monkeypatch.setattr(audio.sf, "read", boom)
    paths = prepare_urbansound8k(p["data_folder"], tmp_path / "other_run", list(range(1, 9)),
                                 [9], [10], cache_folder=p["cache_folder"], progress=False)
    for split in ("train", "valid", "test"):
        assert _load(paths[split]) == _load(p["manifests"][split])
    report = _load(tmp_path / "other_run" / "prepare_report.json")
    assert report["resampled"] == 0 and report["reused_from_cache"] == 300


def test_rerun_same_save_folder_reuses_manifests(demo_us8k_prepared, monkeypatch):
    p = demo_us8k_prepared
    mtimes = {f: os.stat(p["save_folder"] / f).st_mtime_ns for f in SPLIT_FILES}

    def boom(*a, **k):
        raise AssertionError("the cache was consulted although the manifests are up to date")

    monkeypatch.setattr(audio, "cache_resampled", boom)
    paths = prepare_urbansound8k(p["data_folder"], p["save_folder"], list(range(1, 9)), [9],
                                 [10], cache_folder=p["cache_folder"], progress=False)
    assert paths == p["manifests"]
    assert mtimes == {f: os.stat(p["save_folder"] / f).st_mtime_ns for f in SPLIT_FILES}


def test_prepare_summary_line_logged(small_us8k, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="audioattn_sb.data"):
        _prep(small_us8k, tmp_path)
    assert ("prepared 30 clips (train 10 / valid 10 / test 10), resampled 30, "
            "reused from cache 0, skipped 0") in caplog.text


def test_file_without_a_row_is_counted_logged_and_unused(small_us8k, tmp_path, caplog):
    src = next((small_us8k / "audio" / "fold1").glob("*.wav"))
    shutil.copy(src, small_us8k / "audio" / "fold1" / "99999-0-0-0.wav")
    with caplog.at_level(logging.INFO, logger="audioattn_sb.data"):
        paths = _prep(small_us8k, tmp_path)
    assert "1 audio file(s) have no row" in caplog.text
    assert "fold1/99999-0-0-0.wav" in caplog.text
    report = json.loads((tmp_path / "save" / "prepare_report.json").read_text())
    assert report["n_unlisted"] == 1 and report["unlisted"] == ["fold1/99999-0-0-0.wav"]
    assert "99999-0-0-0" not in json.loads(open(paths["train"]).read())
    assert "files without a csv row 1" in report["summary"]


# --------------------------------------------------------------------------- cache redo, options
def test_changed_source_is_redone(small_us8k, small_us8k_rows, tmp_path):
    paths = _prep(small_us8k, tmp_path)
    row = next(r for r in small_us8k_rows if r["fold"] == "2")
    clip_id = os.path.splitext(row["slice_file_name"])[0]
    src = _src(small_us8k, row)
    sf.write(src, np.full(int(0.7 * 22050), 0.1), 22050, subtype="PCM_16")
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    # same save folder: the sources' fingerprint changed, so it is prepared again
    paths2 = _prep(small_us8k, tmp_path)
    assert paths2 == paths
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["resampled"] == 1 and report["reused_from_cache"] == 29
    e = _load(paths2["valid"])[clip_id]
    assert e["duration"] == math.ceil(0.7 * 22050 * 16000 / 22050) / 16000
    assert sf.info(e["wav"]).frames == math.ceil(0.7 * 16000)


def test_changed_options_reprepare(small_us8k, tmp_path):
    _prep(small_us8k, tmp_path, train=(1,), valid=(2,), test=(3,))
    paths = _prep(small_us8k, tmp_path, train=(2,), valid=(3,), test=(1,))
    assert {e["fold"] for e in _load(paths["train"]).values()} == {2}
    assert {e["fold"] for e in _load(paths["test"]).values()} == {1}
    assert _load(tmp_path / "save" / "prepare_options.json")["train_fold_nums"] == [2]
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["resampled"] == 0 and report["reused_from_cache"] == 30


def test_default_cache_folder_inside_data_folder(small_us8k, tmp_path):
    paths = prepare_urbansound8k(small_us8k, tmp_path / "s", [1], [2], [3], progress=False)
    e = next(iter(_load(paths["train"]).values()))
    assert e["wav"].startswith(str(small_us8k / "audioattn_cache_16k" / "fold1"))


def test_only_needed_folds_are_processed(small_us8k, tmp_path):
    prepare_urbansound8k(small_us8k, tmp_path / "s", [1], [2], [3], cache_folder=tmp_path / "c",
                         progress=False)
    assert sorted(os.listdir(tmp_path / "c")) == ["fold1", "fold2", "fold3"]
    write_csv_rows(small_us8k, [dict(r, fold="4") if r["fold"] == "3" else r
                            for r in read_csv_rows(small_us8k)])
    os.rename(small_us8k / "audio" / "fold3", small_us8k / "audio" / "fold4")
    prepare_urbansound8k(small_us8k, tmp_path / "s2", [1], [2], [4],
                         cache_folder=tmp_path / "c2", progress=False)
    assert sorted(os.listdir(tmp_path / "c2")) == ["fold1", "fold2", "fold4"]


# --------------------------------------------------------------------------- bad inputs
def _corrupt(kind, folder, rows):
    """Damage one row of fold 2 (or its file); return (row, reason keyword in the report)."""
    row = next(r for r in rows if r["fold"] == "2")
    src = _src(folder, row)
    if kind == "zero_bytes":
        src.write_bytes(b"")
        return row, "unreadable"
    if kind == "truncated":
        data = src.read_bytes()
        src.write_bytes(data[: max(60, len(data) // 2)])
        return row, "truncated"
    if kind == "text_as_wav":
        src.write_text("this is a text file renamed to .wav\n" * 50)
        return row, "unreadable"
    if kind == "missing":
        src.unlink()
        return row, "missing"
    if kind in ("all_nan", "some_inf"):
        x = np.zeros(8000)
        if kind == "all_nan":
            x[:] = np.nan
        else:
            x[10:20] = np.inf
        sf.write(src, x, 16000, subtype="FLOAT")
        return row, "NaN"
    if kind == "fold_11":
        new = [dict(r, fold="11") if r is row else r for r in rows]
        write_csv_rows(folder, new)
        return row, "outside 1..10"
    if kind == "class_mismatch":
        other = CLASS_NAMES[(int(row["classID"]) + 1) % 10]
        new = [dict(r, **{"class": other}) if r is row else r for r in rows]
        write_csv_rows(folder, new)
        return row, f"is class '{other}' here"
    if kind == "bad_fold_value":
        write_csv_rows(folder, [dict(r, fold="two") if r is row else r for r in rows])
        return row, "not an integer"
    if kind == "duplicate_row":
        write_csv_rows(folder, rows + [dict(row, fold="1")])
        return dict(row, _line=len(rows) + 2), "listed twice"
    raise AssertionError(kind)


BAD_KINDS = ["zero_bytes", "truncated", "text_as_wav", "missing", "all_nan", "some_inf",
             "fold_11", "class_mismatch", "bad_fold_value", "duplicate_row"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_an_error_naming_row_and_file(kind, small_us8k, small_us8k_rows, tmp_path):
    row, keyword = _corrupt(kind, small_us8k, small_us8k_rows)
    with pytest.raises(PrepareError) as e:
        _prep(small_us8k, tmp_path)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert row["slice_file_name"] in msg
    assert f"line {row['_line']}" in msg
    assert keyword in msg
    assert "skip_bad_files=True" in msg and "fix or delete" in msg
    assert not (tmp_path / "save" / "train.json").exists()
    assert _tmp_files(tmp_path) == []


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_skipped_counted_and_reported(kind, small_us8k, small_us8k_rows, tmp_path):
    row, keyword = _corrupt(kind, small_us8k, small_us8k_rows)
    paths = _prep(small_us8k, tmp_path, skip_bad_files=True)
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["n_skipped"] == 1 and len(report["skipped"]) == 1
    skipped = report["skipped"][0]
    assert skipped["file"] == row["slice_file_name"] and skipped["line"] == row["_line"]
    assert keyword in skipped["reason"]
    clip_id = os.path.splitext(row["slice_file_name"])[0]
    n = {s: len(_load(p)) for s, p in paths.items()}
    if kind == "duplicate_row":  # the first occurrence (fold 2) stays, the duplicate goes
        assert n == {"train": 10, "valid": 10, "test": 10}
        assert clip_id in _load(paths["valid"])
    else:
        assert n == {"train": 10, "valid": 9, "test": 10}
        assert all(clip_id not in _load(p) for p in paths.values())
    assert report["summary"].endswith("skipped 1")
    assert set(os.listdir(tmp_path / "save")) == SPLIT_FILES
    assert _tmp_files(tmp_path) == []


def test_all_zero_clip_is_kept(small_us8k, small_us8k_rows, tmp_path):
    row = small_us8k_rows[0]
    sf.write(_src(small_us8k, row), np.zeros(12345), 44100, subtype="PCM_16")
    paths = _prep(small_us8k, tmp_path)
    clip_id = os.path.splitext(row["slice_file_name"])[0]
    split = {"1": "train", "2": "valid", "3": "test"}[row["fold"]]
    e = _load(paths[split])[clip_id]
    assert e["duration"] == math.ceil(12345 * 16000 / 44100) / 16000
    assert not sf.read(e["wav"])[0].any()


def test_valid_equal_test_rejected_then_allowed_with_warning(small_us8k, tmp_path, caplog):
    with pytest.raises(ValueError, match="biased"):
        _prep(small_us8k, tmp_path, train=(1, 2), valid=(3,), test=(3,))
    assert not (tmp_path / "save").exists()
    with caplog.at_level(logging.WARNING, logger="audioattn_sb.data"):
        paths = _prep(small_us8k, tmp_path, train=(1, 2), valid=(3,), test=(3,),
                      allow_valid_test_overlap=True)
    assert "SELECTED ON TEST DATA" in caplog.text
    assert _load(paths["valid"]) == _load(paths["test"]) and len(_load(paths["test"])) == 10
    assert _load(tmp_path / "save" / "prepare_options.json")["allow_valid_test_overlap"] is True


def test_empty_split_is_an_error(small_us8k, tmp_path):
    with pytest.raises(PrepareError, match=r"test split \(folds \[7\]\) is empty"):
        _prep(small_us8k, tmp_path, test=(7,))
    with pytest.raises(PrepareError, match="empty"):
        _prep(small_us8k, tmp_path, test=(7,), skip_bad_files=True)


def test_empty_split_after_skipping_is_an_error(small_us8k, small_us8k_rows, tmp_path):
    for r in small_us8k_rows:
        if r["fold"] == "3":
            _src(small_us8k, r).write_bytes(b"")
    with pytest.raises(PrepareError, match="all its rows were skipped"):
        _prep(small_us8k, tmp_path, skip_bad_files=True)
    report = _load(tmp_path / "save" / "prepare_report.json")
    assert report["n_skipped"] == 10
    assert not (tmp_path / "save" / "test.json").exists()


def test_missing_csv_explains(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_demo_data.py"):
        _prep(tmp_path / "nothing_here", tmp_path)


def test_csv_missing_column(small_us8k, small_us8k_rows, tmp_path):
    with open(small_us8k / "metadata" / "UrbanSound8K.csv", "w") as f:
        f.write("slice_file_name,fold,class\n")
        for r in small_us8k_rows:
            f.write(f"{r['slice_file_name']},{r['fold']},{r['class']}\n")
    with pytest.raises(PrepareError, match="classID"):
        _prep(small_us8k, tmp_path)


def test_load_class_names(small_us8k, small_us8k_rows):
    assert load_class_names(small_us8k) == CLASS_NAMES
    # a minority disagreeing row does not change the names
    write_csv_rows(small_us8k, [dict(small_us8k_rows[0], **{"class": "oops"})] + small_us8k_rows[1:])
    assert load_class_names(small_us8k) == CLASS_NAMES
    # a gap in classIDs is an error
    write_csv_rows(small_us8k, [r for r in small_us8k_rows if r["classID"] != "4"])
    with pytest.raises(PrepareError, match="without gaps"):
        load_class_names(small_us8k)


def test_class_conflict_reports_counts(small_us8k, small_us8k_rows, tmp_path):
    """Two classIDs claiming one name: the minority rows are reported."""
    row = small_us8k_rows[0]
    write_csv_rows(small_us8k, [dict(r, classID="9", **{"class": row["class"]}) if r is row else r
                            for r in small_us8k_rows])
    with pytest.raises(PrepareError) as e:
        _prep(small_us8k, tmp_path)
    assert f"line {row['_line']}" in str(e.value) and "classID 9" in str(e.value)


def test_prepare_options_record_the_sources(small_us8k, tmp_path):
    _prep(small_us8k, tmp_path, sample_rate=8000)
    opts = _load(tmp_path / "save" / "prepare_options.json")
    assert opts["sample_rate"] == 8000 and len(opts["sources_fingerprint"]) == 40
    e = next(iter(_load(tmp_path / "save" / "train.json").values()))
    assert sf.info(e["wav"]).samplerate == 8000
    assert us8k.default_cache_folder("/d", 22050).endswith("audioattn_cache_22050hz")


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_esc10_real(esc10_dir, tmp_path):
    paths = prepare_urbansound8k(esc10_dir, tmp_path / "save", [2, 3, 4], [5], [1],
                                 cache_folder=tmp_path / "cache", progress=False)
    m = {s: _load(p) for s, p in paths.items()}
    assert {s: len(v) for s, v in m.items()} == {"train": 240, "valid": 80, "test": 80}
    names = load_class_names(esc10_dir)
    assert len(names) == 10
    for split, per_class in (("train", 24), ("valid", 8), ("test", 8)):
        counts = {}
        for e in m[split].values():
            assert e["class_string"] == names[e["classID"]]
            counts[e["classID"]] = counts.get(e["classID"], 0) + 1
        assert counts == {c: per_class for c in range(10)}
    e = next(iter(m["test"].values()))
    i = sf.info(e["wav"])
    assert (i.samplerate, i.channels, i.subtype) == (16000, 1, "FLOAT")
    assert e["duration"] == pytest.approx(5.0, abs=1 / 16000)
    assert not any(f.startswith("audioattn_cache") for f in os.listdir(esc10_dir))
