r"""Continuous attention pooling over time with a 1-D β-Gaussian density (REFERENCE §3).

A clip of L frames h_1..h_L is mapped to [0, 1] (frame ℓ at t_ℓ = (2ℓ−1)/(2L)). An encoder
predicts a density p(t; μ, σ², α) on the real line, the frames are turned into a value function
V(t) ≈ B ψ(t) by ridge regression onto N Gaussian RBFs ψ (:mod:`.value_function`), and the
context is its expectation

    c = E_p[V(t)] = B E_p[ψ(t)] = B r,        r = expected_basis(μ, σ², basis, α),

computed as c = Σ_ℓ w_ℓ h_ℓ with the effective frame weights w = G_L r (G_L the ridge matrix).
With ``fuse_discrete`` the discrete context Σ_ℓ p_ℓ h_ℓ of the encoder's discrete attention is
added, as in the predecessor (``attn_fuse_disc_and_cont: True``).

Encoders
--------
The ``moments_*`` encoders score the valid frames with the additive scorer
s_ℓ = c · vᵀ tanh(W h_ℓ + b) (c: ``score_scale``), map the scores to discrete weights p and take
their moments: μ = Σ p_ℓ t_ℓ and v = Σ p_ℓ (t_ℓ − μ)² (clamped below at ``var_floor``); σ² is
chosen so that the continuous density has variance v (σ² = v for the Gaussian,
σ² = (a/R_α)^{α+1} with a = √(v(3α−1)/(α−1)) otherwise).

``moments_alpha`` (the default): p = α-entmax(s) with the density's own α (softmax for the
Gaussian, entmax-4/3 for triweight, entmax-1.5 for biweight, sparsemax for sparsemax) and c = 1,
as in discrete attention pooling. Sparse weights on the frames of the sound give a density whose
support covers those frames.

``moments_softmax`` (the predecessor's; ``moments`` is accepted as its old name): p = softmax(s)
with c = 1/√D. Measured on ESC-10 (docs/results.md) the scaled scores stay nearly flat, v stays
near that of uniform weights (1/12) and the densities are wider than the clip.

``direct``: from the masked mean h̄ of the frames, μ = sigmoid(w_μᵀ h̄ + b_μ) and
σ² = softplus(w_σᵀ h̄ + b_σ) + σ²_min, with σ²_min the σ² of variance ``var_floor``; b_σ is
initialised so that the first densities have variance ``direct_init_var`` (narrow).

``score_scale``: None (the encoder's default above), a number, or ``"learned"`` (a learned
temperature exp(θ), θ initialised at the encoder's default).

Padding: positions use each clip's own length, padded frames are zeroed, get no discrete weight
and no value-function weight, so a clip's output does not depend on its batch.
"""

import math

import torch
from torch import nn

from audioattn_sb.attention import beta_gaussian as bg
from audioattn_sb.attention.discrete import AdditiveScorer, masked_attention
from audioattn_sb.attention.max_activations import resolve_continuous
from audioattn_sb.attention.output import Attention
from audioattn_sb.attention.value_function import RidgeValueFunction, gaussian_basis
from audioattn_sb.lengths import clip_frame_positions, frame_counts

ENCODERS = ("moments_alpha", "moments_softmax", "direct")

#: old encoder names → current ones (runs saved before the rename keep their meaning)
ENCODER_ALIASES = {"moments": "moments_softmax"}


def absolute_lengths(lengths, max_len, batch, device=None):
    """Integer frame counts from SpeechBrain relative lengths (:func:`frame_counts`), at least 1
    (a zero length counts one frame: the density needs a support).

    Example:
        >>> absolute_lengths(torch.tensor([1.0, 0.5, 0.01]), 10, 3).tolist()
        [10, 5, 1]
    """
    if lengths is None:
        return torch.full((batch,), max_len, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).reshape(-1)
    if lengths.numel() != batch:
        raise ValueError(f"expected {batch} relative lengths, got {lengths.numel()}")
    return frame_counts(lengths, max_len).clamp(min=1)


def _resolve_score_scale(score_scale, default):
    """(initial scale, learned?) from ``score_scale`` (None, a positive number or "learned").

    Example:
        >>> _resolve_score_scale(None, 0.5), _resolve_score_scale("learned", 1.0)
        ((0.5, False), (1.0, True))
    """
    if score_scale is None:
        return float(default), False
    if isinstance(score_scale, str):
        if score_scale == "learned":
            return float(default), True
        raise ValueError(f"score_scale must be a positive number, None or 'learned', got "
                         f"{score_scale!r}")
    value = float(score_scale)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"score_scale must be a positive number, None or 'learned', got "
                         f"{score_scale!r}")
    return value, False


class ContinuousAttentionPooling(nn.Module):
    """Continuous (β-Gaussian) attention pooling: x [B, L, D] → context [B, D].

    Arguments
    ---------
    input_dim : int
        Frame size D.
    max_activation : str
        gaussian | softmax (α = 1), triweight (4/3), biweight (3/2), sparsemax (2), entmax (any
        α ≥ 1 given by ``alpha``); kept under its canonical name (``softmax`` → ``gaussian``,
        ``entmax`` with α = 1.5 → ``biweight``).
    alpha : float or None
        α of the density; must match ``max_activation`` (None = that name's α).
    num_centres : int
        RBF centres per width, linspace(0, 1).
    basis_sigmas : tuple of float
        RBF standard deviations; N = num_centres · len(basis_sigmas).
    ridge_penalty : float
        λ of the value-function regression.
    encoder : str
        ``moments_alpha``, ``moments_softmax`` or ``direct`` (module docstring).
    fuse_discrete : bool
        Add the discrete context Σ p_ℓ h_ℓ (builds the scorer even for ``direct``; its weights
        use the mapping of the ``moments_*`` encoder, softmax for ``direct``).
    score_scale : float, str or None
        Multiplier c of the scores: None = the encoder's default (1/√D for ``moments_softmax``,
        1 otherwise), a number, or ``"learned"``.
    direct_init_var : float
        Variance of the ``direct`` encoder's densities at initialisation (clip length = 1).
    attention_dim : int or None
        Hidden size of the additive scorer (default D).
    cache_bytes : int
        Byte budget of the ridge-matrix cache.
    pad_grid : bool
        Pad the regression grid with zero frames (see :mod:`.value_function`; default False).
    var_floor : float
        Lower bound of the density's variance (in units of the clip length squared).

    Example:
        >>> pool = ContinuousAttentionPooling(8, "sparsemax", num_centres=8)
        >>> ctx, attention = pool(torch.randn(2, 6, 8), torch.tensor([1.0, 0.5]))
        >>> ctx.shape, attention.weights.shape, attention.mu.shape, attention.cont_weights.shape
        (torch.Size([2, 8]), torch.Size([2, 6]), torch.Size([2]), torch.Size([2, 6]))
        >>> attention.weights[1, 3:].tolist()
        [0.0, 0.0, 0.0]
    """

    domain = "continuous"

    def __init__(
        self,
        input_dim,
        max_activation="gaussian",
        alpha=None,
        num_centres=64,
        basis_sigmas=(0.1, 0.5),
        ridge_penalty=0.1,
        encoder="moments_alpha",
        fuse_discrete=True,
        attention_dim=None,
        cache_bytes=50_000_000,
        pad_grid=False,
        var_floor=1e-4,
        score_scale=None,
        direct_init_var=0.01,
    ):
        super().__init__()
        if int(input_dim) < 1:
            raise ValueError(f"input_dim must be ≥ 1, got {input_dim}")
        encoder = ENCODER_ALIASES.get(encoder, encoder)
        if encoder not in ENCODERS:
            raise ValueError(
                f"unknown continuous encoder {encoder!r}; valid: {', '.join(ENCODERS)} "
                f"(old name: {', '.join(f'{k} = {v}' for k, v in ENCODER_ALIASES.items())})"
            )
        var_floor = float(var_floor)
        if not math.isfinite(var_floor) or var_floor <= 0:
            raise ValueError(f"var_floor must be > 0, got {var_floor}")
        name, alpha = resolve_continuous(max_activation, alpha)
        self.max_activation, self.alpha = name, bg.check_alpha(alpha)
        self.input_dim = int(input_dim)
        self.encoder = encoder
        self.fuse_discrete = bool(fuse_discrete)
        self.var_floor = var_floor
        floor = bg.sigma_sq_from_variance(torch.tensor(var_floor, dtype=torch.float64), self.alpha)
        self.sigma_sq_floor = float(floor)
        centres, sigmas = gaussian_basis(num_centres, basis_sigmas, dtype=torch.float64)
        self.num_basis = centres.numel()
        # plain attributes, not buffers: Module.to(dtype) must not round the basis to fp16/bf16
        self.value_function = RidgeValueFunction(centres, sigmas, ridge_penalty, pad=pad_grid,
                                                 cache_bytes=cache_bytes)
        self._basis = {}
        self.scorer = None
        self.discrete_alpha = self.alpha if encoder == "moments_alpha" else 1.0
        if encoder != "direct" or self.fuse_discrete:
            default = 1.0 / math.sqrt(self.input_dim) if encoder == "moments_softmax" else 1.0
            scale, learn = _resolve_score_scale(score_scale, default)
            self.scorer = AdditiveScorer(self.input_dim, attention_dim, scale=scale,
                                         learn_scale=learn)
        self.param_head = None
        if encoder == "direct":
            init_var = float(direct_init_var)
            if not math.isfinite(init_var) or not var_floor < init_var < 1.0:
                raise ValueError(
                    f"direct_init_var must lie in (var_floor={var_floor}, 1), got {direct_init_var}"
                )
            self.param_head = nn.Linear(self.input_dim, 2)
            init = bg.sigma_sq_from_variance(torch.tensor(init_var, dtype=torch.float64),
                                             self.alpha) - self.sigma_sq_floor
            with torch.no_grad():  # softplus(b) = init: b = log(exp(init) − 1)
                self.param_head.bias[1] = float(torch.log(torch.expm1(init)))

    # --------------------------------------------------------------------------------------
    def basis(self, device):
        """(centres, sigmas) float64 (float32 on MPS) on ``device``."""
        key = str(device)
        if key not in self._basis:
            dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
            self._basis[key] = (self.value_function.centres.to(device=device, dtype=dtype),
                                self.value_function.sigmas.to(device=device, dtype=dtype))
        return self._basis[key]

    def density_params(self, x, mask, abs_len, weights):
        """(μ, σ², variance) [B] in float32 (float64 for float64 inputs)."""
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        if self.encoder != "direct":
            batch, max_len = mask.shape
            pos = clip_frame_positions(abs_len, max_len, work)
            pos = pos * mask  # padded positions (weight 0) kept finite and irrelevant
            p = weights.to(work)
            mu = (p * pos).sum(-1)
            var = (p * (pos - mu[:, None]) ** 2).sum(-1).clamp_min(self.var_floor)
            sigma_sq = bg.sigma_sq_from_variance(var, self.alpha)
        else:
            m = mask.to(x.dtype).unsqueeze(-1)
            pooled = (x * m).sum(1) / abs_len.to(x.dtype)[:, None]
            raw = self.param_head(pooled).to(work)
            mu = torch.sigmoid(raw[:, 0])
            sigma_sq = nn.functional.softplus(raw[:, 1]) + self.sigma_sq_floor
            var = bg.variance_from_sigma_sq(sigma_sq, self.alpha)
        return mu, sigma_sq, var

    def forward(self, x, lengths=None):
        """x [B, L, D], relative lengths [B] in (0, 1] → (context [B, D],
        :class:`~.output.Attention` with ``mu``, ``var``, ``sigma_sq``, ``support``, ``alpha``,
        ``cont_weights``, ``mask``, ``lengths``, and ``weights`` when the discrete scorer
        exists)."""
        if x.dim() != 3:
            raise ValueError(f"expected x of shape [B, L, D], got {tuple(x.shape)}")
        batch, max_len, _ = x.shape
        abs_len = absolute_lengths(lengths, max_len, batch, device=x.device)
        mask = torch.arange(max_len, device=x.device)[None, :] < abs_len[:, None]
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)

        weights = None
        if self.scorer is not None:
            weights = masked_attention(self.scorer(x), mask, "entmax", self.discrete_alpha)
        mu, sigma_sq, var = self.density_params(x, mask, abs_len, weights)

        centres, sigmas = self.basis(x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):  # float32/64 here
            r = bg.expected_basis(mu, sigma_sq, centres, sigmas, self.alpha)  # [B, N]
            cont_weights = self.value_function.frame_weights(r, abs_len, max_len)  # [B, L]
        context = torch.bmm(cont_weights.unsqueeze(1).to(x.dtype), x).squeeze(1)
        if self.fuse_discrete:
            context = context + torch.bmm(weights.unsqueeze(1).to(x.dtype), x).squeeze(1)

        return context, Attention(
            weights=weights,
            mask=mask,
            lengths=lengths,
            alpha=torch.tensor(self.alpha, device=x.device),
            mu=mu,
            var=var,
            sigma_sq=sigma_sq,
            support=bg.support_width(sigma_sq, self.alpha),
            cont_weights=cont_weights,
        )

    def extra_repr(self):
        return (f"max_activation={self.max_activation}, alpha={self.alpha:.4g}, encoder={self.encoder}, "
                f"basis={self.num_basis}, fuse_discrete={self.fuse_discrete}, "
                f"{self.value_function!r}")


__all__ = ["ContinuousAttentionPooling", "ENCODERS", "ENCODER_ALIASES", "absolute_lengths"]
