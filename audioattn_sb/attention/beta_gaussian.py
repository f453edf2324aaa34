r"""The 1-D β-Gaussian (α-entmax) density family and expectations of Gaussian RBFs under it.

For α > 1 the density with location μ and scale σ² is (REFERENCE §3)

    p(t) = [(α−1)(−τ − (t−μ)²/(2σ²))]₊^{1/(α−1)},      τ = −a²/(2σ²),

supported on [μ−a, μ+a], with half-width a = R_α (σ²)^{1/(α+1)} and

    R_α = [Γ(½ + α/(α−1)) / (Γ(α/(α−1)) √π) · (2/(α−1))^{1/(α−1)}]^{(α−1)/(α+1)}.

α = 1 is the Gaussian N(μ, σ²) (a = ∞). Writing n = 1/(α−1) and u = (t−μ)/a,

    p(t) = (1−u²)₊^n / (a B_n),        B_n = ∫_{−1}^{1} (1−u²)^n du = B(½, n+1),

so the variance is a²/(2n+3) = a²(α−1)/(3α−1). Named members:

=========  =====  ==========  ==================  ==================================
name       α      n           a from variance v   shape in u
=========  =====  ==========  ==================  ==================================
gaussian   1      ∞           (a = ∞)             N(μ, σ²)
triweight  4/3    3           3√v                 (35/(32a))(1−u²)₊³
biweight   3/2    2           √(7v)               (15/(16a))(1−u²)₊²
sparsemax  2      1           √(5v)               (3/(4a))(1−u²)₊
entmax     any>1  1/(α−1)     √((2n+3)v)          (1−u²)₊^n/(a B_n)
=========  =====  ==========  ==================  ==================================

Expected basis functions
------------------------
:func:`expected_basis` returns r_j = E_p[ψ_j(t)] for Gaussian RBFs ψ_j(t) = N(t; c_j, s_j²).
With u₀ = (c_j−μ)/a and h = s_j/a, ψ_j(μ+au) = N(u; u₀, h²)/a, so every quantity needed is a
weighted Gaussian integral over the standardised support

    W_k^{(m)} = ∫_{−1}^{1} u^k (1−u²)^m N(u; u₀, h²) du,

    r_j          = W_0^{(n)} / (a B_n)
    ∂r_j/∂μ      = 2n W_1^{(n−1)} / (a² B_n)
    ∂r_j/∂σ²     = ((2n+1) W_2^{(n−1)} − W_0^{(n−1)}) / ((α+1) σ² a B_n).

The two derivatives are the closed-form Jacobian of REFERENCE §3.5, J = ‖p‖(E_p̃[φψᵀ] −
E_p̃[φ]E_p̃[ψ]ᵀ) with φ(t) = [t, t²] and the escort p̃ ∝ p^{2−α} ∝ (1−u²)^{n−1} (uniform for
α = 2, Epanechnikov for α = 3/2, biweight for α = 4/3), pushed through the chain rule
θ = [μ/σ², −1/(2σ²)] → (μ, σ²) and rewritten in the centred variable u (this avoids the
cancellation of the θ-form, whose terms grow like 1/σ⁴). They are implemented directly on
(μ, σ²) in a :class:`torch.autograd.Function`; the basis (centres, widths) is not differentiable.

How W is computed:

* α = 1: r_j = N(μ; c_j, σ² + s_j²) and its exact derivatives.
* α ∈ {4/3, 3/2, 2} (integer n and n−1): **closed form**. In z = (u−u₀)/h the integrand is a
  polynomial Q(z) times φ(z); Q is built by multiplying the factors (1−u₀ − hz)^m (1+u₀ + hz)^m
  (never the expanded monomials, which cancel near the support ends) and
  ∫_{z_lo}^{z_hi} z^i φ = Z_i with Z_0 = Φ(z_hi) − Φ(z_lo) (erfc of the tail on the correct
  side, no 1 − 1 cancellation), Z_1 = φ(z_lo) − φ(z_hi) and
  Z_i = (i−1) Z_{i−2} + z_lo^{i−1} φ(z_lo) − z_hi^{i−1} φ(z_hi).
  This is well conditioned when the basis function is not wider than the support (h ≤ 1) and
  its centre lies inside the support or at most 2 basis widths outside it; elsewhere the
  Φ/φ-differences cancel catastrophically (near-delta densities, far tails), and there the
  same integrals are evaluated by the Gauss–Jacobi rule below, which is spectrally accurate
  precisely in those regimes. The switch is per (sample, basis function).
* Any other α > 1: **quadrature**. The integral is restricted to a window outside which the
  integrand is below e^{−32} of its maximum: for m > 0 the log-integrand
  m log(1−u²) − (u−u₀)²/(2h²) is concave and the window is its level set (mode and ends by
  bisection), so a weight that pulls the mass away from the basis centre is accounted for; for
  m ≤ 0 the window comes from the Gaussian (8 standard deviations, or the part next to the
  nearest support end when u₀ lies outside it). When the window reaches a support end, the
  end-point behaviour (1∓u)^m of the weight is absorbed exactly by a Gauss–Jacobi rule with
  weight (1−x)^m, (1+x)^m or (1−x²)^m (scipy nodes, 48 by default); otherwise Gauss–Legendre
  (always for m > 40, where the weight is smooth on any window). When the window is the whole
  support, the zero-mean integrands of the Jacobian use N(u) − N(0) (no cancellation for
  near-delta densities). Relative error ≈ 1e-11 in float64 (self-convergence against 256 nodes).

Numerics: everything is computed in float64 internally (float32 on devices without float64,
e.g. MPS), under autocast disabled, and returned in the input dtype (fp16/bf16 inputs give
fp16/bf16 outputs). σ² is floored at 1e-30. No NaN/inf for σ² ∈ [1e-30, 1e6] and any finite μ.
"""

import math
from functools import lru_cache

import numpy as np
import torch

#: α values with a closed-form expectation, → n = 1/(α−1) (α = 1 is the Gaussian)
_CLOSED_FORM_N = ((2.0, 1), (1.5, 2), (4.0 / 3.0, 3))
_ALPHA_TOL = 1e-9
#: σ² floor inside the expectation (a density of width ~1e-10 is a delta for any basis)
SIGMA_SQ_FLOOR = 1e-30
#: default number of quadrature nodes
QUAD_NODES = 48
_WINDOW_SDS = 8.0  # window half-width in basis standard deviations (e^{-32} ≈ 1e-14)
_SNAP = 0.25  # a window end closer than this fraction of its length to a support end snaps to it
_JACOBI_MAX = 40.0  # Gauss–Jacobi rules for 0 < |m| ≤ 40 (larger m: Legendre)
_BISECTIONS = 30
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# scalar constants
# ---------------------------------------------------------------------------------------------
def check_alpha(alpha, allow_gaussian=True):
    """Validate α (a finite number ≥ 1, or > 1 without ``allow_gaussian``) and return a float.

    Values within 1e-9 of 1, 4/3, 3/2, 2 are snapped to them exactly.

    Example:
        >>> check_alpha(1.3333333333)
        1.3333333333333333
    """
    try:
        alpha = float(alpha)
    except (TypeError, ValueError) as err:
        raise ValueError(f"alpha must be a number, got {alpha!r}") from err
    if not math.isfinite(alpha) or alpha < 1.0 - _ALPHA_TOL:
        raise ValueError(f"alpha must be a finite number ≥ 1, got {alpha}")
    if abs(alpha - 1.0) < _ALPHA_TOL:
        if not allow_gaussian:
            raise ValueError(f"alpha must be > 1 here, got {alpha}")
        return 1.0
    for exact, _ in _CLOSED_FORM_N:
        if abs(alpha - exact) < _ALPHA_TOL:
            return exact
    return alpha


def entmax_exponent(alpha):
    """n = 1/(α−1), exactly 1, 2, 3 for α = 2, 3/2, 4/3 (``inf`` for the Gaussian).

    Example:
        >>> entmax_exponent(4 / 3), entmax_exponent(2.5)
        (3.0, 0.6666666666666666)
    """
    alpha = check_alpha(alpha)
    if alpha == 1.0:
        return math.inf
    for exact, n in _CLOSED_FORM_N:
        if alpha == exact:
            return float(n)
    return 1.0 / (alpha - 1.0)


def has_closed_form(alpha):
    """True for α ∈ {1, 4/3, 3/2, 2} (closed-form expectations).

    Example:
        >>> has_closed_form(1.5), has_closed_form(1.7)
        (True, False)
    """
    n = entmax_exponent(alpha)
    return math.isinf(n) or n in (1.0, 2.0, 3.0)


def _log_beta_n(m):
    """log B_m = log ∫_{−1}^{1} (1−u²)^m du = log B(½, m+1), for m > −1."""
    return math.lgamma(0.5) + math.lgamma(m + 1.0) - math.lgamma(m + 1.5)


def radius(alpha):
    r"""R_α = [Γ(½ + α/(α−1)) / (Γ(α/(α−1)) √π) · (2/(α−1))^{1/(α−1)}]^{(α−1)/(α+1)}.

    ``inf`` for α = 1. Computed in log space with n = 1/(α−1) (stable as α → 1).

    Example:
        >>> round(radius(2.0) ** 3, 12)   # sparsemax: a = (3σ²/2)^{1/3}
        1.5
        >>> round(radius(1.5) ** 5, 10)   # biweight: a = (15σ⁴)^{1/5}
        15.0
    """
    n = entmax_exponent(alpha)
    if math.isinf(n):
        return math.inf
    log_r = (math.lgamma(n + 1.5) - math.lgamma(n + 1.0) - 0.5 * math.log(math.pi)
             + n * math.log(2.0 * n)) / (2.0 * n + 1.0)
    return math.exp(log_r)


# ---------------------------------------------------------------------------------------------
# tensor helpers
# ---------------------------------------------------------------------------------------------
def _as_float_tensor(x, like=None):
    """Tensor version of x; integer/bool → default float; fp16/bf16 kept (callers upcast)."""
    if not torch.is_tensor(x):
        dtype = like.dtype if torch.is_tensor(like) and like.is_floating_point() else None
        device = like.device if torch.is_tensor(like) else None
        x = torch.as_tensor(x, dtype=dtype, device=device)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def _work_dtype(dtype):
    """float16/bfloat16 → float32 for intermediate math; float32/float64 unchanged."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _compute_dtype(device):
    """float64 where supported (everything but MPS), else float32."""
    return torch.float32 if device.type == "mps" else torch.float64


# ---------------------------------------------------------------------------------------------
# density parameters
# ---------------------------------------------------------------------------------------------
def support_half_width(sigma_sq, alpha):
    """a(σ²) = R_α (σ²)^{1/(α+1)}; +inf for the Gaussian.

    Example:
        >>> support_half_width(torch.tensor([2 / 3]), 2.0)   # (3/2 · 2/3)^{1/3} = 1
        tensor([1.])
    """
    sigma_sq = _as_float_tensor(sigma_sq)
    n = entmax_exponent(alpha)
    if math.isinf(n):
        return torch.full_like(sigma_sq, math.inf)
    work = sigma_sq.to(_work_dtype(sigma_sq.dtype))
    a = radius(alpha) * work.pow(n / (2.0 * n + 1.0))
    return a.to(sigma_sq.dtype)


def support_width(sigma_sq, alpha):
    """Width 2a(σ²) of the support; +inf for the Gaussian.

    Example:
        >>> support_width(torch.tensor([2 / 3]), 2.0)
        tensor([2.])
    """
    return 2.0 * support_half_width(sigma_sq, alpha)


def tau(sigma_sq, alpha):
    """Threshold τ = −a²/(2σ²) of the α > 1 density (undefined for the Gaussian).

    Example:
        >>> tau(torch.tensor([2 / 3]), 2.0)   # a = 1
        tensor([-0.7500])
    """
    if check_alpha(alpha) == 1.0:
        raise ValueError("τ is only defined for α > 1 (the Gaussian has no threshold)")
    sigma_sq = _as_float_tensor(sigma_sq)
    a = support_half_width(sigma_sq, alpha)
    return -(a * a) / (2.0 * sigma_sq)


def variance_from_sigma_sq(sigma_sq, alpha):
    """Variance of the density: σ² for α = 1, a²(α−1)/(3α−1) = a²/(2n+3) for α > 1.

    Example:
        >>> variance_from_sigma_sq(torch.tensor([2 / 3]), 2.0)   # a = 1 → 1/5
        tensor([0.2000])
    """
    sigma_sq = _as_float_tensor(sigma_sq)
    n = entmax_exponent(alpha)
    if math.isinf(n):
        return sigma_sq.clone()
    work = sigma_sq.to(_work_dtype(sigma_sq.dtype))
    r = radius(alpha)
    var = (r * r / (2.0 * n + 3.0)) * work.pow(2.0 * n / (2.0 * n + 1.0))
    return var.to(sigma_sq.dtype)


def sigma_sq_from_variance(var, alpha):
    """Inverse of :func:`variance_from_sigma_sq`: σ² = (a/R_α)^{α+1} with a = √((2n+3) v).

    Example:
        >>> sigma_sq_from_variance(torch.tensor([0.2]), 2.0)   # a = 1 → σ² = 2/3
        tensor([0.6667])
        >>> sigma_sq_from_variance(torch.tensor([0.01]), 4 / 3)  # a = 3√v = 0.3
        tensor([0.0097])
    """
    var = _as_float_tensor(var)
    n = entmax_exponent(alpha)
    if math.isinf(n):
        return var.clone()
    work = var.to(_work_dtype(var.dtype))
    # log σ² = (2n+1)/n · (½ log((2n+3) v) − log R)
    expo = (2.0 * n + 1.0) / n
    scale = math.exp(expo * (0.5 * math.log(2.0 * n + 3.0) - math.log(radius(alpha))))
    return (scale * work.pow(0.5 * expo)).to(var.dtype)


def pdf(t, mu, sigma_sq, alpha):
    """Density p(t; μ, σ², α) (broadcasting t, μ, σ²).

    α = 1: N(t; μ, σ²). α > 1: [(α−1)(−τ − (t−μ)²/(2σ²))]₊^{1/(α−1)}, evaluated as
    (1−u)₊^n (1+u)₊^n / (a B_n) with u = (t−μ)/a (same value, no cancellation).

    Example:
        >>> pdf(torch.tensor([0.0, 0.5, 2.0]), 0.0, 2 / 3, 2.0)   # (3/4)(1−t²)₊
        tensor([0.7500, 0.5625, 0.0000])
    """
    t = _as_float_tensor(t)
    mu = _as_float_tensor(mu, like=t)
    sigma_sq = _as_float_tensor(sigma_sq, like=t)
    out_dtype = torch.promote_types(torch.promote_types(t.dtype, mu.dtype), sigma_sq.dtype)
    wd = _work_dtype(out_dtype)
    t, mu, sigma_sq = t.to(wd), mu.to(wd), sigma_sq.to(wd)
    n = entmax_exponent(alpha)
    if math.isinf(n):
        z2 = (t - mu) ** 2 / sigma_sq
        return torch.exp(-0.5 * z2 - 0.5 * torch.log(sigma_sq) - _LOG_SQRT_2PI).to(out_dtype)
    a = support_half_width(sigma_sq, alpha)
    u = (t - mu) / a
    base = ((1.0 - u).clamp_min(0.0) * (1.0 + u).clamp_min(0.0)).pow(n)
    return (base * math.exp(-_log_beta_n(n)) / a).to(out_dtype)


# ---------------------------------------------------------------------------------------------
# W_k^{(m)} = ∫_{-1}^{1} P(u) (1-u²)^m N(u; u0, h²) du : closed form
# ---------------------------------------------------------------------------------------------
def _upper_tail(x):
    """Q(x) = 1 − Φ(x), accurate far in the upper tail (torch.special.ndtr is not)."""
    return 0.5 * torch.special.erfc(x * (1.0 / math.sqrt(2.0)))


def _phi(z):
    return torch.exp(-0.5 * z * z - _LOG_SQRT_2PI)


def _gauss_mass(z_lo, z_hi):
    """Φ(z_hi) − Φ(z_lo) without cancellation: upper tails on the side away from 0."""
    right = _upper_tail(z_lo) - _upper_tail(z_hi)  # upper tails, z_lo ≥ 0
    left = _upper_tail(-z_hi) - _upper_tail(-z_lo)  # lower tails Φ(z_hi) − Φ(z_lo), z_hi ≤ 0
    mid = 1.0 - _upper_tail(-z_lo) - _upper_tail(z_hi)
    return torch.where(z_lo >= 0, right, torch.where(z_hi <= 0, left, mid))


def _poly_mul_linear(poly, c0, c1):
    """Coefficients of poly(z)·(c0 + c1 z), polynomials as lists of tensors (low → high)."""
    out = [poly[0] * c0]
    for i in range(1, len(poly)):
        out.append(poly[i] * c0 + poly[i - 1] * c1)
    out.append(poly[-1] * c1)
    return out


def _closed_form_integrals(u0, h, m, prefactors):
    """W[P] = ∫_{-1}^{1} P(u)(1−u²)^m N(u; u0, h²) du for integer m ≥ 0, exactly.

    ``prefactors``: list of polynomials P in u as monomial coefficient lists (low → high).
    Accurate (≈1e-13 relative in float64) when h ≤ 1 and |u0| ≤ 1 + 2h; callers route other
    elements to :func:`_quadrature_integrals`.
    """
    one_minus, one_plus = 1.0 - u0, 1.0 + u0
    base = [torch.ones_like(u0)]
    for _ in range(m):
        base = _poly_mul_linear(base, one_minus, -h)  # (1 − u0 − h z)
        base = _poly_mul_linear(base, one_plus, h)  # (1 + u0 + h z)
    polys = []
    for coeffs in prefactors:
        # Horner in polynomial arithmetic: P(u0 + h z)
        p = [torch.full_like(u0, float(coeffs[-1]))]
        for c in reversed(coeffs[:-1]):
            p = _poly_mul_linear(p, u0, h)
            p[0] = p[0] + float(c)
        # product base · p
        prod = [torch.zeros_like(u0) for _ in range(len(base) + len(p) - 1)]
        for i, bi in enumerate(base):
            for j, pj in enumerate(p):
                prod[i + j] = prod[i + j] + bi * pj
        polys.append(prod)
    degree = max(len(p) for p in polys) - 1
    z_lo = ((-1.0 - u0) / h).clamp(-60.0, 60.0)
    z_hi = ((1.0 - u0) / h).clamp(-60.0, 60.0)
    f_lo, f_hi = _phi(z_lo), _phi(z_hi)
    moments = [_gauss_mass(z_lo, z_hi), f_lo - f_hi]
    pow_lo, pow_hi = z_lo, z_hi  # z^{i-1}
    for i in range(2, degree + 1):
        moments.append((i - 1) * moments[i - 2] + pow_lo * f_lo - pow_hi * f_hi)
        pow_lo, pow_hi = pow_lo * z_lo, pow_hi * z_hi
    results = []
    for prod in polys:
        acc = torch.zeros_like(u0)
        for i, coef in enumerate(prod):
            acc = acc + coef * moments[i]
        results.append(acc)
    return results


# ---------------------------------------------------------------------------------------------
# same integrals by windowed Gauss–Jacobi quadrature (any real m > −1)
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _node_table_np(m, num_nodes, jacobi):
    """Nodes/weights [4, Q] for the cases: 0 Legendre, 1 weight (1−x)^m, 2 (1+x)^m, 3 (1−x²)^m."""
    from scipy.special import roots_jacobi, roots_legendre

    xl, wl = roots_legendre(num_nodes)
    if not jacobi:
        rows = [(xl, wl)] * 4
    else:
        rows = [(xl, wl), roots_jacobi(num_nodes, m, 0.0), roots_jacobi(num_nodes, 0.0, m),
                roots_jacobi(num_nodes, m, m)]
    x = np.stack([np.asarray(r[0], dtype=np.float64) for r in rows])
    w = np.stack([np.asarray(r[1], dtype=np.float64) for r in rows])
    return x, w


_NODE_CACHE = {}


def _node_table(m, num_nodes, jacobi, dtype, device):
    key = (m, num_nodes, jacobi, dtype, str(device))
    hit = _NODE_CACHE.get(key)
    if hit is None:
        x, w = _node_table_np(m, num_nodes, jacobi)
        arrays = (x, w, 1.0 - x, 1.0 + x)
        hit = tuple(torch.as_tensor(v, dtype=dtype, device=device) for v in arrays)
        if len(_NODE_CACHE) > 256:
            _NODE_CACHE.clear()
        _NODE_CACHE[key] = hit
    return hit


def _log_integrand(u, u0, h, m):
    """L(u) = m log(1−u²) − (u−u0)²/(2h²) (log of the weighted Gaussian, up to a constant)."""
    return m * (torch.log1p(-u) + torch.log1p(u)) - 0.5 * ((u - u0) / h) ** 2


def _window(u0, h, m):
    """[lo, hi] ⊂ [−1, 1] outside which the integrand is below e^{−32} of its maximum.

    m ≤ 0: from the Gaussian alone (the weight grows at most like (1∓u)^{m} towards the ends):
    8 standard deviations around u0, or, for u0 outside the support, the reach d from the
    nearest end where z_n d + d²/2 = 32 (z_n the end's distance in standard deviations).
    m > 0: L(u) = m log(1−u²) − (u−u0)²/(2h²) is strictly concave on (−1, 1), so the set where
    L ≥ max L − 32 is an interval: its mode and ends are found by bisection (the weight may pull
    the mass of a basis function centred near an end far inside the support).
    """
    if m <= 0.0:
        nearest = u0.clamp(-1.0, 1.0)
        zn = (u0 - nearest).abs() / h
        k2 = _WINDOW_SDS * _WINDOW_SDS
        reach = k2 / (torch.sqrt(zn * zn + k2) + zn) * h  # solves zn d + d²/2 = K²/2, times h
        return (nearest - reach).clamp_min(-1.0), (nearest + reach).clamp_max(1.0)
    # mode: L'(u) has the sign of f(u) = u0(1−u²) − u(1 − u² + 2mh²), f(−1) > 0 > f(1)
    two_m_h2 = 2.0 * m * h * h
    left, right = torch.full_like(u0, -1.0), torch.full_like(u0, 1.0)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (left + right)
        f = u0 * (1.0 - mid * mid) - mid * (1.0 - mid * mid + two_m_h2)
        up = f > 0
        left = torch.where(up, mid, left)
        right = torch.where(up, right, mid)
    mode = 0.5 * (left + right)
    level = _log_integrand(mode, u0, h, m) - 0.5 * _WINDOW_SDS * _WINDOW_SDS
    ends = []
    for edge in (-1.0, 1.0):
        outer, inner = torch.full_like(u0, edge), mode.clone()  # L(outer) < level ≤ L(inner)
        for _ in range(_BISECTIONS):
            mid = 0.5 * (outer + inner)
            above = _log_integrand(mid, u0, h, m) >= level
            inner = torch.where(above, mid, inner)
            outer = torch.where(above, outer, mid)
        ends.append(outer)  # conservative side
    return ends[0], ends[1]


def _exp_rel(d):
    """exp(d) for d ≤ 0, flushed to exactly 0 below e^{−300}."""
    return torch.where(d > -300.0, torch.exp(d.clamp_min(-300.0)), torch.zeros_like(d))


def _quadrature_integrals(u0, h, m, prefactors, centred=None, num_nodes=QUAD_NODES):
    """W[P] = ∫_{-1}^{1} P(u)(1−u²)^m N(u; u0, h²) du by windowed Gauss–Jacobi quadrature.

    u0, h: 1-D tensors [E]. ``centred[j]`` marks prefactors whose weighted integral over the
    full support is 0 (u and (2m+3)u² − 1): on full-support rules they are integrated against
    N(u) − N(0) instead of N(u), which removes the cancellation of near-delta densities.
    """
    centred = centred or [False] * len(prefactors)
    # Jacobi rules absorb the end-point behaviour (1∓u)^m of non-polynomial or low-order weights;
    # for large m the weight is smooth on any window that stays away from the ends
    jacobi = 0.0 < abs(m) and m <= _JACOBI_MAX
    xs, ws, one_minus_x, one_plus_x = _node_table(float(m), num_nodes, jacobi, u0.dtype, u0.device)
    lo, hi = _window(u0, h, m)
    if m <= _JACOBI_MAX:
        length = hi - lo
        lo = torch.where(lo + 1.0 <= _SNAP * length, torch.full_like(lo, -1.0), lo)
        hi = torch.where(1.0 - hi <= _SNAP * length, torch.full_like(hi, 1.0), hi)
    # window = whole support: the weighted integrals of the centred prefactors vanish exactly
    full = ((lo <= -1.0) & (hi >= 1.0))[:, None]
    touch_lo = (lo <= -1.0) & jacobi
    touch_hi = (hi >= 1.0) & jacobi
    case = touch_hi.long() + 2 * touch_lo.long()
    x, w = xs[case], ws[case]  # [E, Q]
    half = (0.5 * (hi - lo))[:, None]
    lo_, hi_ = lo[:, None], hi[:, None]
    u = 0.5 * (lo_ + hi_) + half * x
    # everything in logs, rescaled per row by its maximum: the [E, Q] arrays then hold values in
    # [e^-300, 1] or exact zeros (no subnormal numbers, which are ~100x slower on CPUs)
    log_w = torch.log(w) + torch.log(half)  # du = half dx
    if m != 0.0:
        th, tl = touch_hi[:, None], touch_lo[:, None]
        # 1 − u and 1 + u without cancellation; an absorbed end leaves half^m (its (1∓x)^m is in
        # the Jacobi weight)
        right = torch.where(th, half, (1.0 - hi_) + half * one_minus_x[case])
        left = torch.where(tl, half, (1.0 + lo_) + half * one_plus_x[case])
        log_w = log_w + m * torch.log(right * left)
    u0_, h_ = u0[:, None], h[:, None]
    z = (u - u0_) / h_
    log_g = -0.5 * z * z  # N(u; u0, h²) = e^{log_g} / (h √(2π))
    w_shift = log_w.amax(dim=-1, keepdim=True)
    g_shift = log_g.amax(dim=-1, keepdim=True)
    weight = _exp_rel(log_w - w_shift)
    gauss = _exp_rel(log_g - g_shift)
    scale = torch.exp((w_shift + g_shift).squeeze(-1)) / (h * math.sqrt(2.0 * math.pi))
    results = []
    for coeffs, centre in zip(prefactors, centred):
        poly = torch.full_like(u, float(coeffs[-1]))
        for c in reversed(coeffs[:-1]):
            poly = poly * u + float(c)
        values = gauss
        if centre:
            # N(u) − N(0) ∝ e^{−z0²/2} expm1(g), z0 = −u0/h, g = (z0² − z²)/2; direct if |g| > 1
            z0_sq = (u0_ / h_) ** 2
            g = 0.5 * (z0_sq - z * z)
            e0 = _exp_rel((-0.5 * z0_sq - g_shift).clamp_max(50.0))
            diff = torch.where(g.abs() <= 1.0, e0 * torch.expm1(g.clamp(-1.0, 1.0)), gauss - e0)
            values = torch.where(full, diff, gauss)
        results.append((weight * poly * values).sum(dim=-1) * scale)
    return results


def _full_support_integrals(u0, h, m, prefactors, centred=None, num_nodes=QUAD_NODES):
    """The same W[P] by one fixed Gauss–Jacobi rule on the whole support [−1, 1].

    The nodes x_q and weights w_q of the weight (1−u²)^m do not depend on the element, so each
    prefactor is a fixed vector P(x_q) w_q and W = [N(x_q; u0, h²)]_{E×Q} @ (P w). Accurate when
    the Gaussian factor is smooth on the support (:func:`_integrals` checks it) and m ≤ 40.
    Centred prefactors are integrated against N(u) − N(0), as in :func:`_quadrature_integrals`.
    """
    centred = centred or [False] * len(prefactors)
    xs, ws, _, _ = _node_table(float(m), num_nodes, m != 0.0, u0.dtype, u0.device)
    x, w = xs[3], ws[3]  # row 3: the weight (1−x²)^m (Legendre when m = 0)
    u0_, h_ = u0[:, None], h[:, None]
    z = (x[None, :] - u0_) / h_
    log_g = -0.5 * z * z
    g_shift = log_g.amax(dim=-1, keepdim=True)
    gauss = torch.exp(log_g - g_shift)  # ≥ e^{−32} by the smoothness condition
    scale = torch.exp(g_shift.squeeze(-1)) / (h * math.sqrt(2.0 * math.pi))
    diff = None
    results = []
    for coeffs, centre in zip(prefactors, centred):
        poly = torch.full_like(x, float(coeffs[-1]))
        for c in reversed(coeffs[:-1]):
            poly = poly * x + float(c)
        if centre and diff is None:
            z0_sq = (u0_ / h_) ** 2
            g = 0.5 * (z0_sq - z * z)
            e0 = _exp_rel((-0.5 * z0_sq - g_shift).clamp_max(50.0))
            diff = torch.where(g.abs() <= 1.0, e0 * torch.expm1(g.clamp(-1.0, 1.0)), gauss - e0)
        values = diff if centre else gauss
        results.append((values @ (poly * w)) * scale)
    return results


def _integrals(u0, h, m, prefactors, centred, closed, num_nodes):
    """Dispatch per element to the cheapest accurate method.

    1. closed form (if allowed) where it is well conditioned: h ≤ 1 and |u0| ≤ 1 + 2h;
    2. a fixed Gauss–Jacobi rule on the whole support where the Gaussian factor is smooth
       there: its log varies by D = ((|u0|+1)² − max(|u0|−1, 0)²)/(2h²) ≤ 32 over [−1, 1], so
       the remaining integrand e^{bu−cu²}·poly (|b|, c ≤ 16) is resolved to machine precision
       by ``num_nodes`` (48) nodes; no window search (only when the rule absorbs the weight
       (1−u²)^m, i.e. m ≤ 40);
    3. windowed Gauss–Jacobi (bisection for the window) for the rest: narrow Gaussians and
       basis centres far outside the support.
    """
    flat_u0, flat_h = u0.reshape(-1), h.reshape(-1)
    far = flat_u0.abs()
    near = (far - 1.0).clamp_min(0.0)
    smooth = ((far + 1.0) ** 2 - near * near) <= 64.0 * flat_h * flat_h
    if m > _JACOBI_MAX:  # Legendre nodes: the weight (1−u²)^m itself is too narrow for them
        smooth = torch.zeros_like(smooth)
    groups = []
    if closed:
        use_cf = (flat_h <= 1.0) & (flat_u0.abs() <= 1.0 + 2.0 * flat_h)
        groups.append((use_cf, lambda a, b: _closed_form_integrals(a, b, int(m), prefactors)))
        smooth = smooth & ~use_cf
        rest = ~(use_cf | smooth)
    else:
        rest = ~smooth
    groups.append((smooth, lambda a, b: _full_support_integrals(a, b, m, prefactors, centred,
                                                                num_nodes)))
    groups.append((rest, lambda a, b: _quadrature_integrals(a, b, m, prefactors, centred,
                                                            num_nodes)))
    out = [torch.zeros_like(flat_u0) for _ in prefactors]
    for select, method in groups:
        if bool(select.all()):
            return [v.reshape(u0.shape) for v in method(flat_u0, flat_h)]
        if bool(select.any()):
            idx = select.nonzero().squeeze(-1)
            for o, v in zip(out, method(flat_u0[idx], flat_h[idx])):
                o[idx] = v
    return [o.reshape(u0.shape) for o in out]


# ---------------------------------------------------------------------------------------------
# expected basis: forward values and Jacobian
# ---------------------------------------------------------------------------------------------
def _standardise(mu, sigma_sq, centres, sigmas, alpha):
    """a [..., 1], u0, h [..., N] for α > 1."""
    a = support_half_width(sigma_sq, alpha).unsqueeze(-1)
    u0 = (centres - mu.unsqueeze(-1)) / a
    h = sigmas / a
    return a, u0, h


def _forward_values(mu, sigma_sq, centres, sigmas, alpha, method, num_nodes):
    n = entmax_exponent(alpha)
    if math.isinf(n):
        var = sigma_sq.unsqueeze(-1) + sigmas * sigmas
        d = mu.unsqueeze(-1) - centres
        return torch.exp(-0.5 * d * d / var - 0.5 * torch.log(var) - _LOG_SQRT_2PI)
    a, u0, h = _standardise(mu, sigma_sq, centres, sigmas, alpha)
    closed = has_closed_form(alpha) and method != "quadrature"
    (w0,) = _integrals(u0, h, n, [[1.0]], [False], closed, num_nodes)
    return w0 * math.exp(-_log_beta_n(n)) / a


def _jacobian(mu, sigma_sq, centres, sigmas, alpha, method, num_nodes):
    """(∂r/∂μ, ∂r/∂σ²), each [..., N]."""
    n = entmax_exponent(alpha)
    if math.isinf(n):
        var = sigma_sq.unsqueeze(-1) + sigmas * sigmas
        d = mu.unsqueeze(-1) - centres
        r = torch.exp(-0.5 * d * d / var - 0.5 * torch.log(var) - _LOG_SQRT_2PI)
        return -r * d / var, 0.5 * r * (d * d / var - 1.0) / var
    a, u0, h = _standardise(mu, sigma_sq, centres, sigmas, alpha)
    closed = has_closed_form(alpha) and method != "quadrature"
    m = n - 1.0
    w1, dd = _integrals(u0, h, m, [[0.0, 1.0], [-1.0, 0.0, 2.0 * n + 1.0]], [True, True],
                        closed, num_nodes)
    inv_b = math.exp(-_log_beta_n(n))
    d_mu = (2.0 * n * inv_b) * w1 / (a * a)
    d_sigma_sq = inv_b * dd / ((alpha + 1.0) * sigma_sq.unsqueeze(-1) * a)
    return d_mu, d_sigma_sq


class _ExpectedBasis(torch.autograd.Function):
    """r = E_p[ψ(t)] with the closed-form Jacobian in the backward pass (see module doc)."""

    @staticmethod
    def forward(ctx, mu, sigma_sq, centres, sigmas, alpha, method, num_nodes):
        ctx.save_for_backward(mu, sigma_sq, centres, sigmas)
        ctx.config = (alpha, method, num_nodes)
        return _forward_values(mu, sigma_sq, centres, sigmas, alpha, method, num_nodes)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        mu, sigma_sq, centres, sigmas = ctx.saved_tensors
        grad_mu = grad_sigma_sq = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            d_mu, d_sigma_sq = _jacobian(mu, sigma_sq, centres, sigmas, *ctx.config)
            if ctx.needs_input_grad[0]:
                grad_mu = (grad * d_mu).sum(-1)
            if ctx.needs_input_grad[1]:
                grad_sigma_sq = (grad * d_sigma_sq).sum(-1)
        return grad_mu, grad_sigma_sq, None, None, None, None, None


def expected_basis(mu, sigma_sq, centres, sigmas, alpha, method="auto", num_nodes=QUAD_NODES):
    r"""r_j = E_{p(·; μ, σ², α)}[ψ_j(t)] for Gaussian RBFs ψ_j(t) = N(t; c_j, s_j²).

    Gaussian (α = 1): r_j = N(μ; c_j, σ² + s_j²). α ∈ {4/3, 3/2, 2}: closed form through
    truncated Gaussian moments (Gauss–Jacobi quadrature in the regimes where the closed form is
    ill-conditioned). Other α > 1: windowed Gauss–Jacobi quadrature. Differentiable w.r.t. μ
    and σ² (closed-form Jacobian, REFERENCE §3.5); see the module docstring for the formulas.

    Arguments
    ---------
    mu, sigma_sq : torch.Tensor
        Location and scale, broadcastable to a common batch shape S (e.g. [B]); σ² > 0
        (floored at 1e-30).
    centres, sigmas : torch.Tensor
        [N] basis centres c_j and standard deviations s_j > 0 (not differentiated).
    alpha : float
        α ≥ 1.
    method : str
        ``"auto"`` (closed form where available and well conditioned) or ``"quadrature"``
        (force the quadrature path for every α > 1; for tests).
    num_nodes : int
        Quadrature nodes per integral.

    Returns
    -------
    torch.Tensor
        [*S, N], in the promoted dtype of (mu, sigma_sq).

    Example:
        >>> c, s = torch.tensor([0.0, 0.5]), torch.tensor([0.1, 0.1])
        >>> expected_basis(torch.tensor([0.0]), torch.tensor([1e-4]), c, s, 1.0)
        tensor([[3.9696e+00, 1.6742e-05]])
        >>> r = expected_basis(torch.tensor([0.5]), torch.tensor([1e-9]), c, s, 2.0)
        >>> torch.allclose(r, torch.tensor([[0.0, 1 / (0.1 * (2 * math.pi) ** 0.5)]]), atol=1e-4)
        True
    """
    alpha = check_alpha(alpha)
    if method not in ("auto", "quadrature"):
        raise ValueError(f"method must be 'auto' or 'quadrature', got {method!r}")
    mu = _as_float_tensor(mu)
    sigma_sq = _as_float_tensor(sigma_sq, like=mu)
    centres = _as_float_tensor(centres, like=mu)
    sigmas = _as_float_tensor(sigmas, like=mu)
    if centres.dim() != 1 or sigmas.shape != centres.shape:
        raise ValueError(f"centres and sigmas must be 1-D of equal length, got "
                         f"{tuple(centres.shape)} and {tuple(sigmas.shape)}")
    out_dtype = torch.promote_types(mu.dtype, sigma_sq.dtype)
    cdtype = _compute_dtype(mu.device)
    with torch.autocast(device_type=mu.device.type, enabled=False):
        mu_c, sigma_sq_c = torch.broadcast_tensors(mu.to(cdtype), sigma_sq.to(cdtype))
        sigma_sq_c = sigma_sq_c.clamp_min(SIGMA_SQ_FLOOR)
        r = _ExpectedBasis.apply(
            mu_c, sigma_sq_c, centres.detach().to(device=mu.device, dtype=cdtype),
            sigmas.detach().to(device=mu.device, dtype=cdtype), alpha, method, int(num_nodes),
        )
    return r.to(out_dtype)


__all__ = [
    "QUAD_NODES",
    "check_alpha",
    "entmax_exponent",
    "expected_basis",
    "has_closed_form",
    "pdf",
    "radius",
    "sigma_sq_from_variance",
    "support_half_width",
    "support_width",
    "tau",
    "variance_from_sigma_sq",
]
