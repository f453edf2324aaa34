r"""The attention a model returns: one typed record (issue 31), documented here only.

Every pooling module's ``forward(x [B, L, D], lengths)`` returns ``(context [B, D], Attention)``
and every model's ``forward(feats, lengths)`` returns ``(outputs [B, C], Attention)`` (the
pooling's, with the self-attention of Transformer models when asked). The Brain hands it on in
:class:`audioattn_sb.brains.base.ForwardOutput`; inspection reads its fields by name, so a
renamed field fails where it is made, not at export time.
"""

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Attention:
    r"""Where a model's pooling put its weight on a batch of B clips (None: not produced).

    Time: the pooling sees a padded batch of L frames (the encoder's output frames, e.g. the
    ACRNN's 10 ms Fbank frames or the Transformer's 25 ms patches after its between-layer
    pooling); clip b has ``n_b = round(lengths[b] · L)`` valid frames, and valid frame ℓ = 1..n_b
    sits at the *relative time* t_ℓ = (2ℓ−1)/(2 n_b) ∈ (0, 1) of the clip (0 = its start, 1 = its
    end; :mod:`audioattn_sb.inspection.attention` turns it into seconds).

    Fields
    ------
    weights : Tensor [B, L] or None
        Discrete frame weights: ≥ 0, summing to 1 over each clip's valid frames, exactly 0 on
        padded frames. Discrete pooling: its attention; mean pooling: 1/n_b on the valid frames;
        continuous pooling: the discrete weights of its encoder's scorer (``moments_*`` encoders
        and ``fuse_discrete``; None for ``direct`` without fusion).
    mask : Tensor [B, L] bool or None
        True on each clip's valid frames.
    lengths : Tensor [B] or None
        Relative lengths n_b / L the pooling was given (SpeechBrain's convention; None when it
        got none: every frame valid).
    alpha : Tensor (0-dim) or None
        α of the mapping: of the discrete mapping (1 softmax, 4/3, 1.5, 2 sparsemax, …) or of the
        continuous density (1 Gaussian, 4/3 triweight, 1.5 biweight, 2 sparsemax); None for mean
        pooling.
    mu : Tensor [B] or None
        Continuous pooling: the density's mean, in relative time.
    var : Tensor [B] or None
        Continuous pooling: the density's variance, in relative time² (at least the pooling's
        ``var_floor``).
    sigma_sq : Tensor [B] or None
        Continuous pooling: the β-Gaussian's scale σ², in relative time² (= ``var`` for the
        Gaussian; :func:`audioattn_sb.attention.beta_gaussian.variance_from_sigma_sq`).
    support : Tensor [B] or None
        Continuous pooling: the width 2a of the density's support, in relative time (+inf for
        the Gaussian).
    cont_weights : Tensor [B, L] or None
        Continuous pooling: the effective frame weights G_L r of its continuous part (the
        context is Σ_ℓ cont_weights_ℓ h_ℓ, plus the discrete context with ``fuse_discrete``);
        ridge-regression weights, not probabilities (they may be negative), 0 on padded frames.
    self_attention : list of Tensor or None
        Transformer models asked for it (``return_attention=True``): one ``[B, heads, Q_k, K_k]``
        tensor per layer k (Q_k = K_k the layer's frames, which the between-layer pooling halves;
        row q holds query frame q's weights over the key frames, summing to 1 over the valid
        keys, 0 on padded keys); None otherwise.

    Continuous fields are float32 (float64 for float64 inputs); the others have the model's dtype.

    Example:
        >>> a = Attention(weights=torch.tensor([[0.25, 0.75], [1.0, 0.0]]),
        ...               mask=torch.tensor([[True, True], [True, False]]), alpha=torch.tensor(2.0))
        >>> a.present()
        ('weights', 'mask', 'alpha')
        >>> one = a.clip(1)
        >>> one.weights.tolist(), one.mask.tolist(), one.alpha.item()
        ([1.0, 0.0], [True, False], 2.0)
    """

    weights: torch.Tensor = None
    mask: torch.Tensor = None
    lengths: torch.Tensor = None
    alpha: torch.Tensor = None
    mu: torch.Tensor = None
    var: torch.Tensor = None
    sigma_sq: torch.Tensor = None
    support: torch.Tensor = None
    cont_weights: torch.Tensor = None
    self_attention: list = None

    def present(self):
        """The names of the fields that hold something (not None), in field order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def _map(self, fn):
        """A copy with ``fn`` applied to every tensor (and to every tensor of a list field)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if torch.is_tensor(value):
                value = fn(value)
            elif isinstance(value, (list, tuple)):
                value = [fn(v) if torch.is_tensor(v) else v for v in value]
            out[f.name] = value
        return replace(self, **out)

    def clip(self, index):
        """Clip ``index`` of the batch: every per-clip tensor indexed along its first axis
        (``weights`` [L], ``mu`` 0-dim, ``self_attention`` a list of [heads, Q, K]); ``alpha``
        (0-dim) and non-tensor values kept."""
        return self._map(lambda t: t[index] if t.dim() >= 1 else t)

    def cpu(self):
        """A copy with every tensor detached and on the CPU."""
        return self._map(lambda t: t.detach().cpu())

    def with_self_attention(self, layers):
        """A copy with ``self_attention`` set to ``layers`` (list of [B, heads, Q, K])."""
        return replace(self, self_attention=layers)


__all__ = ["Attention"]
