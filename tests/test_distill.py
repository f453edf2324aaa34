"""Distillation from a teacher run (issue 30): the loss against a hand computation, the refusal of
a teacher that saw a test fold, the teacher scoring exactly the student's augmented, mixed input,
run_folds picking each fold's teacher, and inspection of a distilled run."""

import json
import math
import os

import numpy as np
import pytest
import torch

from audioattn_sb.distill import check_teacher, distillation_loss, find_teacher_run
from conftest import REPO_ROOT, run_script, train_in_process


def test_loss_against_a_hand_computation():
    """T = 2, two clips, three classes: T² · mean over clips of Σ p_t log(p_t / p_s), with
    p = softmax(log p / T), computed in numpy."""
    s = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    t = np.log(np.array([[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]))

    def soft(logp, temp):
        z = np.exp(logp / temp)
        return z / z.sum(1, keepdims=True)

    ps, pt = soft(s, 2.0), soft(t, 2.0)
    want = 4.0 * np.mean(np.sum(pt * np.log(pt / ps), axis=1))
    got = distillation_loss(torch.tensor(s), torch.tensor(t), temperature=2.0)
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(distillation_loss(torch.tensor(t), torch.tensor(t), 3.0)) == pytest.approx(0.0,
                                                                                            abs=1e-7)
    with pytest.raises(ValueError, match="distill_temperature must be > 0"):
        distillation_loss(torch.tensor(s), torch.tensor(t), temperature=0.0)


def _fake_run(folder, train, valid, test, classes=("a", "b")):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"folds": {"train": train, "valid": valid, "test": test},
                   "class_names": list(classes)}, f)
    return folder


def test_teachers_that_saw_a_test_fold_are_refused(tmp_path):
    run = _fake_run(tmp_path / "t", [3, 4, 5], [2], [1])
    this = {"train": [1, 4, 5], "valid": [3], "test": [2]}
    with pytest.raises(ValueError, match=r"validated on fold\(s\) \[2\]"):
        check_teacher(run, this)
    with pytest.raises(ValueError, match=r"trained on fold\(s\) \[4\]"):
        check_teacher(run, {"train": [1, 2, 3], "valid": [5], "test": [4]})
    assert check_teacher(run, {"train": [3, 4, 5], "valid": [2], "test": [1]}).folds
    with pytest.raises(ValueError, match="its classes"):
        check_teacher(run, {"test": [1]}, class_names=["a", "c"])
    with pytest.raises(ValueError, match="no results.json"):
        check_teacher(tmp_path / "none", {"test": [1]})


def test_run_folds_picks_each_folds_teacher(tmp_path):
    from audioattn_sb.fold_runner import build_commands

    exp = tmp_path / "exp"
    for k, v in ((1, 2), (2, 3)):
        _fake_run(exp / "discrete-softmax" / f"test{k}_valid{v}" / "seed0",
                  [f for f in range(1, 6) if f not in (k, v)], [v], [k])
    cmds = build_commands(str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml"),
                          "d", 5, [1, 2], ["discrete:softmax"], [], teacher_experiment=str(exp))
    for c, (k, v) in zip(cmds, ((1, 2), (2, 3))):
        assert f"--teacher={exp / 'discrete-softmax' / f'test{k}_valid{v}' / 'seed0'}" in c["args"]
    with pytest.raises(ValueError, match=r"0 finished runs with test fold\(s\) \[3\]"):
        find_teacher_run(exp, [3], [4])


@pytest.fixture(scope="module")
def teacher(demo_us8k, tmp_path_factory):
    """A compact ACRNN teacher on the demo: train fold 3, valid 2, test 1, 2 epochs."""
    root = tmp_path_factory.mktemp("teacher")
    train_in_process([str(REPO_ROOT / "hparams" / "urbansound8k_acrnn_compact.yaml"),
                      f"--data_folder={demo_us8k}", f"--cache_folder={root / 'cache'}",
                      f"--output_folder={root / 'run'}", "--train_fold_nums=[3]",
                      "--valid_fold_nums=[2]", "--test_fold_nums=[1]", "--number_of_epochs=2",
                      "--warmup_epochs=1", "--noprogressbar"])
    return {"run": root / "run", "cache": root / "cache"}


STUDENT = ["--d_model=16", "--n_heads=4", "--ff_dim=24", "--n_layers=2", "--number_of_epochs=2",
           "--warmup_epochs=1", "--noprogressbar"]


@pytest.mark.slow
def test_teacher_scores_the_students_augmented_mixed_input(teacher, demo_us8k, tmp_path,
                                                           monkeypatch):
    from audioattn_sb.distill import Teacher
    from audioattn_sb.inspection.cli import save_attentions_main
    from audioattn_sb.models.transformer import AudioTransformer

    seen = {"student": [], "teacher": []}
    forward, call = AudioTransformer.forward, Teacher.__call__

    def student_forward(self, x, lengths=None, return_attention=False):
        seen["student"].append((self.training, x.detach().clone()))
        return forward(self, x, lengths, return_attention)

    def teacher_call(self, wavs, lens):
        out = call(self, wavs, lens)
        seen["teacher"].append((wavs.detach().clone(), out))
        return out

    monkeypatch.setattr(AudioTransformer, "forward", student_forward)
    monkeypatch.setattr(Teacher, "__call__", teacher_call)
    out = tmp_path / "student"
    args = [f"--data_folder={demo_us8k}", f"--cache_folder={teacher['cache']}",
            f"--output_folder={out}", "--train_fold_nums=[3]", "--valid_fold_nums=[2]",
            "--test_fold_nums=[1]", f"--teacher={teacher['run']}", *STUDENT]
    hp = str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml")
    res = train_in_process([hp, *args])
    train_inputs = [x for training, x in seen["student"] if training]
    # one teacher call per training batch (30 clips / 16 = 2 batches × 2 epochs), on the very
    # tensor the student saw: after augmentation and mixup (so not a clip of the data)
    assert len(seen["teacher"]) == len(train_inputs) == 4
    for (wavs, logp), x in zip(seen["teacher"], train_inputs):
        assert torch.equal(wavs, x)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(len(x)))
    assert res["epochs_completed"] == 2 and math.isfinite(res["test_loss"])
    from audioattn_sb.hparams import peek_hparams

    assert peek_hparams(out / "hyperparams.yaml")["teacher"] == str(teacher["run"])
    # inspection works on a distilled run as on any other (the teacher is not needed)
    written = save_attentions_main([hp, *args, "--attn_num_samples", "2"])
    assert written["n_clips"] == 2 and os.path.isfile(written["csv"])


@pytest.mark.slow
def test_train_refuses_a_teacher_trained_on_the_test_fold(teacher, demo_us8k, tmp_path):
    """The student's test fold 3 is the teacher's training fold: exit 2 before any work."""
    p = run_script("train.py", REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml",
                   f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'c'}",
                   f"--output_folder={tmp_path / 'student'}", "--train_fold_nums=[1]",
                   "--valid_fold_nums=[2]", "--test_fold_nums=[3]",
                   f"--teacher={teacher['run']}", *STUDENT, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "it was trained on fold(s) [3], this run's test fold(s) [3]" in p.stderr
    assert not (tmp_path / "student").exists() and not (tmp_path / "c").exists()


def test_brain_loss_mixes_nll_and_the_teacher_term(tmp_path):
    """ClassificationBrain's training loss with a teacher's log-probabilities:
    (1 − w) · NLL + w · T² · KL, w = 0.3, T = 2, against numpy; without one, the NLL alone."""
    import speechbrain as sb

    from audioattn_sb.attention.output import Attention
    from audioattn_sb.brains.base import ForwardOutput
    from audioattn_sb.brains.classification import ClassificationBrain

    hparams = {"epoch_counter": sb.utils.epoch_loop.EpochCounter(limit=1),
               "output_folder": str(tmp_path), "n_classes": 3,
               "distill_weight": 0.3, "distill_temperature": 2.0}
    brain = ClassificationBrain(modules={"model": torch.nn.Linear(1, 1)}, hparams=hparams,
                                run_opts={"device": "cpu"})

    class Batch:
        label = type("L", (), {"data": torch.tensor([[0], [2]])})()

    s = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    t = np.log(np.array([[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]))
    nll = -(s[0, 0] + s[1, 2]) / 2
    pt = np.exp(t / 2) / np.exp(t / 2).sum(1, keepdims=True)
    ps = np.exp(s / 2) / np.exp(s / 2).sum(1, keepdims=True)
    kl = 4 * np.mean(np.sum(pt * np.log(pt / ps), axis=1))
    brain.on_stage_start(sb.Stage.TRAIN)
    forward = ForwardOutput(torch.tensor(s), Attention(), teacher_logp=torch.tensor(t))
    loss = brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)
    assert float(loss) == pytest.approx(0.7 * nll + 0.3 * kl, rel=1e-6)
    forward = ForwardOutput(torch.tensor(s), Attention())
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)) == \
        pytest.approx(nll, rel=1e-6)
