"""β-Gaussian densities and expected RBFs against scipy quadrature, finite differences, limits."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from audioattn_sb.attention import beta_gaussian as bg
from audioattn_sb.attention.max_activations import continuous_name, resolve_continuous

ALPHAS = [1.0, 4 / 3, 1.5, 2.0, 1.7, 2.5]
CLOSED = [4 / 3, 1.5, 2.0]


# ------------------------------------------------------------------------------------------
# families, constants, density
# ------------------------------------------------------------------------------------------
def test_continuous_names_and_alpha():
    def alpha(name, a=None):
        return resolve_continuous(name, a)[1]

    assert alpha("gaussian") == alpha("softmax") == 1.0
    assert alpha("triweight") == 4 / 3
    assert alpha("biweight") == 1.5
    assert alpha("sparsemax") == 2.0
    assert alpha("entmax", 1.7) == 1.7
    assert resolve_continuous("entmax", 1.0) == ("gaussian", 1.0)
    assert continuous_name(1.3333333333) == "triweight"
    assert continuous_name(1.0) == "gaussian"
    assert bg.entmax_exponent(1.3333333333333333) == 3.0  # exact, not 2.9999999999999996
    with pytest.raises(ValueError, match="needs --attn_alpha"):
        alpha("entmax")
    with pytest.raises(ValueError, match="≥ 1"):
        alpha("entmax", 0.9)
    with pytest.raises(ValueError, match="contradicts"):
        alpha("sparsemax", 1.5)
    with pytest.raises(ValueError, match="unknown continuous attention max_activation 'cauchy'"):
        alpha("cauchy")
    for bad in (0.5, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError):
            bg.check_alpha(bad)


def test_radius_and_support_table():
    """REFERENCE §3 table: a(σ²) and a from the variance for each named family."""
    s2 = torch.tensor([1e-6, 1e-3, 0.05, 1.0, 1e3], dtype=torch.float64)
    a = {al: bg.support_half_width(s2, al) for al in CLOSED}
    torch.testing.assert_close(a[2.0], (1.5 * s2) ** (1 / 3), rtol=1e-12, atol=0)
    torch.testing.assert_close(a[1.5], (15 * s2**2) ** (1 / 5), rtol=1e-12, atol=0)
    torch.testing.assert_close(a[4 / 3], (945 * s2**3 / 4) ** (1 / 7), rtol=1e-12, atol=0)
    v = {al: bg.variance_from_sigma_sq(s2, al) for al in CLOSED}
    torch.testing.assert_close(a[2.0], torch.sqrt(5 * v[2.0]), rtol=1e-12, atol=0)
    torch.testing.assert_close(a[1.5], torch.sqrt(7 * v[1.5]), rtol=1e-12, atol=0)
    torch.testing.assert_close(a[4 / 3], 3 * torch.sqrt(v[4 / 3]), rtol=1e-12, atol=0)
    # variance = a²(α−1)/(3α−1) for a generic α, width = 2a, τ = −a²/(2σ²)
    for al in (1.7, 2.5, 1.05):
        aa = bg.support_half_width(s2, al)
        torch.testing.assert_close(bg.variance_from_sigma_sq(s2, al),
                                   aa**2 * (al - 1) / (3 * al - 1), rtol=1e-12, atol=0)
        torch.testing.assert_close(bg.support_width(s2, al), 2 * aa)
        torch.testing.assert_close(bg.tau(s2, al), -aa**2 / (2 * s2))
    # R_α against the formula written with Γ directly (moderate α, no overflow)
    for al in (1.2, 1.7, 2.0, 3.0):
        e = al / (al - 1)
        direct = (special.gamma(0.5 + e) / (special.gamma(e) * math.sqrt(math.pi))
                  * (2 / (al - 1)) ** (1 / (al - 1))) ** ((al - 1) / (al + 1))
        assert bg.radius(al) == pytest.approx(direct, rel=1e-12)
    assert math.isinf(bg.radius(1.0))
    assert torch.isinf(bg.support_width(s2, 1.0)).all()
    with pytest.raises(ValueError):
        bg.tau(s2, 1.0)


@pytest.mark.parametrize("alpha", ALPHAS + [1.05, 5.0])
def test_variance_roundtrip(alpha):
    s2 = torch.logspace(-6, 3, 19, dtype=torch.float64)
    v = bg.variance_from_sigma_sq(s2, alpha)
    torch.testing.assert_close(bg.sigma_sq_from_variance(v, alpha), s2, rtol=1e-12, atol=0)
    v2 = torch.logspace(-8, 1, 10, dtype=torch.float64)
    back = bg.variance_from_sigma_sq(bg.sigma_sq_from_variance(v2, alpha), alpha)
    torch.testing.assert_close(back, v2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("sigma_sq", [0.01, 0.3, 2.0])
def test_density_normalised_with_stated_variance(alpha, sigma_sq):
    mu = 0.37
    def f(t):
        return bg.pdf(torch.tensor(t, dtype=torch.float64), mu, sigma_sq, alpha).item()

    if alpha == 1.0:
        lo, hi = mu - 40 * math.sqrt(sigma_sq), mu + 40 * math.sqrt(sigma_sq)
    else:
        a = bg.support_half_width(torch.tensor(sigma_sq, dtype=torch.float64), alpha).item()
        lo, hi = mu - a, mu + a
        assert f(hi + 1e-9) == 0.0 and f(lo - 1e-9) == 0.0 and f(mu) > 0
    opts = dict(epsabs=0, epsrel=1e-12, limit=200, points=[mu])
    mass = integrate.quad(f, lo, hi, **opts)[0]
    mean = integrate.quad(lambda t: t * f(t), lo, hi, **opts)[0]
    var = integrate.quad(lambda t: (t - mu) ** 2 * f(t), lo, hi, **opts)[0]
    assert mass == pytest.approx(1.0, abs=1e-9)
    assert mean == pytest.approx(mu, abs=1e-9)
    expected = bg.variance_from_sigma_sq(torch.tensor(sigma_sq, dtype=torch.float64), alpha).item()
    assert var == pytest.approx(expected, rel=1e-8)
    if alpha == 1.0:
        assert expected == sigma_sq


@pytest.mark.parametrize("alpha", [4 / 3, 1.5, 2.0, 1.7, 2.5])
def test_pdf_matches_threshold_formula_and_shapes(alpha):
    """p = [(α−1)(−τ − (t−μ)²/(2σ²))]₊^{1/(α−1)} and the table's shapes in u = (t−μ)/a."""
    mu, s2 = 0.2, torch.tensor(0.07, dtype=torch.float64)
    t = torch.linspace(-1.5, 2.0, 301, dtype=torch.float64)
    tau = bg.tau(s2, alpha)
    literal = ((alpha - 1) * (-tau - (t - mu) ** 2 / (2 * s2))).clamp_min(0) ** (1 / (alpha - 1))
    torch.testing.assert_close(bg.pdf(t, mu, s2, alpha), literal, rtol=1e-10, atol=1e-12)
    a = bg.support_half_width(s2, alpha)
    u = (t - mu) / a
    shape = {2.0: (3 / 4, 1), 1.5: (15 / 16, 2), 4 / 3: (35 / 32, 3)}
    if alpha in shape:
        c, k = shape[alpha]
        torch.testing.assert_close(bg.pdf(t, mu, s2, alpha),
                                   c / a * (1 - u**2).clamp_min(0) ** k, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------
# expected basis against quadrature
# ------------------------------------------------------------------------------------------
def reference(mu, s2, c, s, alpha):
    """(r, ∂r/∂μ, ∂r/∂σ²) and the integrals of |integrand| by scipy quad, in float64.

    α > 1, u = (t−μ)/a ∈ [−1, 1], w(u) = (1−u²)^n/B_n:
      r = ∫ w ψ(μ+au) du,  ∂r/∂μ = ∫ w ψ'(μ+au) du,  ∂r/∂σ² = a/((α+1)σ²) ∫ w u ψ'(μ+au) du
    (differentiation under the integral sign; independent of the escort formulas).
    The integration range is where log(w·ψ) is within 60 of its maximum (located on a fine
    grid), with break points spread over it; the integrand is scaled by its maximum.
    """
    if alpha == 1.0:  # t = μ + σ z, z ~ N(0, 1)
        sd = math.sqrt(s2)

        def psi(z):
            return math.exp(-0.5 * ((mu + sd * z - c) / s) ** 2) / (s * math.sqrt(2 * math.pi))

        def phi(z):
            return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

        zc = (c - mu) / sd
        pts = sorted({float(z) for z in np.linspace(-40, 40, 41)}
                     | {min(max(zc + k * s / sd, -40.0), 40.0) for k in range(-10, 11)})
        pts = [p for p in pts if -40 < p < 40]
        o = dict(epsabs=0, epsrel=1e-13, limit=500, points=pts)
        k_mu = lambda z: z / sd  # noqa: E731  ∂ log N(t; μ, σ²)/∂μ
        k_s2 = lambda z: (z * z - 1) / (2 * s2)  # noqa: E731  ∂ log N/∂σ²
        r = integrate.quad(lambda z: phi(z) * psi(z), -40, 40, **o)[0]
        d_mu = integrate.quad(lambda z: phi(z) * k_mu(z) * psi(z), -40, 40, **o)[0]
        d_s2 = integrate.quad(lambda z: phi(z) * k_s2(z) * psi(z), -40, 40, **o)[0]
        m_mu = integrate.quad(lambda z: abs(phi(z) * k_mu(z) * psi(z)), -40, 40, **o)[0]
        m_s2 = integrate.quad(lambda z: abs(phi(z) * k_s2(z) * psi(z)), -40, 40, **o)[0]
        return np.array([r, d_mu, d_s2]), np.array([r, m_mu, m_s2])
    n = bg.entmax_exponent(alpha)
    a = bg.radius(alpha) * s2 ** (n / (2 * n + 1))
    log_b = special.betaln(0.5, n + 1)
    u0, h = (c - mu) / a, s / a

    def log_f(u):
        u = np.asarray(u, dtype=np.float64)
        return n * (np.log1p(-u) + np.log1p(u)) - 0.5 * ((u - u0) / h) ** 2

    grid = np.concatenate([np.linspace(-1, 1, 200_001)[1:-1],
                           np.clip(u0 + h * np.linspace(-12, 12, 4001), -1 + 1e-15, 1 - 1e-15)])
    grid.sort()
    lf = log_f(grid)
    top = lf.max()
    keep = np.nonzero(lf >= top - 60)[0]
    lo = grid[max(keep[0] - 1, 0)] if keep[0] > 0 else -1.0
    hi = grid[min(keep[-1] + 1, grid.size - 1)] if keep[-1] < grid.size - 1 else 1.0
    pts = list(np.linspace(lo, hi, 41)[1:-1])
    scale = top - log_b - math.log(a * h * math.sqrt(2 * math.pi))  # log of the maximum of w·ψ

    def base(u):  # w(u) ψ(μ+au) / exp(scale)
        return math.exp(log_f(u) - top)

    def dpsi(u):  # ψ'(μ+au)/ψ(μ+au) = −(μ+au−c)/s²
        return -(a * (u - u0)) / s**2

    o = dict(epsabs=0, epsrel=1e-13, limit=500, points=pts)
    r = integrate.quad(base, lo, hi, **o)[0]
    d_mu = integrate.quad(lambda u: base(u) * dpsi(u), lo, hi, **o)[0]
    d_s2 = integrate.quad(lambda u: base(u) * u * dpsi(u), lo, hi, **o)[0]
    m_mu = integrate.quad(lambda u: abs(base(u) * dpsi(u)), lo, hi, **o)[0]
    m_s2 = integrate.quad(lambda u: abs(base(u) * u * dpsi(u)), lo, hi, **o)[0]
    factor = math.exp(scale)
    k = a / ((alpha + 1) * s2)
    vals = np.array([r, d_mu, k * d_s2]) * factor
    mags = np.array([r, m_mu, k * m_s2]) * factor
    return vals, mags


MUS = [-0.6, 0.0, 0.3, 0.5, 1.0, 1.25]  # outside, at the edge, inside [0, 1]
SIGMA_SQS = [1e-6, 1e-3, 0.1, 1.0, 1e3]
BASIS = [(0.0, 0.1), (0.5, 0.1), (0.95, 0.1), (0.5, 0.5), (1.0, 0.5)]


def _ours(mu, s2, alpha, method="auto"):
    m = torch.tensor([mu], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([s2], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([b[0] for b in BASIS], dtype=torch.float64)
    s = torch.tensor([b[1] for b in BASIS], dtype=torch.float64)
    r = bg.expected_basis(m, v, c, s, alpha, method=method)[0]
    out = []
    for j in range(len(BASIS)):
        gm, gv = torch.autograd.grad(r[j], (m, v), retain_graph=True)
        out.append((r[j].item(), gm.item(), gv.item()))
    return np.array(out)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("alpha", ALPHAS)
def test_expected_basis_and_gradients_match_quad(alpha):
    """r, ∂r/∂μ, ∂r/∂σ² within 1e-6 relative of scipy quad (float64).

    |ours − ref| ≤ 1e-6 |ref| + 1e-12 ∫|integrand|: the absolute term only matters for
    derivatives that vanish by symmetry (μ = c), where quad itself is cancellation-limited.
    Entries whose reference is below 1e-250 (far tails, underflow) must just be ~0.
    """
    worst = 0.0
    for mu in MUS:
        for s2 in SIGMA_SQS:
            ours = _ours(mu, s2, alpha)
            assert np.isfinite(ours).all()
            for j, (c, s) in enumerate(BASIS):
                ref, mag = reference(mu, s2, c, s, alpha)
                for q in range(3):
                    if mag[q] < 1e-250:
                        assert abs(ours[j, q]) < 1e-240
                        continue
                    diff = abs(ours[j, q] - ref[q])
                    assert diff <= 1e-6 * abs(ref[q]) + 1e-12 * mag[q], (mu, s2, c, s, q,
                                                                         ours[j, q], ref[q])
                    if diff > 1e-12 * mag[q]:
                        worst = max(worst, diff / abs(ref[q]))
    assert worst < 1e-6


@pytest.mark.parametrize("alpha", CLOSED)
def test_quadrature_path_agrees_with_closed_form(alpha):
    torch.manual_seed(0)
    mu = torch.cat([torch.rand(40) * 3 - 1, torch.tensor([-50.0, 50.0, 0.0, 1.0])]).double()
    s2 = torch.cat([torch.exp(torch.rand(40) * 16 - 13),
                    torch.tensor([1e-6, 1e3, 1e-6, 1e3])]).double()
    c = torch.linspace(0, 1, 9, dtype=torch.float64).repeat(2)
    s = torch.tensor([0.1] * 9 + [0.5] * 9, dtype=torch.float64)
    res = {}
    for method in ("auto", "quadrature"):
        m, v = mu.clone().requires_grad_(), s2.clone().requires_grad_()
        r = bg.expected_basis(m, v, c, s, alpha, method=method)
        w = torch.randn(r.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (r * w).sum().backward()
        res[method] = (r.detach(), m.grad, v.grad)
    for a_, b_ in zip(res["auto"], res["quadrature"]):
        torch.testing.assert_close(a_, b_, rtol=1e-8, atol=1e-10 * b_.abs().max().item())


def test_generic_alpha_tends_to_gaussian():
    c = torch.linspace(0, 1, 7, dtype=torch.float64).repeat(2)
    s = torch.tensor([0.1] * 7 + [0.5] * 7, dtype=torch.float64)
    mu = torch.tensor([0.2, 0.5, 0.9, 1.3], dtype=torch.float64)
    s2 = torch.tensor([1e-3, 0.01, 0.05, 0.2], dtype=torch.float64)
    gauss = bg.expected_basis(mu, s2, c, s, 1.0)
    errs = []
    for al in (1.01, 1.001):
        # compare at equal variance (σ² of the β-Gaussian tends to the variance as α → 1)
        r = bg.expected_basis(mu, bg.sigma_sq_from_variance(s2, al), c, s, al)
        errs.append(((r - gauss).abs().max() / gauss.abs().max()).item())
    assert errs[1] < 2e-3
    assert errs[1] < 0.2 * errs[0]  # O(α−1) convergence


def test_delta_limit():
    c = torch.linspace(-0.2, 1.2, 15, dtype=torch.float64)
    s = torch.full_like(c, 0.1)
    mu = torch.tensor([0.0, 0.31, 1.0, 2.0], dtype=torch.float64)
    psi = torch.exp(-0.5 * ((mu[:, None] - c) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    for al in ALPHAS:
        r = bg.expected_basis(mu, torch.full_like(mu, 1e-12), c, s, al)
        torch.testing.assert_close(r, psi, rtol=1e-3, atol=1e-12)
        r0 = bg.expected_basis(mu, torch.zeros_like(mu), c, s, al)  # σ² = 0: floored, finite
        assert torch.isfinite(r0).all()


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gradcheck(alpha):
    c = torch.tensor([0.0, 0.3, 0.8, 1.0], dtype=torch.float64)
    s = torch.tensor([0.1, 0.1, 0.5, 0.5], dtype=torch.float64)
    mu = torch.tensor([0.25, -0.1, 0.9], dtype=torch.float64, requires_grad=True)
    s2 = torch.tensor([0.02, 0.3, 0.004], dtype=torch.float64, requires_grad=True)
    fn = lambda m, v: bg.expected_basis(m, v, c, s, alpha)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (mu, s2), eps=1e-7, atol=1e-7, rtol=1e-5)
    if alpha != 1.0:
        fq = lambda m, v: bg.expected_basis(m, v, c, s, alpha, method="quadrature")  # noqa: E731
        assert torch.autograd.gradcheck(fq, (mu, s2), eps=1e-7, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_extremes_are_finite(alpha):
    c = torch.linspace(0, 1, 64).repeat(2)
    s = torch.tensor([0.1] * 64 + [0.5] * 64)
    mu_vals = [-50.0, -1.0, 0.0, 0.5, 1.0, 50.0]
    s2_vals = [0.0, 1e-12, 1e-6, 1e-3, 1.0, 1e3, 1e6]
    mu = torch.tensor([m for m in mu_vals for _ in s2_vals], requires_grad=True)
    s2 = torch.tensor([v for _ in mu_vals for v in s2_vals], requires_grad=True)
    r = bg.expected_basis(mu, s2, c, s, alpha)
    assert r.dtype == torch.float32 and r.shape == (len(mu), 128)
    assert torch.isfinite(r).all() and (r >= 0).all()
    (r * torch.linspace(-1, 1, 128)).sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(s2.grad).all()
    far = (mu.detach().abs() == 50) & (s2.detach() < 1e3)
    assert r[far].abs().max() == 0  # nothing of a basis on [0, 1] reaches μ = ±50


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("alpha", [1.0, 2.0, 1.7])
def test_half_precision_inputs(dtype, alpha):
    c = torch.linspace(0, 1, 8)
    s = torch.full_like(c, 0.1)
    mu = torch.tensor([0.1, 0.5, 0.9], dtype=dtype, requires_grad=True)
    s2 = torch.tensor([1e-3, 0.01, 0.5], dtype=dtype, requires_grad=True)
    r = bg.expected_basis(mu, s2, c, s, alpha)
    assert r.dtype == dtype and torch.isfinite(r).all()
    r.float().sum().backward()
    assert mu.grad.dtype == dtype
    assert torch.isfinite(mu.grad).all() and torch.isfinite(s2.grad).all()
    ref = bg.expected_basis(mu.detach().double(), s2.detach().double(), c, s, alpha)
    torch.testing.assert_close(r.double(), ref, rtol=2e-2, atol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r32 = bg.expected_basis(mu.detach().float(), s2.detach().float(), c, s, alpha)
    assert r32.dtype == torch.float32
    torch.testing.assert_close(r32.double(), ref, rtol=1e-5, atol=1e-6)
    r64 = bg.expected_basis(mu.detach().double(), s2.detach().double(), c, s, alpha)
    assert r64.dtype == torch.float64


def test_batch_shapes_and_errors():
    c, s = torch.linspace(0, 1, 5), torch.full((5,), 0.2)
    r = bg.expected_basis(torch.zeros(2, 3), torch.full((3,), 0.1), c, s, 2.0)
    assert r.shape == (2, 3, 5)
    with pytest.raises(ValueError):
        bg.expected_basis(torch.zeros(2), torch.ones(2), c, s, 0.9)
    with pytest.raises(ValueError):
        bg.expected_basis(torch.zeros(2), torch.ones(2), c, s, 2.0, method="exact")
    with pytest.raises(ValueError):
        bg.expected_basis(torch.zeros(2), torch.ones(2), c, s[:3], 2.0)
