"""Atomic writes: content, no leftovers, usual permissions, previous version kept on error;
the machine and code records of results.json."""

import os
import shutil
import stat
import subprocess

import pytest

from audioattn_sb.utils import atomic_write, atomic_write_text, code_commit, machine_info


def test_atomic_text_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "r.json"
        atomic_write_text(path, "{}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.umask(0o077)
        atomic_write_text(path, "{1}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)
    assert path.read_text() == "{1}"


def test_failed_write_keeps_previous_version_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, lambda p: open(p, "wb").write(b"old"))

    def broken(p):
        with open(p, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]


@pytest.mark.parametrize("flags,expected", [("fpu sse avx2 avx512f", False),
                                            ("fpu avx512f avx512_bf16", True),
                                            ("fpu amx_tile amx_bf16", True)])
def test_native_bf16_is_read_from_the_first_flags_line(tmp_path, flags, expected):
    from audioattn_sb.utils import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    # a second processor's line must not change the answer (the first one decides)
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: amx_bf16\n")
    assert cpu_has_native_bf16(str(info)) is expected
    info.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")     # aarch64: no x86 flags
    assert cpu_has_native_bf16(str(info)) is None


def test_bf16_warning_only_for_emulated_cpu_bf16(monkeypatch, caplog):
    import audioattn_sb.recipe as recipe

    for native, opts, warned in [(False, {"precision": "bf16"}, True),
                                 (False, {"precision": "bf16", "device": "cuda:0"}, False),
                                 (False, {"precision": "fp32"}, False),
                                 (True, {"precision": "bf16"}, False),
                                 (None, {"precision": "bf16", "device": "cpu"}, False),
                                 # SpeechBrain's RunOptions gives device=None for the default
                                 (False, {"precision": "bf16", "device": None}, True)]:
        monkeypatch.setattr(recipe, "cpu_has_native_bf16", lambda: native)
        caplog.clear()
        assert recipe.warn_if_bf16_is_emulated(opts) is warned
        assert ("emulates bf16" in caplog.text) is warned


def test_machine_info_reads_the_model_name_and_flags(tmp_path):
    info_file = tmp_path / "cpuinfo"
    info_file.write_text("processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\n"
                         "model name\t: Intel(R) Xeon(R) Platinum 8481C\nstepping\t: 8\n"
                         "flags\t\t: fpu avx512f amx_bf16\n\nprocessor\t: 1\n"
                         "model name\t: ignored second core\nstepping\t: 9\n")
    info = machine_info(info_file)
    assert info["cpu"] == "Intel(R) Xeon(R) Platinum 8481C"
    assert info["cpu_family_model_stepping"] == "6/143/8"
    assert info["native_bf16"] is True
    assert info["logical_cores"] == os.cpu_count()
    missing = machine_info(tmp_path / "absent")
    assert missing["native_bf16"] is None and missing["cpu_family_model_stepping"] is None


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_commit_names_the_head_and_marks_changed_tracked_files(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert code_commit(repo) is None  # not a checkout yet
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert code_commit(repo) == head
    assert code_commit(repo / "a.py") == head  # a file's checkout
    (repo / "new.txt").write_text("untracked files do not make it dirty\n")
    assert code_commit(repo) == head
    (repo / "a.py").write_text("x = 2\n")
    assert code_commit(repo) == head + "-dirty"


def test_subprocesses_started_by_tests_have_a_timeout(monkeypatch):
    """conftest: a subprocess call without a timeout gets SUBPROCESS_TIMEOUT (a hung child
    fails its test instead of hanging CI)."""
    import subprocess
    import sys

    import conftest

    monkeypatch.setattr(conftest, "SUBPROCESS_TIMEOUT", 0.5)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(sleeper)
    p = subprocess.Popen(sleeper)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait()
    finally:
        p.kill()
        p.wait(timeout=30)
    # an explicit timeout is kept
    assert subprocess.run([sys.executable, "-c", "pass"], timeout=60).returncode == 0


def test_trained_epochs_finds_what_a_training_command_trained(tmp_path):
    """conftest's check that a test not marked slow trained nothing: a training command's
    output folder with an epoch line in a train_log.txt counts, one that stopped before
    training (a log without epochs, no folder) does not."""
    from conftest import trained_epochs

    run = tmp_path / "out" / "a"
    run.mkdir(parents=True)
    (run / "train_log.txt").write_text("Epoch loaded: 0 - test accuracy: 0.1\n")
    cmd = ["python", "recipes/train.py", "h.yaml", f"--output_folder={tmp_path / 'out'}"]
    assert trained_epochs(cmd) == []
    (run / "train_log.txt").write_text("epoch: 1, lr: 1e-3 - train loss: 2.3\n")
    assert trained_epochs(cmd) == [str(run / "train_log.txt")]
    folds = ["python", "recipes/run_folds.py", "h.yaml", "--results_root", str(tmp_path)]
    assert trained_epochs(folds) == [str(run / "train_log.txt")]
    assert trained_epochs(["python", "recipes/train.py", "--output_folder=/nonexistent"]) == []
