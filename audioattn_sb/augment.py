"""Training-time augmentation: SpeechBrain's augmenters applied padding-safely, and mixup.

The yamls build the augmenters from :mod:`speechbrain.augment` (``wav_augment``: an ``Augmenter``
of time-domain ``AddNoise`` (white and pink noise at a random SNR), ``DropChunk``, ``DropFreq``,
``SpeedPerturb``; ``fea_augment``: an ``Augmenter`` of ``SpectrogramDrop`` time and frequency
masks). The Brain (:class:`~audioattn_sb.brains.base.ClipBrain`) calls the two functions below in
the training stage only; validation and test never see them.

Why wrappers: SpeechBrain's noise is drawn over the whole padded tensor, so a short clip batched
with a long one would receive noise in its padding; :func:`augment_waveforms` and
:func:`augment_features` zero everything beyond each clip's length after augmenting, so a clip's
padding stays zero whatever it is batched with.

Mixup (Zhang et al. 2018; no SpeechBrain class): each training example is mixed with another one
of the batch, ``x = λ x_i + (1 − λ) x_j`` with ``λ ~ Beta(α, α)`` drawn per example, on the
normalised features (padding zeroed first; the mixed clip is as long as the longer of the two),
and its target is mixed the same way (:func:`mix_targets`): a distribution over classes for
single-label NLL, a vector in [0, 1] for multi-label BCE.
"""

import torch
from speechbrain.augment import time_domain

from audioattn_sb.lengths import frame_counts


def zero_padding(x, lengths):
    """Zero ``x [B, T, ...]`` beyond each item's relative length (exact frame counts).

    Example:
        >>> zero_padding(torch.ones(2, 4), torch.tensor([1.0, 0.5])).tolist()
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    """
    n = frame_counts(lengths, x.shape[1])
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < n.to(x.device)[:, None]
    return x * mask.view(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)


def gather_frames(x, src):
    """``out[b, t] = x[b, src[b, t]]`` for ``x [B, T, ...]`` and frame indices ``src [B, T']``.

    Example:
        >>> gather_frames(torch.arange(4.0).repeat(2, 1), torch.tensor([[3, 2], [0, 0]])).tolist()
        [[3.0, 2.0], [0.0, 0.0]]
    """
    index = src.view(*src.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


class AddNoise(time_domain.AddNoise):
    """SpeechBrain's ``AddNoise`` (generated white/pink noise at a random SNR) with the noise
    confined to each clip's length.

    SpeechBrain draws the noise over the whole padded tensor but divides its energy by the clip's
    length only, so a clip padded to twice its length got its noise 3 dB too quiet (the SNR
    drawn + 10·log10(padded / valid length)). Here the noise is zero beyond the clip, so the SNR
    is the one drawn, padded or not. Same arguments as SpeechBrain's class.

    Example:
        >>> _ = torch.manual_seed(0); x = torch.zeros(2, 8); x[:, :4] = 1.0
        >>> noisy = AddNoise(snr_low=0, snr_high=0)(x, torch.tensor([1.0, 0.5]))
        >>> bool((noisy[1, 4:] == 0).all())
        True
    """

    def forward(self, waveforms, lengths):
        base = self.noise_funct

        def confined(w):
            return zero_padding(base(w), lengths)

        self.noise_funct = confined
        try:
            return super().forward(waveforms, lengths)
        finally:
            self.noise_funct = base


class RollTime(torch.nn.Module):
    """Circular shift of each clip in time, within its own length: frame t of a clip of n valid
    frames moves to (t + k) mod n, k drawn per clip uniformly in [−m·n, m·n] (m =
    ``max_fraction``); padding stays where it is. The sound moves to another time of the clip
    and nothing is lost (SpeechBrain's ``RandomShift`` rolls the whole padded batch by one
    amount, moving padding into short clips). Works on waveforms [B, N] and features [B, T, F].

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.arange(1.0, 7.0).repeat(2, 1); x[1, 4:] = 0
        >>> y = RollTime(1.0)(x, torch.tensor([1.0, 4 / 6]))
        >>> sorted(y[0].tolist()) == x[0].tolist(), y[1, 4:].tolist()
        (True, [0.0, 0.0])
    """

    def __init__(self, max_fraction=1.0):
        super().__init__()
        max_fraction = float(max_fraction)
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction}")
        self.max_fraction = max_fraction

    def forward(self, x, lengths):
        if self.max_fraction == 0.0:
            return x
        n = frame_counts(lengths, x.shape[1]).to(x.device).clamp(min=1)  # [B]
        span = torch.floor(self.max_fraction * n.double()).long()
        k = torch.floor(torch.rand(n.shape, device=x.device, dtype=torch.float64)
                        * (2 * span + 1).double()).long() - span
        t = torch.arange(x.shape[1], device=x.device)[None, :]
        return gather_frames(x, torch.where(t < n[:, None], (t - k[:, None]) % n[:, None], t))


class RandomCrop(torch.nn.Module):
    """A random window of each clip, moved to its start: a clip of n valid frames keeps
    w = max(1, round(u·n)) consecutive frames, u drawn per clip uniformly in [f, 1] (f =
    ``min_fraction``), starting at a frame drawn uniformly in [0, n − w]; the batch is trimmed to
    the longest window and the relative lengths are those of the windows (Tokozume et al. 2018
    train on random crops of a clip; the attention pooling here scores the whole clip at test
    time). Works on waveforms [B, N] and features [B, T, F]; ``min_fraction`` 1 is the identity.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.arange(1.0, 9.0).repeat(2, 1); x[1, 4:] = 0
        >>> y, lens = RandomCrop(0.5)(x, torch.tensor([1.0, 0.5]))
        >>> w = (lens * y.shape[1]).round().long().tolist()  # window lengths
        >>> 4 <= w[0] <= 8, 2 <= w[1] <= 4, bool((y[1, w[1]:] == 0).all())
        (True, True, True)
    """

    def __init__(self, min_fraction=1.0):
        super().__init__()
        min_fraction = float(min_fraction)
        if not 0.0 < min_fraction <= 1.0:
            raise ValueError(f"min_fraction must lie in (0, 1] (1: no crop), got {min_fraction}")
        self.min_fraction = min_fraction

    def forward(self, x, lengths):
        if self.min_fraction == 1.0:
            return x, lengths
        n = frame_counts(lengths, x.shape[1]).to(x.device).clamp(min=1)  # [B]
        u = self.min_fraction + (1.0 - self.min_fraction) * torch.rand(
            n.shape, device=x.device, dtype=torch.float64)
        w = torch.round(u * n.double()).long().clamp(1, None).minimum(n)
        start = torch.floor(torch.rand(n.shape, device=x.device, dtype=torch.float64)
                            * (n - w + 1).double()).long()
        width = int(w.max())
        t = torch.arange(width, device=x.device)[None, :]
        new_lengths = (w.double() / width).to(lengths.dtype)
        out = gather_frames(x, torch.where(t < w[:, None], start[:, None] + t, 0))
        return zero_padding(out, new_lengths), new_lengths


def _run(augmenter, x, lengths):
    out = augmenter(x, lengths)
    if isinstance(out, tuple):
        out, new_lengths = out
    else:
        new_lengths = lengths
    if out.shape[0] != x.shape[0]:
        raise ValueError(
            f"the augmenter changed the batch size ({x.shape[0]} → {out.shape[0]}): set "
            "concat_original: False and parallel_augment: False in its yaml (the recipes train on "
            "one augmented copy of each clip)")
    return out, new_lengths.to(lengths.dtype)


def augment_waveforms(augmenter, wavs, lengths):
    """Waveforms ``[B, N]`` → augmented ``[B, N']`` (``N' ≠ N`` after speed perturbation) and
    relative lengths, with every sample beyond a clip's length set to zero.

    Example:
        >>> from speechbrain.augment.time_domain import AddNoise
        >>> from speechbrain.augment.augmenter import Augmenter
        >>> aug = Augmenter(augmentations=[AddNoise(snr_low=0, snr_high=0)], min_augmentations=1,
        ...                 max_augmentations=1)
        >>> out, lens = augment_waveforms(aug, torch.ones(2, 100), torch.tensor([1.0, 0.5]))
        >>> bool((out[1, 50:] == 0).all()), bool((out[1, :50] != 1).all()), lens.tolist()
        (True, True, [1.0, 0.5])
    """
    out, new_lengths = _run(augmenter, wavs, lengths)
    return zero_padding(out, new_lengths), new_lengths


def augment_features(augmenter, feats, lengths):
    """Features ``[B, T, F]`` → augmented features of the same shape, padding zeroed
    (SpectrogramDrop masks are drawn over the padded tensor; the lengths are not changed)."""
    out, _ = _run(augmenter, feats, lengths)
    if out.shape != feats.shape:
        raise ValueError(f"a feature augmenter must keep the shape {tuple(feats.shape)}, "
                         f"got {tuple(out.shape)}")
    return zero_padding(out, lengths)


def mixup(feats, lengths, alpha):
    """Mix each example with a random other one of the batch.

    Arguments
    ---------
    feats : torch.Tensor
        ``[B, T, F]`` normalised features.
    lengths : torch.Tensor
        ``[B]`` relative lengths.
    alpha : float
        Beta(α, α) parameter (> 0; small α keeps most λ near 0 or 1).

    Returns
    -------
    (mixed features, relative lengths = the longer of the pair, (perm [B], lam [B]))

    Example:
        >>> x = torch.stack([torch.zeros(3, 1), torch.ones(3, 1)])
        >>> y, lens, (perm, lam) = mixup(x, torch.tensor([1.0, 1.0]), 0.4)
        >>> torch.allclose(y[:, 0, 0], lam * x[:, 0, 0] + (1 - lam) * x[perm, 0, 0])
        True
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    b = feats.shape[0]
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((b,)).to(feats.device, feats.dtype)
    perm = torch.randperm(b)
    perm = perm.to(feats.device)
    x = zero_padding(feats, lengths)
    shape = (b,) + (1,) * (feats.dim() - 1)
    mixed = lam.view(shape) * x + (1 - lam).view(shape) * x[perm]
    return mixed, torch.maximum(lengths, lengths[perm]), (perm, lam)


def mix_targets(targets, perm, lam):
    """Mixed targets: ``λ t_i + (1 − λ) t_perm(i)``.

    ``targets [B, C]``: one-hot rows (single-label: the result's rows are distributions that sum
    to one) or multi-hot 0/1 rows (multi-label: the result stays in [0, 1]).

    Example:
        >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> mix_targets(t, torch.tensor([1, 0]), torch.tensor([0.75, 0.5])).tolist()
        [[0.75, 0.25], [0.5, 0.5]]
    """
    lam = lam.to(targets.device, torch.float32).view(-1, *([1] * (targets.dim() - 1)))
    t = targets.float()
    return lam * t + (1 - lam) * t[perm.to(targets.device)]


def describe_augmenter(augmenter):
    """Names of an Augmenter's augmentations (for the log), e.g. ``AddNoise, DropChunk``."""
    if augmenter is None:
        return "none"
    augs = getattr(augmenter, "augmentations", None)
    if isinstance(augs, dict):
        return ", ".join(type(a).__name__ for a in augs.values()) or "none"
    return type(augmenter).__name__


def has_augmentations(augmenter):
    """Whether an Augmenter (or any module) would change its input."""
    if augmenter is None:
        return False
    augs = getattr(augmenter, "augmentations", None)
    if isinstance(augs, dict):
        return len(augs) > 0 and getattr(augmenter, "max_augmentations", 1) > 0
    return True
