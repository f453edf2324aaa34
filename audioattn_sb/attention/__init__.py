"""Pluggable attention pooling: one factory, chosen from the command line.

``--attn_domain`` picks the kind of pooling, ``--attn_max_activation`` the mapping inside it and
``--attn_alpha`` the α of the generic ``entmax`` mapping (names and α:
:mod:`audioattn_sb.attention.max_activations`):

============  =====================================================================
domain        max_activation
============  =====================================================================
discrete      softmax, entmax1333 (α = 4/3), entmax15 (α = 3/2), sparsemax (α = 2),
              entmax (any α ≥ 1, with ``--attn_alpha``)
continuous    softmax | gaussian (α = 1), triweight (4/3), biweight (3/2),
              sparsemax (2), entmax (any α > 1, with ``--attn_alpha``)
mean          (ignored) plain average over valid frames
============  =====================================================================

Every pooling module has the same interface: ``forward(x [B, L, D], lengths [B] relative)``
returns ``(context [B, D], attention)`` where ``attention`` is an
:class:`~audioattn_sb.attention.output.Attention` (its fields, their units and shapes are
documented there: ``weights`` for discrete and mean pooling, ``mu``/``var``/``sigma_sq``/
``support``/``cont_weights`` for continuous).
"""

from audioattn_sb.attention.continuous import ContinuousAttentionPooling
from audioattn_sb.attention.discrete import DiscreteAttentionPooling, MeanPooling, masked_attention
from audioattn_sb.attention.max_activations import (
    CONTINUOUS_ALPHA,
    DISCRETE_ALPHA,
    discrete_alpha,
    resolve_continuous,
)
from audioattn_sb.attention.output import Attention

DOMAINS = ("discrete", "continuous", "mean")


def build_pooling(
    domain,
    max_activation,
    input_dim,
    alpha=None,
    attention_dim=None,
    continuous=None,
):
    """Build the attention pooling module named on the command line.

    Arguments
    ---------
    domain : str
        ``discrete``, ``continuous`` or ``mean``.
    max_activation : str
        The mapping inside the domain (see the module docstring).
    input_dim : int
        Frame size D.
    alpha : float or None
        α for ``entmax`` (``--attn_alpha``).
    attention_dim : int or None
        Hidden size of the additive scorers.
    continuous : dict or None
        Extra keyword arguments of the continuous pooling (basis, ridge penalty, encoder,
        fusion with the discrete context); ignored by the other domains.

    Example:
        >>> pool = build_pooling("discrete", "sparsemax", 16)
        >>> type(pool).__name__, pool.alpha
        ('DiscreteAttentionPooling', 2.0)
        >>> build_pooling("discrete", "softmaxx", 16)
        Traceback (most recent call last):
        ...
        ValueError: unknown discrete attention max_activation 'softmaxx'; valid: softmax, entmax1333, entmax15, sparsemax, entmax (use 'entmax' with --attn_alpha A for any α ≥ 1)
    """
    if domain == "discrete":
        return DiscreteAttentionPooling(input_dim, max_activation, alpha, attention_dim)
    if domain == "mean":
        return MeanPooling(input_dim)
    if domain == "continuous":
        kwargs = dict(continuous or {})
        _check_continuous_options(kwargs, ContinuousAttentionPooling)
        if attention_dim is not None:
            kwargs.setdefault("attention_dim", attention_dim)
        return ContinuousAttentionPooling(input_dim, max_activation, alpha, **kwargs)
    raise ValueError(f"unknown --attn_domain {domain!r}; valid: {', '.join(DOMAINS)}")


def _check_continuous_options(kwargs, cls):
    """``ValueError`` for an ``attn_continuous`` key that the continuous pooling does not take,
    with the closest valid names (a mistyped ``--attn_continuous={encodr: direct}``)."""
    import inspect

    from audioattn_sb.utils import did_you_mean

    valid = [n for n in inspect.signature(cls).parameters
             if n not in ("input_dim", "max_activation", "alpha")]
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"unknown attn_continuous option {key!r}; "
                             f"{did_you_mean(key, valid)}valid: {', '.join(valid)}")


def attention_tag(domain, max_activation, alpha=None):
    """A short, path-safe name for an attention configuration, e.g. ``discrete-entmax_a1.7``.

    Example:
        >>> attention_tag("continuous", "biweight")
        'continuous-biweight'
        >>> attention_tag("discrete", "entmax", 1.7)
        'discrete-entmax_a1.7'
    """
    tag = f"{domain}-{max_activation}"
    if max_activation == "entmax" and alpha is not None:
        tag += f"_a{float(alpha):g}"
    return tag


__all__ = [
    "Attention",
    "CONTINUOUS_ALPHA",
    "ContinuousAttentionPooling",
    "DISCRETE_ALPHA",
    "DOMAINS",
    "DiscreteAttentionPooling",
    "MeanPooling",
    "attention_tag",
    "build_pooling",
    "discrete_alpha",
    "masked_attention",
    "resolve_continuous",
]
