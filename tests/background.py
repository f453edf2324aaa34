"""Long real-data trainings that the selected tests need, run on the second core while the rest
of the suite runs on the first (tests/conftest.py).

Every test process here uses one intra-op thread, so a pytest session keeps one core busy. The
trainings behind the real-data fixtures (``esc10_seed_run``, ``esc10_compact_run``,
``esc10_transformer_runs``: one to five minutes each) do not depend on anything the other tests do: when the
collected tests use one of these fixtures, :func:`start` (called by conftest's
``pytest_collection_finish``) begins them in a background thread, one subprocess at a time, in
the order of :data:`JOBS`. A fixture then calls :func:`wait`: it returns when the fixture's runs
are done (running them here when the thread has not started them yet). A failed run fails the
fixture with the end of its output; every run has a timeout; the session's end stops a run still
going (``pytest -x``).

Each job is ``name → builder(root, esc10) → [(script, args), ...]``: ``root`` a fresh folder
for its outputs, ``esc10`` the real ESC-10 folder.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: the longest one training of a job may take (s) before the fixture fails
RUN_TIMEOUT = 1800

#: train folds 2-4, valid 5, test 1 (the real-data tests' split)
ESC10_SPLIT = ["--train_fold_nums=[2, 3, 4]", "--valid_fold_nums=[5]", "--test_fold_nums=[1]"]
CONTINUOUS_SPARSEMAX = ["--attn_domain=continuous", "--attn_max_activation=sparsemax"]
#: seeds of the compact-vs-paper Transformer comparison (tests/test_transformer_compact_real.py)
TRANSFORMER_SEEDS = (0, 1)
#: its schedule: epochs of each configuration (the compact one warms up 2 epochs)
TRANSFORMER_EPOCHS = {"compact": 12, "paper": 12}


def hparams(name):
    return str(REPO_ROOT / "hparams" / name)


def _seed_acrnn(root, esc10):
    return [("train.py", [hparams("urbansound8k_acrnn.yaml"), f"--data_folder={esc10}",
                          f"--cache_folder={root / 'cache'}", f"--output_folder={root / 'seed'}",
                          *ESC10_SPLIT, "--number_of_epochs=20", *CONTINUOUS_SPARSEMAX])]


def compact_acrnn_common(root, esc10):
    """The compact ACRNN run's arguments (without the hparams file and output folder)."""
    return [f"--data_folder={esc10}", f"--cache_folder={root / 'cache'}", *ESC10_SPLIT,
            *CONTINUOUS_SPARSEMAX]


def _compact_acrnn(root, esc10):
    return [("train.py", [hparams("urbansound8k_acrnn_compact.yaml"),
                          *compact_acrnn_common(root, esc10), f"--output_folder={root / 'compact'}",
                          "--number_of_epochs=25"])]


def transformer_run_folder(root, config, seed):
    return root / f"{config}_seed{seed}"


def _transformers(root, esc10):
    yamls = {"compact": "urbansound8k_transformer_compact.yaml",
             "paper": "urbansound8k_transformer.yaml"}
    runs = []
    for seed in TRANSFORMER_SEEDS:
        for config, yaml in yamls.items():
            extra = ["--warmup_epochs=2"] if config == "compact" else []
            runs.append(("train.py", [
                hparams(yaml), f"--data_folder={esc10}", f"--cache_folder={root / 'cache'}",
                f"--output_folder={transformer_run_folder(root, config, seed)}", *ESC10_SPLIT,
                f"--seed={seed}", f"--number_of_epochs={TRANSFORMER_EPOCHS[config]}", *extra,
                "--attn_domain=discrete", "--attn_max_activation=softmax"]))
    return runs


#: fixture name → builder, in the order the background thread runs them: the order in which the
#: suite's files need them (test_compact_recipe.py needs the two ACRNNs, test_recipe.py the seed,
#: test_transformer_compact_real.py the Transformers), so that no fixture waits behind a later one
JOBS = {"esc10_compact_run": _compact_acrnn, "esc10_seed_run": _seed_acrnn,
        "esc10_transformer_runs": _transformers}


class _Job:
    def __init__(self, name, root, commands):
        self.name, self.root, self.commands = name, root, commands
        self.claimed, self.error = False, None
        self.done = threading.Event()


_lock = threading.Lock()
_jobs = {}
_procs = set()
_stopping = threading.Event()


def _make_job(name, esc10):
    root = Path(tempfile.mkdtemp(prefix=f"audioattn_{name}_"))
    return _Job(name, root, JOBS[name](root, esc10))


def _execute(job):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        for script, args in job.commands:
            if _stopping.is_set():
                job.error = "the session stopped before this run"
                return
            cmd = [sys.executable, str(REPO_ROOT / "recipes" / script), *map(str, args),
                   "--noprogressbar"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=REPO_ROOT, env=env)
            with _lock:
                _procs.add(p)
            try:
                out, err = p.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                job.error = f"{script} ran past {RUN_TIMEOUT} s: {' '.join(cmd)}"
                return
            finally:
                with _lock:
                    _procs.discard(p)
            if p.returncode != 0:
                job.error = (f"{script} failed ({p.returncode}): {' '.join(cmd)}\n"
                             f"{out[-3000:]}\n{err[-3000:]}")
                return
    except Exception as exc:  # reported by the fixture that waits for it
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        job.done.set()


def _claim(job):
    with _lock:
        if job.claimed:
            return False
        job.claimed = True
        return True


def _background():
    for job in list(_jobs.values()):
        if _stopping.is_set():
            return
        if _claim(job):
            _execute(job)


def start(names, esc10):
    """Begin the jobs ``names`` (fixture names of :data:`JOBS` the collected tests use) in one
    background thread, in :data:`JOBS` order."""
    with _lock:
        for name in JOBS:
            if name in names and name not in _jobs:
                _jobs[name] = _make_job(name, esc10)
    if _jobs:
        threading.Thread(target=_background, name="background-trainings", daemon=True).start()


def wait(name, esc10):
    """The output folder of job ``name`` once its runs are done (run here if no thread took
    it); raises AssertionError with the failed run's output."""
    with _lock:
        if name not in _jobs:
            _jobs[name] = _make_job(name, esc10)
        job = _jobs[name]
    if _claim(job):
        _execute(job)
    job.done.wait()
    if job.error:
        raise AssertionError(f"background training {name}: {job.error}")
    return job.root


def stop():
    """Stop the thread, kill a run still going (end of the session) and remove the jobs'
    folders."""
    _stopping.set()
    with _lock:
        procs, jobs = list(_procs), list(_jobs.values())
    for p in procs:
        p.kill()
        p.wait()
    for job in jobs:
        shutil.rmtree(job.root, ignore_errors=True)
