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


def _record_student_and_teacher(monkeypatch):
    """Record every student forward (training mode, input) and teacher call (input, output)."""
    from audioattn_sb.distill import Teacher
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
    return seen


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
    from audioattn_sb.inspection.cli import save_attentions_main

    seen = _record_student_and_teacher(monkeypatch)
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
    forward = ForwardOutput(torch.tensor(s), Attention(), teacher_predictions=torch.tensor(t))
    loss = brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)
    assert float(loss) == pytest.approx(0.7 * nll + 0.3 * kl, rel=1e-6)
    forward = ForwardOutput(torch.tensor(s), Attention())
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)) == \
        pytest.approx(nll, rel=1e-6)


# --------------------------------------------------------------------------- multi-label
def test_multilabel_loss_against_a_hand_computation():
    """T = 2, two chunks, three classes: T² · mean over chunks and classes of the Bernoulli
    KL(σ(t/T) ‖ σ(s/T)) in numpy; zero when student = teacher; its gradient in the student's
    logits is T (σ(s/T) − σ(t/T)) / (B·C)."""
    from audioattn_sb.training import multilabel_distillation_loss

    s = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -0.5]])
    t = np.array([[2.0, -1.0, 0.0], [-3.0, 0.5, 0.5]])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    ps, pt = sig(s / 2), sig(t / 2)
    want = 4.0 * np.mean(pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps)))
    st = torch.tensor(s, requires_grad=True)
    got = multilabel_distillation_loss(st, torch.tensor(t), temperature=2.0)
    assert float(got.detach()) == pytest.approx(want, rel=1e-6)
    got.backward()
    np.testing.assert_allclose(st.grad.numpy(), 2.0 * (ps - pt) / s.size, rtol=1e-5)
    assert float(multilabel_distillation_loss(torch.tensor(t), torch.tensor(t), 3.0)) == \
        pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="distill_temperature must be > 0"):
        multilabel_distillation_loss(torch.tensor(s), torch.tensor(t), temperature=-1.0)


def _fake_fixed_split_run(folder, data_folder="data/FSD50K", classes=("a", "b")):
    from audioattn_sb.brains.multilabel import FIXED_SPLITS

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"splits": FIXED_SPLITS, "data_folder": data_folder,
                   "class_names": list(classes)}, f)
    return folder


def test_fixed_split_runs_take_a_teacher_of_the_same_split_and_data(tmp_path):
    """An FSD50K student (no folds) takes a multi-label teacher trained on the same data folder;
    a cross-validation teacher, a teacher of another data folder (its training clips could be
    this run's eval clips) and a fold student with a fixed-split teacher are refused."""
    no_folds = {"train": None, "valid": None, "test": None}
    ok = _fake_fixed_split_run(tmp_path / "ok")
    assert check_teacher(ok, no_folds, ["a", "b"], data_folder="data/FSD50K").get("splits")
    assert check_teacher(ok, None, data_folder="data/FSD50K")
    with pytest.raises(ValueError, match="trained on data folder other/FSD50K"):
        check_teacher(_fake_fixed_split_run(tmp_path / "other", "other/FSD50K"), no_folds,
                      data_folder="data/FSD50K")
    with pytest.raises(ValueError, match="a cross-validation run"):
        check_teacher(_fake_run(tmp_path / "cv", [3, 4], [2], [1]), no_folds)
    with pytest.raises(ValueError, match="names no split"):
        with open(tmp_path / "ok" / "results.json", "w") as f:
            json.dump({"data_folder": "data/FSD50K"}, f)
        check_teacher(ok, no_folds)
    with pytest.raises(ValueError, match="names no training folds"):
        check_teacher(_fake_fixed_split_run(tmp_path / "ml"),
                      {"train": [3, 4], "valid": [2], "test": [1]})
    with pytest.raises(ValueError, match="its classes"):
        check_teacher(_fake_fixed_split_run(tmp_path / "c3"), None, ["a", "c"])


def test_multilabel_brain_loss_mixes_bce_and_the_teacher_term(tmp_path):
    """MultiLabelBrain's training loss with a teacher's logits: (1 − w) · BCE + w · T² · mean
    Bernoulli KL, w = 0.25, T = 1.5, against numpy; without one, the BCE alone; validation
    ignores the teacher."""
    import speechbrain as sb

    from audioattn_sb.attention.output import Attention
    from audioattn_sb.brains.base import ForwardOutput
    from audioattn_sb.brains.multilabel import MultiLabelBrain

    hparams = {"epoch_counter": sb.utils.epoch_loop.EpochCounter(limit=1),
               "output_folder": str(tmp_path), "distill_weight": 0.25,
               "distill_temperature": 1.5}
    brain = MultiLabelBrain(modules={"model": torch.nn.Linear(1, 1)}, hparams=hparams,
                            run_opts={"device": "cpu"})
    y = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

    class Batch:
        targets = type("T", (), {"data": torch.tensor(y)})()
        clip = ["c1", "c2"]

    s = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -0.5]])
    t = np.array([[2.0, -1.0, 0.0], [-3.0, 0.5, 0.5]])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    bce = -np.mean(y * np.log(sig(s)) + (1 - y) * np.log(1 - sig(s)))
    ps, pt = sig(s / 1.5), sig(t / 1.5)
    kl = 2.25 * np.mean(pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps)))
    brain.on_stage_start(sb.Stage.TRAIN)
    forward = ForwardOutput(torch.tensor(s), Attention(), teacher_predictions=torch.tensor(t))
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)) == \
        pytest.approx(0.75 * bce + 0.25 * kl, rel=1e-6)
    forward = ForwardOutput(torch.tensor(s), Attention())
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)) == \
        pytest.approx(bce, rel=1e-6)
    brain.on_stage_start(sb.Stage.VALID)
    forward = ForwardOutput(torch.tensor(s), Attention(), teacher_predictions=torch.tensor(t))
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.VALID)) == \
        pytest.approx(bce, rel=1e-6)


@pytest.mark.slow
def test_multilabel_student_distils_from_a_multilabel_teacher(demo_fsd50k, tmp_path, monkeypatch):
    """FSD50K layout end to end: a compact ACRNN teacher (2 epochs) teaches a tiny compact
    Transformer; the teacher scores each training batch's very input (augmented, mixed chunks)
    and returns one logit per class; the distilled run finishes and records its teacher. A
    teacher trained on another data folder is refused before any work (exit 2)."""
    import shutil

    from audioattn_sb.hparams import peek_hparams

    teacher = tmp_path / "teacher"
    train_in_process([str(REPO_ROOT / "hparams" / "fsd50k_acrnn_compact.yaml"),
                      f"--data_folder={demo_fsd50k}", f"--cache_folder={tmp_path / 'c1'}",
                      f"--output_folder={teacher}", "--number_of_epochs=2", "--warmup_epochs=1",
                      "--noprogressbar"])
    seen = _record_student_and_teacher(monkeypatch)
    hp = str(REPO_ROOT / "hparams" / "fsd50k_transformer_compact.yaml")
    out = tmp_path / "student"
    res = train_in_process([hp, f"--data_folder={demo_fsd50k}", f"--cache_folder={tmp_path / 'c2'}",
                            f"--output_folder={out}", f"--teacher={teacher}", *STUDENT])
    train_inputs = [x for training, x in seen["student"] if training]
    assert len(seen["teacher"]) == len(train_inputs) > 0
    for (wavs, logits), x in zip(seen["teacher"], train_inputs):
        assert torch.equal(wavs, x)
        assert logits.shape == (len(x), len(res["class_names"]))
        assert not torch.allclose(logits.exp().sum(-1), torch.ones(len(x)))  # logits, not log-p
    assert res["epochs_completed"] == 2 and 0.0 < res["test_mAP"] <= 1.0
    assert peek_hparams(out / "hyperparams.yaml")["teacher"] == str(teacher)
    # the same teacher for a copy of the data in another folder: refused, nothing written
    other = tmp_path / "other_copy"
    shutil.copytree(demo_fsd50k, other)
    p = run_script("train.py", hp, f"--data_folder={other}", f"--cache_folder={tmp_path / 'c3'}",
                   f"--output_folder={tmp_path / 'refused'}", f"--teacher={teacher}", *STUDENT,
                   check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert f"trained on data folder {demo_fsd50k}" in p.stderr
    assert not (tmp_path / "refused").exists()


def test_hard_distillation_against_a_hand_computation(tmp_path):
    """DeiT's hard distillation: single-label, the NLL of the teacher's argmax; multi-label,
    the BCE against the teacher's decisions t_c > 0 (numpy); and the Brains use it with
    ``distill_hard: True``: (1 − w) · loss + w · the hard term."""
    import speechbrain as sb

    from audioattn_sb.attention.output import Attention
    from audioattn_sb.brains.base import ForwardOutput
    from audioattn_sb.brains.classification import ClassificationBrain
    from audioattn_sb.brains.multilabel import MultiLabelBrain
    from audioattn_sb.training import hard_distillation_loss, multilabel_hard_distillation_loss

    s = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    t = np.log(np.array([[0.2, 0.5, 0.3], [0.3, 0.3, 0.4]]))     # decisions: class 1, class 2
    hard = -(s[0, 1] + s[1, 2]) / 2
    assert float(hard_distillation_loss(torch.tensor(s), torch.tensor(t))) == \
        pytest.approx(hard, rel=1e-6)
    sl, tl = np.array([[0.5, -2.0], [1.0, 0.0]]), np.array([[2.0, -1.0], [-3.0, 0.5]])
    d = (tl > 0).astype(float)
    sig = 1 / (1 + np.exp(-sl))
    bce_hard = -np.mean(d * np.log(sig) + (1 - d) * np.log(1 - sig))
    assert float(multilabel_hard_distillation_loss(torch.tensor(sl), torch.tensor(tl))) == \
        pytest.approx(bce_hard, rel=1e-6)

    common = {"epoch_counter": sb.utils.epoch_loop.EpochCounter(limit=1),
              "output_folder": str(tmp_path), "distill_weight": 0.4, "distill_hard": True,
              "distill_temperature": 5.0}   # ignored by the hard term
    brain = ClassificationBrain(modules={"model": torch.nn.Linear(1, 1)},
                                hparams={**common, "n_classes": 3}, run_opts={"device": "cpu"})

    class Batch:
        label = type("L", (), {"data": torch.tensor([[0], [2]])})()

    brain.on_stage_start(sb.Stage.TRAIN)
    forward = ForwardOutput(torch.tensor(s), Attention(), teacher_predictions=torch.tensor(t))
    nll = -(s[0, 0] + s[1, 2]) / 2
    assert float(brain.compute_objectives(forward, Batch(), sb.Stage.TRAIN)) == \
        pytest.approx(0.6 * nll + 0.4 * hard, rel=1e-6)

    ml = MultiLabelBrain(modules={"model": torch.nn.Linear(1, 1)}, hparams=common,
                         run_opts={"device": "cpu"})
    y = np.array([[1.0, 0.0], [0.0, 1.0]])

    class MLBatch:
        targets = type("T", (), {"data": torch.tensor(y)})()
        clip = ["c1", "c2"]

    bce = -np.mean(y * np.log(sig) + (1 - y) * np.log(1 - sig))
    ml.on_stage_start(sb.Stage.TRAIN)
    forward = ForwardOutput(torch.tensor(sl), Attention(), teacher_predictions=torch.tensor(tl))
    assert float(ml.compute_objectives(forward, MLBatch(), sb.Stage.TRAIN)) == \
        pytest.approx(0.6 * bce + 0.4 * bce_hard, rel=1e-6)


# --------------------------------------------------------------------------- ensembles of teachers
def test_an_ensemble_of_teachers_is_the_mean_of_their_probabilities():
    """Single-label: log of the mean of exp(log p_k); multi-label: logit of the mean of
    σ(t_k); numpy; one teacher: its own predictions."""
    from audioattn_sb.distill import mean_of_probabilities

    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4, 5)) * 2
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    got = mean_of_probabilities(torch.tensor(logp))
    assert np.allclose(got.numpy(), np.log(np.exp(logp).mean(0)), atol=1e-12)
    assert torch.allclose(got.exp().sum(-1), torch.ones(4, dtype=torch.float64))
    sig = 1 / (1 + np.exp(-z))
    want = np.log(sig.mean(0) / (1 - sig.mean(0)))
    assert np.allclose(mean_of_probabilities(torch.tensor(z), multilabel=True).numpy(), want,
                       atol=1e-9)
    assert torch.allclose(mean_of_probabilities(torch.tensor(logp[:1])), torch.tensor(logp[0]))


def test_each_teacher_of_an_ensemble_is_checked(tmp_path):
    from audioattn_sb.distill import check_run_teacher, teacher_runs

    a = _fake_run(tmp_path / "a", [3, 4, 5], [2], [1])
    b = _fake_run(tmp_path / "b", [1, 4, 5], [3], [2])        # trained on this run's test fold 1
    hp = {"train_fold_nums": [3, 4, 5], "valid_fold_nums": [2], "test_fold_nums": [1]}
    assert [r.folds["test"] for r in check_run_teacher({**hp, "teacher": [str(a)]})] == [[1]]
    with pytest.raises(ValueError, match=rf"teacher {b}: it was trained on fold\(s\) \[1\]"):
        check_run_teacher({**hp, "teacher": [str(a), str(b)]})
    with pytest.raises(ValueError, match="named twice"):
        teacher_runs([str(a), str(tmp_path / "." / "a")])
    with pytest.raises(ValueError, match="name a finished run folder"):
        teacher_runs([])


def test_run_folds_gives_each_fold_the_ensemble_of_its_teachers(tmp_path):
    from speechbrain.utils.run_opts import RunOptions

    from audioattn_sb.fold_runner import build_commands
    from audioattn_sb.hparams import peek_hparams

    exps = [tmp_path / "seed0", tmp_path / "seed1"]
    for e in exps:
        _fake_run(e / "discrete-softmax" / "test1_valid2" / "seed0", [3, 4, 5], [2], [1])
    hp = str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml")
    cmd = build_commands(hp, "d", 5, [1], ["discrete:softmax"], [],
                         teacher_experiment=[str(e) for e in exps])[0]
    _, _, overrides = RunOptions.from_command_line_args(cmd["args"][2:])
    runs = [str(e / "discrete-softmax" / "test1_valid2" / "seed0") for e in exps]
    assert peek_hparams(hp, overrides)["teacher"] == runs
    one = build_commands(hp, "d", 5, [1], ["discrete:softmax"], [], teacher_experiment=[str(exps[0])])
    assert f"--teacher={runs[0]}" in one[0]["args"]


@pytest.mark.slow
def test_a_student_distils_from_an_ensemble_of_teachers(teacher, demo_us8k, tmp_path):
    """Two teacher runs (the fixture's and a copy whose weights are then halved): the ensemble
    scores a batch as the mean of the two teachers' probabilities, and a student trains with
    ``--teacher=[A, B]``, recording both."""
    import shutil

    from audioattn_sb.distill import TeacherEnsemble, load_teacher
    from audioattn_sb.hparams import peek_hparams

    copy = tmp_path / "teacher_copy"
    shutil.copytree(teacher["run"], copy)
    ens = load_teacher([str(teacher["run"]), str(copy)])
    assert isinstance(ens, TeacherEnsemble) and not ens.multilabel
    with torch.no_grad():
        for p in ens.teachers[1].brain.modules.parameters():
            p.mul_(0.5)
    wavs, lens = torch.randn(3, 16000) * 0.1, torch.tensor([1.0, 0.8, 0.5])
    each = [t(wavs, lens) for t in ens.teachers]
    assert not torch.allclose(each[0], each[1], atol=1e-3)
    want = torch.log((each[0].exp() + each[1].exp()) / 2)
    assert torch.allclose(ens(wavs, lens), want, atol=1e-5)

    out = tmp_path / "student"
    hp = str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml")
    res = train_in_process([hp, f"--data_folder={demo_us8k}", f"--cache_folder={teacher['cache']}",
                            f"--output_folder={out}", "--train_fold_nums=[3]",
                            "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
                            f"--teacher=[{teacher['run']}, {copy}]", *STUDENT])
    assert res["epochs_completed"] == 2 and math.isfinite(res["test_loss"])
    assert peek_hparams(out / "hyperparams.yaml")["teacher"] == [str(teacher["run"]), str(copy)]


@pytest.mark.parametrize("teacher", ["[]", "''"])
def test_command_line_refuses_an_empty_teacher_and_null_means_none(teacher, demo_us8k):
    """``--teacher=[]`` or an empty path names no run: refused before any work, with the way to
    say "no teacher" (null, the yamls' default), which parses."""
    from audioattn_sb.recipe import parse_command_line

    hp = str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml")
    base = [hp, f"--data_folder={demo_us8k}", "--train_fold_nums=[3]", "--valid_fold_nums=[2]",
            "--test_fold_nums=[1]"]
    with pytest.raises(ValueError, match=r"name a finished run folder.*\(null: no teacher\)"):
        parse_command_line([*base, f"--teacher={teacher}"])
    assert parse_command_line([*base, "--teacher=null"])[0] == hp
