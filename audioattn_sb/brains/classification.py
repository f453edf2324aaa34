"""One single-label classification Brain for every single-label recipe.

Stages: features (``modules.compute_features``, e.g. Fbank) → normalisation
(``modules.mean_var_norm``) → ``modules.model(feats, lens)`` returning ``(log-probs [B, C],
attention)`` → NLL loss. Validation and test accumulate predictions to report accuracy, error, per-class
accuracy and the confusion matrix; the checkpoint with the lowest valid error is kept, and the test
stage (run on that checkpoint) leaves its statistics in ``brain.test_stats``
(:meth:`~audioattn_sb.brains.base.ClipBrain.evaluate_split` returns them).

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
from audioattn_sb.training import distillation_loss, hard_distillation_loss
from audioattn_sb.metrics import classification_stats

logger = logging.getLogger(__name__)


class ClassificationBrain(ClipBrain):
    """Single-label clip classification with attention pooling (NLL loss; with a ``teacher``
    run, its distillation term: :mod:`audioattn_sb.distill`).

    Features, normalisation, model, LR schedule and epoch timing: :class:`ClipBrain`.
    """

    distillation_terms = (distillation_loss, hard_distillation_loss)

    def compute_objectives(self, forward, batch, stage):
        """The loss of ``forward`` (:class:`~audioattn_sb.brains.base.ForwardOutput`): NLL of
        its predictions (against the mixed targets with mixup; in training, with
        ``label_smoothing`` ε the targets are ``(1 − ε)·y + ε / C``), mixed with the
        distillation term when it carries a teacher's log-probabilities."""
        predictions = forward.predictions
        targets = batch.label.data.reshape(-1).to(predictions.device)
        mix = forward.mix if stage == sb.Stage.TRAIN else None
        smoothing = float(getattr(self.hparams, "label_smoothing", 0.0) or 0.0)
        if stage != sb.Stage.TRAIN:
            smoothing = 0.0  # validation and test report the plain NLL
        if mix is not None or smoothing:  # cross-entropy against a soft class distribution
            n = predictions.shape[-1]
            soft = F.one_hot(targets, n).float()
            if mix is not None:  # mixup: the mixed class distribution
                soft = mix_targets(soft, *mix)
            soft = (1 - smoothing) * soft + smoothing / n  # label smoothing (ε spread evenly)
            loss = -(soft * predictions.float()).sum(dim=-1).mean()
        else:
            loss = F.nll_loss(predictions.float(), targets)
        loss = self.mix_distillation(loss, forward, stage)
        self._count_items(targets.shape[0])
        if stage != sb.Stage.TRAIN:
            self._keep(loss.detach(), targets.shape[0], targets=targets.detach().cpu(),
                       preds=predictions.detach().argmax(dim=-1).cpu())
        return loss

    def _stats(self, stage_loss):
        n_classes = int(getattr(self.hparams, "n_classes"))
        if not self.eval_part("targets"):
            raise ValueError("no clip was evaluated: the split is empty")
        stats = classification_stats(
            torch.cat(self.eval_part("targets")).numpy(),
            torch.cat(self.eval_part("preds")).numpy(),
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

    def results(self, manifests, test_stats=None):
        """Clips per split, test accuracy, error, loss, per-class accuracy, confusion matrix."""
        test = self.test_stats if test_stats is None else test_stats
        return {
            "checkpoint_selected_by": self.selected_by,
            "n_clips": {s: len(e) for s, e in self.manifest_entries(manifests).items()},
            "test_accuracy": test["accuracy"],
            "test_error": test["error"],
            "test_loss": test["loss"],
            "test_per_class_accuracy": test["per_class_accuracy"],
            "test_confusion_matrix": test["confusion_matrix"],
            "valid_error_last_epoch": getattr(self, "valid_stats", {}).get("error"),
            "items_per_process": self.items_per_process(),
        }

    def line_summary(self):
        return (f"test accuracy {self.test_stats['accuracy']:.4f}  "
                f"error {self.test_stats['error']:.4f}")
