"""The command line a user types: unknown overrides, the predecessor's own commands, the
checkpoint interval given on the command line, and no folder left behind by a failed set-up."""

import json
import os
import re
from pathlib import Path

import pytest
from conftest import run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml")


@pytest.mark.parametrize("args,expected", [
    (["--bogus_key=3"], "unknown override --bogus_key: not a key of"),
    (["--number_of_epoch=5"], "did you mean --number_of_epochs?"),
    (["--attn_domain=continuous", "--attn_continuous={encodr: direct}"],
     "unknown attn_continuous option 'encodr'; did you mean encoder?"),
])
def test_unknown_override_is_one_line_with_the_closest_keys(demo_us8k, tmp_path, args, expected):
    out = tmp_path / "never"
    p = run_script("train.py", SEED, f"--data_folder={demo_us8k}", f"--output_folder={out}",
                   *args, check=False)
    assert p.returncode == 2, p.stderr
    assert expected in p.stderr and "Traceback" not in p.stderr
    assert "Override" not in p.stderr  # not HyperPyYAML's message with the whole key list
    assert not out.exists()


def test_unknown_override_of_an_export_script(demo_trained_runs, tmp_path):
    args = demo_trained_runs["args"]["discrete"]
    p = run_script("save_attentions.py", demo_trained_runs["hparams"], *args, "--spec_dnam=x",
                   check=False)
    assert p.returncode == 2 and "unknown override --spec_dnam" in p.stderr
    assert "Traceback" not in p.stderr


def test_failed_preparation_leaves_no_new_folder_and_keeps_an_old_one(tmp_path):
    new = tmp_path / "new"
    p = run_script("train.py", SEED, f"--data_folder={tmp_path / 'missing'}",
                   f"--output_folder={new / 'a' / 'b'}", check=False)
    assert p.returncode == 2 and "no UrbanSound8K metadata" in p.stderr
    assert not new.exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("a run being resumed")
    p = run_script("train.py", SEED, f"--data_folder={tmp_path / 'missing'}",
                   f"--output_folder={old}", check=False)
    assert p.returncode == 2 and (old / "keep.txt").exists()


@pytest.mark.slow
def test_ckpt_interval_steps_on_the_command_line_wins_over_the_yaml(demo_us8k, tmp_path):
    """The yamls set ckpt_interval_minutes; --ckpt_interval_steps=3 alone used to stop with
    SpeechBrain's "mutually exclusive" message. Now it trains, saving intra-epoch checkpoints."""
    out = tmp_path / "steps"
    p = run_script("train.py", SEED, f"--data_folder={demo_us8k}",
                   f"--cache_folder={tmp_path / 'cache'}", f"--output_folder={out}",
                   "--train_fold_nums=[3, 4]", "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
                   "--number_of_epochs=1", "--ckpt_interval_steps=3", "--noprogressbar")
    assert "mutually exclusive" not in p.stdout + p.stderr
    assert json.loads((out / "results.json").read_text())["epochs_completed"] == 1


@pytest.mark.slow
def test_the_predecessors_export_commands_run_verbatim(demo_trained_runs, tmp_path):
    """The seed's README commands: save_specs.py ... --attn_num_samples 50 --spec_dname specs/x/
    and save_attentions.py ... --attn_num_samples 200 --attn_fname saved_attentions/x.csv (and a
    smaller N, which keeps the first N clips), with --device=cpu."""
    args = [*demo_trained_runs["args"]["continuous"], "--device=cpu"]
    run_folder = demo_trained_runs["continuous"]
    p = run_script("save_specs.py", demo_trained_runs["hparams"], *args,
                   "--attn_num_samples", "50", "--spec_dname", "specs/x/")
    specs = sorted((run_folder / "specs" / "x").glob("*.npz"))
    test_clips = json.loads((run_folder / "test.json").read_text())
    assert len(specs) == min(50, len(test_clips)), p.stdout
    p = run_script("save_attentions.py", demo_trained_runs["hparams"], *args,
                   "--attn_num_samples", "200", "--attn_fname", "saved_attentions/x.csv")
    rows = (run_folder / "saved_attentions" / "x.csv").read_text().splitlines()
    assert len(rows) - 1 == min(200, len(test_clips))
    run_script("save_attentions.py", demo_trained_runs["hparams"], *args,
               "--attn_num_samples", "3", "--attn_fname", "saved_attentions/three.csv")
    three = (run_folder / "saved_attentions" / "three.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in three[1:]] == [r.split(",")[0] for r in rows[1:4]]
    p = run_script("save_attentions.py", demo_trained_runs["hparams"], *args,
                   "--attn_num_samples", "0", check=False)
    assert p.returncode == 2 and "--attn_num_samples must be" in p.stderr


def test_env_log_lists_this_interpreters_packages(demo_trained_runs):
    """env.log (written by the recipe, not SpeechBrain's `pip freeze` of the first pip on PATH)
    lists the packages of the interpreter that trained, and this checkout's git revision."""
    import subprocess
    import sys

    import speechbrain

    text = (demo_trained_runs["discrete"] / "env.log").read_text()
    packages = text.split("Installed Python packages:\n")[1].split("=====")[0].split()
    assert f"speechbrain=={speechbrain.__version__}" in packages
    assert f"executable: {sys.executable}" in text
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    if rev:
        assert f"Git revision:\n{rev}\n" in text


@pytest.mark.parametrize("script", sorted(p.name for p in
                                          (Path(__file__).resolve().parent.parent / "recipes")
                                          .glob("*.py")))
def test_every_script_has_help_and_a_readme_row(script):
    """Every recipes/*.py answers --help with its usage (before any heavy import) and README.md
    names it."""
    from conftest import REPO_ROOT, run_script

    p = run_script(script, "--help", check=False)
    assert p.returncode == 0 and re.search(r"usage", p.stdout, re.I), (script, p.stderr[-500:])
    assert f"recipes/{script}" in (REPO_ROOT / "README.md").read_text()


def test_hf_model_without_the_extra_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """save_self_attention.py --hf_model without transformers installed: an error line saying
    how to install the extra, exit code 2, no traceback."""
    import sys

    from audioattn_sb.inspection.cli import run_cli, save_self_attention_main

    wav = tmp_path / "a.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(1600, np.float32), 16000)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    monkeypatch.delenv("AUDIOATTN_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(save_self_attention_main, ["--hf_model", str(tmp_path), "--wav", str(wav)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[hf]'" in err and "Traceback" not in err


def test_install_without_venv_module_is_one_clear_error(tmp_path):
    """scripts/install.sh with a Python whose venv module is missing (Debian without
    python3-venv): exit 1, one error line naming the fix, no half-made venv left behind."""
    import subprocess

    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 'No module named venv' >&2\nmkdir -p \"$3\"\nexit 1\n")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    p = subprocess.run(["bash", os.path.join(REPO, "scripts", "install.sh")],
                       env={**os.environ, "PYTHON": str(fake), "VENV": str(venv)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "venv module is missing" in p.stderr and "apt-get install python3-venv" in p.stderr
    assert not venv.exists()
