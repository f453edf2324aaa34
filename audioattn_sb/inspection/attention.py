r"""Per-clip attention summaries and densities on a time grid in seconds.

A clip's attention (one clip of the model's :class:`~audioattn_sb.attention.output.Attention`,
``attention.clip(i)``) becomes a plain record (a dict) that the CSV export, the plots and
:mod:`audioattn_sb.inference` all share.

Time
----
The pooling sees L valid frames; frame ℓ = 1..L sits at the normalised position
t_ℓ = (2ℓ−1)/(2L) ∈ (0, 1) (the positions the continuous pooling regresses on), and normalised
time t maps to seconds as t·D, D the clip's duration. A frame's time is then its segment's centre
(ℓ−½)·D/L: within half a frame (5 ms for the 10 ms Fbank hop) of the centre of the Fbank frame
the model computed it from.

Record fields (units)
---------------------
``mu``, ``var``
    Continuous: the density's mean and variance in normalised time (μ ∈ [0, 1] for the
    ``moments`` encoder). Discrete/mean: the same moments of the frame weights over t_ℓ.
``sigma_sq``
    Continuous: the β-Gaussian scale σ² (normalised time²). Discrete: NaN (empty in CSVs).
``supp``
    Continuous: support width 2a in normalised time (``inf`` for the Gaussian). Discrete: the
    fraction of valid frames with nonzero weight (R's definition).
``mu_seconds``, ``supp_seconds``, ``support_start_s``, ``support_end_s``
    The same in seconds (μ·D, supp·D, μ∓a in seconds; discrete: first/last nonzero frame).
``mass_in_clip``
    Continuous: probability mass inside the clip [0, D] (exact: Gaussian CDF, or the regularised
    incomplete beta function of the β-Gaussian); less than 1 when the support reaches past the
    clip's ends. Discrete: 1.
``density_t``, ``density``, ``density_kind``
    Continuous (``pdf``): the pdf as a density per second, p(t/D)/D, at K points in seconds: K/2
    evenly over the clip [0, D] and K/2 evenly over the support (μ ± a; μ ± 6σ for the
    Gaussian), merged (sorted, exactly K). The support points make the trapezoid rule over the
    grid integrate to ≈1 (the support may reach outside the clip: those points have t < 0 or
    t > D). Discrete
    (``frame_weight``): one point per valid frame at its centre time, the weights (sum 1).
``weights``
    The discrete frame weights over the valid frames (for continuous pooling: those of its
    discrete encoder, when it has one), or None.

Localisation (:func:`event_measures`, when the clip's labelled event [onset, offset] in seconds
is known, e.g. from ``recipes/make_noisy_folds.py``'s ``metadata/events.csv``)
----------------------------------------------------------------------------------------------
``mass_in_event``
    Continuous: the density's exact mass on [onset, offset]. Discrete: the total weight of the
    frames whose centre lies in [onset, offset].
``event_coverage``
    The fraction of the event inside the support (continuous: [μ − a, μ + a], the Gaussian's is
    everything) or, discrete, the fraction of the event's frames that have nonzero weight.
``mu_in_event``
    1 when μ (in seconds) lies in [onset, offset], else 0.
``uniform_mass``
    The uniform baseline: the event's share of the clip, (offset − onset) / duration.
"""

import math

import numpy as np
import torch

DENSITY_KINDS = ("pdf", "frame_weight")


def frame_positions(n_frames):
    """Normalised frame centres t_ℓ = (2ℓ−1)/(2L), ℓ = 1..L.

    Example:
        >>> frame_positions(4).tolist()
        [0.125, 0.375, 0.625, 0.875]
    """
    from audioattn_sb.lengths import frame_positions as positions

    return positions(n_frames, torch.float64).numpy()


def _float(value):
    if value is None:
        return math.nan
    if torch.is_tensor(value):
        return float(value.detach().double().reshape(-1)[0]) if value.numel() else math.nan
    return float(value)


def density_grid(mu, half_width, points=200):
    """The K-point grid (normalised time) of a continuous density: K/2 points evenly over [0, 1]
    and K/2 over [μ − half_width, μ + half_width], merged and sorted (exactly K points; a point of
    both halves appears twice, which the trapezoid rule ignores).

    Example:
        >>> g = density_grid(0.5, 0.1, points=6)
        >>> g.round(3).tolist()
        [0.0, 0.4, 0.5, 0.5, 0.6, 1.0]
    """
    points = max(4, int(points))
    clip = np.linspace(0.0, 1.0, points // 2)
    support = np.linspace(mu - half_width, mu + half_width, points - points // 2)
    return np.sort(np.concatenate([clip, support]), kind="stable")


def continuous_mass(lo, hi, mu, sigma_sq, alpha):
    """Probability mass of the β-Gaussian p(·; μ, σ², α) on [lo, hi] (normalised time).

    Gaussian: Φ; α > 1: with u = (t−μ)/a, (u+1)/2 follows Beta(n+1, n+1), n = 1/(α−1).

    Example:
        >>> round(continuous_mass(0.0, 1.0, 0.5, 0.0025, 1.0), 6)
        1.0
        >>> round(continuous_mass(0.5, 2.0, 0.5, 0.01, 2.0), 6)   # half of a symmetric density
        0.5
    """
    from scipy.special import betainc, ndtr

    from audioattn_sb.attention import beta_gaussian as bg

    if alpha == 1.0 or bg.check_alpha(alpha) == 1.0:
        s = math.sqrt(sigma_sq)
        return float(ndtr((hi - mu) / s) - ndtr((lo - mu) / s))
    n = bg.entmax_exponent(alpha)
    a = float(bg.support_half_width(torch.tensor(sigma_sq, dtype=torch.float64), alpha))

    def cdf(t):
        x = min(max(((t - mu) / a + 1.0) / 2.0, 0.0), 1.0)
        return float(betainc(n + 1.0, n + 1.0, x))

    return cdf(hi) - cdf(lo)


def _discrete_record(weights, duration):
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    t = frame_positions(n)
    mu = float((w * t).sum())
    var = float((w * (t - mu) ** 2).sum())
    nonzero = np.flatnonzero(w > 0)
    supp = nonzero.size / n if n else math.nan
    start = float(t[nonzero[0]] * duration) if nonzero.size else math.nan
    end = float(t[nonzero[-1]] * duration) if nonzero.size else math.nan
    return {
        "mu": mu, "var": var, "sigma_sq": math.nan, "supp": supp,
        "mu_seconds": mu * duration, "supp_seconds": supp * duration,
        "support_start_s": start, "support_end_s": end,
        "mass_in_clip": float(w.sum()),
        "density_t": t * duration, "density": w, "density_kind": "frame_weight",
    }


def _continuous_record(mu, sigma_sq, var, alpha, duration, points):
    from audioattn_sb.attention import beta_gaussian as bg

    sig = torch.tensor(sigma_sq, dtype=torch.float64)
    half = float(bg.support_half_width(sig, alpha))
    reach = half if math.isfinite(half) else 6.0 * math.sqrt(sigma_sq)
    grid = density_grid(mu, reach, points)
    pdf = bg.pdf(torch.from_numpy(grid), mu, sig, alpha).numpy()
    supp = 2.0 * half
    return {
        "mu": mu, "var": var, "sigma_sq": sigma_sq, "supp": supp,
        "mu_seconds": mu * duration, "supp_seconds": supp * duration,
        "support_start_s": (mu - half) * duration, "support_end_s": (mu + half) * duration,
        "mass_in_clip": continuous_mass(0.0, 1.0, mu, sigma_sq, alpha),
        "density_t": grid * duration, "density": pdf / duration, "density_kind": "pdf",
    }


def event_measures(record, onset_s, offset_s):
    """Localisation of a clip's attention (``record`` of :func:`clip_attention`) against its
    labelled event [onset_s, offset_s] (module docstring: ``mass_in_event``, ``event_coverage``,
    ``mu_in_event``, ``uniform_mass``). The event is clipped to the clip [0, duration].

    Example:
        >>> cfg = {"attn_domain": "discrete", "max_activation": "sparsemax", "alpha_value": 2.0}
        >>> from audioattn_sb.attention.output import Attention
        >>> r = clip_attention(Attention(weights=torch.tensor([0.0, 0.75, 0.25, 0.0])), cfg, 2.0)
        >>> event_measures(r, 0.5, 1.0)   # frame centres 0.25, 0.75, 1.25, 1.75 s
        {'mass_in_event': 0.75, 'event_coverage': 1.0, 'mu_in_event': 1, 'uniform_mass': 0.25}
    """
    duration = float(record["duration"])
    on, off = max(0.0, float(onset_s)), min(duration, float(offset_s))
    if not off > on:
        raise ValueError(f"event [{onset_s}, {offset_s}] s is empty inside the clip "
                         f"[0, {duration:g}] s")
    if record["attn_domain"] == "continuous":
        mass = continuous_mass(on / duration, off / duration, record["mu"], record["sigma_sq"],
                               record["alpha_value"])
        lo, hi = record["support_start_s"], record["support_end_s"]
        if not (math.isfinite(lo) and math.isfinite(hi)):  # the Gaussian: support everywhere
            lo, hi = -math.inf, math.inf
        coverage = max(0.0, min(hi, off) - max(lo, on)) / (off - on)
    else:
        t = np.asarray(record["density_t"], dtype=np.float64)
        w = np.asarray(record["density"], dtype=np.float64)
        inside = (t >= on) & (t <= off)
        mass = float(w[inside].sum())
        coverage = float((w[inside] > 0).mean()) if inside.any() else 0.0
    mu_s = record["mu_seconds"]
    return {"mass_in_event": float(mass), "event_coverage": float(coverage),
            "mu_in_event": int(on <= mu_s <= off), "uniform_mass": (off - on) / duration}


def clip_attention(attention, config, duration, density_points=200):
    """The attention record of one clip (module docstring) from its pooling's attention.

    Arguments
    ---------
    attention : Attention
        One clip's :class:`~audioattn_sb.attention.output.Attention` (``batch.clip(i)``): its
        ``mask`` [L], ``weights`` [L] (discrete/mean, and continuous with a discrete encoder),
        and for continuous pooling ``mu``, ``sigma_sq``, ``var`` (scalars).
    config : dict
        ``attn_domain``, ``max_activation``, ``alpha_value`` (:meth:`TrainedRun.attention_config`).
    duration : float
        The clip's duration in seconds.
    density_points : int
        K, the grid size of continuous densities.

    Example:
        >>> from audioattn_sb.attention.output import Attention
        >>> cfg = {"attn_domain": "discrete", "max_activation": "sparsemax", "alpha_value": 2.0}
        >>> one = Attention(weights=torch.tensor([0.0, 0.75, 0.25, 0.0]),
        ...                 mask=torch.tensor([True, True, True, True]))
        >>> r = clip_attention(one, cfg, duration=2.0)
        >>> r["supp"], r["mu_seconds"], float(r["density"].sum()), r["density_t"].tolist()
        (0.5, 0.875, 1.0, [0.25, 0.75, 1.25, 1.75])
        >>> cfg = {"attn_domain": "continuous", "max_activation": "biweight", "alpha_value": 1.5}
        >>> r = clip_attention(Attention(mu=0.5, sigma_sq=0.001, var=0.002), cfg, duration=4.0)
        >>> round(float(np.trapezoid(r["density"], r["density_t"])), 4), round(r["mu_seconds"], 3)
        (1.0, 2.0)
    """
    domain = config["attn_domain"]
    duration = float(duration)
    if not duration > 0:
        raise ValueError(f"clip duration must be > 0 seconds, got {duration}")
    if not hasattr(attention, "present"):  # e.g. a dict of the old, untyped form
        raise TypeError(f"clip_attention takes one clip's Attention (audioattn_sb.attention."
                        f"output), got {type(attention).__name__}")
    mask = attention.mask
    weights = attention.weights
    n_valid = None
    if mask is not None:
        n_valid = int(torch.as_tensor(mask).reshape(-1).sum())
    elif weights is not None:
        n_valid = int(torch.as_tensor(weights).reshape(-1).numel())
    if weights is not None:
        weights = torch.as_tensor(weights).detach().double().reshape(-1)[:n_valid].numpy()

    if domain == "continuous":
        alpha = float(config["alpha_value"])
        if attention.mu is None or attention.sigma_sq is None:
            raise ValueError("a continuous attention needs mu and sigma_sq (fields: "
                             f"{', '.join(attention.present()) or 'none'})")
        record = _continuous_record(_float(attention.mu), _float(attention.sigma_sq),
                                    _float(attention.var), alpha, duration, density_points)
    elif weights is not None:
        record = _discrete_record(weights, duration)
    else:
        raise ValueError(f"attention of domain {domain!r} has no weights to summarise "
                         f"(fields: {', '.join(attention.present()) or 'none'})")
    record.update({
        "attn_domain": domain,
        "max_activation": config["max_activation"],
        "alpha_value": float(config["alpha_value"]),
        "n_frames": n_valid,
        "duration": duration,
        "weights": weights,
    })
    return record


__all__ = ["DENSITY_KINDS", "clip_attention", "continuous_mass", "density_grid",
           "event_measures", "frame_positions"]
