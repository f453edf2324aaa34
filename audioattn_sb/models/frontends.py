r"""Waveform front ends of the raw-waveform Transformer (issue 30), selectable from the yaml.

Each front end maps a waveform batch and each clip's sample count to token embeddings and each
clip's token count: ``forward(wavs [B, N], n_samples [B] long) → (tokens [B, L, D], n_tokens
[B] long)``; ``hop_samples`` is the distance between two tokens (samples per token of the first
Transformer layer). Samples past a clip's count are zeroed and every intermediate frame past a
clip's own count is zeroed, so whatever padding a batch carries changes no valid token
(``tests/test_frontends.py``: padding invariance, float64 gradchecks).

* ``dense`` (:class:`DensePatches`, the paper's): non-overlapping patches of ``patch_size``
  samples → Dense(patch → hidden) → ReLU → Dense(hidden → D). ``hop`` < ``patch_size`` gives
  **overlapping patches** (frame i covers samples ``[i·hop, i·hop + patch)``, zeros past the
  clip), ⌈n / hop⌉ tokens.
* ``conv`` (:class:`ConvStem`): a learnable filterbank ``Conv1d(1 → 2K, kernel, stride hop)``
  whose K complex (cosine, sine) pairs are initialised as a **mel-spaced Gabor filterbank**
  (:func:`gabor_filterbank`), band energies ``re² + im²``, log compression
  ``log(1 + c·E)``, then ``len(strides)`` strided ``Conv1d(k=3) + GELU`` (tokens every
  ``hop·∏strides`` samples: 10 ms × 4 = 40 ms by default), ``LayerNorm`` and ``Linear → D``.
  A shift of the waveform by a few samples changes the band energies little (a (cos, sin)
  pair's energy does not depend on the phase), where it gives an unrelated dense-patch vector.
  ``conv_dims: 2`` makes the strided convolutions two-dimensional over (band, time), as a
  log-mel CNN's: ``Conv2d(k=3, stride (2, s)) + GELU`` each, the bands halved by each, the
  (channel, band) map of a token flattened before the ``LayerNorm``: a pattern that moves
  along the bands meets the same kernel.
  ``time_masks`` / ``band_masks`` (count, widest): SpecAugment's masks on the log band energies,
  in training mode only (:func:`mask_bands`), as the compact ACRNN's feature masks.
  ``band_norm: batch`` normalises each log band energy by running statistics of the training
  batches' valid frames (:class:`MaskedBandNorm`: a BatchNorm that never counts padding), as the
  compact ACRNN's global per-band normalisation of its log-mel features.

Token counts: dense ⌈n / hop⌉; conv ``f₀ = ⌈n / hop⌉`` filterbank frames, then ``fᵢ₊₁ =
⌈fᵢ / sᵢ⌉`` per strided convolution (:func:`conv_token_counts`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

#: the front ends :func:`build_frontend` knows
FRONTENDS = ("dense", "conv")


def hz_to_mel(f):
    """HTK mel scale: ``2595 · log10(1 + f / 700)``.

    Example:
        >>> round(hz_to_mel(1000.0), 1)
        1000.0
    """
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_centres(n_filters, sample_rate=16000, f_min=0.0, f_max=None):
    """Centre frequencies (Hz) and bandwidths (Hz, full width at half maximum) of a mel
    filterbank of ``n_filters`` triangular filters between ``f_min`` and ``f_max`` (default
    Nyquist): ``n_filters + 2`` points equally spaced in mel; filter k rises from point k to its
    centre k+1 and falls to k+2, so its FWHM is ``(f_{k+2} − f_k) / 2``.

    Example:
        >>> c, w = mel_centres(3, 16000, 0.0, 8000.0)
        >>> [round(x) for x in c], [round(x) for x in w]
        ([614, 1768, 3934], [884, 1660, 3116])
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    lo, hi = hz_to_mel(f_min), hz_to_mel(f_max)
    pts = [mel_to_hz(lo + (hi - lo) * i / (n_filters + 1)) for i in range(n_filters + 2)]
    centres = pts[1:-1]
    widths = [(pts[k + 2] - pts[k]) / 2 for k in range(n_filters)]
    return centres, widths


def gabor_filterbank(n_filters=64, kernel_size=400, sample_rate=16000, f_min=0.0, f_max=None):
    r"""A mel-spaced Gabor filterbank: ``[2K, kernel_size]`` float64 filters, rows ``2k`` (cosine)
    and ``2k+1`` (sine) of filter k.

    Filter k has the centre ``f_k`` and the FWHM bandwidth ``b_k`` of a mel filterbank
    (:func:`mel_centres`); its window is a Gaussian centred on the kernel,
    ``g_k(t) = exp(−(t − t₀)² / (2 σ_k²))``, ``t₀ = (kernel − 1) / 2``, with the time width
    that gives that bandwidth, ``σ_k = sr · √(2 ln 2) / (π b_k)`` samples (a Gaussian of time
    std σ has a frequency response of FWHM ``2√(2 ln 2) · sr / (2π σ)``), capped at
    ``kernel / 6`` so that the window fits the kernel (the lowest bands are then wider than the
    mel bands). Rows: ``g_k(t) cos(2π f_k (t − t₀) / sr)`` and ``g_k(t) sin(…)``, each pair
    scaled so that the cosine row has unit L2 norm.

    Example:
        >>> w = gabor_filterbank(4, 400)
        >>> tuple(w.shape), round(float(w[0].norm()), 6)
        ((8, 400), 1.0)
    """
    centres, widths = mel_centres(n_filters, sample_rate, f_min, f_max)
    t = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    rows = []
    for f, b in zip(centres, widths):
        sigma = min(sample_rate * math.sqrt(2 * math.log(2)) / (math.pi * b), kernel_size / 6)
        g = torch.exp(-t ** 2 / (2 * sigma ** 2))
        cos = g * torch.cos(2 * math.pi * f * t / sample_rate)
        sin = g * torch.sin(2 * math.pi * f * t / sample_rate)
        scale = cos.norm()
        rows += [cos / scale, sin / scale]
    return torch.stack(rows)


def conv_token_counts(n_samples, hop, strides):
    """Token counts of :class:`ConvStem` for clips of ``n_samples`` (long tensor): ⌈n / hop⌉
    filterbank frames, then ⌈f / s⌉ per strided convolution.

    Example:
        >>> conv_token_counts(torch.tensor([64000, 16000, 1, 0]), 160, (2, 2)).tolist()
        [100, 25, 1, 0]
    """
    f = torch.div(n_samples + hop - 1, hop, rounding_mode="floor")
    for s in strides:
        f = torch.div(f + s - 1, s, rounding_mode="floor")
    return f


def _valid_frames(x, counts):
    """1.0 on the frames before each clip's count, 0.0 past it, shaped to multiply ``x``
    ([B, C, T] or [B, C, F, T]; counts [B])."""
    ok = torch.arange(x.shape[-1], device=x.device)[None, :] < counts[:, None]
    return ok.reshape(ok.shape[0], *([1] * (x.dim() - 2)), ok.shape[1]).to(x.dtype)


def _keep_valid(x, counts):
    """Zero the frames past each clip's count: x [B, C, T] or [B, C, F, T], counts [B]."""
    return x * _valid_frames(x, counts)


def zero_past(wavs, n_samples):
    """The waveforms with every sample past each clip's count set to 0."""
    ok = torch.arange(wavs.shape[1], device=wavs.device)[None, :] < n_samples[:, None]
    return wavs * ok.to(wavs.dtype)


def _random_spans(counts, n_masks, widest, generator=None):
    """``n_masks`` spans per row: widths uniform in ``[0, widest]`` (clipped to the row's
    count), starts uniform in ``[0, count − width]``; → (starts, widths) [B, n_masks] long."""
    b = counts.shape[0]
    u = torch.rand(b, n_masks, 2, generator=generator, dtype=torch.float64)
    top = torch.minimum(torch.full_like(counts, int(widest)), counts)[:, None]
    width = torch.floor(u[..., 0] * (top + 1).double()).long()
    start = torch.floor(u[..., 1] * (counts[:, None] - width + 1).double()).long()
    return start, width


def mask_bands(x, counts, time_masks=(0, 0), band_masks=(0, 0), generator=None):
    """SpecAugment's masks on band energies x [B, K, T] (0 = silence after ``log1p``): per clip,
    ``time_masks[0]`` spans of up to ``time_masks[1]`` frames inside its own ``counts`` frames
    and ``band_masks[0]`` spans of up to ``band_masks[1]`` of the K bands are set to 0.

    Example:
        >>> x = torch.ones(1, 4, 6)
        >>> y = mask_bands(x, torch.tensor([3]), (1, 3), (0, 0), torch.Generator().manual_seed(0))
        >>> y[0, :, 3:].sum().item(), y.shape == x.shape   # time masks stay in the clip
        (12.0, True)
    """
    b, k, t = x.shape
    keep = torch.ones(b, k, t, dtype=torch.bool)
    counts = counts.detach().cpu().long()
    pos_t, pos_k = torch.arange(t)[None, None, :], torch.arange(k)[None, None, :]
    if time_masks[0] > 0 and time_masks[1] > 0:
        s, w = _random_spans(counts, int(time_masks[0]), time_masks[1], generator)
        hit = ((pos_t >= s[..., None]) & (pos_t < (s + w)[..., None])).any(1)  # [B, T]
        keep &= ~hit[:, None, :]
    if band_masks[0] > 0 and band_masks[1] > 0:
        s, w = _random_spans(torch.full((b,), k), int(band_masks[0]), band_masks[1], generator)
        hit = ((pos_k >= s[..., None]) & (pos_k < (s + w)[..., None])).any(1)  # [B, K]
        keep &= ~hit[:, :, None]
    return x * keep.to(x.device, x.dtype)


class DensePatches(nn.Sequential):
    """The paper's dense front end on (possibly overlapping) patches (module docstring).

    Parameters ``0`` Linear(patch → hidden) and ``2`` Linear(hidden → D) (a ``Sequential``, so
    that checkpoints of the paper's model, whose front end was ``Sequential(Linear, ReLU,
    Linear)``, load unchanged).

    Example:
        >>> fe = DensePatches(400, 32, 16, hop=200)
        >>> h, n = fe(torch.randn(2, 1000), torch.tensor([1000, 450]))
        >>> tuple(h.shape), n.tolist(), fe.hop_samples
        ((2, 5, 16), [5, 3], 200)
    """

    def __init__(self, patch_size=400, hidden=2048, out_dim=64, hop=None):
        patch_size = int(patch_size)
        hop_samples = int(hop) if hop else patch_size
        if patch_size < 1 or not 1 <= hop_samples <= patch_size:
            raise ValueError(f"need 1 ≤ hop ≤ patch_size, got patch_size={patch_size}, "
                             f"hop={hop}")
        super().__init__(nn.Linear(patch_size, int(hidden)), nn.ReLU(),
                         nn.Linear(int(hidden), int(out_dim)))
        self.patch_size, self.hop_samples = patch_size, hop_samples

    def patches(self, wavs, n_samples):
        """``(patches [B, L, patch], counts [B])``: frame i covers ``[i·hop, i·hop + patch)``."""
        hop, p = self.hop_samples, self.patch_size
        wavs = zero_past(wavs, n_samples)
        n_frames = max(1, -(-wavs.shape[1] // hop))
        need = (n_frames - 1) * hop + p
        wavs = F.pad(wavs, (0, need - wavs.shape[1]))
        frames = wavs.unfold(1, p, hop)
        return frames, torch.div(n_samples + hop - 1, hop, rounding_mode="floor")

    def forward(self, wavs, n_samples):
        frames, counts = self.patches(wavs, n_samples)
        for layer in self:
            frames = layer(frames)
        return frames, counts


class MaskedBandNorm(nn.Module):
    """BatchNorm of band features ``x [B, K, T]`` over the valid frames only: in training the
    per-band mean and (biased) variance of the frames ``t < counts[b]`` of every clip normalise
    the batch, and running estimates (momentum ``m``, unbiased variance, as
    ``torch.nn.BatchNorm1d``) are kept for evaluation; then a per-band affine map. Frames past a
    clip's count stay 0, so padding changes neither the statistics nor any valid frame.

    Example:
        >>> norm = MaskedBandNorm(2)
        >>> x = torch.tensor([[[1., 3., 9.], [0., 2., 9.]]])   # frame 3 is padding
        >>> y = norm(x, torch.tensor([2]))
        >>> [round(v, 3) for v in y[0, 0].tolist()]
        [-1.0, 1.0, 0.0]
    """

    def __init__(self, n_bands, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum, self.eps = float(momentum), float(eps)
        self.weight = nn.Parameter(torch.ones(n_bands))
        self.bias = nn.Parameter(torch.zeros(n_bands))
        self.register_buffer("running_mean", torch.zeros(n_bands))
        self.register_buffer("running_var", torch.ones(n_bands))

    def forward(self, x, counts):
        ok = _valid_frames(x, counts)  # [B, 1, T]
        if self.training:
            n = ok.sum().clamp(min=1)
            mean = (x * ok).sum((0, 2)) / n
            var = ((x - mean[None, :, None]).square() * ok).sum((0, 2)) / n
            with torch.no_grad():
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return (y * self.weight[None, :, None] + self.bias[None, :, None]) * ok


class ConvStem(nn.Module):
    """Learnable (mel-Gabor initialised) filterbank + strided convolutions (module docstring).

    Arguments
    ---------
    out_dim : int
        Token size D.
    n_filters : int
        K bands (2K convolution channels: a cosine and a sine filter each).
    kernel_size, hop : int
        Filter length and hop in samples (400 = 25 ms, 160 = 10 ms at 16 kHz).
    channels : int
        Width of the strided convolutions.
    strides : tuple of int
        One ``Conv1d(k=3, padding=1) + GELU`` per entry, with that stride.
    init : str
        ``mel_gabor`` (:func:`gabor_filterbank`) or ``random`` (PyTorch's default).
    compression : float
        c of ``log(1 + c·E)``.
    sample_rate : int
        For the filterbank's frequencies.
    time_masks, band_masks : (int, int)
        (count, widest span) of the training-time masks on the band energies
        (:func:`mask_bands`; frames of ``hop`` samples, bands of K); (0, 0): none.
    conv_dims : int
        1: ``Conv1d`` over time with the K bands as channels; 2: ``Conv2d`` over (band, time),
        stride 2 along the bands, token width ``channels · ⌈K / 2^len(strides)⌉``.
    band_norm : str
        ``none`` or ``batch``: :class:`MaskedBandNorm` of the log band energies (after the
        masks), before the strided convolutions.

    Example:
        >>> stem = ConvStem(16, n_filters=8, channels=12)
        >>> h, n = stem(torch.randn(2, 16000), torch.tensor([16000, 8000]))
        >>> tuple(h.shape), n.tolist(), stem.hop_samples
        ((2, 25, 16), [25, 13], 640)
        >>> stem2d = ConvStem(16, n_filters=8, channels=4, conv_dims=2)
        >>> tuple(stem2d(torch.randn(2, 16000), torch.tensor([16000, 8000]))[0].shape)
        (2, 25, 16)
    """

    def __init__(self, out_dim=64, n_filters=64, kernel_size=400, hop=160, channels=64,
                 strides=(2, 2), init="mel_gabor", compression=1000.0, sample_rate=16000,
                 time_masks=(0, 0), band_masks=(0, 0), conv_dims=1, band_norm="none"):
        super().__init__()
        if band_norm not in ("none", "batch"):
            raise ValueError(f"band_norm must be 'none' or 'batch', got {band_norm!r}")
        if conv_dims not in (1, 2):
            raise ValueError(f"conv_dims must be 1 or 2, got {conv_dims!r}")
        self.conv_dims = int(conv_dims)
        if init not in ("mel_gabor", "random"):
            raise ValueError(f"init must be 'mel_gabor' or 'random', got {init!r}")
        self.kernel_size, self.hop = int(kernel_size), int(hop)
        self.strides = tuple(int(s) for s in strides)
        if self.hop < 1 or self.kernel_size < self.hop or min(self.strides, default=1) < 1:
            raise ValueError(f"need 1 ≤ hop ≤ kernel_size and strides ≥ 1, got hop={hop}, "
                             f"kernel_size={kernel_size}, strides={strides}")
        self.hop_samples = self.hop * math.prod(self.strides)
        self.n_filters = int(n_filters)
        self.compression = float(compression)
        self.time_masks = tuple(int(v) for v in time_masks)
        self.band_masks = tuple(int(v) for v in band_masks)
        if len(self.time_masks) != 2 or len(self.band_masks) != 2 or \
                min(self.time_masks + self.band_masks) < 0:
            raise ValueError(f"time_masks and band_masks are (count, widest) ≥ 0, got "
                             f"{time_masks}, {band_masks}")
        self.filterbank = nn.Conv1d(1, 2 * self.n_filters, self.kernel_size, stride=self.hop,
                                    bias=False)
        self.band_norm = MaskedBandNorm(self.n_filters) if band_norm == "batch" else None
        if init == "mel_gabor":
            with torch.no_grad():
                self.filterbank.weight.copy_(
                    gabor_filterbank(self.n_filters, self.kernel_size, sample_rate)[:, None, :])
        convs, width, bands = [], self.n_filters if conv_dims == 1 else 1, self.n_filters
        for s in self.strides:
            if conv_dims == 1:
                convs.append(nn.Conv1d(width, int(channels), 3, stride=s, padding=1))
            else:
                convs.append(nn.Conv2d(width, int(channels), 3, stride=(2, s), padding=1))
                bands = -(-bands // 2)
            width = int(channels)
        self.convs = nn.ModuleList(convs)
        if conv_dims == 2:
            width *= bands
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, int(out_dim))

    def band_energies(self, wavs, n_samples):
        """``log(1 + c·(re² + im²))`` [B, K, f₀] and f₀ per clip (frames past a clip zeroed)."""
        wavs = zero_past(wavs, n_samples)
        n_frames = max(1, -(-wavs.shape[1] // self.hop))
        need = (n_frames - 1) * self.hop + self.kernel_size
        x = self.filterbank(F.pad(wavs, (0, need - wavs.shape[1]))[:, None, :])
        e = x.reshape(x.shape[0], self.n_filters, 2, x.shape[-1]).square().sum(2)
        counts = torch.div(n_samples + self.hop - 1, self.hop, rounding_mode="floor")
        return _keep_valid(torch.log1p(self.compression * e), counts), counts

    def forward(self, wavs, n_samples):
        x, counts = self.band_energies(wavs, n_samples)
        if self.training:
            x = mask_bands(x, counts, self.time_masks, self.band_masks)
        if self.band_norm is not None:
            x = self.band_norm(x, counts)
        if self.conv_dims == 2:
            x = x[:, None]  # [B, 1, K, f₀]: one input channel, bands as a spatial axis
        for conv, s in zip(self.convs, self.strides):
            x = F.gelu(conv(x))  # output t reads frames 2t-1..2t+1 (s = 2): ⌈f / s⌉ of them
            counts = torch.div(counts + s - 1, s, rounding_mode="floor")
            x = _keep_valid(x, counts)
        x = x.flatten(1, -2)  # [B, C(·K'), T]
        return self.proj(self.norm(x.transpose(1, 2))), counts


def build_frontend(name, out_dim, patch_size=400, frontend_dim=2048, hop=None, options=None):
    """The front end ``name`` (:data:`FRONTENDS`) with token size ``out_dim``; ``options``: the
    extra keyword arguments of :class:`ConvStem` (``n_filters``, ``kernel_size``, ``hop``,
    ``channels``, ``strides``, ``init``, ``compression``, ``time_masks``, ``band_masks``,
    ``conv_dims``, ``band_norm``).

    Example:
        >>> build_frontend("conv", 16, options={"n_filters": 8, "channels": 8}).hop_samples
        640
        >>> build_frontend("dense", 16, 400, 32, hop=200).hop_samples
        200
    """
    if name == "dense":
        return DensePatches(patch_size, frontend_dim, out_dim, hop)
    if name == "conv":
        return ConvStem(out_dim, **dict(options or {}))
    raise ValueError(f"unknown front end {name!r}; valid: {', '.join(FRONTENDS)}")


__all__ = ["ConvStem", "DensePatches", "FRONTENDS", "MaskedBandNorm", "build_frontend",
           "conv_token_counts", "gabor_filterbank", "hz_to_mel", "mask_bands", "mel_centres",
           "mel_to_hz", "zero_past"]
