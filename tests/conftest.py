"""Shared pytest fixtures (reuse them in any test file).

Datasets
--------
``demo_us8k`` (session)
    The default embedded demo (``make_demo_urbansound8k``: 10 folds x 10 classes x 3 = 300 clips,
    seed 0, UrbanSound8K layout and quirks), generated once per test session into a temporary
    folder (~3 s). Shared by every test: treat it as READ-ONLY, and give ``prepare_urbansound8k``
    a ``cache_folder`` under your own ``tmp_path`` (the default cache would be written inside it).
``demo_us8k_prepared`` (session)
    ``demo_us8k`` prepared with train folds 1-8, valid 9, test 10 into a session temporary folder:
    a dict with ``data_folder``, ``save_folder``, ``cache_folder``, ``manifests``
    (``{"train": path, "valid": path, "test": path}``) and ``class_names``. Read-only as well.
``small_us8k`` (function)
    A fresh, private copy of a small demo (folds 1-3, one clip per class per fold = 30 clips) in
    this test's ``tmp_path``: free to corrupt, delete or edit. ``small_us8k_rows`` reads its csv.
``esc10_dir`` (session)
    The real ESC-10 data in UrbanSound8K layout, ``<repo>/../shared/data/esc10_us8k`` (400 clips,
    10 classes, folds 1-5, 16 kHz mono). Read-only. Skips the test when the folder is absent.
    Mark tests that use it ``@pytest.mark.slow``.

Helpers
-------
``repo_root`` (session): the repository folder (a ``pathlib.Path``).
``read_csv_rows(data_folder)``: the rows of ``metadata/UrbanSound8K.csv`` as dicts, each with its
csv line number under ``"_line"`` (header = line 1).
"""

import csv
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_csv_rows(data_folder):
    """Rows of ``<data_folder>/metadata/UrbanSound8K.csv``: dicts with ``"_line"`` (1 = header)."""
    with open(Path(data_folder) / "metadata" / "UrbanSound8K.csv", newline="",
              encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            row["_line"] = reader.line_num
            rows.append(row)
    return rows


@pytest.fixture(scope="session")
def repo_root():
    """The repository root folder."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_us8k(tmp_path_factory):
    """Path of the default 300-clip demo dataset, generated once per session (read-only)."""
    from audioattn_sb.data.synthetic import make_demo_urbansound8k

    out = tmp_path_factory.mktemp("demo_us8k")
    make_demo_urbansound8k(out)
    return out


@pytest.fixture(scope="session")
def demo_us8k_prepared(demo_us8k, tmp_path_factory):
    """``demo_us8k`` prepared once (train 1-8, valid 9, test 10); read-only dict of paths."""
    from audioattn_sb.data.urbansound8k import load_class_names, prepare_urbansound8k

    root = tmp_path_factory.mktemp("demo_us8k_prepared")
    save, cache = root / "save", root / "cache"
    manifests = prepare_urbansound8k(demo_us8k, save, list(range(1, 9)), [9], [10],
                                     cache_folder=cache, progress=False)
    return {"data_folder": demo_us8k, "save_folder": save, "cache_folder": cache,
            "manifests": manifests, "class_names": load_class_names(demo_us8k)}


@pytest.fixture(scope="session")
def _small_us8k_master(tmp_path_factory):
    from audioattn_sb.data.synthetic import make_demo_urbansound8k

    out = tmp_path_factory.mktemp("small_us8k_master")
    make_demo_urbansound8k(out, clips_per_class_per_fold=1, seed=1, folds=[1, 2, 3])
    return out


@pytest.fixture
def small_us8k(_small_us8k_master, tmp_path):
    """A private, writable 30-clip demo (folds 1-3, 1 clip per class per fold) in tmp_path."""
    dst = tmp_path / "small_us8k"
    shutil.copytree(_small_us8k_master, dst)
    return dst


@pytest.fixture
def small_us8k_rows(small_us8k):
    """The csv rows of ``small_us8k`` (dicts with ``"_line"``)."""
    return read_csv_rows(small_us8k)


@pytest.fixture(scope="session")
def esc10_dir():
    """Real ESC-10 in UrbanSound8K layout (``<repo>/../shared/data/esc10_us8k``), or skip."""
    path = (REPO_ROOT / ".." / "shared" / "data" / "esc10_us8k").resolve()
    if not (path / "metadata" / "UrbanSound8K.csv").is_file():
        pytest.skip(f"real ESC-10 data not found at {path} (expected <repo>/../shared/data/"
                    "esc10_us8k with metadata/UrbanSound8K.csv)")
    return path
