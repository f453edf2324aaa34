"""Parallel preparation (issue 13): a pool of workers gives the same manifests, cache and report
as one process, and reports bad files exactly as the serial preparation does."""

import json
import os
from pathlib import Path

import pytest

import audioattn_sb.data.preparation as preparation
from audioattn_sb.data.fsd50k import prepare_fsd50k
from audioattn_sb.data.preparation import PrepareError, resolve_workers
from audioattn_sb.data.urbansound8k import prepare_urbansound8k


@pytest.fixture
def pool_always(monkeypatch):
    """Use the pool even for the few clips of the test corpora."""
    monkeypatch.setattr(preparation, "POOL_MIN_CLIPS", 1)


def _us8k(data, root, workers, **kw):
    return prepare_urbansound8k(data, root / "save", [1], [2], [3], cache_folder=root / "cache",
                                progress=False, workers=workers, **kw)


def _text(path, root):
    """A file's text with the run's own folder replaced (the two runs write to two folders)."""
    return Path(path).read_text().replace(str(root), "<root>")


def _cache_files(root):
    cache = root / "cache"
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()
                  and not p.name.startswith("."))


def _assert_same_preparation(one, two, paths_one, paths_two):
    for split in paths_one:
        assert _text(paths_one[split], one) == _text(paths_two[split], two), split
    rep1 = json.loads(_text(one / "save" / "prepare_report.json", one))
    rep2 = json.loads(_text(two / "save" / "prepare_report.json", two))
    assert rep1 == rep2
    files = _cache_files(one)
    assert files == _cache_files(two) and any(f.endswith(".wav") for f in files)
    for rel in files:
        a, b = (one / "cache" / rel).read_bytes(), (two / "cache" / rel).read_bytes()
        if rel.endswith(".json"):  # the sidecar records the cached file's own mtime
            ja, jb = json.loads(a), json.loads(b)
            ja["cached"].pop("mtime_ns"), jb["cached"].pop("mtime_ns")
            assert ja == jb, rel
        else:  # byte-identical audio (the cache writes no time-stamped PEAK chunk)
            assert a == b, rel


def test_pool_preparation_equals_serial_urbansound8k(small_us8k, tmp_path, pool_always):
    one, two = tmp_path / "serial", tmp_path / "pool"
    paths_one = _us8k(small_us8k, one, workers=1)
    paths_two = _us8k(small_us8k, two, workers=2)
    _assert_same_preparation(one, two, paths_one, paths_two)
    assert json.loads((two / "save" / "prepare_report.json").read_text())["resampled"] == 30


def test_pool_preparation_equals_serial_fsd50k(demo_fsd50k, tmp_path, pool_always):
    one, two = tmp_path / "serial", tmp_path / "pool"
    paths_one = prepare_fsd50k(demo_fsd50k, one / "save", cache_folder=one / "cache",
                               progress=False, workers=1)
    paths_two = prepare_fsd50k(demo_fsd50k, two / "save", cache_folder=two / "cache",
                               progress=False, workers=2)
    _assert_same_preparation(one, two, paths_one, paths_two)


def _break_two_files(data):
    """A truncated file in fold 2 and a missing one in fold 3 (rows of the chosen folds)."""
    a = sorted((data / "audio" / "fold2").glob("*.wav"))[3]
    a.write_bytes(a.read_bytes()[:60])
    b = sorted((data / "audio" / "fold3").glob("*.wav"))[5]
    b.unlink()
    return a.name, b.name


def test_bad_files_in_a_pool_are_reported_as_in_serial(small_us8k, tmp_path, pool_always):
    _break_two_files(small_us8k)
    errors = []
    for workers in (1, 2):
        with pytest.raises(PrepareError) as e:
            _us8k(small_us8k, tmp_path / f"stop{workers}", workers)
        errors.append(str(e.value).replace(str(tmp_path / f"stop{workers}"), "<root>"))
        assert not (tmp_path / f"stop{workers}" / "save" / "train.json").exists()
    assert errors[0] == errors[1] and "line" in errors[0]
    reports = []
    for workers in (1, 2):
        root = tmp_path / f"skip{workers}"
        _us8k(small_us8k, root, workers, skip_bad_files=True)
        reports.append(json.loads(_text(root / "save" / "prepare_report.json", root)))
    assert reports[0] == reports[1]
    assert reports[0]["n_skipped"] == 2


def test_warm_cache_starts_no_pool(small_us8k, tmp_path, pool_always, monkeypatch):
    _us8k(small_us8k, tmp_path, workers=2)
    import concurrent.futures

    def no_pool(*a, **k):
        raise AssertionError("a pool was started for a warm cache")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    os.remove(tmp_path / "save" / "prepare_options.json")  # prepare again, same cache
    _us8k(small_us8k, tmp_path, workers=2)
    report = json.loads((tmp_path / "save" / "prepare_report.json").read_text())
    assert report["reused_from_cache"] == 30 and report["resampled"] == 0


@pytest.mark.parametrize("bad", [0.5, -1, "two", "3x"])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(PrepareError, match="prepare_workers"):
        resolve_workers(bad)


def test_worker_count_defaults_to_the_cores():
    assert resolve_workers(None) == resolve_workers("auto") == len(os.sched_getaffinity(0))
    assert resolve_workers(1) == 1 and resolve_workers("4") == 4
