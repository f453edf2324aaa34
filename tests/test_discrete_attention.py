"""Discrete attention: mappings against a slow reference, masking, padding invariance, errors."""

import numpy as np
import pytest
import torch

from audioattn_sb.attention import DISCRETE_ALPHA, build_pooling, resolve_continuous
from audioattn_sb.attention.discrete import (
    DiscreteAttentionPooling,
    MeanPooling,
    lengths_to_mask,
    masked_attention,
)

MAPPINGS = [("softmax", None), ("entmax1333", None), ("entmax15", None), ("sparsemax", None),
            ("entmax", 1.7), ("entmax", 2.5)]


def reference_entmax(scores, alpha):
    """Slow reference: p = [(α−1)s − τ]₊^{1/(α−1)}, τ by bisection in float64 (softmax at α=1)."""
    s = np.asarray(scores, dtype=np.float64)
    if alpha == 1.0:
        e = np.exp(s - s.max())
        return e / e.sum()
    z = (alpha - 1.0) * s
    lo, hi = z.max() - 1.0, z.max()  # Σ p(τ) ≥ 1 at lo (the max term alone is 1), 0 at hi

    def total(tau):
        return (np.clip(z - tau, 0, None) ** (1.0 / (alpha - 1.0))).sum()

    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if total(mid) >= 1.0:
            lo = mid
        else:
            hi = mid
    p = np.clip(z - lo, 0, None) ** (1.0 / (alpha - 1.0))
    return p / p.sum()


@pytest.mark.parametrize("mapping,alpha", MAPPINGS)
def test_mapping_matches_reference_on_valid_frames(mapping, alpha):
    torch.manual_seed(0)
    scores = torch.randn(4, 9, dtype=torch.float64) * 2
    n_valid = [9, 5, 1, 3]
    mask = torch.arange(9)[None, :] < torch.tensor(n_valid)[:, None]
    w = masked_attention(scores, mask, mapping, alpha)
    a = alpha if alpha is not None else DISCRETE_ALPHA[mapping]
    for b, n in enumerate(n_valid):
        ref = reference_entmax(scores[b, :n].numpy(), a)
        np.testing.assert_allclose(w[b, :n].numpy(), ref, atol=1e-6)
        assert torch.all(w[b, n:] == 0), "padded frames must get exactly zero weight"
        assert w[b].sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("mapping,alpha", [m for m in MAPPINGS if m[0] != "softmax"])
def test_sparse_mappings_give_exact_zeros(mapping, alpha):
    scores = torch.tensor([[3.0, 2.9, 0.0, -1.0, -4.0]])
    w = masked_attention(scores, None, mapping, alpha)
    assert (w == 0).sum() >= 1, w
    assert torch.all(w[:, -1] == 0)
    # softmax never gives an exact zero on the same row
    assert torch.all(masked_attention(scores, None, "softmax") > 0)


@pytest.mark.parametrize("mapping,alpha", MAPPINGS)
def test_fully_masked_row_is_zero_not_nan(mapping, alpha):
    scores = torch.randn(2, 6, requires_grad=True)
    mask = torch.tensor([[False] * 6, [True] * 6])
    w = masked_attention(scores, mask, mapping, alpha)
    assert torch.isfinite(w).all()
    assert torch.all(w[0] == 0) and w[1].sum().item() == pytest.approx(1.0, abs=1e-5)
    (w * torch.arange(6.0)).sum().backward()
    assert torch.isfinite(scores.grad).all()


@pytest.mark.parametrize("mapping,alpha", MAPPINGS)
def test_pooling_padding_invariance(mapping, alpha):
    torch.manual_seed(1)
    pool = DiscreteAttentionPooling(8, mapping, alpha).double()
    x_short = torch.randn(1, 5, 8, dtype=torch.float64)
    alone, info_alone = pool(x_short, torch.tensor([1.0]))
    garbage = torch.randn(1, 4, 8, dtype=torch.float64) * 100
    batch = torch.cat([torch.cat([x_short, garbage], dim=1), torch.randn(1, 9, 8).double()])
    padded, info = pool(batch, torch.tensor([5 / 9, 1.0]))
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(info.weights[0, :5], info_alone.weights[0])
    assert torch.all(info.weights[0, 5:] == 0)


@pytest.mark.parametrize("mapping,alpha", [("softmax", None), ("sparsemax", None),
                                           ("entmax15", None), ("entmax", 1.7)])
def test_pooling_gradcheck_float64(mapping, alpha):
    torch.manual_seed(2)
    pool = DiscreteAttentionPooling(4, mapping, alpha, attention_dim=3).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([1.0, 0.6])
    # entmax_bisect's gradient is exact only up to its bisection tolerance
    atol = 1e-5 if mapping == "entmax" else 1e-6
    assert torch.autograd.gradcheck(lambda t: pool(t, lengths)[0], (x,), atol=atol)


def test_gradients_finite_through_pooling():
    pool = DiscreteAttentionPooling(8, "sparsemax")
    x = torch.randn(3, 7, 8, requires_grad=True)
    ctx, _ = pool(x, torch.tensor([1.0, 0.3, 1 / 7]))
    ctx.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in pool.parameters())


def test_mean_pooling_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [50.0]], [[2.0], [4.0], [6.0]]])
    ctx, info = MeanPooling()(x, torch.tensor([2 / 3, 1.0]))
    assert ctx.squeeze(-1).tolist() == [2.0, 4.0]


def test_lengths_to_mask_rounding_and_minimum():
    m = lengths_to_mask(torch.tensor([1.0, 0.01, 0.5]), 10)
    assert m.sum(dim=1).tolist() == [10, 1, 5]


def test_unknown_names_fail_listing_valid_ones():
    with pytest.raises(ValueError, match="softmax, entmax1333, entmax15, sparsemax, entmax"):
        build_pooling("discrete", "sparsmax", 8)
    with pytest.raises(ValueError, match="discrete, continuous, mean"):
        build_pooling("discret", "softmax", 8)
    with pytest.raises(ValueError, match="gaussian.*triweight.*biweight"):
        build_pooling("continuous", "entmax15", 8)
    with pytest.raises(ValueError, match="needs --attn_alpha"):
        build_pooling("discrete", "entmax", 8)
    with pytest.raises(ValueError, match="contradicts"):
        build_pooling("discrete", "sparsemax", 8, alpha=1.5)
    with pytest.raises(ValueError, match="≥ 1"):
        build_pooling("discrete", "entmax", 8, alpha=0.5)


def test_entmax_any_alpha_is_built_with_that_alpha():
    pool = build_pooling("discrete", "entmax", 8, alpha=1.7)
    assert pool.alpha == 1.7
    assert build_pooling("discrete", "entmax1333", 8).alpha == pytest.approx(4 / 3, abs=1e-15)


def test_continuous_names_resolve_to_alpha():
    assert resolve_continuous("triweight") == ("triweight", pytest.approx(4 / 3))
    assert resolve_continuous("softmax") == ("gaussian", 1.0)
    assert resolve_continuous("entmax", 2.0) == ("sparsemax", 2.0)
    assert resolve_continuous("entmax", 1.7) == ("entmax", 1.7)


def test_every_pooling_names_its_max_activation_the_same_way():
    """One attribute name for the mapping in both domains and the Transformer (issue 12)."""
    from audioattn_sb.models.transformer import MultiHeadSelfAttention

    assert build_pooling("discrete", "entmax15", 8).max_activation == "entmax15"
    cont = build_pooling("continuous", "softmax", 8, continuous={"num_centres": 4})
    assert (cont.max_activation, cont.alpha) == ("gaussian", 1.0)
    assert MultiHeadSelfAttention(8, 2, "sparsemax").max_activation == "sparsemax"
