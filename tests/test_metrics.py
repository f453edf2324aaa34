"""Multi-label metrics (audioattn_sb.metrics) against scikit-learn, and chunk → clip averaging."""

import math
import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from audioattn_sb import metrics
from audioattn_sb.metrics import (
    aggregate_clip_scores,
    average_precision,
    chance_map,
    dprime,
    mean_average_precision,
    multilabel_stats,
    per_class_average_precision,
    per_class_roc_auc,
    roc_auc,
)


def _random_case(seed, n=60, prevalence=0.3, ties=None):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[rng.integers(n)] = 1  # at least one positive
    s = rng.random(n)
    if ties is not None:  # few distinct values: many ties, also across classes
        s = np.round(s * ties) / ties
    return y, s


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("ties", [None, 2, 5, 20])
def test_average_precision_and_auc_match_sklearn(seed, ties):
    y, s = _random_case(seed, n=int(10 + 7 * seed), prevalence=0.05 + 0.035 * seed, ties=ties)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    if 0 < y.sum() < y.size:
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_all_scores_tied_and_perfect_and_reversed():
    y = np.array([1, 0, 0, 1, 0])
    flat = np.full(5, 0.7)
    assert average_precision(y, flat) == pytest.approx(average_precision_score(y, flat))
    assert average_precision(y, flat) == pytest.approx(0.4)  # = prevalence
    assert roc_auc(y, flat) == 0.5
    assert average_precision(y, y * 1.0) == 1.0 and roc_auc(y, y * 1.0) == 1.0
    assert roc_auc(y, -y * 1.0) == 0.0
    assert average_precision(y, -y * 1.0) == pytest.approx(average_precision_score(y, -y * 1.0))


@pytest.mark.parametrize("seed", range(10))
def test_multilabel_macro_figures_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    n, c = 80, 7
    t = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(int)
    t[rng.integers(n, size=c), np.arange(c)] = 1  # every class has a positive
    s = rng.random((n, c))
    if seed % 2:
        s = np.round(s * 4) / 4  # heavy ties
    ap = per_class_average_precision(t, s)
    sk_ap = [average_precision_score(t[:, k], s[:, k]) for k in range(c)]
    np.testing.assert_allclose(ap, sk_ap, atol=1e-12)
    assert mean_average_precision(t, s) == pytest.approx(
        average_precision_score(t, s, average="macro"), abs=1e-12)
    np.testing.assert_allclose(per_class_roc_auc(t, s),
                               [roc_auc_score(t[:, k], s[:, k]) for k in range(c)], atol=1e-12)
    stats = multilabel_stats(t, s)
    assert stats["auc"] == pytest.approx(roc_auc_score(t, s, average="macro"), abs=1e-12)
    assert stats["dprime"] == pytest.approx(math.sqrt(2) * norm.ppf(stats["auc"]), abs=1e-12)
    assert stats["n_classes_scored"] == c and stats["n_clips"] == n


def test_class_without_positive_is_left_out_of_the_mean():
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.4], [0.6, 0.3, 0.1], [0.2, 0.1, 0.9]])
    ap = per_class_average_precision(t, s)
    assert math.isnan(ap[2])
    assert mean_average_precision(t, s) == pytest.approx((ap[0] + ap[1]) / 2)
    # sklearn would count it as AP 0 (and warn): our macro mean is over the two scored classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert average_precision_score(t[:, 2], s[:, 2]) == 0.0
    stats = multilabel_stats(t, s, ["a", "b", "c"])
    assert stats["per_class_ap"]["c"] is None and stats["per_class_auc"]["c"] is None
    assert stats["n_classes_scored"] == 2 and stats["n_positives"] == {"a": 2, "b": 2, "c": 0}
    # a class that is positive everywhere has an AP of 1 but no AUC
    t2 = t.copy()
    t2[:, 2] = 1
    assert per_class_average_precision(t2, s)[2] == 1.0
    assert math.isnan(per_class_roc_auc(t2, s)[2])
    with pytest.raises(ValueError, match="empty"):
        multilabel_stats(np.zeros((0, 3)), np.zeros((0, 3)))


def test_dprime_definition_and_edges():
    for auc in (0.5, 0.6, 0.75, 0.9, 0.99):
        assert dprime(auc) == pytest.approx(math.sqrt(2) * norm.ppf(auc))
    cap = math.sqrt(2) * norm.ppf(1 - metrics.DPRIME_EPS)
    assert dprime(1.0) == pytest.approx(cap) and math.isfinite(dprime(1.0))
    assert dprime(0.0) == pytest.approx(-cap)
    assert dprime(1.0, eps=0) == math.inf and dprime(0.0, eps=0) == -math.inf
    assert math.isnan(dprime(float("nan")))
    with pytest.raises(ValueError):
        dprime(1.5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same length"):
        average_precision([1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([1, 0], [0.5, float("nan")])
    with pytest.raises(ValueError, match="one shape"):
        mean_average_precision(np.ones((3, 2)), np.ones((3, 3)))


def test_chance_map_matches_sklearn_random_draws():
    rng = np.random.default_rng(7)
    t = (rng.random((150, 6)) < [0.05, 0.1, 0.2, 0.3, 0.5, 0.7]).astype(int)
    t[0] = 1
    draws = np.random.default_rng(0)
    sk = np.mean([average_precision_score(t, draws.random(t.shape), average="macro")
                  for _ in range(20)])
    assert chance_map(t, n_draws=20, seed=0) == pytest.approx(sk, abs=1e-12)
    # roughly the mean prevalence (a little more for rare classes)
    assert chance_map(t) == pytest.approx(t.mean(axis=0).mean(), abs=0.08)


def test_aggregate_clip_scores_averages_probabilities_across_batches():
    # chunks of clip "a" arrive in two different batches, interleaved with "b"
    ids = ["a", "b", "a", "c", "b", "a"]
    probs = np.array([[0.9, 0.0], [0.2, 0.4], [0.6, 0.3], [0.5, 0.5], [0.4, 0.8], [0.3, 0.6]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [0, 1], [1, 0]])
    clips, scores, clip_targets = aggregate_clip_scores(ids, probs, targets)
    assert clips == ["a", "b", "c"]
    np.testing.assert_allclose(scores, [[0.6, 0.3], [0.3, 0.6], [0.5, 0.5]])
    np.testing.assert_array_equal(clip_targets, [[1, 0], [0, 1], [1, 1]])
    # the order of chunks does not matter
    perm = [5, 3, 1, 0, 4, 2]
    clips2, scores2 = aggregate_clip_scores([ids[i] for i in perm], probs[perm])
    np.testing.assert_allclose(scores2[[clips2.index(c) for c in clips]], scores)
    # chunks of one clip must carry its labels
    bad = targets.copy()
    bad[2] = [0, 1]
    with pytest.raises(ValueError, match="'a'"):
        aggregate_clip_scores(ids, probs, bad)
    with pytest.raises(ValueError):
        aggregate_clip_scores(ids[:-1], probs)


def test_clip_average_is_of_probabilities_not_logits():
    """Averaging sigmoid outputs differs from the sigmoid of the averaged logits."""
    logits = np.array([[4.0], [-4.0], [0.0]])
    probs = 1 / (1 + np.exp(-logits))
    _, s = aggregate_clip_scores(["x", "x", "x"], probs)
    assert s[0, 0] == pytest.approx(0.5)
    _, s = aggregate_clip_scores(["x", "x"], 1 / (1 + np.exp(-np.array([[6.0], [-2.0]]))))
    assert s[0, 0] == pytest.approx((1 / (1 + math.exp(-6)) + 1 / (1 + math.exp(2))) / 2)
    assert s[0, 0] != pytest.approx(1 / (1 + math.exp(-2.0)))
