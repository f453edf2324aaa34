"""One single-label classification Brain for every single-label recipe.

Stages: features (``modules.compute_features``, e.g. Fbank) → normalisation
(``modules.mean_var_norm``) → ``modules.model(feats, lens)`` returning ``(log-probs [B, C], info)``
→ NLL loss. Validation and test accumulate predictions to report accuracy, error, per-class
accuracy and the confusion matrix; the checkpoint with the lowest valid error is kept, and the test
stage (run on that checkpoint) leaves its statistics in ``brain.test_stats``.

The hparams the Brain reads: ``epoch_counter``, ``train_logger``, ``checkpointer`` (optional),
``lr_annealing`` (optional: a per-batch scheduler with ``on_batch_end(optimizer)``),
``class_names`` (optional list, for readable logs).
"""

import logging

import numpy as np
import speechbrain as sb
import torch
import torch.nn.functional as F

from audioattn_sb.augment import mix_targets
from audioattn_sb.brains.base import ClipBrain

logger = logging.getLogger(__name__)


def confusion_matrix(targets, predictions, n_classes):
    """Counts ``M[i, j]`` of clips of class i predicted as j.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist()
        [[1, 0], [1, 1]]
    """
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return m


def classification_stats(targets, predictions, n_classes, class_names=None):
    """Accuracy, error, per-class accuracy (recall) and the confusion matrix.

    A class with no clip in the split gets ``None`` as its accuracy.

    Example:
        >>> s = classification_stats([0, 1, 1, 2], [0, 1, 0, 2], 3)
        >>> s["accuracy"], s["error"], s["per_class_accuracy"]
        (0.75, 0.25, {'0': 1.0, '1': 0.5, '2': 1.0})
    """
    targets = np.asarray(targets, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if targets.size == 0:
        raise ValueError("no clip was evaluated: the split is empty")
    m = confusion_matrix(targets, predictions, n_classes)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    support = m.sum(axis=1)
    per_class = {
        names[i]: (float(m[i, i] / support[i]) if support[i] else None) for i in range(n_classes)
    }
    accuracy = float(np.trace(m) / m.sum())
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "per_class_accuracy": per_class,
        "confusion_matrix": m.tolist(),
        "n_clips": int(m.sum()),
    }


class ClassificationBrain(ClipBrain):
    """Single-label clip classification with attention pooling (NLL loss).

    Features, normalisation, model, LR schedule and epoch timing: :class:`ClipBrain`.
    """

    def compute_objectives(self, predictions, batch, stage):
        targets = batch.label.data.reshape(-1).to(predictions.device)
        mix = getattr(self, "mix", None) if stage == sb.Stage.TRAIN else None
        if mix is not None:  # mixup: NLL against the mixed class distribution
            soft = mix_targets(F.one_hot(targets, predictions.shape[-1]), *mix)
            loss = -(soft * predictions.float()).sum(dim=-1).mean()
        else:
            loss = F.nll_loss(predictions.float(), targets)
        if stage != sb.Stage.TRAIN:
            self._targets.append(targets.detach().cpu())
            self._preds.append(predictions.detach().argmax(dim=-1).cpu())
        return loss

    def on_stage_start(self, stage, epoch=None):
        super().on_stage_start(stage, epoch)
        self._targets, self._preds = [], []

    def _stats(self, stage_loss):
        n_classes = int(getattr(self.hparams, "n_classes"))
        stats = classification_stats(
            torch.cat(self._targets).numpy(),
            torch.cat(self._preds).numpy(),
            n_classes,
            getattr(self.hparams, "class_names", None),
        )
        stats["loss"] = float(stage_loss)
        return stats

    def _after_valid(self, stats):
        logger.info("valid per-class accuracy: %s", stats["per_class_accuracy"])

    def _after_test(self, stats):
        logger.info("test per-class accuracy: %s", stats["per_class_accuracy"])
        logger.info("test confusion matrix (rows = true class):\n%s",
                    np.array(stats["confusion_matrix"]))
