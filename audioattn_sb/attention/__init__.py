"""Pluggable attention pooling: one factory, chosen from the command line.

``--attn_domain`` picks the family of pooling, ``--attn_max_activation`` the mapping inside it and
``--attn_alpha`` the α of the generic ``entmax`` mapping:

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
returns ``(context [B, D], info)`` where ``info`` is a dict of tensors for logging and export
(``weights`` for discrete, ``mu``/``var``/``sigma_sq``/``support`` for continuous).
"""

import math

from audioattn_sb.attention.beta_gaussian import FAMILY_ALPHA
from audioattn_sb.attention.continuous import ContinuousAttentionPooling
from audioattn_sb.attention.discrete import (
    DISCRETE_MAPPINGS,
    DiscreteAttentionPooling,
    MeanPooling,
    masked_attention,
    resolve_discrete_alpha,
)

#: continuous families by name → α (``entmax`` takes α from ``attn_alpha``); one table with
#: :data:`audioattn_sb.attention.beta_gaussian.FAMILY_ALPHA`
CONTINUOUS_FAMILIES = FAMILY_ALPHA

DOMAINS = ("discrete", "continuous", "mean")


def resolve_continuous_alpha(family, alpha=None):
    """Return (canonical family name, α) for a continuous family.

    Example:
        >>> resolve_continuous_alpha("softmax")
        ('gaussian', 1.0)
        >>> resolve_continuous_alpha("entmax", 1.5)
        ('biweight', 1.5)
    """
    if family not in CONTINUOUS_FAMILIES:
        raise ValueError(
            f"unknown continuous attention family {family!r}; valid: "
            f"{', '.join(CONTINUOUS_FAMILIES)} (use 'entmax' with --attn_alpha A for any α > 1)"
        )
    fixed = CONTINUOUS_FAMILIES[family]
    if fixed is None:
        if alpha is None:
            raise ValueError("--attn_max_activation entmax needs --attn_alpha A (A > 1, e.g. 1.7)")
        fixed = float(alpha)
        if not math.isfinite(fixed) or fixed < 1.0:
            raise ValueError(f"--attn_alpha must be a finite number ≥ 1, got {alpha}")
    elif alpha is not None and not math.isclose(float(alpha), fixed, rel_tol=1e-9):
        raise ValueError(
            f"--attn_alpha={alpha} contradicts --attn_max_activation={family} (α = {fixed:.4g}); "
            f"use --attn_max_activation entmax --attn_alpha {alpha}"
        )
    for name, a in CONTINUOUS_FAMILIES.items():
        if a is not None and name != "softmax" and math.isclose(a, fixed, rel_tol=1e-9):
            return name, a
    return "entmax", fixed


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
        The mapping (see the module docstring).
    input_dim : int
        Frame size D.
    alpha : float or None
        α for the ``entmax`` mapping/family (``--attn_alpha``).
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
        ValueError: unknown discrete attention mapping 'softmaxx'; valid: softmax, entmax1333, entmax15, sparsemax, entmax (use 'entmax' with --attn_alpha A for any α ≥ 1)
    """
    if domain == "discrete":
        return DiscreteAttentionPooling(input_dim, max_activation, alpha, attention_dim)
    if domain == "mean":
        return MeanPooling(input_dim)
    if domain == "continuous":
        family, a = resolve_continuous_alpha(max_activation, alpha)
        kwargs = dict(continuous or {})
        _check_continuous_options(kwargs, ContinuousAttentionPooling)
        if attention_dim is not None:
            kwargs.setdefault("attention_dim", attention_dim)
        return ContinuousAttentionPooling(input_dim, alpha=a, family=family, **kwargs)
    raise ValueError(f"unknown --attn_domain {domain!r}; valid: {', '.join(DOMAINS)}")


def _check_continuous_options(kwargs, cls):
    """``ValueError`` for an ``attn_continuous`` key that the continuous pooling does not take,
    with the closest valid names (a mistyped ``--attn_continuous={encodr: direct}``)."""
    import inspect

    from audioattn_sb.utils import did_you_mean

    valid = [n for n in inspect.signature(cls).parameters
             if n not in ("input_dim", "alpha", "family")]
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
    "CONTINUOUS_FAMILIES",
    "ContinuousAttentionPooling",
    "DISCRETE_MAPPINGS",
    "DOMAINS",
    "DiscreteAttentionPooling",
    "MeanPooling",
    "attention_tag",
    "build_pooling",
    "masked_attention",
    "resolve_continuous_alpha",
    "resolve_discrete_alpha",
]
