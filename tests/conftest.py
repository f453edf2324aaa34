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
``hostile_us8k`` (session)
    ``demo_us8k``'s folds 1-3 (90 clips) with hostile names (:data:`HOSTILE_FILE_PATTERNS`,
    :data:`HOSTILE_CLASSES`): every file name and four class names hold spaces, quotes, commas,
    ``&``, ``<img … onerror=…>``, ``<script>`` and non-ASCII letters, the payloads setting
    ``document.title`` to :data:`PWNED` if a page ever runs them (issue 29). Read-only.
``hostile_fsd50k`` (session)
    ``demo_fsd50k`` with hostile fnames and labels (the same payloads; labels hold no comma, the
    separator of FSD50K's label lists). Read-only.
``esc10_dir`` (session)
    The real ESC-10 data in UrbanSound8K layout, ``<repo>/../shared/data/esc10_us8k`` (400 clips,
    10 classes, folds 1-5, 16 kHz mono). Read-only. Skips the test when the folder is absent.
    Mark tests that use it ``@pytest.mark.slow``.
``demo_fsd50k`` (session)
    The multi-label demo in FSD50K's layout (``make_demo_fsd50k``: 120 train / 30 val / 60 eval
    clips, 10 classes, 1-3 labels each, 0.3-10 s, seed 0), written at 16 kHz (no resampling step,
    to keep the suite fast; the generator's default is FSD50K's 44.1 kHz). Read-only: give
    ``prepare_fsd50k`` / ``--cache_folder`` a folder under your own ``tmp_path``.
``fsd50k_mini_dir`` (session)
    Real data in FSD50K's layout, ``<repo>/../shared/data/fsd50k_mini`` (120 train / 30 val /
    60 eval clips of mixed ESC-10 sounds, 23 classes, 16 kHz). Read-only (cache elsewhere). Skips
    the test when absent. Mark tests that use it ``@pytest.mark.slow``.
``demo_trained_runs`` (session)
    Two tiny ACRNN runs trained once per session on ``demo_us8k`` (train fold 3, valid 2, test 1,
    1 epoch, in-process through :func:`train_in_process`, ~10 s): a dict with ``discrete``
    (sparsemax) and ``continuous`` (biweight) run folders, ``args`` (each run's training argv
    without the hparams file, ``--output_folder`` included), ``hparams``, ``data_folder`` and
    ``cache_folder``. Read-only; mark tests that use it ``@pytest.mark.slow``.
``esc10_seed_run``, ``esc10_compact_run``, ``esc10_transformer_runs`` (session)
    Real-data trainings on ``esc10_dir`` (``ESC10_SPLIT``: train folds 2-4, valid 5, test 1):
    the seed ACRNN (20 epochs, continuous sparsemax; ``out``, ``results``), the compact ACRNN
    (25 epochs; ``root``, ``common``, ``out``, ``results``) and the compact Transformer against
    the paper's (``{(config, seed): results}``). Minutes each: when the collected tests use
    them, they train on the second core from the start of the session
    (``tests/background.py``), one at a time, while the other tests run.

Helpers
-------
``repo_root`` (session): the repository folder (a ``pathlib.Path``).
``read_csv_rows(data_folder)``: the rows of ``metadata/UrbanSound8K.csv`` as dicts, each with its
csv line number under ``"_line"`` (header = line 1).
Every subprocess a test starts has a timeout: ``SUBPROCESS_TIMEOUT`` is the default of
``subprocess.run`` and ``Popen.communicate``/``wait`` during the tests.
``run_script(name, *args, check=True, cwd=None)``: ``recipes/<name>`` in a subprocess (``cwd`` or
the repository folder,
one intra-op thread), output captured; with ``check`` a non-zero exit fails the test with the
end of its output.
``independent_test_map(run_folder)``: a multi-label run's test mAP recomputed outside the Brain.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import background

REPO_ROOT = Path(__file__).resolve().parent.parent

#: the longest a subprocess started during the tests may run (s) when its call names no timeout:
#: ``subprocess.run`` and ``Popen.communicate`` / ``Popen.wait`` get it as their default, so a
#: hung child (a stuck rendezvous, a deadlocked run) fails its test instead of the CI job
SUBPROCESS_TIMEOUT = 900


def _with_default_timeout(func):
    def call(*args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = SUBPROCESS_TIMEOUT
        return func(*args, **kwargs)
    call.__wrapped__ = func
    call.__doc__ = func.__doc__
    return call


#: the training scripts: a test not marked ``slow`` trains no model with them (``-m "not slow"``
#: trains nothing; :func:`_no_training_unless_slow`)
TRAINING_SCRIPTS = ("train.py", "run_folds.py", "torchrun")
#: while a test not marked slow runs: its node id and the training-script commands it started
_not_slow = {"test": None, "commands": []}


def _checked_popen_init(init):
    def call(self, args, *rest, **kwargs):
        if _not_slow["test"] is not None:
            words = [str(a) for a in (args if isinstance(args, (list, tuple)) else [args])]
            if any(os.path.basename(w) in TRAINING_SCRIPTS for w in words):
                _not_slow["commands"].append(words)
        return init(self, args, *rest, **kwargs)
    call.__wrapped__ = init
    return call


def trained_epochs(command):
    """The ``train_log.txt`` files with an epoch line under the output folder of a training
    command (``--output_folder=`` / ``--results_root``): what it trained."""
    folders = [w.split("=", 1)[1] for w in command if w.startswith("--output_folder=")]
    folders += [command[i + 1] for i, w in enumerate(command[:-1]) if w == "--results_root"]
    found = []
    for folder in folders:
        for log in Path(folder).rglob("train_log.txt") if Path(folder).is_dir() else []:
            if any(line.startswith("epoch:") for line in log.read_text().splitlines()):
                found.append(str(log))
    return found


if not hasattr(subprocess.run, "__wrapped__"):
    subprocess.run = _with_default_timeout(subprocess.run)
    subprocess.Popen.communicate = _with_default_timeout(subprocess.Popen.communicate)
    subprocess.Popen.wait = _with_default_timeout(subprocess.Popen.wait)
    subprocess.Popen.__init__ = _checked_popen_init(subprocess.Popen.__init__)


@pytest.fixture(autouse=True)
def _no_training_unless_slow(request, monkeypatch):
    """A test not marked ``slow`` (with the fixtures it sets up) trains no model: a Brain's
    ``fit`` in this process fails it, and so does a training script it started that wrote an
    epoch to its ``train_log.txt`` (scripts that stop before training, e.g. on bad input or
    ``--help``, are fine)."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    from audioattn_sb.sb_api import CpuDistributedBrain  # every Brain of the package

    def refused_fit(self, *args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} is not marked slow but trains a model "
                             f"({type(self).__name__}.fit): mark it @pytest.mark.slow "
                             "(-m 'not slow' trains nothing)")

    monkeypatch.setattr(CpuDistributedBrain, "fit", refused_fit)
    _not_slow.update(test=request.node.nodeid, commands=[])
    try:
        yield
        trained = [log for cmd in _not_slow["commands"] for log in trained_epochs(cmd)]
    finally:
        _not_slow.update(test=None, commands=[])
    if trained:
        pytest.fail(f"{request.node.nodeid} is not marked slow but trained a model "
                    f"({', '.join(trained)}): mark it @pytest.mark.slow")
#: the real ESC-10 data in UrbanSound8K layout (users do not have it: tests skip)
ESC10_PATH = (REPO_ROOT / ".." / "shared" / "data" / "esc10_us8k").resolve()


def missing_shared(reason):
    """Skip a test whose ``../shared`` data is absent (users do not have it), saying why; under
    CI (``AUDIOATTN_REQUIRE_SHARED=1``, set by ``.ci/run``) fail instead, so that a green CI
    cannot come from skipped real-data tests."""
    if os.environ.get("AUDIOATTN_REQUIRE_SHARED") == "1":
        pytest.fail(f"{reason} (AUDIOATTN_REQUIRE_SHARED=1: CI needs ../shared)")
    pytest.skip(reason)


def train_in_process(argv):
    """``recipes/train.py``'s ``main(argv)`` in this process (no interpreter start-up); returns
    the results dict."""
    import runpy

    return runpy.run_path(str(REPO_ROOT / "recipes" / "train.py"), run_name="train")["main"](
        list(argv))


def run_script(name, *args, check=True, cwd=None):
    """Run ``recipes/<name>`` with ``args`` in a subprocess (in ``cwd``, default the repository
    folder); returns the CompletedProcess.

    One intra-op thread: on a loaded 2-core machine torch's default (one per core) makes these
    small models ~10x slower through thread contention; results do not depend on it.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(REPO_ROOT / "recipes" / name), *map(str, args)],
                       capture_output=True, text=True, cwd=cwd or REPO_ROOT, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{name} failed ({p.returncode}):\n{p.stdout[-3000:]}\n"
                             f"{p.stderr[-3000:]}")
    return p


def independent_test_map(run_folder):
    """A multi-label run's clip-level test mAP computed without the Brain's evaluation: the best
    checkpoint through :func:`audioattn_sb.inference.load_model`, each chunk of ``test.json``
    read with ``load_chunk`` and scored alone (batch of one, so no padding), sigmoid scores
    averaged per clip in plain numpy, then scikit-learn's ``average_precision_score`` over the
    classes that have a positive clip. Returns ``(mAP, number of classes scored)``."""
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score

    from audioattn_sb.data.fsd50k import load_chunk
    from audioattn_sb.inference import load_model

    run_folder = Path(run_folder)
    model = load_model(run_folder)
    manifest = json.loads((run_folder / "test.json").read_text())
    n_classes = len(model.class_names)
    sums, counts, targets = {}, {}, {}
    for entry in manifest.values():
        wave = load_chunk(entry["wav"], entry["start"], entry["stop"], entry["chunk_samples"])
        out = model.run.forward_waveform(torch.from_numpy(wave), capture_features=False)
        scores = out.scores[0]
        clip = entry["clip"]
        sums[clip] = sums.get(clip, 0.0) + np.asarray(scores, dtype=np.float64)
        counts[clip] = counts.get(clip, 0) + 1
        target = np.zeros(n_classes)
        target[entry["label_ids"]] = 1.0
        targets[clip] = target
    clips = sorted(sums)
    s = np.stack([sums[c] / counts[c] for c in clips])
    t = np.stack([targets[c] for c in clips])
    aps = [average_precision_score(t[:, k], s[:, k]) for k in range(n_classes) if t[:, k].any()]
    return float(np.mean(aps)), len(aps)


def write_csv_rows(data_folder, rows):
    """Write ``rows`` (dicts, e.g. :func:`read_csv_rows`'s, edited) as
    ``<data_folder>/metadata/UrbanSound8K.csv`` with the corpus's columns."""
    cols = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    with open(Path(data_folder) / "metadata" / "UrbanSound8K.csv", "w", newline="",
              encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


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


#: what a payload in a name sets document.title to, if a page ever runs it
PWNED = "PWNED"
#: file-name patterns (``{stem}``: the original stem); no "/" (not allowed in a file name)
HOSTILE_FILE_PATTERNS = [
    "{stem}<img src=x onerror=document.title='PWNED'>",
    "<script>document.title='PWNED'<script>{stem}",
    '{stem} "quoted", comma & amp',
    "{stem} été ü ñ 'single'",
    "<b onmouseover=document.title='PWNED'>{stem}",
]
#: class names of classIDs 0-3 ("/" is fine in a csv field)
HOSTILE_CLASSES = {
    0: "<img src=x onerror=\"document.title='PWNED'\">siren",
    1: "<script>document.title='PWNED'</script>hum",
    2: 'click, "train" & co',
    3: "bruits d'éclats ü",
}


def make_hostile_us8k(src, dst, folds=(1, 2, 3)):
    """Copy ``folds`` of an UrbanSound8K-layout corpus into ``dst`` with every file renamed by
    :data:`HOSTILE_FILE_PATTERNS` (in turn) and :data:`HOSTILE_CLASSES`; returns ``dst``."""
    src, dst = Path(src), Path(dst)
    rows = [r for r in read_csv_rows(src) if int(r["fold"]) in folds]
    (dst / "metadata").mkdir(parents=True)
    for k, r in enumerate(rows):
        stem = os.path.splitext(r["slice_file_name"])[0]
        new = HOSTILE_FILE_PATTERNS[k % len(HOSTILE_FILE_PATTERNS)].format(stem=stem) + ".wav"
        (dst / "audio" / f"fold{r['fold']}").mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "audio" / f"fold{r['fold']}" / r["slice_file_name"],
                    dst / "audio" / f"fold{r['fold']}" / new)
        r["slice_file_name"] = new
        r["class"] = HOSTILE_CLASSES.get(int(r["classID"]), r["class"])
    cols = [c for c in rows[0] if c != "_line"]
    with open(dst / "metadata" / "UrbanSound8K.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dst


def make_hostile_fsd50k(src, dst):
    """Copy an FSD50K-layout corpus into ``dst`` with hostile fnames and labels (no comma in a
    label: FSD50K's label lists are comma-separated); returns ``dst``."""
    src, dst = Path(src), Path(dst)
    gt = "FSD50K.ground_truth"
    (dst / gt).mkdir(parents=True)
    with open(src / gt / "vocabulary.csv", newline="", encoding="utf-8") as f:
        vocab = list(csv.reader(f))
    rename = {}
    for i, row in enumerate(vocab):
        if i in HOSTILE_CLASSES:
            rename[row[1]] = HOSTILE_CLASSES[i].replace(",", "")
            row[1] = rename[row[1]]
    with open(dst / gt / "vocabulary.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(vocab)
    k = 0
    for which, audio in (("dev", "FSD50K.dev_audio"), ("eval", "FSD50K.eval_audio")):
        (dst / audio).mkdir()
        with open(src / gt / f"{which}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        for row in rows[1:]:
            new = HOSTILE_FILE_PATTERNS[k % len(HOSTILE_FILE_PATTERNS)].format(stem=row[0])
            k += 1
            shutil.copy(src / audio / f"{row[0]}.wav", dst / audio / f"{new}.wav")
            row[0] = new
            row[1] = ",".join(rename.get(lab, lab) for lab in row[1].split(","))
        with open(dst / gt / f"{which}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
    return dst


@pytest.fixture(scope="session")
def hostile_us8k(demo_us8k, tmp_path_factory):
    """``demo_us8k`` folds 1-3 with hostile file and class names (read-only)."""
    return make_hostile_us8k(demo_us8k, tmp_path_factory.mktemp("hostile") / "us8k")


@pytest.fixture(scope="session")
def hostile_fsd50k(demo_fsd50k, tmp_path_factory):
    """``demo_fsd50k`` with hostile fnames and labels (read-only)."""
    return make_hostile_fsd50k(demo_fsd50k, tmp_path_factory.mktemp("hostile") / "fsd50k")


@pytest.fixture(scope="session")
def esc10_dir():
    """Real ESC-10 in UrbanSound8K layout (``<repo>/../shared/data/esc10_us8k``), or skip."""
    path = ESC10_PATH
    if not (path / "metadata" / "UrbanSound8K.csv").is_file():
        missing_shared(f"real ESC-10 data not found at {path} (expected <repo>/../shared/data/"
                    "esc10_us8k with metadata/UrbanSound8K.csv)")
    return path


@pytest.fixture(scope="session")
def demo_fsd50k(tmp_path_factory):
    """Path of the FSD50K-layout multi-label demo (120/30/60 clips, 16 kHz), read-only."""
    from audioattn_sb.data.synthetic_fsd50k import make_demo_fsd50k

    out = tmp_path_factory.mktemp("demo_fsd50k")
    make_demo_fsd50k(out, sample_rate=16000)
    return out


@pytest.fixture(scope="session")
def fsd50k_mini_dir():
    """Real FSD50K-layout data (``<repo>/../shared/data/fsd50k_mini``), read-only, or skip."""
    path = (REPO_ROOT / ".." / "shared" / "data" / "fsd50k_mini").resolve()
    if not (path / "FSD50K.ground_truth" / "vocabulary.csv").is_file():
        missing_shared(f"real FSD50K-layout data not found at {path} (expected <repo>/../shared/"
                    "data/fsd50k_mini with FSD50K.ground_truth/vocabulary.csv)")
    return path


@pytest.fixture(scope="session")
def demo_trained_runs(demo_us8k, tmp_path_factory):
    """Tiny discrete (sparsemax) and continuous (biweight) runs on the demo, trained once."""
    run = train_in_process

    root = tmp_path_factory.mktemp("demo_trained_runs")
    hparams = str(REPO_ROOT / "hparams" / "urbansound8k_acrnn.yaml")
    out = {"hparams": hparams, "data_folder": demo_us8k, "cache_folder": root / "cache",
           "args": {}}
    for domain, mapping in (("discrete", "sparsemax"), ("continuous", "biweight")):
        args = [f"--data_folder={demo_us8k}", f"--cache_folder={root / 'cache'}",
                f"--output_folder={root / domain}", "--train_fold_nums=[3]",
                "--valid_fold_nums=[2]", "--test_fold_nums=[1]", "--number_of_epochs=1",
                "--attn_domain", domain, "--attn_max_activation", mapping, "--noprogressbar"]
        run([hparams, *args])
        out[domain], out["args"][domain] = root / domain, args
    return out


#: real ESC-10 split of the slow real-data tests: train folds 2-4, valid 5, test 1
ESC10_SPLIT = background.ESC10_SPLIT


def pytest_collection_finish(session):
    """Start the real-data trainings that the selected tests need on the second core
    (tests/background.py) when the real ESC-10 data is there."""
    if session.config.option.collectonly:
        return
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ())
              if name in background.JOBS}
    if wanted and (ESC10_PATH / "metadata" / "UrbanSound8K.csv").is_file():
        background.start(wanted, ESC10_PATH)


def pytest_sessionfinish(session, exitstatus):
    background.stop()


@pytest.fixture(scope="session")
def esc10_seed_run(esc10_dir):
    """The seed ACRNN on real ESC-10 (ESC10_SPLIT, 20 epochs, continuous sparsemax), trained once
    (in the background: tests/background.py) for tests/test_recipe.py (beats chance) and
    tests/test_compact_recipe.py (the compact configuration beats it on the same split and
    attention family)."""
    out = background.wait("esc10_seed_run", esc10_dir) / "seed"
    return {"out": out, "results": json.loads((out / "results.json").read_text())}


@pytest.fixture(scope="session")
def esc10_compact_run(esc10_dir):
    """Real ESC-10, ESC10_SPLIT: the compact ACRNN with augmentation and continuous sparsemax
    attention (the yaml's encoder), a short 25-epoch schedule; trained once (in the background)
    for tests/test_compact_recipe.py. A dict: ``root`` (a folder for the test's own outputs
    too), ``common`` (the training arguments without the hparams file and output folder),
    ``out`` (the run folder), ``results``."""
    root = background.wait("esc10_compact_run", esc10_dir)
    out = root / "compact"
    return {"root": root, "common": background.compact_acrnn_common(root, esc10_dir), "out": out,
            "results": json.loads((out / "results.json").read_text())}


@pytest.fixture(scope="session")
def esc10_transformer_runs(esc10_dir):
    """The compact Transformer (urbansound8k_transformer_compact.yaml) and the paper's
    configuration (urbansound8k_transformer.yaml) on ESC10_SPLIT, discrete softmax pooling,
    ``background.TRANSFORMER_EPOCHS`` epochs, seeds ``background.TRANSFORMER_SEEDS``, trained
    once (in the background). A dict ``{(config, seed): results.json dict}``."""
    root = background.wait("esc10_transformer_runs", esc10_dir)
    return {(config, seed): json.loads(
                (background.transformer_run_folder(root, config, seed) / "results.json")
                .read_text())
            for config in ("compact", "paper") for seed in background.TRANSFORMER_SEEDS}
