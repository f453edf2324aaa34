"""Classification metrics. Single-label: accuracy, per-class accuracy and the confusion matrix
(:func:`classification_stats`). Multi-label: per-class average precision, macro mAP, ROC AUC, d′;
chunk → clip scores.

Everything is numpy (no scikit-learn at run time); ``tests/test_metrics.py`` checks the figures
against scikit-learn's ``average_precision_score`` and ``roc_auc_score`` on random and tied scores.

Definitions (FSD50K's protocol, Fonseca et al. 2020)
---------------------------------------------------
* **Average precision** of one class: rank the clips by score (descending); with ``P`` positives,
  ``AP = Σ_k (R_k − R_{k−1}) · P_k`` over the distinct score thresholds ``k``, where ``P_k`` and
  ``R_k`` are the precision and recall of "score ≥ threshold k". Clips with tied scores enter at the
  same threshold (exactly scikit-learn's ``average_precision_score``: no interpolation).
* **macro mAP**: the mean of the per-class APs over the classes with **at least one positive** in
  the evaluated split. A class without positives has no AP (``nan``; ``None`` in JSON/CSV): it is
  left out of the mean, and :func:`multilabel_stats` reports how many classes were averaged
  (``n_classes_scored``). scikit-learn would instead give such a class an AP of 0 (with a warning),
  which rewards nothing and punishes a model for a split that happens to lack a class.
* **ROC AUC** of one class: the probability that a random positive scores above a random negative,
  ties counting one half (the Mann-Whitney statistic; equal to the area under the trapezoidal ROC
  curve, as ``roc_auc_score``). ``nan`` when the class has no positive or no negative clip; the
  macro AUC averages the classes where it is defined.
* **d′** (d-prime) ``= √2 · Φ⁻¹(AUC)`` with Φ⁻¹ the standard normal quantile
  (``scipy.stats.norm.ppf``), computed from the **macro AUC** as in AudioSet/FSD50K papers. A
  perfect AUC of 1 would give +∞: the AUC is first clipped to ``[eps, 1 − eps]`` with
  ``eps = 1e-6``, so d′ is capped at ±√2·Φ⁻¹(1 − 10⁻⁶) ≈ ±6.722 and results stay finite,
  JSON-valid and averageable. Pass ``eps=0`` to get ±inf instead.
* **Clip scores from chunks** (:func:`aggregate_clip_scores`): a clip's score for each class is
  the mean of its chunks' *probabilities* (sigmoid outputs, not logits), FSD50K's baseline rule.
"""

import math
from collections import OrderedDict

import numpy as np

DPRIME_EPS = 1e-6


def _as_1d(y_true, scores):
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"expected two 1-D arrays of the same length, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinite values")
    return y.astype(bool), s


def average_precision(y_true, scores):
    """Average precision of one class (scikit-learn's definition); ``nan`` without positives.

    Example:
        >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])  # P@1 = 1, P@3 = 2/3
        0.8333333333333333
        >>> average_precision([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1])  # ties share one threshold
        0.6666666666666666
        >>> average_precision([0, 0], [0.3, 0.2])
        nan
    """
    y, s = _as_1d(y_true, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # the last index of each run of equal scores = one threshold
    last = np.r_[np.flatnonzero(np.diff(s) != 0), y.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0.0, tp]) / n_pos
    return float(np.sum(recall_gain * precision))


def roc_auc(y_true, scores):
    """ROC AUC of one class (Mann-Whitney, ties count ½); ``nan`` without positives or negatives.

    Example:
        >>> roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
        0.75
        >>> roc_auc([1, 0], [0.5, 0.5])
        0.5
        >>> roc_auc([1, 1], [0.5, 0.2])
        nan
    """
    from scipy.stats import rankdata

    y, s = _as_1d(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def dprime(auc, eps=DPRIME_EPS):
    """d′ = √2 · Φ⁻¹(AUC), with the AUC clipped to ``[eps, 1 − eps]`` (see the module docstring).

    Example:
        >>> dprime(0.5), round(dprime(0.9), 4), round(dprime(1.0), 3), dprime(1.0, eps=0)
        (0.0, 1.8124, 6.722, inf)
        >>> dprime(float("nan"))
        nan
    """
    from scipy.stats import norm

    auc = float(auc)
    if math.isnan(auc):
        return float("nan")
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"AUC must lie in [0, 1], got {auc}")
    auc = min(max(auc, eps), 1.0 - eps)
    return float(math.sqrt(2.0) * norm.ppf(auc))


def _as_2d(targets, scores):
    t = np.asarray(targets)
    s = np.asarray(scores, dtype=np.float64)
    if t.ndim != 2 or t.shape != s.shape:
        raise ValueError(f"expected targets and scores of one shape [clips, classes], got "
                         f"{t.shape} and {s.shape}")
    if t.shape[0] == 0:
        raise ValueError("no clip was evaluated: the split is empty")
    return t.astype(bool), s


def per_class_average_precision(targets, scores):
    """AP of every class (columns of ``[clips, classes]`` arrays); ``nan`` for a class without
    positives.

    Example:
        >>> per_class_average_precision([[1, 0], [0, 0]], [[0.9, 0.1], [0.2, 0.3]]).tolist()
        [1.0, nan]
    """
    t, s = _as_2d(targets, scores)
    return np.array([average_precision(t[:, c], s[:, c]) for c in range(t.shape[1])])


def mean_average_precision(targets, scores):
    """Macro mAP: the mean AP over classes with at least one positive (others are left out).

    Example:
        >>> # class 0: AP 1; class 1: its positive ranks second, AP 0.5; class 2: no positive
        >>> mean_average_precision([[1, 0, 0], [0, 1, 0]], [[0.9, 0.4, 0.1], [0.2, 0.3, 0.5]])
        0.75
    """
    ap = per_class_average_precision(targets, scores)
    if np.isnan(ap).all():
        return float("nan")
    return float(np.nanmean(ap))


def per_class_roc_auc(targets, scores):
    """ROC AUC of every class; ``nan`` where a class has no positive or no negative clip."""
    t, s = _as_2d(targets, scores)
    return np.array([roc_auc(t[:, c], s[:, c]) for c in range(t.shape[1])])


def _none_if_nan(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def multilabel_stats(targets, scores, class_names=None, eps=DPRIME_EPS):
    """Clip-level multi-label statistics of ``[clips, classes]`` targets (0/1) and scores.

    Returns ``mAP`` (macro, classes with positives), ``auc`` (macro, classes where defined),
    ``dprime`` (from the macro AUC), ``per_class_ap`` / ``per_class_auc`` (name → value or None),
    ``n_positives`` (name → count), ``n_classes_scored`` (classes averaged into the mAP) and
    ``n_clips``.

    Example:
        >>> s = multilabel_stats([[1, 0], [0, 1], [1, 0]], [[0.8, 0.3], [0.4, 0.6], [0.7, 0.2]],
        ...                      ["a", "b"])
        >>> s["mAP"], s["auc"], round(s["dprime"], 3), s["per_class_ap"]
        (1.0, 1.0, 6.722, {'a': 1.0, 'b': 1.0})
    """
    t, s = _as_2d(targets, scores)
    n_classes = t.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} score columns")
    ap = per_class_average_precision(t, s)
    auc = per_class_roc_auc(t, s)
    m_ap = float(np.nanmean(ap)) if not np.isnan(ap).all() else float("nan")
    m_auc = float(np.nanmean(auc)) if not np.isnan(auc).all() else float("nan")
    return {
        "mAP": m_ap,
        "auc": m_auc,
        "dprime": dprime(m_auc, eps=eps),
        "per_class_ap": dict((n, _none_if_nan(float(v))) for n, v in zip(names, ap)),
        "per_class_auc": dict((n, _none_if_nan(float(v))) for n, v in zip(names, auc)),
        "n_positives": dict((n, int(v)) for n, v in zip(names, t.sum(axis=0))),
        "n_classes_scored": int((~np.isnan(ap)).sum()),
        "n_clips": int(t.shape[0]),
    }


def chance_map(targets, n_draws=20, seed=0):
    """Mean macro mAP of uniformly random scores for these targets (over ``n_draws`` draws).

    The chance level depends on each class's prevalence (about the fraction of positive clips,
    higher for rare classes in small splits), so compare a model's mAP with this, not with 0.

    Example:
        >>> t = np.zeros((200, 2), dtype=int); t[:100, 0] = 1; t[:20, 1] = 1
        >>> 0.25 < chance_map(t) < 0.4
        True
    """
    t = np.asarray(targets)
    rng = np.random.default_rng(seed)
    return float(np.mean([mean_average_precision(t, rng.random(t.shape))
                          for _ in range(int(n_draws))]))


def aggregate_clip_scores(clip_ids, chunk_scores, chunk_targets=None):
    """Average chunk scores per clip: ``(clip ids in first-seen order, [clips, C] scores[,
    [clips, C] targets])``.

    ``chunk_scores`` are probabilities ``[chunks, C]``; a clip's score is the mean over its chunks
    (in whatever batches they came). With ``chunk_targets``, the chunks of one clip must carry the
    same targets (they inherit the clip's labels), which are returned per clip.

    Example:
        >>> ids, s = aggregate_clip_scores(["a", "b", "a"], [[0.2, 1.0], [0.5, 0.5], [0.4, 0.0]])
        >>> ids, s.tolist()
        (['a', 'b'], [[0.30000000000000004, 0.5], [0.5, 0.5]])
    """
    scores = np.asarray(chunk_scores, dtype=np.float64)
    ids = list(clip_ids)
    if scores.ndim != 2 or scores.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} clip ids for chunk scores of shape {scores.shape}")
    index = OrderedDict()
    for i in ids:
        index.setdefault(i, len(index))
    inv = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
    sums = np.zeros((len(index), scores.shape[1]))
    np.add.at(sums, inv, scores)
    counts = np.bincount(inv, minlength=len(index)).astype(np.float64)
    clip_scores = sums / counts[:, None]
    if chunk_targets is None:
        return list(index), clip_scores
    targets = np.asarray(chunk_targets)
    clip_targets = np.zeros((len(index), scores.shape[1]), dtype=targets.dtype)
    clip_targets[inv] = targets
    if not np.array_equal(clip_targets[inv], targets):
        bad = sorted({ids[k] for k in np.flatnonzero((clip_targets[inv] != targets).any(axis=1))})
        raise ValueError(f"chunks of clip(s) {bad[:5]} carry different targets")
    return list(index), clip_scores, clip_targets


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
