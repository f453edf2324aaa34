"""The names of ``--attn_max_activation`` and their α: one table per domain, one resolver each.

Everywhere in the package the attention mapping is called ``max_activation``, as on the command
line (the predecessor's name): the discrete mappings map scores to frame weights, the
continuous ones are the members of the β-Gaussian density family
(:mod:`audioattn_sb.attention.beta_gaussian`):

============  ==========  ==========================================
name          α           discrete                 continuous
============  ==========  ==========================================
softmax       1           softmax                  Gaussian
gaussian      1           –                        Gaussian
entmax1333    4/3         entmax-4/3               –
triweight     4/3         –                        triweight
entmax15      3/2         entmax-1.5               –
biweight      3/2         –                        biweight
sparsemax     2           sparsemax                truncated parabola
entmax        any α       entmax-α (α ≥ 1)         β-Gaussian (α ≥ 1)
============  ==========  ==========================================
"""

import math

#: discrete max_activation name → α (``entmax`` takes α from ``--attn_alpha``)
DISCRETE_ALPHA = {
    "softmax": 1.0,
    "entmax1333": 4.0 / 3.0,
    "entmax15": 1.5,
    "sparsemax": 2.0,
    "entmax": None,
}

#: continuous max_activation name → α (``entmax`` takes α from ``--attn_alpha``)
CONTINUOUS_ALPHA = {
    "gaussian": 1.0,
    "softmax": 1.0,
    "triweight": 4.0 / 3.0,
    "biweight": 1.5,
    "sparsemax": 2.0,
    "entmax": None,
}

_TOL = 1e-9


def _alpha_of(table, domain, max_activation, alpha):
    """α of a name of ``table``, with the command-line errors of both domains."""
    if max_activation not in table:
        raise ValueError(
            f"unknown {domain} attention max_activation {max_activation!r}; valid: "
            f"{', '.join(table)} (use 'entmax' with --attn_alpha A for any α ≥ 1)"
        )
    fixed = table[max_activation]
    if fixed is None:
        if alpha is None:
            raise ValueError("--attn_max_activation entmax needs --attn_alpha A (A ≥ 1, e.g. 1.7)")
        try:
            value = float(alpha)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--attn_alpha must be a number, got {alpha!r}") from err
        if not math.isfinite(value) or value < 1.0:
            raise ValueError(f"--attn_alpha must be a finite number ≥ 1, got {alpha}")
        return value
    if alpha is not None:
        try:
            same = math.isclose(float(alpha), fixed, rel_tol=_TOL)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--attn_alpha must be a number, got {alpha!r}") from err
        if not same:
            raise ValueError(
                f"--attn_alpha={alpha} contradicts --attn_max_activation={max_activation} "
                f"(α = {fixed:.4g}); use --attn_max_activation entmax --attn_alpha {alpha}"
            )
    return fixed


def discrete_alpha(max_activation, alpha=None):
    """α of a discrete max_activation name (``entmax`` needs ``alpha`` ≥ 1).

    Example:
        >>> discrete_alpha("entmax1333"), discrete_alpha("entmax", 1.7)
        (1.3333333333333333, 1.7)
        >>> discrete_alpha("gaussian")
        Traceback (most recent call last):
        ...
        ValueError: unknown discrete attention max_activation 'gaussian'; valid: softmax, entmax1333, entmax15, sparsemax, entmax (use 'entmax' with --attn_alpha A for any α ≥ 1)
    """
    return _alpha_of(DISCRETE_ALPHA, "discrete", max_activation, alpha)


def continuous_name(alpha):
    """Canonical continuous name of α: gaussian, triweight, biweight, sparsemax or entmax.

    Example:
        >>> continuous_name(4 / 3), continuous_name(1.0), continuous_name(1.7)
        ('triweight', 'gaussian', 'entmax')
    """
    for name in ("gaussian", "triweight", "biweight", "sparsemax"):
        if math.isclose(float(alpha), CONTINUOUS_ALPHA[name], rel_tol=_TOL):
            return name
    return "entmax"


def resolve_continuous(max_activation, alpha=None):
    """(canonical name, α) of a continuous max_activation name: ``softmax`` is the
    ``gaussian``, ``entmax`` with a named α takes that name.

    Example:
        >>> resolve_continuous("softmax"), resolve_continuous("entmax", 1.5)
        (('gaussian', 1.0), ('biweight', 1.5))
    """
    a = _alpha_of(CONTINUOUS_ALPHA, "continuous", max_activation, alpha)
    name = continuous_name(a)
    return name, (CONTINUOUS_ALPHA[name] if name != "entmax" else a)


__all__ = [
    "CONTINUOUS_ALPHA",
    "DISCRETE_ALPHA",
    "continuous_name",
    "discrete_alpha",
    "resolve_continuous",
]
