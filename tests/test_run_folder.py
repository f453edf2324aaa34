"""The run folder is created and held by one process (issue 29): a failed set-up removes only
what that run created (a sibling run under the same new parent keeps its folder), and a second
process on a run folder in use stops with an error naming the holder; a killed holder's folder
is taken over (kill-then-rerun resumes: tests/test_reliability.py)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from audioattn_sb.run_folder import LOCK_FILE, RunFolder, RunFolderInUse, make_folders
from conftest import REPO_ROOT, read_csv_rows, train_in_process, write_csv_rows

HPARAMS = str(REPO_ROOT / "hparams" / "urbansound8k_acrnn.yaml")
SPLIT = ["--train_fold_nums=[1]", "--valid_fold_nums=[2]", "--test_fold_nums=[3]",
         "--noprogressbar"]

HOLD = textwrap.dedent("""
    import sys, time
    from audioattn_sb.run_folder import RunFolder
    RunFolder(sys.argv[1], main_process=True).claim()
    print("held", flush=True)
    time.sleep(120)
""")


def _holder(folder):
    """A separate process holding ``folder`` (started, and holding once this returns)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                         text=True, cwd=REPO_ROOT)
    assert p.stdout.readline().strip() == "held"
    return p


def test_make_folders_returns_only_what_it_created(tmp_path):
    (tmp_path / "exp").mkdir()
    created = make_folders(tmp_path / "exp" / "a" / "b")
    assert created == [str(tmp_path / "exp" / "a"), str(tmp_path / "exp" / "a" / "b")]
    assert make_folders(tmp_path / "exp" / "a" / "b") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        make_folders(tmp_path / "file" / "run")


def test_failed_setup_keeps_a_sibling_made_after_it(tmp_path):
    exp = tmp_path / "exp"
    b = RunFolder(exp / "B", main_process=True).claim()   # B makes exp/ and exp/B
    a = RunFolder(exp / "A", main_process=True).claim()   # A makes exp/A only
    assert b.created == [str(exp), str(exp / "B")] and a.created == [str(exp / "A")]
    (exp / "A" / "save").mkdir()
    with pytest.raises(RuntimeError):
        with b.removed_if_setup_fails():
            raise RuntimeError("bad row")
    assert not (exp / "B").exists() and (exp / "A" / "save").is_dir()
    with pytest.raises(RuntimeError):
        with a.removed_if_setup_fails():
            raise RuntimeError("bad row")
    assert not (exp / "A").exists()
    assert exp.exists()  # B made it, A did not: nobody removes it once B has gone


def test_failed_setup_keeps_a_resumed_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "save").mkdir(parents=True)
    rf = RunFolder(run, main_process=True).claim()
    with pytest.raises(ValueError):
        with rf.removed_if_setup_fails():
            raise ValueError("bad data")
    assert (run / "save").is_dir()


def test_train_failing_setup_does_not_delete_a_sibling_run(small_us8k, tmp_path, monkeypatch):
    """The issue's case, in order: B starts under a new EXP/, A's set-up makes EXP/A/save while
    B prepares, then B stops on a bad row. A's folder must survive (before the fix B removed
    EXP, which it took for its own new folder)."""
    import audioattn_sb.data.corpora as corpora

    rows = read_csv_rows(small_us8k)
    rows[0]["fold"] = "11"  # a bad row: fold outside 1..10
    write_csv_rows(small_us8k, rows)
    exp = tmp_path / "EXP"
    real = corpora.prepare_manifests

    def sibling_starts_meanwhile(*args, **kwargs):
        (exp / "A" / "save").mkdir(parents=True)
        (exp / "A" / "hyperparams.yaml").write_text("A's run\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(corpora, "prepare_manifests", sibling_starts_meanwhile)
    with pytest.raises(ValueError, match="fold 11 is outside"):
        train_in_process([HPARAMS, f"--data_folder={small_us8k}",
                          f"--cache_folder={tmp_path / 'cache'}",
                          f"--output_folder={exp / 'B'}", *SPLIT])
    assert (exp / "A" / "hyperparams.yaml").read_text() == "A's run\n"
    assert not (exp / "B").exists()


@pytest.mark.slow
def test_two_runs_started_together_under_a_new_folder(small_us8k, tmp_path):
    """The issue's commands: A on good data and B on a corpus with a bad row, started at once
    under a new EXP/. B stops with its error, A finishes."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(small_us8k, bad)
    rows = read_csv_rows(bad)
    rows[0]["classID"] = "x"
    write_csv_rows(bad, rows)
    exp = tmp_path / "EXP"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, data in (("A", small_us8k), ("B", bad)):
        procs[name] = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "recipes" / "train.py"), HPARAMS,
             f"--data_folder={data}", f"--cache_folder={tmp_path / ('cache' + name)}",
             f"--output_folder={exp / name}", *SPLIT, "--number_of_epochs=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
    out = {n: p.communicate(timeout=300) for n, p in procs.items()}
    assert procs["B"].returncode == 2 and "classID 'x' is not an integer" in out["B"][1]
    assert procs["A"].returncode == 0, out["A"][1][-3000:]
    assert json.loads((exp / "A" / "results.json").read_text())["epochs_completed"] == 1
    assert not (exp / "B").exists()


def test_second_process_on_a_held_folder_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        with pytest.raises(RunFolderInUse) as err:
            RunFolder(folder, main_process=True).claim()
        assert f"process {holder.pid} " in str(err.value)
        assert "choose another --output_folder" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (no release): its lock is gone with it, the folder is taken over
    with RunFolder(folder, main_process=True) as run:
        info = json.loads((folder / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and run.path == str(folder)
    assert json.loads((folder / LOCK_FILE).read_text())["released"] is True
    with RunFolder(folder, main_process=True):  # released: free again
        pass


def test_train_refuses_a_run_folder_in_use(small_us8k, tmp_path):
    """train.py on a folder another process holds: exit 2, one error line naming that process,
    and nothing of the holder's folder touched."""
    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        before = sorted(os.listdir(folder))
        p = subprocess.run([sys.executable, str(REPO_ROOT / "recipes" / "train.py"), HPARAMS,
                            f"--data_folder={small_us8k}", f"--cache_folder={tmp_path / 'c'}",
                            f"--output_folder={folder}", *SPLIT, "--number_of_epochs=1"],
                           capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert p.returncode == 2, p.stderr[-2000:]
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"in use by another run (process {holder.pid} " in errors[0]
        assert sorted(os.listdir(folder)) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_not_the_main_process_neither_creates_nor_locks(tmp_path):
    rf = RunFolder(tmp_path / "x", main_process=False).claim()
    assert not (tmp_path / "x").exists() and rf.created == []
