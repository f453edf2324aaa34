"""The moving average of the end-of-epoch weights (audioattn_sb.training.WeightAverage,
``--average_epochs``): the average against a direct weighted mean, BatchNorm buffers, the
checkpoint round trip, and through train.py: validation and test score the averaged weights,
the checkpoint keeps the model's own, results.json has both, inspection loads the averaged."""

import csv
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import run_script

from audioattn_sb.training import WeightAverage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPACT = os.path.join(REPO, "hparams", "urbansound8k_acrnn_compact.yaml")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def _snapshots(net, n):
    """Train-mode steps that move both the parameters and the BatchNorm statistics; the
    state after each "epoch" (detached copies)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    out = []
    for _ in range(n):
        net.train()
        loss = net(torch.randn(8, 3)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    return out


@pytest.mark.parametrize("tau", [0.5, 3.0])
def test_average_is_the_exponentially_weighted_mean_of_the_epochs(tau):
    """θ̄ₙ = Σₖ dⁿ⁻ᵏ θₖ / Σₖ dⁿ⁻ᵏ (d = e^{−1/τ}) for parameters and BatchNorm running statistics;
    the batch counter is copied; apply/restore swap the model's weights and give them back."""
    net = _net()
    avg = WeightAverage(net, epochs=tau)
    snaps = []
    for _ in range(5):
        snaps += _snapshots(net, 1)
        avg.update()
    d = math.exp(-1 / tau)
    weights = [d ** (5 - k) for k in range(1, 6)]
    own = {k: v.clone() for k, v in net.state_dict().items()}
    avg.apply()
    for name, value in net.state_dict().items():
        if value.is_floating_point():
            expected = sum(w * s[name] for w, s in zip(weights, snaps)) / sum(weights)
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
            assert not torch.equal(value, own[name]), name  # the average is not the last epoch
        else:
            assert torch.equal(value, own[name])  # num_batches_tracked
    avg.apply()  # a second apply keeps the first's saved weights
    avg.restore()
    for name, value in net.state_dict().items():
        assert torch.equal(value, own[name]), name
    assert int(avg.n_updates) == 5


def test_off_stores_nothing_and_changes_nothing():
    net = _net()
    avg = WeightAverage(net, epochs=0)
    _snapshots(net, 2)
    avg.update()
    own = {k: v.clone() for k, v in net.state_dict().items()}
    avg.apply()
    assert avg.average is None and not avg.active and int(avg.n_updates) == 0
    assert all(torch.equal(v, own[k]) for k, v in net.state_dict().items())
    assert list(avg.state_dict()) == ["n_updates"]


def test_bad_settings_and_misuse_are_errors():
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="average_epochs"):
            WeightAverage(_net(), epochs=bad)
    net = _net()
    avg = WeightAverage(net, epochs=2)
    avg.update()
    avg.apply()
    with pytest.raises(RuntimeError, match="applied"):
        avg.update()  # folding the average into itself would be silent nonsense


def test_checkpoint_round_trip_resumes_the_same_average(tmp_path):
    """Saved and recovered by SpeechBrain's checkpointer (the recipe's AtomicCheckpointer): the
    resumed average continues exactly as the uninterrupted one."""
    from audioattn_sb.checkpoints import AtomicCheckpointer

    net = _net()
    avg = WeightAverage(net, epochs=2)
    _snapshots(net, 1)
    avg.update()
    _snapshots(net, 1)
    avg.update()
    AtomicCheckpointer(tmp_path, {"model": net, "weight_average": avg}).save_checkpoint()

    net2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    avg2 = WeightAverage(net2, epochs=2)
    AtomicCheckpointer(tmp_path, {"model": net2, "weight_average": avg2}).recover_if_possible()
    assert int(avg2.n_updates) == 2
    torch.manual_seed(1)
    _snapshots(net, 1)
    torch.manual_seed(1)
    _snapshots(net2, 1)
    avg.update()
    avg2.update()
    for (k, a), b in zip(avg.average.state_dict().items(), avg2.average.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.slow
def test_train_py_validates_and_tests_the_average_and_keeps_its_own_weights(demo_us8k, tmp_path):
    """Valid fold = test fold (overlap allowed here only to compare the two stages): the last
    epoch's validation and the test give the same figures (both score the averaged weights); the
    test of the checkpoint's own weights differs and is in results.json; the checkpoint's
    model.ckpt holds the model's own weights, not the average; inspection reproduces the test."""
    from audioattn_sb.inspection.cli import save_attentions_main

    out = tmp_path / "run"
    args = [COMPACT, f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'cache'}",
            f"--output_folder={out}", "--train_fold_nums=[3, 4, 5, 6]",
            "--valid_fold_nums=[1]", "--test_fold_nums=[1]", "--allow_valid_test_overlap=True",
            "--number_of_epochs=2", "--warmup_epochs=1", "--augment=False", "--lr=0.02",
            "--min_lr=0.02", "--average_epochs=2", "--noprogressbar"]
    run_script("train.py", *args)
    res = json.loads((out / "results.json").read_text())
    assert res["average_epochs"] == 2.0 and res["tested_epoch"] == 2
    own = res["without_weight_average"]
    assert res["valid_error_last_epoch"] == pytest.approx(res["test_error"])
    last_valid_loss = re.findall(r"valid loss: ([0-9.e+-]+)", (out / "train_log.txt").read_text())
    assert len(last_valid_loss) == 2
    assert float(last_valid_loss[-1]) == pytest.approx(res["test_loss"], rel=6e-3)
    assert own["test_loss"] != pytest.approx(res["test_loss"], rel=1e-2), \
        "choose settings where averaging changes the test loss"
    # the checkpoint: the model's own weights (restored before saving) and the average apart
    (ckpt,) = [p for p in (out / "save").iterdir() if p.name.startswith("CKPT")
               and "epoch: 2" in (p / "CKPT.yaml").read_text()]
    model = torch.load(ckpt / "model.ckpt", weights_only=True)
    average = torch.load(ckpt / "weight_average.ckpt", weights_only=True)
    assert int(average["n_updates"]) == 2
    differ = [k for k, v in model.items() if v.is_floating_point()
              and not torch.equal(v, average[f"average.{k}"])]
    assert len(differ) > len(model) // 2
    # inspection loads the checkpoint with the averaged weights: the test accuracy again
    got = save_attentions_main(args + ["--attn_fname=avg.csv"])
    assert got["accuracy"] == pytest.approx(res["test_accuracy"])
    # scripts/compare_weight_average.py on a run_folds-style tree holding this run: the CSV row
    # is results.json's two tests (nothing re-evaluated); a tree without averaged runs is refused
    tree = tmp_path / "tree"
    (tree / "v" / "test1_valid1").mkdir(parents=True)
    (tree / "v" / "test1_valid1" / "seed0").symlink_to(out)
    script = os.path.join(REPO, "scripts", "compare_weight_average.py")
    p = subprocess.run([sys.executable, script, str(tree)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (row,) = list(csv.DictReader(open(tree / "weight_average.csv")))
    assert float(row["averaged_test"]) == res["test_accuracy"]
    assert float(row["own_test"]) == own["test_accuracy"] and row["own_noisy"] == ""
    assert "\nv | 1 | " in p.stdout
    res.pop("without_weight_average")
    (out / "results.json").write_text(json.dumps(res))
    p = subprocess.run([sys.executable, script, str(tree)], capture_output=True, text=True)
    assert p.returncode != 0 and "no finished run with a weight average among 1" in p.stderr
