r"""Distillation from a trained teacher run (issue 30): ``--teacher=RUN``.

A raw-waveform student (e.g. ``hparams/urbansound8k_transformer_compact.yaml``) learns from the
class probabilities of a trained run on the same training folds (e.g. a compact ACRNN run), as
in Hinton et al. 2015 and DeiT's soft distillation (Touvron et al. 2021), REFERENCE §10:

    loss = (1 − w) · NLL(student, labels) + w · T² · KL(p_teacher^T ‖ p_student^T)

with ``p^T = softmax(log p / T)`` (the temperature-softened distributions; ``T²`` keeps the
gradient scale of the soft term independent of T), ``w = distill_weight`` and ``T =
distill_temperature``; with mixup the NLL uses the mixed labels, as without a teacher.

For a multi-label run (FSD50K layout: ``hparams/fsd50k_transformer_compact.yaml``, taught by a
multi-label run such as ``fsd50k_acrnn_compact.yaml``'s) each class is a yes/no distribution:

    loss = (1 − w) · BCE(student, labels) + w · T² · mean_c KL(σ(t_c / T) ‖ σ(s_c / T))

(:func:`audioattn_sb.training.multilabel_distillation_loss`, on the logits ``t`` and ``s`` of
each training chunk). ``distill_hard: True`` replaces the soft term by DeiT's hard distillation:
the NLL of the teacher's decision ``argmax t`` (multi-label: the BCE against ``t_c > 0``),
:func:`~audioattn_sb.training.hard_distillation_loss`.

* **The same input**: the teacher scores the student's training input after the waveform
  augmentation, the time shift and mixup (for a waveform student the mixed audio itself), with
  its own features and normalisation, in eval mode and without gradients.
* The loss is the Brain's (:func:`audioattn_sb.training.distillation_loss`,
  :func:`~audioattn_sb.training.multilabel_distillation_loss`); this module checks
  and loads the teacher, which ``recipe.make_brain`` hands to the Brain (``brain.teacher``).
* **No leak of the test fold**: a teacher whose training or validation folds include one of this
  run's test folds is refused before any work (:func:`check_teacher`), as is a teacher of another
  label set; only a finished teacher run (its ``results.json``) is accepted. A run with a fixed
  split (FSD50K: dev train / dev val / eval) takes only a teacher of the same fixed split trained
  on the same data folder (its dev split, so never this run's eval clips).
* ``recipes/run_folds.py --teacher_experiment DIR`` gives each fold run the teacher run of DIR
  with the same test and validation folds (:func:`find_teacher_run`).
* **An ensemble of teachers**: ``--teacher=[RUN_A, RUN_B]`` (``--teacher_experiment DIR_A
  DIR_B``) distils from the mean of their probabilities (:class:`TeacherEnsemble`); each run is
  checked as a single teacher is.

Inspection and export of a distilled run work as on any other (the teacher is used in training
only).
"""

import glob
import math
import os

import torch

from audioattn_sb.results import RunResults
from audioattn_sb.training import (distillation_loss,  # noqa: F401  (the losses, re-exported)
                                   multilabel_distillation_loss)


def _results(teacher):
    path = os.path.join(os.fspath(teacher), "results.json")
    if not os.path.isfile(path):
        raise ValueError(f"teacher {teacher}: no results.json, so not a finished training run; "
                         "train the teacher first (recipes/train.py or run_folds.py)")
    return RunResults.load(path)


def _same_folder(a, b):
    return os.fspath(a) == os.fspath(b) or os.path.realpath(a) == os.path.realpath(b)


def check_teacher(teacher, folds, class_names=None, data_folder=None):
    """Refuse a teacher run that saw one of this run's test folds (training or validation), or
    has other classes; returns the teacher's ``results.json``
    (:class:`~audioattn_sb.results.RunResults`).

    ``folds``: this run's ``{"train": [...], "valid": [...], "test": [...]}``; None (or no folds
    at all) for a run with a fixed split (FSD50K's dev / eval), which takes only a teacher of the
    same fixed split trained on the same ``data_folder``.

    Example:
        >>> import tempfile, json, os
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, "results.json"), "w") as f:
        ...     json.dump({"folds": {"train": [2, 3], "valid": [4], "test": [1]}}, f)
        >>> check_teacher(d, {"train": [3, 4], "valid": [5], "test": [2]})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: teacher ...: it was trained on fold(s) [2], this run's test fold(s) ...
    """
    res = _results(teacher)
    t_folds = res.folds or {}
    fixed_split = not any((folds or {}).values())
    if fixed_split:
        _check_fixed_split_teacher(teacher, res, data_folder)
    elif not t_folds.get("train"):
        raise ValueError(f"teacher {teacher}: its results.json names no training folds (a "
                         "multi-label run of a fixed split?); this run has folds "
                         f"{dict(folds)}: use a teacher trained on the same folds")
    test = set((folds or {}).get("test") or [])
    for split in ("train", "valid"):
        seen = sorted(test & set(t_folds.get(split) or []))
        if seen:
            what = "trained" if split == "train" else "validated"
            raise ValueError(
                f"teacher {teacher}: it was {what} on fold(s) {seen}, this run's test fold(s) "
                f"{sorted(test)}: its probabilities would leak the test labels; use a teacher "
                f"run trained on other folds (recipes/run_folds.py --teacher_experiment picks "
                "the run of the same split)")
    if class_names is not None and res.class_names not in (None, list(class_names)):
        raise ValueError(f"teacher {teacher}: its classes {res.class_names} are not this "
                         f"run's {list(class_names)}")
    return res


def teacher_runs(teacher):
    """The run folders named by a ``teacher`` hparam: one path, or a list of them (an ensemble);
    ValueError for an empty list or a run named twice.

    Example:
        >>> teacher_runs("results/a/seed0"), teacher_runs(["a", "b"])
        (['results/a/seed0'], ['a', 'b'])
    """
    runs = [os.fspath(t) for t in (teacher if isinstance(teacher, (list, tuple)) else [teacher])]
    if not runs or not all(runs):
        raise ValueError(f"teacher {teacher!r}: name a finished run folder, or a list of them "
                         "(null: no teacher)")
    real = [os.path.realpath(r) for r in runs]
    twice = sorted({r for r, p in zip(runs, real) if real.count(p) > 1})
    if twice:
        raise ValueError(f"teacher {teacher!r}: {twice} named twice; an ensemble takes each run "
                         "once")
    return runs


def check_run_teacher(hparams, class_names=None):
    """:func:`check_teacher` of each ``teacher`` run named by a run's hparams (a dict of values;
    one path or a list: :func:`teacher_runs`): its folds (``train_fold_nums``,
    ``valid_fold_nums``, ``test_fold_nums``; none for a fixed split) and its ``data_folder``.
    Returns the list of the teachers' ``results.json``."""
    folds = {split: hparams.get(f"{split}_fold_nums") for split in ("train", "valid", "test")}
    return [check_teacher(run, folds, class_names, data_folder=hparams.get("data_folder"))
            for run in teacher_runs(hparams["teacher"])]


def _check_fixed_split_teacher(teacher, res, data_folder):
    """A fixed-split student (FSD50K): the teacher is a run of the same fixed split (its
    ``splits``, not folds) on the same data folder, so its training clips are this run's."""
    from audioattn_sb.brains.multilabel import FIXED_SPLITS

    if (res.folds or {}).get("train"):
        raise ValueError(f"teacher {teacher}: a cross-validation run (folds {res.folds}); this "
                         "run has a fixed split (dev / eval): use a teacher trained on the same "
                         "split (e.g. hparams/fsd50k_acrnn_compact.yaml)")
    if res.get("splits") != FIXED_SPLITS:
        raise ValueError(f"teacher {teacher}: its results.json names no split "
                         f"{FIXED_SPLITS} (splits: {res.get('splits')}): use a teacher "
                         "trained on the same fixed split")
    if data_folder is not None and res.data_folder is not None and \
            not _same_folder(res.data_folder, data_folder):
        raise ValueError(f"teacher {teacher}: trained on data folder {res.data_folder}, this run's "
                         f"is {data_folder}: its training clips may include this run's eval "
                         "clips; use a teacher trained on this data folder")


def find_teacher_run(experiment, test, valid):
    """The run folder under ``experiment`` (a run_folds experiment folder) whose results.json
    has test folds ``test`` and validation folds ``valid``; ValueError when none or several.

    Example:
        >>> import tempfile, json, os
        >>> d = tempfile.mkdtemp(); run = os.path.join(d, "discrete-softmax", "test1_valid2", "seed0")
        >>> os.makedirs(run)
        >>> with open(os.path.join(run, "results.json"), "w") as f:
        ...     json.dump({"folds": {"train": [3], "valid": [2], "test": [1]}}, f)
        >>> find_teacher_run(d, [1], [2]) == run
        True
    """
    found = []
    for path in sorted(glob.glob(os.path.join(os.fspath(experiment), "**", "results.json"),
                                 recursive=True)):
        folds = RunResults.load(path).folds or {}
        if list(folds.get("test") or []) == list(test) and \
                list(folds.get("valid") or []) == list(valid):
            found.append(os.path.dirname(path))
    if len(found) != 1:
        raise ValueError(f"teacher experiment {experiment}: {len(found)} finished runs with test "
                         f"fold(s) {list(test)} and valid fold(s) {list(valid)} (need exactly "
                         f"one){': ' + ', '.join(found) if found else ''}; train that fold's "
                         "teacher first, or pass one --variants to the teacher experiment")
    return found[0]


class _Batch:
    """The waveform batch the teacher's Brain reads (``sig``), already on its device."""

    def __init__(self, wavs, lens):
        self.sig = (wavs, lens)

    def to(self, device):
        return self


class Teacher:
    """A trained run scoring waveforms: its own features, normalisation and model, eval mode,
    no gradients. ``teacher(wavs [B, N], relative lengths [B]) → predictions [B, C]`` as its Brain
    makes them: log-probabilities for a single-label run, logits for a multi-label one."""

    def __init__(self, run_folder, device="cpu"):
        from audioattn_sb.inspection.trained_run import load_trained_run

        self.run = load_trained_run(run_folder=run_folder, device=device)
        self.brain = self.run.brain
        self.brain.modules.eval()
        for p in self.brain.modules.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, wavs, lens):
        import speechbrain as sb

        self.brain.modules.eval()
        out = self.brain.compute_forward(_Batch(wavs.detach(), lens.detach()), sb.Stage.TEST)
        return out.predictions.float()

    @property
    def multilabel(self):
        """Whether its predictions are per-class logits (a multi-label run), not
        log-probabilities."""
        from audioattn_sb.brains.multilabel import MultiLabelBrain

        return isinstance(self.brain, MultiLabelBrain)


def mean_of_probabilities(predictions, multilabel=False):
    r"""The ensemble of several teachers' predictions ``[K, B, C]``: the mean of their
    probabilities, returned in the same form as one teacher's.

    * single-label (log-probabilities): :math:`\log \frac1K \sum_k p_k
      = \operatorname{logsumexp}_k \log p_k - \log K`;
    * multi-label (logits, one yes/no distribution per class):
      :math:`\operatorname{logit}\big(\frac1K \sum_k \sigma(t_k)\big)`.

    Example:
        >>> lp = torch.log(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]))
        >>> mean_of_probabilities(lp).exp()
        tensor([[0.7000, 0.3000]])
        >>> torch.sigmoid(mean_of_probabilities(torch.tensor([[[0.0]], [[2.0]]]), True))
        tensor([[0.6904]])
    """
    k = predictions.shape[0]
    if multilabel:
        p = torch.sigmoid(predictions.double()).mean(0)
        return torch.logit(p, eps=1e-12).to(predictions.dtype)
    return torch.logsumexp(predictions, dim=0) - math.log(k)


class TeacherEnsemble:
    """Several :class:`Teacher` runs scoring the same waveforms; their predictions are combined
    by :func:`mean_of_probabilities` (all single-label or all multi-label)."""

    def __init__(self, run_folders, device="cpu"):
        self.teachers = [Teacher(run, device=device) for run in run_folders]
        kinds = {t.multilabel for t in self.teachers}
        if len(kinds) > 1:
            raise ValueError(f"teachers {list(run_folders)}: single-label and multi-label runs "
                             "mixed; an ensemble takes runs of one kind")
        self.multilabel = kinds.pop()

    def __call__(self, wavs, lens):
        return mean_of_probabilities(torch.stack([t(wavs, lens) for t in self.teachers]),
                                     self.multilabel)


def load_teacher(teacher, device="cpu"):
    """The :class:`Teacher` of one run folder, or the :class:`TeacherEnsemble` of a list
    (:func:`teacher_runs`)."""
    runs = teacher_runs(teacher)
    return Teacher(runs[0], device=device) if len(runs) == 1 else TeacherEnsemble(runs, device)


__all__ = ["Teacher", "TeacherEnsemble", "check_run_teacher", "check_teacher",
           "distillation_loss", "find_teacher_run", "load_teacher", "mean_of_probabilities",
           "multilabel_distillation_loss", "teacher_runs"]
