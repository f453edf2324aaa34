"""Ridge value function: frame positions, reconstruction in order, lengths, cache budget."""

import copy
import pickle

import numpy as np
import pytest
import torch

from audioattn_sb.attention.value_function import (
    RidgeValueFunction,
    evaluate_basis,
    frame_positions,
    gaussian_basis,
)

LENGTHS = [1, 2, 3, 10, 11, 100, 401, 1000, 3000]


def _signals(t):
    """Smooth test signals [L, 3]: a ramp, a sine plus trend, an off-centre bump."""
    bump = torch.exp(-(((t - 0.3) / 0.15) ** 2))
    return torch.stack([t, torch.sin(2 * np.pi * t) + 0.5 * t, bump], -1)


def _reconstruct(vf, values):
    """V(t_ℓ) ≈ B ψ(t_ℓ) at the frame positions, values [L, D] → [L, D]."""
    t = frame_positions(values.shape[0], values.dtype)
    coef = vf.coefficients(values[None])[0]  # [D, N]
    return (coef @ evaluate_basis(t, vf.centres.to(values.dtype), vf.sigmas.to(values.dtype)).T).T


def test_frame_positions_are_midpoints():
    for length in (1, 2, 3, 4, 7, 400, 401):
        t = frame_positions(length, torch.float64)
        expected = (np.arange(1, length + 1) - 0.5) / length
        np.testing.assert_allclose(t.numpy(), expected, rtol=0, atol=1e-15)
        assert t.min() > 0 and t.max() < 1 and (t.diff() > 0).all()
        np.testing.assert_allclose((t + t.flip(0)).numpy(), 1.0, atol=1e-15)  # symmetric
    with pytest.raises(ValueError):
        frame_positions(0)


@pytest.mark.parametrize("pad", [False, True])
def test_reconstruction_in_order(pad):
    centres, sigmas = gaussian_basis(64, (0.1, 0.5), torch.float64)
    vf = RidgeValueFunction(centres, sigmas, 0.1, pad=pad)
    for length in LENGTHS:
        t = frame_positions(length, torch.float64)
        v = _signals(t)
        rec = _reconstruct(vf, v)
        assert rec.shape == v.shape and torch.isfinite(rec).all()
        if length <= 2:  # too few frames for a correlation: the values themselves come back
            torch.testing.assert_close(rec, v, atol=0.02, rtol=0)
            if length == 2:  # order kept: the ramp still increases
                assert rec[1, 0] > rec[0, 0]
            continue
        for k in range(v.shape[1]):
            corr = np.corrcoef(rec[:, k], v[:, k])[0, 1]
            reversed_corr = np.corrcoef(rec[:, k], v.flip(0)[:, k])[0, 1]
            assert corr > (0.999 if not pad else 0.96), (length, k, corr)
            assert corr > reversed_corr + 0.1 or length == 3
        # no reversal, no shift: the bump's peak stays where it was
        assert abs(t[rec[:, 2].argmax()] - t[v[:, 2].argmax()]) <= 1.5 / length
        if not pad:
            assert (rec - v).abs().max() < 0.05, length


def test_constant_signal_and_single_frame():
    vf = RidgeValueFunction(*gaussian_basis(64, (0.1, 0.5), torch.float64), 0.1)
    one = torch.tensor([[3.0]], dtype=torch.float64)  # L = 1, D = 1
    rec = _reconstruct(vf, one)
    assert rec.item() == pytest.approx(3.0, rel=1e-3)
    g1 = vf.regression_matrix(1, torch.float64)
    assert g1.shape == (1, 128) and torch.isfinite(g1).all()
    const = torch.full((401, 2), -1.5, dtype=torch.float64)
    torch.testing.assert_close(_reconstruct(vf, const), const, atol=0.02, rtol=0)


def test_regression_matrix_formula():
    centres, sigmas = gaussian_basis(8, (0.1, 0.5), torch.float64)
    vf = RidgeValueFunction(centres, sigmas, 0.3, pad=False)
    length = 13
    feats = evaluate_basis(frame_positions(length, torch.float64), centres, sigmas).T  # [N, L]
    eye = torch.eye(16, dtype=torch.float64)
    expected = feats.T @ torch.linalg.inv(feats @ feats.T + 0.3 * eye)
    torch.testing.assert_close(vf.regression_matrix(length, torch.float64), expected)
    g32 = vf.regression_matrix(length, torch.float32)
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), expected, rtol=1e-5, atol=1e-6)
    # padded: the L real rows of the ridge solution over the grid extended by ⌈L/2⌉ frames a side
    vfp = RidgeValueFunction(centres, sigmas, 0.3, pad=True)
    idx = torch.arange(1 - 7, length + 7 + 1, dtype=torch.float64)
    fp = evaluate_basis((2 * idx - 1) / (2 * length), centres, sigmas).T
    gp = fp.T @ torch.linalg.inv(fp @ fp.T + 0.3 * torch.eye(16, dtype=torch.float64))
    torch.testing.assert_close(vfp.regression_matrix(length, torch.float64), gp[7:7 + length])


def test_mixed_lengths_ignore_padding():
    vf = RidgeValueFunction(*gaussian_basis(16, (0.1, 0.5), torch.float64), 0.1)
    torch.manual_seed(0)
    lengths = [1, 7, 30, 7, 3000]
    max_len = max(lengths)
    values = torch.randn(len(lengths), max_len, 3, dtype=torch.float64) * 100  # garbage padding
    coef = vf.coefficients(values, torch.tensor(lengths))
    r = torch.rand(len(lengths), 32, dtype=torch.float64)
    weights = vf.frame_weights(r, torch.tensor(lengths), max_len)
    for b, length in enumerate(lengths):
        alone = vf.coefficients(values[b:b + 1, :length])[0]
        torch.testing.assert_close(coef[b], alone)
        assert (weights[b, length:] == 0).all()
        # frame weights reproduce B r
        torch.testing.assert_close(weights[b] @ values[b], coef[b] @ r[b])
    with pytest.raises(ValueError):
        vf.coefficients(values, torch.tensor([0, 1, 1, 1, 1]))
    with pytest.raises(ValueError):
        vf.coefficients(values, torch.tensor([0.5, 1, 1, 1, 1]))


def test_gradients_flow_through_frame_weights():
    vf = RidgeValueFunction(*gaussian_basis(8), 0.1)
    r = torch.rand(2, 16, requires_grad=True)
    w = vf.frame_weights(r, torch.tensor([5, 2]), 5)
    (w * torch.randn(2, 5)).sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0


def test_cache_is_lazy_lru_and_bounded():
    budget = 5_000_000
    vf = RidgeValueFunction(*gaussian_basis(64, (0.1, 0.5)), 0.1, cache_bytes=budget)
    assert vf.cache_info()["entries"] == 0  # nothing precomputed
    cycle = list(range(1, 3001, 125)) + [3000]  # 25 lengths, up to 1.5 MB each in float32
    for length in cycle:
        vf.regression_matrix(length)
        info = vf.cache_info()
        assert info["bytes"] <= budget
    assert 0 < info["entries"] < len(cycle)
    # the most recent lengths are cached, the oldest evicted
    misses = vf.cache_info()["misses"]
    vf.regression_matrix(cycle[-2])
    assert vf.cache_info()["misses"] == misses and vf.cache_info()["hits"] == 1
    vf.regression_matrix(1)
    assert vf.cache_info()["misses"] == misses + 1
    # the byte count matches what is stored; keys separate dtypes
    vf.regression_matrix(10, torch.float64)
    assert vf.cache_info()["bytes"] == sum(v.numel() * v.element_size() for v in vf._cache.values())
    # an entry larger than the budget is returned but not cached
    tiny = RidgeValueFunction(*gaussian_basis(64, (0.1, 0.5)), 0.1, cache_bytes=1000)
    assert tiny.regression_matrix(100).shape == (100, 128)
    assert tiny.cache_info()["entries"] == 0


def test_copy_and_pickle():
    vf = RidgeValueFunction(*gaussian_basis(8), 0.1)
    vf.regression_matrix(12)
    for clone in (copy.deepcopy(vf), pickle.loads(pickle.dumps(vf))):
        assert clone.cache_info()["entries"] == 0
        torch.testing.assert_close(clone.regression_matrix(12), vf.regression_matrix(12))


def test_bad_arguments():
    c, s = gaussian_basis(4)
    with pytest.raises(ValueError):
        RidgeValueFunction(c, s, 0.0)
    with pytest.raises(ValueError):
        RidgeValueFunction(c, s[:3], 0.1)
    with pytest.raises(ValueError):
        gaussian_basis(0)
    with pytest.raises(ValueError):
        gaussian_basis(4, (0.1, -0.5))


def test_all_urbansound8k_lengths_fit_the_default_cache():
    """README: every UrbanSound8K length (L = 1..401 frames of the seed ACRNN, 4 s at 10 ms)
    cached as float32 with 128 bases takes 41 MB (= 4 · 128 · Σ L bytes), inside the default
    50 MB budget: nothing is evicted, a second pass only hits."""
    vf = RidgeValueFunction(*gaussian_basis(64, (0.1, 0.5)), 0.1)  # the default budget
    for length in range(1, 402):
        vf.regression_matrix(length)
    info = vf.cache_info()
    assert info["bytes"] == 4 * 128 * sum(range(1, 402)) and round(info["bytes"] / 1e6) == 41
    assert info["entries"] == 401 and info["bytes"] <= info["budget"] == 50_000_000
    for length in range(1, 402):
        vf.regression_matrix(length)
    assert vf.cache_info()["hits"] == 401 and vf.cache_info()["misses"] == 401
