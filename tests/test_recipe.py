"""The training recipe end to end, through the real command line (recipes/train.py)."""

import json
import os
import re

import pytest
from conftest import run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml")


def train(*args, cwd=None, check=True):
    return run_script("train.py", HPARAMS, *args, "--noprogressbar", check=check, cwd=cwd)


@pytest.fixture(scope="module")
def demo(demo_us8k, tmp_path_factory):
    """The session's demo data with a cache and a root for this module's runs."""
    root = tmp_path_factory.mktemp("recipe")
    return {"data": str(demo_us8k), "cache": str(root / "cache"), "root": root}


def _common(demo, out):
    return [f"--data_folder={demo['data']}", f"--cache_folder={demo['cache']}",
            f"--output_folder={out}"]


@pytest.mark.slow
def test_two_epochs_then_resume(demo):
    out = demo["root"] / "run"
    # the overrides exactly as users type them (spaces inside the lists)
    train(*_common(demo, out), "--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10]",
          "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
          "--attn_domain", "discrete", "--attn_max_activation", "entmax1333",
          "--number_of_epochs=2")
    res = json.loads((out / "results.json").read_text())
    for key in ("test_accuracy", "test_error", "test_loss", "folds", "overrides",
                "test_confusion_matrix", "test_per_class_accuracy"):
        assert key in res
    assert res["test_accuracy"] == pytest.approx(1 - res["test_error"])
    assert res["folds"] == {"train": [3, 4, 5, 6, 7, 8, 9, 10], "valid": [2], "test": [1]}
    assert res["attention"]["max_activation"] == "entmax1333"
    assert res["attention"]["alpha"] == pytest.approx(4 / 3)
    assert res["overrides_dict"]["number_of_epochs"] == 2
    assert res["epochs_completed"] == 2 and len(res["train_epoch_seconds"]) == 2
    # what the figures depend on besides code and seed: the machine and the code's commit
    assert res["machine"]["logical_cores"] == os.cpu_count()
    assert res["machine"]["torch_threads"] >= 1 and res["machine"]["cpu"]
    assert res["code_commit"] is None or len(res["code_commit"].split("-")[0]) == 40
    # the test split is exactly the fold-1 clips, and the confusion matrix counts each once
    manifest = json.loads((out / "test.json").read_text())
    assert all(v["fold"] == 1 for v in manifest.values())
    assert sum(map(sum, res["test_confusion_matrix"])) == len(manifest) == res["n_clips"]["test"]
    # manifests live in the run's own folder, not in the data folder
    for name in ("train.json", "valid.json", "test.json"):
        assert (out / name).is_file()
        assert not os.path.exists(os.path.join(demo["data"], name))
    log = (out / "train_log.txt").read_text()
    assert re.findall(r"^epoch: (\d+)", log, re.M) == ["1", "2"]

    # same command with more epochs: resumes from the checkpoint, trains epoch 3 only
    train(*_common(demo, out), "--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10]",
          "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
          "--attn_domain", "discrete", "--attn_max_activation", "entmax1333",
          "--number_of_epochs=3")
    log = (out / "train_log.txt").read_text()
    assert re.findall(r"^epoch: (\d+)", log, re.M) == ["1", "2", "3"]
    res = json.loads((out / "results.json").read_text())
    assert res["epochs_completed"] == 3 and len(res["train_epoch_seconds"]) == 1
    # the test used the checkpoint of the lowest valid error (docs/training.md: protocol)
    errors = [float(e) for e in re.findall(r"valid error: ([0-9.e+-]+)", log)]
    assert len(errors) == 3 and len(set(errors)) > 1, errors  # else the check below is moot
    assert errors[res["best_epoch"] - 1] == min(errors), (errors, res["best_epoch"])
    assert res["tested_epoch"] == res["best_epoch"]
    assert res["checkpoint_selected_by"] == "min valid error"


@pytest.mark.slow
def test_same_command_twice_gives_identical_metrics(demo):
    args = ["--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10]", "--valid_fold_nums=[2]",
            "--test_fold_nums=[1]", "--number_of_epochs=2", "--attn_max_activation=sparsemax"]
    a = demo["root"] / "det_a"
    b = demo["root"] / "det_b"
    train(*_common(demo, a), *args)
    train(*_common(demo, b), *args)
    ra = json.loads((a / "results.json").read_text())
    rb = json.loads((b / "results.json").read_text())
    assert ra["test_loss"] == rb["test_loss"]
    assert ra["test_confusion_matrix"] == rb["test_confusion_matrix"]


def test_valid_equal_test_is_refused_before_any_work(demo, tmp_path):
    out = tmp_path / "biased"
    p = train(*_common(demo, out), "--train_fold_nums=[2, 3, 4, 5, 6, 7, 8, 9, 10]",
              "--valid_fold_nums=[1]", "--test_fold_nums=[1]", check=False)
    assert p.returncode == 2
    assert "error:" in p.stderr and "Traceback" not in p.stderr
    assert "allow_valid_test_overlap" in p.stderr
    assert not out.exists()


def test_unknown_test_checkpoint_rule_is_refused_before_any_work(demo, tmp_path):
    out = tmp_path / "badrule"
    p = train(*_common(demo, out), "--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10]",
              "--valid_fold_nums=[2]", "--test_fold_nums=[1]", "--test_checkpoint=best",
              check=False)
    assert p.returncode == 2
    assert "test_checkpoint: 'best' is not one of best_valid, last" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()


@pytest.mark.slow
def test_valid_equal_test_runs_with_loud_warning_when_allowed(demo, tmp_path):
    """The banner itself (not any warning, not a word of the output path): it names the
    overlapping fold and says the checkpoint is selected on test data, on the console and in the
    run's log.txt. (Removing the banner loop in check_folds makes this fail.)"""
    out = tmp_path / "overlap_ok"
    p = train(*_common(demo, out), "--train_fold_nums=[2, 3, 4, 5, 6, 7, 8, 9, 10]",
              "--valid_fold_nums=[1]", "--test_fold_nums=[1]", "--allow_valid_test_overlap=True",
              "--number_of_epochs=1")
    banner = "WARNING: VALID AND TEST FOLDS OVERLAP (fold 1; allow_valid_test_overlap=True)."
    for text in (p.stdout + p.stderr, (out / "log.txt").read_text()):
        assert banner in text
        assert "The checkpoint will be SELECTED ON TEST DATA" in text
    assert (out / "results.json").exists()


@pytest.mark.parametrize("args,expected", [
    (["--attn_domain", "discrete", "--attn_max_activation", "sparsmax"],
     "softmax, entmax1333, entmax15, sparsemax, entmax"),
    (["--attn_domain", "discrte"], "discrete, continuous, mean"),
    (["--attn_max_activation", "entmax"], "needs --attn_alpha"),
])
def test_bad_attention_names_fail_at_start_up(demo, tmp_path, args, expected):
    p = train(*_common(demo, tmp_path / "bad"), *args, check=False)
    assert p.returncode == 2, p.stderr
    assert expected in p.stderr and "Traceback" not in p.stderr


def test_help_prints_usage():
    p = run_script("train.py", "--help", check=False)
    assert p.returncode == 0 and "--attn_max_activation" in p.stdout


@pytest.mark.slow
def test_real_esc10_seed_configuration_beats_chance(esc10_seed_run):
    """The seed ACRNN on real ESC-10 (train folds 2-4, valid 5, test 1; continuous sparsemax):
    far above 10 % chance."""
    res = esc10_seed_run["results"]
    assert res["n_clips"] == {"train": 240, "valid": 80, "test": 80}
    # Threshold = mean - 3 std of repeated runs of this exact configuration, seeds 0-10
    # (2026-11-30, torch 2.13 CPU, 1 thread, commit b9e94bc's code): 0.5875 0.6125 0.5875 0.625
    # 0.575 0.6 0.6125 0.6 0.6125 0.6125 0.6375 -> mean 0.606, std 0.018, mean - 3 std = 0.552.
    # A second CPU kind (machine D, Intel Xeon 6/167/1, 2026-12-05; seeds 0-5 of the same
    # configuration in scripts/measure_compact_thresholds.sh, docs/runs/compact_thresholds_
    # machineD/seed_seed*): 0.5875 0.6125 0.5875 0.625 0.575 0.6, the same values.
    # This test runs seed 0 (0.5875, deterministic). REFERENCE §9: the predecessor lands at
    # 0.60-0.63 with this protocol; chance is 0.10.
    assert res["test_accuracy"] >= 0.55, res["test_accuracy"]




@pytest.mark.parametrize("n_train,steps_per_epoch", [(320, 10), (7079, 222), (33, 2)])
def test_cyclic_lr_half_cycle_is_in_epochs(tmp_path, n_train, steps_per_epoch):
    """README: the seed yaml's cyclic LR half cycle is lr_step_epochs = 4 epochs of the run's
    own training set (4 × ceil(n / batch 32) steps), not a fixed 1000 iterations."""
    from hyperpyyaml import load_hyperpyyaml

    from audioattn_sb.recipe import set_lr_schedule

    with open(HPARAMS) as f:
        hp = load_hyperpyyaml(f, f"output_folder: {tmp_path}")
    assert hp["lr_annealing"].step_size == 1000  # the yaml's iterations, before the run
    set_lr_schedule(hp, n_train)
    assert hp["lr_annealing"].step_size == 4 * steps_per_epoch
    with open(HPARAMS) as f:
        hp = load_hyperpyyaml(f, f"output_folder: {tmp_path}\nlr_step_epochs: null")
    set_lr_schedule(hp, n_train)
    assert hp["lr_annealing"].step_size == 1000  # lr_step_epochs: null keeps the iterations
