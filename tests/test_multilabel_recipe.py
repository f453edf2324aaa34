"""The multi-label path: MultiLabelBrain (losses, chunk → clip scoring, per-class CSV) and the
FSD50K recipe end to end through recipes/train.py, on the demo and on real fsd50k_mini data."""

import csv
import json
import math
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import independent_test_map, run_script
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score

from audioattn_sb.attention.output import Attention
from audioattn_sb.brains.base import ForwardOutput
from audioattn_sb.data.fsd50k import build_chunk_datasets, load_chunk

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(REPO, "hparams", "fsd50k_acrnn.yaml")


def train(*args, cwd=None, check=True):
    return run_script("train.py", HPARAMS, *args, "--noprogressbar", check=check, cwd=cwd)


def _load(path):
    with open(path) as f:
        return json.load(f)


def _epochs(log_text):
    return re.findall(r"^epoch: (\d+)", log_text, re.M)


def _valid_maps(log_text):
    return [float(m) for m in re.findall(r"valid mAP: ([0-9.e+-]+)", log_text)]


def _clip_targets(manifest_path, n_classes):
    clips = {}
    for e in _load(manifest_path).values():
        clips[e["clip"]] = e["label_ids"]
    t = np.zeros((len(clips), n_classes), dtype=int)
    for i, ids in enumerate(clips.values()):
        t[i, ids] = 1
    return t


def _random_map(targets, draws=20):
    """Mean macro AP of uniformly random scores (scikit-learn), the chance level of mAP."""
    rng = np.random.default_rng(123)
    cols = targets.sum(axis=0) > 0
    return float(np.mean([average_precision_score(targets[:, cols], rng.random(targets.shape)[:,
                                                  cols], average="macro")
                          for _ in range(draws)]))


# --------------------------------------------------------------------------- Brain, in process
class _Identity(torch.nn.Module):
    """Waveforms as features, with the relative sample lengths kept (the waveform contract)."""

    def forward(self, wavs):
        return wavs

    def frame_lengths(self, wav_lens, n_samples=None, n_frames=None):
        return wav_lens


class _PassNorm(torch.nn.Module):
    def forward(self, x, lengths=None):
        return x


class _TinyModel(torch.nn.Module):
    """logits = w · (mean, mean |x|, max) of the chunk + b; ``output = "logits"``."""

    def __init__(self, n_classes, output="logits"):
        super().__init__()
        self.linear = torch.nn.Linear(3, n_classes)
        self.output = output

    def forward(self, x, lengths=None):
        f = torch.stack([x.mean(1), x.abs().mean(1), x.max(1).values], dim=1)
        return self.linear(f * 10), Attention()


def _tiny_corpus(tmp_path):
    """3 clips (1, 2 and 3 chunks of 0.25 s) with 2 classes, and 2 more single-chunk clips."""
    rng = np.random.default_rng(0)
    manifest, length = {}, 4000
    clips = {"a": (1, [0]), "b": (2, [1]), "c": (3, [0, 1]), "d": (1, [1]), "e": (1, [])}
    for name, (n_chunks, labels) in clips.items():
        n = length * (n_chunks + 1) // 2 if n_chunks > 1 else 2500
        wav = tmp_path / f"{name}.wav"
        sf.write(wav, (rng.standard_normal(n) * rng.uniform(0.05, 0.5)).astype(np.float32), 16000,
                 subtype="FLOAT")
        from audioattn_sb.data.fsd50k import chunk_bounds

        bounds = chunk_bounds(n, length, length // 2)
        assert len(bounds) == n_chunks
        for k, (s, e) in enumerate(bounds):
            manifest[f"{name}_{k}"] = {"wav": str(wav), "clip": name, "start": s, "stop": e,
                                       "chunk_samples": length, "label_ids": labels}
    path = tmp_path / "test.json"
    path.write_text(json.dumps(manifest))
    return path, manifest


def _brain(tmp_path, n_classes=2, **hp):
    import speechbrain as sb

    from audioattn_sb.brains.multilabel import MultiLabelBrain

    torch.manual_seed(0)
    model = hp.pop("model", None) or _TinyModel(n_classes)
    counter = sb.utils.epoch_loop.EpochCounter(limit=1)
    hparams = {"epoch_counter": counter, "output_folder": str(tmp_path),
               "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
               "class_names": [f"c{i}" for i in range(n_classes)], "hop_samples": 160, **hp}
    modules = {"compute_features": _Identity(), "mean_var_norm": _PassNorm(), "model": model}
    return MultiLabelBrain(modules=modules, opt_class=lambda p: torch.optim.SGD(p, lr=0.1),
                           hparams=hparams, run_opts={"device": "cpu"})


@pytest.mark.parametrize("loss", ["bce", "huber"])
def test_brain_scores_clips_by_averaging_chunk_probabilities(tmp_path, loss):
    path, manifest = _tiny_corpus(tmp_path)
    ds = build_chunk_datasets({"test": path}, 2)["test"]
    brain = _brain(tmp_path, loss=loss, huber_delta=0.5)
    brain.evaluate(ds, test_loader_kwargs={"batch_size": 3}, progressbar=False)
    stats = brain.test_stats
    # by hand: every chunk through the model, sigmoid, mean per clip
    model = brain.modules.model.eval()
    probs, chunk_losses, targets = {}, [], {}
    with torch.no_grad():
        for e in manifest.values():
            x = torch.from_numpy(load_chunk(e["wav"], e["start"], e["stop"], e["chunk_samples"]))
            logit = model(x[None])[0][0]
            t = torch.zeros(2)
            t[e["label_ids"]] = 1
            p = torch.sigmoid(logit)
            probs.setdefault(e["clip"], []).append(p.numpy())
            targets[e["clip"]] = t.numpy()
            if loss == "bce":
                chunk_losses.append(torch.nn.functional.binary_cross_entropy_with_logits(
                    logit, t).item())
            else:
                chunk_losses.append(torch.nn.functional.huber_loss(p, t, delta=0.5).item())
    clips = list(probs)
    scores = np.array([np.mean(probs[c], axis=0) for c in clips])
    y = np.array([targets[c] for c in clips])
    for k in range(2):
        assert stats["per_class_ap"][f"c{k}"] == pytest.approx(
            average_precision_score(y[:, k], scores[:, k]))
    assert stats["n_clips"] == 5 and stats["n_chunks"] == 8
    # the loss is the mean over chunks, not over batches: batches of 3, 3 and 2 chunks here,
    # whose per-batch mean differs
    assert stats["loss"] == pytest.approx(np.mean(chunk_losses), rel=1e-5)
    batch_mean = np.mean([np.mean(chunk_losses[i:i + 3]) for i in range(0, 8, 3)])
    assert abs(batch_mean - np.mean(chunk_losses)) > 1e-4  # the check can fail
    assert brain.loss_name == loss
    with open(tmp_path / "test_per_class_ap.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["c0", "c1"]
    assert [float(r["ap"]) for r in rows] == pytest.approx(
        [stats["per_class_ap"]["c0"], stats["per_class_ap"]["c1"]])
    assert [int(r["n_positives"]) for r in rows] == [2, 3]


def test_brain_averages_chunk_probabilities_not_logits(tmp_path):
    """Chunk logits chosen so that the two averages rank the clips differently: clip A's chunks
    (6, −2) average to p = 0.558 (probabilities) but σ(2) = 0.881 (logits); clip B's (1, 1) give
    0.731 either way. B is the positive: AP = 1 only if probabilities are averaged (0.5 if
    logits). (Making the Brain average logits makes this fail.)"""
    import speechbrain as sb

    brain = _brain(tmp_path, n_classes=1)
    brain.on_stage_start(sb.Stage.TEST)
    batches = [(torch.tensor([[6.0], [1.0]]), ["A", "B"], [[0.0], [1.0]]),
               (torch.tensor([[1.0], [-2.0]]), ["B", "A"], [[1.0], [0.0]])]
    for logits, clips, targets in batches:
        batch = SimpleNamespace(targets=SimpleNamespace(data=torch.tensor(targets)), clip=clips)
        brain.compute_objectives(ForwardOutput(logits, Attention()), batch, sb.Stage.TEST)
    stats = brain._stats(0.0)
    assert stats["per_class_ap"]["c0"] == pytest.approx(1.0)
    assert stats["n_clips"] == 2 and stats["n_chunks"] == 4


def test_brain_refuses_softmax_models_and_unknown_losses(tmp_path):
    with pytest.raises(ValueError, match="output: logits"):
        _brain(tmp_path, model=_TinyModel(2, output="log_softmax"))
    with pytest.raises(ValueError, match="valid: bce, huber"):
        _brain(tmp_path, loss="focal")


@pytest.mark.slow
def test_brain_trains_and_keeps_the_best_valid_map(tmp_path):
    import speechbrain as sb

    path, _ = _tiny_corpus(tmp_path)
    ds = build_chunk_datasets({"x": path}, 2)["x"]
    ckpt = sb.utils.checkpoints.Checkpointer(str(tmp_path / "save"))
    brain = _brain(tmp_path)
    brain.checkpointer = ckpt
    ckpt.add_recoverables({"model": brain.modules.model, "counter": brain.hparams.epoch_counter})
    brain.hparams.epoch_counter.limit = 3
    brain.fit(brain.hparams.epoch_counter, ds, ds, train_loader_kwargs={"batch_size": 4},
              valid_loader_kwargs={"batch_size": 4}, progressbar=False)
    metas = [c.meta for c in ckpt.list_checkpoints()]
    assert len(metas) == 1 and "mAP" in metas[0]
    log = (tmp_path / "log.txt").read_text()
    assert metas[0]["mAP"] == pytest.approx(max(_valid_maps(log)), rel=1e-2)
    assert brain.checkpoint_key == {"max_key": "mAP"}


class _PhasedModel(torch.nn.Module):
    """Trains as a linear model; evaluates with the fixed scores of its ``phase`` buffer (saved in
    its checkpoints): phase k scores chunk features (mean, mean |x|, max) with ``PHASES[k]``."""

    #: phase → [3, 2] weights: + mean |x|, + max, − mean |x| (valid mAPs 0.75, 0.875, 0.49 on
    #: ``_tiny_corpus``: the best is the middle epoch, neither the first nor the last)
    PHASES = {1: [[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]],
              2: [[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]],
              3: [[0.0, 0.0], [-5.0, -5.0], [0.0, 0.0]]}
    output = "logits"

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("phase", torch.zeros((), dtype=torch.long))

    @staticmethod
    def features(x):
        return torch.stack([x.mean(1), x.abs().mean(1), x.max(1).values], dim=1)

    def forward(self, x, lengths=None):
        f = self.features(x)
        if self.training:
            return self.linear(f * 10), Attention()
        return f @ torch.tensor(self.PHASES[int(self.phase)], dtype=f.dtype), Attention()


def _phase_maps(manifest):
    """Clip-level macro mAP of each phase of :class:`_PhasedModel`, in plain numpy and
    scikit-learn (chunk sigmoid scores averaged per clip; classes with a positive clip)."""
    feats, clips, targets = [], [], {}
    for e in manifest.values():
        x = torch.from_numpy(load_chunk(e["wav"], e["start"], e["stop"], e["chunk_samples"]))
        feats.append(_PhasedModel.features(x[None].double())[0].numpy())
        clips.append(e["clip"])
        t = np.zeros(2)
        t[e["label_ids"]] = 1
        targets[e["clip"]] = t
    names = sorted(targets)
    y = np.stack([targets[c] for c in names])
    maps = {}
    for k, w in _PhasedModel.PHASES.items():
        p = 1 / (1 + np.exp(-(np.stack(feats) @ np.array(w))))
        s = np.stack([p[[i for i, c in enumerate(clips) if c == n]].mean(0) for n in names])
        cols = [j for j in range(2) if y[:, j].any()]
        maps[k] = float(np.mean([average_precision_score(y[:, j], s[:, j]) for j in cols]))
    return maps


@pytest.mark.slow
def test_brain_keeps_and_tests_the_checkpoint_of_the_highest_valid_map(tmp_path):
    """Three epochs whose valid mAPs are scripted (0.75, 0.875, 0.49, computed here with
    scikit-learn): the checkpoint kept is epoch 2's, the highest valid mAP (not the lowest, not
    the last), and the test stage loads it (its test mAP is epoch 2's); with
    ``test_checkpoint: last`` it loads epoch 3's."""
    import speechbrain as sb

    from audioattn_sb.brains.multilabel import MultiLabelBrain

    class PhasedBrain(MultiLabelBrain):
        def on_stage_start(self, stage, epoch=None):
            if stage == sb.Stage.VALID:  # this epoch's fixed scores, saved with the checkpoint
                self.modules.model.phase.fill_(epoch)
            super().on_stage_start(stage, epoch)

    path, manifest = _tiny_corpus(tmp_path)
    maps = _phase_maps(manifest)
    assert len(set(round(m, 6) for m in maps.values())) == 3
    best = max(maps, key=maps.get)
    assert best == 2 and min(maps, key=maps.get) == 3  # the best is neither the last nor the worst
    ds = build_chunk_datasets({"x": path}, 2)["x"]
    torch.manual_seed(0)
    counter = sb.utils.epoch_loop.EpochCounter(limit=3)
    hparams = {"epoch_counter": counter, "output_folder": str(tmp_path),
               "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
               "class_names": ["c0", "c1"], "hop_samples": 160}
    model = _PhasedModel()
    brain = PhasedBrain(modules={"compute_features": _Identity(), "mean_var_norm": _PassNorm(),
                                 "model": model},
                        opt_class=lambda p: torch.optim.SGD(p, lr=0.1), hparams=hparams,
                        run_opts={"device": "cpu"})
    ckpt = sb.utils.checkpoints.Checkpointer(str(tmp_path / "save"))
    brain.checkpointer = ckpt
    ckpt.add_recoverables({"model": model, "counter": counter})
    brain.fit(counter, ds, ds, train_loader_kwargs={"batch_size": 4},
              valid_loader_kwargs={"batch_size": 4}, progressbar=False)
    logged = _valid_maps((tmp_path / "log.txt").read_text())
    assert logged == pytest.approx([maps[1], maps[2], maps[3]], abs=1e-3)  # the script ran
    kept = [c.meta for c in ckpt.list_checkpoints()]
    assert best in [m["epoch"] for m in kept]
    assert all(m["mAP"] <= maps[best] + 1e-6 for m in kept)
    model.phase.fill_(0)
    brain.evaluate(ds, progressbar=False, test_loader_kwargs={"batch_size": 4},
                   **brain.test_checkpoint_key)
    assert int(model.phase) == best
    assert brain.test_stats["mAP"] == pytest.approx(maps[best], rel=1e-6)
    # test_checkpoint: last tests the last epoch's checkpoint (the checkpointer keeps the newest)
    assert sorted(m["epoch"] for m in kept) == [best, 3]
    brain.hparams.test_checkpoint = "last"
    brain.evaluate(ds, progressbar=False, test_loader_kwargs={"batch_size": 4},
                   **brain.test_checkpoint_key)
    assert int(model.phase) == 3
    assert brain.test_stats["mAP"] == pytest.approx(maps[3], rel=1e-6)


# --------------------------------------------------------------------------- recipe, demo data
@pytest.fixture(scope="module")
def demo(demo_fsd50k, tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel_recipe")
    return {"data": str(demo_fsd50k), "cache": str(root / "cache"), "root": root}


def _common(demo, out):
    return [f"--data_folder={demo['data']}", f"--cache_folder={demo['cache']}",
            f"--output_folder={out}", "--feature_cache=True"]


def test_n_classes_mismatch_and_missing_data_fail_before_any_work(demo, tmp_path):
    p = train(*_common(demo, tmp_path / "bad"), "--n_classes=7", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "has 10 classes" in p.stderr and "--n_classes=10" in p.stderr
    assert not (tmp_path / "bad").exists()
    p = train(f"--data_folder={tmp_path / 'nothing'}", f"--output_folder={tmp_path / 'o'}",
              check=False)
    assert p.returncode == 2 and "FSD50K.ground_truth" in p.stderr
    assert "make_demo_data.py --layout fsd50k" in p.stderr


@pytest.mark.slow
def test_demo_two_epochs_results_csv_and_resume(demo):
    out = demo["root"] / "run"
    train(*_common(demo, out), "--number_of_epochs=2")
    res = _load(out / "results.json")
    for key in ("test_mAP", "test_dprime", "test_loss", "test_auc", "test_mAP_chance",
                "test_per_class_ap", "splits", "overrides", "n_clips", "n_chunks"):
        assert key in res, key
    assert "folds" not in res and "test_accuracy" not in res
    assert res["n_clips"] == {"train": 120, "valid": 30, "test": 60}
    for split in ("train", "valid", "test"):
        assert res["n_chunks"][split] == len(_load(out / f"{split}.json"))
    assert res["checkpoint_selected_by"] == "max valid mAP" and res["loss"] == "bce"
    assert res["overrides_dict"]["number_of_epochs"] == 2
    assert res["overrides_dict"]["n_classes"] == 10  # from vocabulary.csv (n_classes: auto)
    assert res["splits"]["valid"] == "dev.csv split=val" and res["splits"]["test"] == "eval.csv"
    assert res["epochs_completed"] == 2 and len(res["train_epoch_seconds"]) == 2
    assert res["test_mAP"] == pytest.approx(independent_test_map(out)[0], abs=1e-5)
    assert math.isfinite(res["test_dprime"])
    assert res["test_mAP"] > res["test_mAP_chance"] + 0.15, res
    # the per-class CSV agrees with results.json, and its mean is the mAP
    with open(out / "test_per_class_ap.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == res["class_names"]
    aps = [float(r["ap"]) for r in rows]
    assert aps == pytest.approx(list(res["test_per_class_ap"].values()))
    assert np.mean(aps) == pytest.approx(res["test_mAP"])
    assert res["test_per_class_ap_csv"] == str(out / "test_per_class_ap.csv")
    # the selected checkpoint is the best valid mAP
    log = (out / "train_log.txt").read_text()
    assert _epochs(log) == ["1", "2"]
    maps = _valid_maps(log)
    assert res["best_epoch"] == 1 + int(np.argmax(maps))

    # same command with one more epoch: resumes, trains epoch 3 only
    train(*_common(demo, out), "--number_of_epochs=3")
    log = (out / "train_log.txt").read_text()
    assert _epochs(log) == ["1", "2", "3"]
    res = _load(out / "results.json")
    assert res["epochs_completed"] == 3 and len(res["train_epoch_seconds"]) == 1


@pytest.mark.slow
def test_demo_continuous_biweight_huber_with_auto_output_folder(demo, tmp_path):
    """The yaml's documented command with continuous attention; output_folder auto (no folds)."""
    train(f"--data_folder={demo['data']}", f"--cache_folder={demo['cache']}",
          "--attn_domain", "continuous", "--attn_max_activation", "biweight",
          "--number_of_epochs=1", "--loss=huber", "--chunk_overlap=0", cwd=tmp_path)
    out = tmp_path / "results" / "fsd50k_acrnn" / "continuous-biweight" / "seed0"
    res = _load(out / "results.json")
    assert res["attention"]["domain"] == "continuous"
    assert res["attention"]["alpha"] == pytest.approx(1.5)
    assert res["loss"] == "huber" and res["chunking"]["chunk_overlap"] == 0
    assert res["n_chunks"]["train"] < 700  # no overlap: about half the default 919 chunks
    assert (out / "test_per_class_ap.csv").is_file()


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_real_fsd50k_mini_beats_random_scores(fsd50k_mini_dir, tmp_path):
    """The seed ACRNN on real FSD50K-layout data (mixtures of ESC-10 clips, 23 classes with their
    ontology ancestors): the clip-level val and eval mAP are far above the mAP of random scores
    for the same labels (about 0.2)."""
    out = tmp_path / "mini"
    before = sorted(os.listdir(fsd50k_mini_dir))
    train(f"--data_folder={fsd50k_mini_dir}", f"--cache_folder={tmp_path / 'cache'}",
          f"--output_folder={out}", "--number_of_epochs=6", "--feature_cache=True")
    assert sorted(os.listdir(fsd50k_mini_dir)) == before  # read-only use
    res = _load(out / "results.json")
    assert res["n_clips"] == {"train": 120, "valid": 30, "test": 60}
    assert len(res["class_names"]) == 23 and res["test_n_classes_scored"] == 23
    chance_test = _random_map(_clip_targets(out / "test.json", 23))
    chance_valid = _random_map(_clip_targets(out / "valid.json", 23))
    best_valid = max(_valid_maps((out / "train_log.txt").read_text()))
    print(f"fsd50k_mini: valid mAP {best_valid:.3f} (random {chance_valid:.3f}), test mAP "
          f"{res['test_mAP']:.3f} (random {chance_test:.3f}), d' {res['test_dprime']:.3f}")
    assert res["test_mAP_chance"] == pytest.approx(chance_test, abs=0.03)
    assert best_valid >= chance_valid + 0.2, (best_valid, chance_valid)
    assert res["test_mAP"] >= chance_test + 0.15, (res["test_mAP"], chance_test)
    assert res["test_dprime"] > 0.8
