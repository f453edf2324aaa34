"""One multi-label Brain for every multi-label recipe (FSD50K and any chunked multi-hot corpus).

Stages (shared with the single-label Brain, :class:`~audioattn_sb.brains.base.ClipBrain`):
features (``modules.compute_features``) → normalisation (``modules.mean_var_norm``) →
``modules.model(feats, lens)`` returning ``(logits [B, C], attention)`` (the model's ``output``
must be ``logits``, not ``log_softmax``) → loss against the multi-hot ``targets [B, C]``:

* ``loss: bce`` (default): binary cross-entropy with logits, mean over classes and chunks;
* with a ``teacher`` run (:mod:`audioattn_sb.distill`): ``(1 − w) ·`` the loss above ``+ w ·``
  the teacher's Bernoulli distillation term (``distill_weight``, ``distill_temperature``;
  ``distill_hard: True``: the BCE against the teacher's decisions ``t_c > 0`` instead);
* ``loss: huber``: Huber loss (``huber_delta``, default 1.0) between the sigmoid outputs and the
  0/1 targets. The error of a probability is at most 1, so with ``huber_delta ≥ 1`` this is half
  the squared error; a smaller delta makes large errors count linearly (less weight on label
  noise).

Batches are chunks (see :mod:`audioattn_sb.data.fsd50k`) carrying ``clip`` ids. Training treats
every chunk as an example. Validation and test collect the chunks' sigmoid probabilities and
average them per clip (:func:`audioattn_sb.metrics.aggregate_clip_scores`, whatever batches the
chunks came in), then compute the clip-level macro mAP, AUC and d′
(:func:`audioattn_sb.metrics.multilabel_stats`). The checkpoint with the **highest valid mAP** is
kept (``checkpoint_key``), and the test stage (run on it) leaves ``brain.test_stats`` (``mAP``,
``dprime``, ``auc``, ``loss`` = mean chunk loss, per-class AP/AUC, counts, ``mAP_chance`` = the
mean mAP of random scores for the same labels, :func:`audioattn_sb.metrics.chance_map`) and writes
``<output_folder>/test_per_class_ap.csv`` (``index,label,n_positives,ap,auc``; empty ap/auc where
undefined), atomically.

Hparams read: ``loss`` (``bce`` | ``huber``), ``huber_delta``, ``class_names`` (set by the
recipe), ``output_folder``, ``epoch_counter``, ``train_logger``, ``checkpointer`` (optional),
``lr_annealing`` (optional per-batch scheduler), ``feature_cache``, ``hop_samples``.
"""

import csv
import io
import logging
import math
import os

import speechbrain as sb
import torch
import torch.nn.functional as F

from audioattn_sb.augment import mix_targets
from audioattn_sb.brains.base import ClipBrain
from audioattn_sb.metrics import aggregate_clip_scores, chance_map, multilabel_stats
from audioattn_sb.training import multilabel_distillation_loss, multilabel_hard_distillation_loss
from audioattn_sb.utils import atomic_write_text

logger = logging.getLogger(__name__)

LOSSES = ("bce", "huber")
#: the fixed split of every multi-label run (``results.json`` → ``splits``)
FIXED_SPLITS = {"train": "dev.csv split=train", "valid": "dev.csv split=val", "test": "eval.csv"}
PER_CLASS_CSV = "test_per_class_ap.csv"


def multilabel_loss(logits, targets, loss="bce", huber_delta=1.0):
    """Mean multi-label loss of ``logits [B, C]`` against 0/1 ``targets [B, C]``.

    Example:
        >>> logits, targets = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
        >>> round(multilabel_loss(logits, targets).item(), 4)       # (log 2 + log(1 + e^2)) / 2
        1.41
        >>> round(multilabel_loss(logits, targets, "huber").item(), 4)  # ½·mean(0.5², 0.8808²)
        0.2565
    """
    logits, targets = logits.float(), targets.float()
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    if loss == "huber":
        return F.huber_loss(torch.sigmoid(logits), targets, delta=float(huber_delta))
    raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")


def per_class_csv_text(stats):
    """The per-class CSV (``index,label,n_positives,ap,auc``) of :func:`multilabel_stats` output.

    Example:
        >>> s = multilabel_stats([[1, 0], [0, 0]], [[0.9, 0.1], [0.2, 0.3]], ["a", "b"])
        >>> print(per_class_csv_text(s), end="")
        index,label,n_positives,ap,auc
        0,a,1,1.0,1.0
        1,b,0,,
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "n_positives", "ap", "auc"])
    for i, name in enumerate(stats["per_class_ap"]):
        ap, auc = stats["per_class_ap"][name], stats["per_class_auc"][name]
        w.writerow([i, name, stats["n_positives"][name], "" if ap is None else repr(ap),
                    "" if auc is None else repr(auc)])
    return buf.getvalue()


class MultiLabelBrain(ClipBrain):
    """Multi-label tagging of chunked clips: BCE (or Huber) loss, clip-level mAP / d′."""

    checkpoint_key = {"max_key": "mAP"}
    distillation_terms = (multilabel_distillation_loss, multilabel_hard_distillation_loss)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_name = str(getattr(self.hparams, "loss", "bce")).lower()
        if self.loss_name not in LOSSES:
            raise ValueError(f"loss: {self.loss_name!r} is not a multi-label loss; valid: "
                             f"{', '.join(LOSSES)}")
        output = getattr(self.modules.model, "output", "logits")
        if output != "logits":
            raise ValueError(
                f"the model's output is {output!r}: MultiLabelBrain needs one logit per class "
                "(output: logits in the yaml), scored with a sigmoid, not a softmax")

    def compute_objectives(self, forward, batch, stage):
        """The loss of ``forward`` (:class:`~audioattn_sb.brains.base.ForwardOutput`) against the
        multi-hot targets (mixed with mixup)."""
        predictions = forward.predictions
        targets = batch.targets.data.to(predictions.device)
        mix = forward.mix if stage == sb.Stage.TRAIN else None
        loss = multilabel_loss(predictions, targets if mix is None else mix_targets(targets, *mix),
                               self.loss_name,
                               getattr(self.hparams, "huber_delta", 1.0))
        loss = self.mix_distillation(loss, forward, stage)  # the teacher's logits
        self._count_items(targets.shape[0])
        if stage != sb.Stage.TRAIN:
            self._keep(loss.detach(), targets.shape[0], clips=list(batch.clip),
                       probs=torch.sigmoid(predictions.detach().float()).cpu(),
                       targets=targets.detach().cpu())
        return loss

    def _stats(self, stage_loss):
        if not self.eval_part("clips"):
            raise ValueError("no chunk was evaluated: the split is empty")
        clips = [c for batch in self.eval_part("clips") for c in batch]
        probs = torch.cat(self.eval_part("probs")).numpy()
        targets = torch.cat(self.eval_part("targets")).numpy()
        _, scores, clip_targets = aggregate_clip_scores(clips, probs, targets)
        stats = multilabel_stats(clip_targets, scores, getattr(self.hparams, "class_names", None))
        stats["loss"] = float(stage_loss)
        stats["n_chunks"] = int(probs.shape[0])
        self._clip_targets = clip_targets
        return stats

    summary_keys = ("loss", "mAP", "dprime")

    def _checkpoint_meta(self, stats):
        return {"mAP": stats["mAP"] if not math.isnan(stats["mAP"]) else -1.0}

    def _after_test(self, stats):
        stats["mAP_chance"] = chance_map(self._clip_targets, n_draws=10)
        worst = sorted((v, k) for k, v in stats["per_class_ap"].items() if v is not None)[:5]
        logger.info("test mAP %.4f over %d classes; lowest AP: %s", stats["mAP"],
                    stats["n_classes_scored"], ", ".join(f"{k} {v:.3f}" for v, k in worst))
        folder = getattr(self.hparams, "output_folder", None)
        # the per-class CSV is the run's test's (not that of another evaluation: the own weights)
        if folder and self.is_run_test() and sb.utils.distributed.if_main_process():
            path = os.path.join(folder, PER_CLASS_CSV)
            atomic_write_text(path, per_class_csv_text(stats))
            self.per_class_csv = path

    def results(self, manifests, test_stats=None):
        """Splits, chunking, clips and chunks per split, loss, test mAP, d′, AUC, per-class AP."""
        test = self.test_stats if test_stats is None else test_stats
        valid = getattr(self, "valid_stats", {})
        clips, chunks = {}, {}
        for split, entries in self.manifest_entries(manifests).items():
            clips[split] = len({e["clip"] for e in entries.values()})
            chunks[split] = len(entries)
        hp = self.hparams
        return {
            "splits": dict(FIXED_SPLITS),
            "chunking": {"chunk_seconds": getattr(hp, "chunk_seconds", 1.0),
                         "chunk_overlap": getattr(hp, "chunk_overlap", 0.5),
                         "short_clips": "tiled to one chunk",
                         "clip_score": "mean of the chunks' sigmoid probabilities"},
            "checkpoint_selected_by": self.selected_by,
            "n_clips": clips,
            "n_chunks": chunks,
            "loss": self.loss_name,
            "test_mAP": test["mAP"],
            "test_dprime": test["dprime"],
            "test_auc": test["auc"],
            "test_loss": test["loss"],
            "test_mAP_chance": test.get("mAP_chance"),
            "test_n_classes_scored": test["n_classes_scored"],
            "test_per_class_ap": test["per_class_ap"],
            "test_per_class_auc": test["per_class_auc"],
            "test_per_class_ap_csv": getattr(self, "per_class_csv", None),
            "valid_mAP_last_epoch": valid.get("mAP"),
            "valid_dprime_last_epoch": valid.get("dprime"),
            "items_per_process": self.items_per_process(),
        }

    def line_summary(self):
        return f"test mAP {self.test_stats['mAP']:.4f}  d' {self.test_stats['dprime']:.3f}"


__all__ = ["MultiLabelBrain", "multilabel_loss", "per_class_csv_text", "FIXED_SPLITS", "LOSSES"]
