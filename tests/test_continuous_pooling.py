"""ContinuousAttentionPooling: shapes, info, padding invariance, gradients, dtypes, errors."""

import math

import pytest
import torch

from audioattn_sb.attention import beta_gaussian as bg
from audioattn_sb.attention.continuous import (
    ENCODERS,
    ContinuousAttentionPooling,
    absolute_lengths,
)
from audioattn_sb.attention.discrete import masked_attention
from audioattn_sb.inspection.attention import continuous_mass
from audioattn_sb.attention.value_function import frame_positions

CONFIGS = [("gaussian", 1.0), ("softmax", 1.0), ("triweight", 4 / 3), ("biweight", 1.5),
           ("sparsemax", 2.0), ("entmax", 1.7), ("entmax", 2.5)]
D = 12


def _pool(family, alpha, **kw):
    torch.manual_seed(0)
    kw.setdefault("num_centres", 16)
    return ContinuousAttentionPooling(D, family, alpha, **kw).double()


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("family,alpha", CONFIGS)
def test_shapes_and_info(family, alpha, encoder):
    pool = _pool(family, alpha, encoder=encoder)
    x = torch.randn(3, 9, D, dtype=torch.float64)
    ctx, info = pool(x, torch.tensor([1.0, 5 / 9, 1 / 9], dtype=torch.float64))
    assert ctx.shape == (3, D) and torch.isfinite(ctx).all()
    for key in ("mu", "var", "sigma_sq", "support"):
        assert getattr(info, key).shape == (3,), key
    assert info.alpha.dim() == 0 and info.alpha.item() == pytest.approx(alpha)
    assert info.weights.shape == (3, 9)
    assert (info.weights[1, 5:] == 0).all() and (info.weights[2, 1:] == 0).all()
    torch.testing.assert_close(info.weights.sum(-1), torch.ones(3, dtype=torch.float64))
    assert (info.cont_weights[1, 5:] == 0).all()
    assert (info.sigma_sq > 0).all() and (info.var > 0).all()
    torch.testing.assert_close(info.var, bg.variance_from_sigma_sq(info.sigma_sq, alpha))
    if alpha == 1.0:
        assert torch.isinf(info.support).all()
    else:
        torch.testing.assert_close(info.support, bg.support_width(info.sigma_sq, alpha))


@pytest.mark.parametrize("family,alpha", CONFIGS)
def test_moments_encoder_matches_discrete_attention(family, alpha):
    """μ = Σ p_ℓ t_ℓ, v = Σ p_ℓ (t_ℓ − μ)² over each clip's own mid-point positions."""
    pool = _pool(family, alpha)
    x = torch.randn(2, 10, D, dtype=torch.float64)
    _, info = pool(x, torch.tensor([1.0, 0.7], dtype=torch.float64))
    for b, length in enumerate((10, 7)):
        t = frame_positions(length, torch.float64)
        p = info.weights[b, :length]
        mu = (p * t).sum()
        var = (p * (t - mu) ** 2).sum().clamp_min(pool.var_floor)
        assert info.mu[b].item() == pytest.approx(mu.item(), rel=1e-12)
        assert info.var[b].item() == pytest.approx(var.item(), rel=1e-10)


def test_uniform_attention_gives_uniform_moments():
    pool = _pool("sparsemax", 2.0)
    with torch.no_grad():
        pool.scorer.v.weight.zero_()  # constant scores → uniform p
    _, info = pool(torch.randn(1, 101, D, dtype=torch.float64))
    assert info.mu.item() == pytest.approx(0.5, abs=1e-12)
    assert info.var.item() == pytest.approx((101**2 - 1) / (12 * 101**2), rel=1e-10)
    # sparsemax with that variance: a = √(5v)
    assert info.support.item() == pytest.approx(2 * math.sqrt(5 * info.var.item()), rel=1e-10)


@pytest.mark.parametrize("family,alpha", [("gaussian", 1.0), ("sparsemax", 2.0), ("entmax", 1.7)])
def test_constant_frames_give_their_value(family, alpha):
    """A narrow density inside the clip over constant frames reads the constant (no fusion)."""
    pool = _pool(family, alpha, encoder="direct", fuse_discrete=False, num_centres=64)
    assert pool.scorer is None
    target_s2 = bg.sigma_sq_from_variance(torch.tensor(0.01**2, dtype=torch.float64), alpha)
    with torch.no_grad():
        pool.param_head.weight.zero_()
        pool.param_head.bias.copy_(torch.tensor([0.0, math.log(math.expm1(target_s2.item()))]))
    x = torch.full((2, 401, D), 2.5, dtype=torch.float64)
    ctx, info = pool(x, torch.tensor([1.0, 0.5], dtype=torch.float64))
    assert info.weights is None
    torch.testing.assert_close(info.mu, torch.full((2,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(ctx, torch.full_like(ctx, 2.5), rtol=1e-2, atol=0)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("family,alpha", CONFIGS)
def test_padding_invariance(family, alpha, encoder):
    pool = _pool(family, alpha, encoder=encoder).float()
    torch.manual_seed(1)
    short = torch.randn(1, 23, D)
    longer = torch.randn(1, 57, D)
    alone, info_alone = pool(short)
    batch = torch.cat([torch.cat([short, 1e3 * torch.randn(1, 34, D)], 1), longer])  # garbage pad
    both, info_both = pool(batch, torch.tensor([23 / 57, 1.0]))
    torch.testing.assert_close(both[0], alone[0], rtol=1e-5, atol=1e-5)
    for key in ("mu", "sigma_sq"):
        torch.testing.assert_close(getattr(info_both, key)[0], getattr(info_alone, key)[0],
                                   rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(info_both.weights[0, :23], info_alone.weights[0],
                               rtol=1e-5, atol=1e-7)
    assert (info_both.weights[0, 23:] == 0).all()


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("family,alpha", CONFIGS)
def test_gradients_finite_and_reach_parameters(family, alpha, encoder):
    pool = _pool(family, alpha, encoder=encoder).float()
    x = torch.randn(3, 40, D, requires_grad=True)
    ctx, info = pool(x, torch.tensor([1.0, 0.5, 0.025]))
    (ctx.square().sum() + info.mu.sum() + info.sigma_sq.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[1, 20:] == 0).all()  # padding gets no gradient
    for name, param in pool.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("family,alpha", [("gaussian", 1.0), ("triweight", 4 / 3),
                                          ("sparsemax", 2.0), ("entmax", 1.7)])
def test_mixed_lengths_one_and_3000(family, alpha):
    pool = _pool(family, alpha, num_centres=64)
    pool = pool.float()
    x = torch.randn(2, 3000, D, requires_grad=True)
    ctx, info = pool(x, torch.tensor([1 / 3000, 1.0]))
    assert torch.isfinite(ctx).all()
    ctx.sum().backward()
    assert torch.isfinite(x.grad).all()
    # a single frame: the density sits at t = 1/2 and the context is (a multiple of) that frame
    assert info.mu[0].item() == pytest.approx(0.5)
    assert info.weights[0, 0].item() == pytest.approx(1.0)
    single, _ = pool(x[:1, :1].detach())
    torch.testing.assert_close(ctx[0].detach(), single[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    pool = _pool("sparsemax", 2.0).float()
    x = torch.randn(2, 30, D)
    # autocast on CPU (bf16) with float32 weights
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ctx, info = pool(x, torch.tensor([1.0, 0.4]))
    assert torch.isfinite(ctx).all() and torch.isfinite(info.mu).all()
    # the whole module cast to the half type: outputs keep the input dtype
    half = _pool("entmax", 1.7).to(dtype)
    ctx, info = half(x.to(dtype), torch.tensor([1.0, 0.4]))
    assert ctx.dtype == dtype and torch.isfinite(ctx).all()
    assert torch.isfinite(info.sigma_sq).all()
    # the basis is not rounded to the half type
    assert half.basis(torch.device("cpu"))[0].dtype == torch.float64


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("family,alpha", [("gaussian", 1.0), ("biweight", 1.5), ("sparsemax", 2.0)])
def test_extreme_scores_no_nan(family, alpha, encoder):
    """Saturated scorer/head (one-hot weights, variance at the floor, or σ² huge), one-frame
    clips: μ, σ² and every gradient stay finite."""
    pool = _pool(family, alpha, encoder=encoder, score_scale=None if encoder == "direct"
                 else "learned").float()
    x = torch.randn(3, 50, D) * 1e4
    x.requires_grad_(True)
    ctx, info = pool(x, torch.tensor([1.0, 0.5, 0.02]))
    (ctx.sum() + info.mu.sum() + info.sigma_sq.sum()).backward()
    assert torch.isfinite(ctx).all() and torch.isfinite(x.grad).all()
    for key in ("mu", "sigma_sq", "var"):
        assert torch.isfinite(getattr(info, key)).all(), key
    assert (info.var >= pool.var_floor * (1 - 1e-6)).all()
    for name, param in pool.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("family,alpha,mapping", [("gaussian", 1.0, "softmax"),
                                                  ("triweight", 4 / 3, "entmax1333"),
                                                  ("biweight", 1.5, "entmax15"),
                                                  ("sparsemax", 2.0, "sparsemax"),
                                                  ("entmax", 1.7, "entmax")])
def test_moments_alpha_uses_the_familys_own_mapping_unscaled(family, alpha, mapping):
    pool = _pool(family, alpha, encoder="moments_alpha")
    with torch.no_grad():
        pool.scorer.v.weight.mul_(10.0)  # spread scores, as after training
    x = torch.randn(2, 30, D, dtype=torch.float64) * 3
    _, info = pool(x, torch.tensor([1.0, 0.6], dtype=torch.float64))
    mask = torch.arange(30)[None, :] < torch.tensor([[30], [18]])
    raw = pool.scorer.v(torch.tanh(pool.scorer.proj(x))).squeeze(-1)  # scale 1
    expected = masked_attention(raw, mask, mapping, alpha if mapping == "entmax" else None)
    torch.testing.assert_close(info.weights, expected)
    if alpha > 1:  # sparse: exact zeros on valid frames
        assert (info.weights[mask] == 0).any()


def test_moments_softmax_is_the_predecessors_and_old_name_means_it():
    old = _pool("sparsemax", 2.0, encoder="moments")
    new = _pool("sparsemax", 2.0, encoder="moments_softmax")
    assert old.encoder == new.encoder == "moments_softmax"
    new.load_state_dict(old.state_dict())  # a run saved with encoder: moments loads unchanged
    x = torch.randn(2, 25, D, dtype=torch.float64)
    lengths = torch.tensor([1.0, 0.4], dtype=torch.float64)
    ctx_old, info = old(x, lengths)
    ctx_new, _ = new(x, lengths)
    torch.testing.assert_close(ctx_old, ctx_new)
    raw = old.scorer.v(torch.tanh(old.scorer.proj(x))).squeeze(-1) / math.sqrt(D)
    mask = torch.arange(25)[None, :] < torch.tensor([[25], [10]])
    torch.testing.assert_close(info.weights, masked_attention(raw, mask, "softmax"))
    assert (info.weights[mask] > 0).all()  # softmax: never sparse


def test_score_scale_number_and_learned():
    torch.manual_seed(0)
    x = torch.randn(2, 20, D, dtype=torch.float64)
    base = _pool("biweight", 1.5, encoder="moments_softmax", score_scale=1.0)
    hot = _pool("biweight", 1.5, encoder="moments_softmax", score_scale=4.0)
    assert base.scorer.log_scale is None
    torch.testing.assert_close(hot.scorer(x), 4.0 * base.scorer(x))
    learned = _pool("biweight", 1.5, encoder="moments_alpha", score_scale="learned")
    assert learned.scorer.log_scale.item() == pytest.approx(0.0)  # starts at the default (1)
    with torch.no_grad():
        learned.scorer.log_scale.fill_(math.log(4.0))
    torch.testing.assert_close(learned.scorer(x), hot.scorer(x))
    ctx, _ = learned(x)
    ctx.square().sum().backward()
    assert learned.scorer.log_scale.grad.abs() > 0
    # the default of the predecessor's encoder: 1/√D
    torch.testing.assert_close(_pool("biweight", 1.5, encoder="moments_softmax").scorer(x),
                               base.scorer(x) / math.sqrt(D))


def test_sparse_moments_localise_a_block():
    """Scores +10 on frames 40–59 of 100, −10 elsewhere: sparsemax weights are uniform on the
    block (exact zeros elsewhere), μ = 0.5, v = (20² − 1)/12 · 0.01², and the sparsemax density
    of that variance (a = √(5v)) puts (3/(4a))(0.2 − 2·0.1³/(3a²)) of its mass on the block
    (worked by hand), against the exported mass."""
    pool = _pool("sparsemax", 2.0, encoder="moments_alpha", fuse_discrete=False)
    with torch.no_grad():
        pool.scorer.proj.weight.zero_()
        pool.scorer.proj.bias.zero_()
        pool.scorer.proj.weight[0, 0] = 10.0
        pool.scorer.v.weight.zero_()
        pool.scorer.v.weight[0, 0] = 10.0
    x = torch.zeros(1, 100, D, dtype=torch.float64)
    x[0, :, 0] = -1.0
    x[0, 40:60, 0] = 1.0
    _, info = pool(x)
    w = info.weights[0]
    torch.testing.assert_close(w[40:60], torch.full((20,), 0.05, dtype=torch.float64))
    assert (w[:40] == 0).all() and (w[60:] == 0).all()
    v = (20**2 - 1) / 12 * 0.01**2
    assert info.mu.item() == pytest.approx(0.5, abs=1e-12)
    assert info.var.item() == pytest.approx(v, rel=1e-10)
    a = math.sqrt(5 * v)
    assert info.support.item() == pytest.approx(2 * a, rel=1e-10)
    # sparsemax pdf (3/(4a))(1 − x²/a²) on |x| ≤ a; mass on |x| ≤ 0.1 (< a)
    mass = 3 / (4 * a) * (0.2 - 2 * 0.1**3 / (3 * a**2))
    got = continuous_mass(0.4, 0.6, info.mu.item(), info.sigma_sq.item(), 2.0)
    assert got == pytest.approx(mass, rel=1e-8)
    assert mass > 0.9


@pytest.mark.parametrize("family,alpha", [("gaussian", 1.0), ("biweight", 1.5), ("sparsemax", 2.0)])
def test_direct_encoder_starts_narrow(family, alpha):
    pool = _pool(family, alpha, encoder="direct", direct_init_var=0.02)
    with torch.no_grad():
        pool.param_head.weight.zero_()
    _, info = pool(torch.randn(2, 30, D, dtype=torch.float64))
    torch.testing.assert_close(info.var, torch.full((2,), 0.02, dtype=torch.float64))


def test_absolute_lengths():
    assert absolute_lengths(None, 7, 2).tolist() == [7, 7]
    assert absolute_lengths(torch.tensor([1.0, 0.5, 1e-6, 0.0]), 10, 4).tolist() == [10, 5, 1, 1]
    with pytest.raises(ValueError):
        absolute_lengths(torch.tensor([1.0]), 10, 2)


@pytest.mark.parametrize("kwargs", [
    dict(max_activation="sparsemax", alpha=1.0),
    dict(max_activation="sparsemax", alpha=1.5),
    dict(max_activation="entmax", alpha=0.5),
    dict(max_activation="entmax", alpha=None),
    dict(max_activation="entmax", alpha=float("nan")),
    dict(max_activation="gaussian", alpha=1.5),
    dict(max_activation="laplace"),
    dict(encoder="lstm"),
    dict(ridge_penalty=0.0),
    dict(num_centres=0),
    dict(basis_sigmas=(0.1, 0.0)),
    dict(var_floor=0.0),
    dict(score_scale=0.0),
    dict(score_scale=-1.0),
    dict(score_scale="hot"),
    dict(encoder="direct", direct_init_var=2.0),
    dict(encoder="direct", direct_init_var=1e-6),
])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        ContinuousAttentionPooling(8, **kwargs)


def test_factory_builds_continuous():
    from audioattn_sb.attention import build_pooling

    pool = build_pooling("continuous", "biweight", 16, continuous={"num_centres": 8})
    assert isinstance(pool, ContinuousAttentionPooling) and pool.alpha == 1.5
    pool = build_pooling("continuous", "entmax", 16, alpha=1.7, attention_dim=5,
                         continuous={"encoder": "direct"})
    assert pool.alpha == 1.7 and pool.encoder == "direct" and pool.scorer.proj.out_features == 5
    ctx, _ = pool(torch.randn(2, 8, 16), torch.tensor([1.0, 0.5]))
    assert ctx.shape == (2, 16)
    assert ContinuousAttentionPooling(8, "triweight").alpha == 4 / 3
    entmax_one = ContinuousAttentionPooling(8, "entmax", 1.0)
    assert (entmax_one.max_activation, entmax_one.alpha) == ("gaussian", 1.0)


def test_factory_checks_continuous_option_names():
    from audioattn_sb.attention import build_pooling

    pool = build_pooling("continuous", "sparsemax", 8, continuous={"score_scale": "learned",
                                                                   "encoder": "moments_alpha"})
    assert pool.scorer.log_scale is not None
    with pytest.raises(ValueError, match="did you mean encoder"):
        build_pooling("continuous", "sparsemax", 8, continuous={"encodr": "direct"})


@pytest.mark.parametrize("encoder", ENCODERS)
def test_sigma_sq_alone_carries_gradient_to_the_encoder(encoder):
    """σ² is learned: a loss on σ² alone moves the encoder's parameters (a frozen, detached σ²
    would leave them without gradient)."""
    pool = _pool("biweight", 1.5, encoder=encoder).float()
    _, info = pool(torch.randn(2, 30, D) * 3, torch.tensor([1.0, 0.6]))
    info.sigma_sq.sum().backward()
    params = dict(pool.named_parameters())
    head = params["param_head.weight"] if encoder == "direct" else params["scorer.proj.weight"]
    assert head.grad is not None and head.grad.abs().sum() > 0
