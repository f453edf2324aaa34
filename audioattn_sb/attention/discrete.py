"""Discrete attention over the frames of a sequence.

A score per frame, a probability mapping π over the valid frames, a weighted sum of frames:

    s_ℓ = vᵀ tanh(W h_ℓ + b)          (additive scorer, Bahdanau-style)
    p   = π(s)  over the valid frames   (softmax, entmax-α, sparsemax)
    c   = Σ_ℓ p_ℓ h_ℓ

π is the α-entmax mapping (Peters, Niculae & Martins 2019):
``α-entmax(s) = argmax_{p ∈ Δ} pᵀs + H^T_α(p)``, whose solution is
``p_ℓ = [(α−1) s_ℓ − τ]₊^{1/(α−1)}`` with τ chosen so that Σ p_ℓ = 1.
α = 1 is softmax, α = 2 is sparsemax; α > 1 gives exact zeros.

Padding: frames past a clip's length get exactly zero weight, so a clip's pooled output does not
depend on what it is batched with; a row with no valid frame yields all-zero weights (never NaN:
entmax returns NaN for rows that are entirely −inf, entmax issue #19).
"""

import math

import torch
from entmax import entmax15, entmax_bisect, sparsemax
from torch import nn

from audioattn_sb.attention.max_activations import discrete_alpha
from audioattn_sb.attention.output import Attention
from audioattn_sb.lengths import lengths_to_mask

def masked_attention(scores, mask=None, max_activation="softmax", alpha=None):
    """Map scores [B, L] to attention weights over the valid frames.

    Arguments
    ---------
    scores : torch.Tensor
        [B, L] real scores.
    mask : torch.Tensor or None
        [B, L] bool, True where the frame is valid. Masked frames get weight exactly 0.
    max_activation : str
        A name of :data:`~audioattn_sb.attention.max_activations.DISCRETE_ALPHA`.
    alpha : float or None
        α for ``max_activation="entmax"``.

    Returns
    -------
    torch.Tensor
        [B, L] weights; each row sums to 1 over its valid frames, all-zero for an empty row.

    Example:
        >>> s = torch.tensor([[2.0, 1.0, -1.0, 5.0]])
        >>> m = torch.tensor([[True, True, True, False]])
        >>> masked_attention(s, m, "sparsemax").tolist()
        [[1.0, 0.0, 0.0, 0.0]]
    """
    alpha = discrete_alpha(max_activation, alpha)
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask.expand_as(scores)
    work = scores if scores.dtype in (torch.float32, torch.float64) else scores.float()
    # Masked frames get a finite score 1e4 below the row's smallest valid score: exact zeros for
    # every mapping (softmax underflows to 0; for entmax (α−1)·gap > 1 puts them below τ) without
    # the NaN that entmax gives on rows of −inf. A row with no valid frame is scored 0 everywhere
    # and its weights are zeroed below.
    has_valid = mask.any(dim=-1, keepdim=True)
    big = torch.finfo(work.dtype).max
    row_min = work.detach().masked_fill(~mask, big).amin(dim=-1, keepdim=True)
    fill = torch.where(has_valid, row_min - 1e4, torch.zeros_like(row_min))
    work = torch.where(mask, work, fill).masked_fill(~has_valid, 0.0)
    if alpha == 1.0:
        weights = torch.softmax(work, dim=-1)
    elif alpha == 2.0:
        weights = sparsemax(work, dim=-1)
    elif alpha == 1.5:
        weights = entmax15(work, dim=-1)
    else:
        weights = entmax_bisect(work, alpha=alpha, dim=-1)
    weights = weights * mask.to(weights.dtype)
    return weights.to(scores.dtype)


class AdditiveScorer(nn.Module):
    """Additive scorer ``s_ℓ = vᵀ tanh(W h_ℓ + b) · scale``.

    Arguments
    ---------
    input_dim : int
        Size of each frame h_ℓ.
    attention_dim : int or None
        Size of the hidden layer W (default: ``input_dim``).
    scale : float
        Multiplies the scores (an inverse temperature; 1 = none).
    learn_scale : bool
        Learn the scale as exp(θ), θ initialised at log(scale).

    Example:
        >>> scorer = AdditiveScorer(8)
        >>> scorer(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_dim, attention_dim=None, scale=1.0, learn_scale=False):
        super().__init__()
        attention_dim = attention_dim or input_dim
        self.proj = nn.Linear(input_dim, attention_dim)
        self.v = nn.Linear(attention_dim, 1, bias=False)
        self.log_scale = None
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(float(scale))))
            self.scale = None
        else:
            self.scale = float(scale)

    def forward(self, x):
        """x [B, L, D] → scores [B, L]."""
        scores = self.v(torch.tanh(self.proj(x))).squeeze(-1)
        if self.log_scale is not None:
            return scores * self.log_scale.exp().to(scores.dtype)
        return scores * self.scale


class DiscreteAttentionPooling(nn.Module):
    """Attention pooling over time with a discrete mapping (softmax, entmax-α, sparsemax).

    Arguments
    ---------
    input_dim : int
        Frame size D.
    max_activation : str
        softmax | entmax1333 | entmax15 | sparsemax | entmax (with ``alpha``).
    alpha : float or None
        α for ``max_activation="entmax"``.
    attention_dim : int or None
        Hidden size of the additive scorer.

    Example:
        >>> pool = DiscreteAttentionPooling(8, "entmax15")
        >>> ctx, attention = pool(torch.randn(2, 5, 8), torch.tensor([1.0, 0.6]))
        >>> ctx.shape, attention.weights.shape
        (torch.Size([2, 8]), torch.Size([2, 5]))
        >>> attention.weights[1, 3:].tolist()
        [0.0, 0.0]
    """

    domain = "discrete"

    def __init__(self, input_dim, max_activation="softmax", alpha=None, attention_dim=None):
        super().__init__()
        self.max_activation = max_activation
        self.alpha = discrete_alpha(max_activation, alpha)
        self.scorer = AdditiveScorer(input_dim, attention_dim)

    def forward(self, x, lengths=None):
        """x [B, L, D], relative lengths [B] → (context [B, D], :class:`~.output.Attention`
        with ``weights``, ``mask``, ``lengths``, ``alpha``)."""
        mask = lengths_to_mask(lengths, x.shape[1], device=x.device)
        scores = self.scorer(x)
        weights = masked_attention(scores, mask, self.max_activation, self.alpha)
        context = torch.bmm(weights.unsqueeze(1).to(x.dtype), x).squeeze(1)
        return context, Attention(weights=weights, mask=mask.expand_as(weights), lengths=lengths,
                                  alpha=torch.tensor(self.alpha))

    def extra_repr(self):
        return f"max_activation={self.max_activation}, alpha={self.alpha:.4g}"


class MeanPooling(nn.Module):
    """Mean over the valid frames (no attention); the :class:`~.output.Attention`'s ``weights``
    are uniform on them (with ``mask`` and ``lengths``).

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> MeanPooling()(x, torch.tensor([2 / 3]))[0].tolist()
        [[2.0]]
    """

    domain = "mean"

    def __init__(self, input_dim=None):
        super().__init__()

    def forward(self, x, lengths=None):
        mask = lengths_to_mask(lengths, x.shape[1], device=x.device).expand(x.shape[0], -1)
        w = mask.to(x.dtype)
        w = w / w.sum(dim=1, keepdim=True).clamp(min=1)
        return torch.bmm(w.unsqueeze(1), x).squeeze(1), Attention(weights=w, mask=mask,
                                                                  lengths=lengths)
