r"""Raw-waveform Transformer of Verma & Berger (2021) with pluggable self-attention.

"Audio Transformers: Transformer architectures for large scale audio understanding. Adieu
convolutions" (arXiv 2105.00335 v1, WASPAA 2021), REFERENCE §7. No public implementation exists;
this one follows the paper where it is explicit and documents every other choice.

Architecture
------------
::

    waveform [B, N] (16 kHz)
      → non-overlapping patches of 400 samples (25 ms)        [B, L, 400],  L = ⌈N / 400⌉
      → Dense(400→2048) → ReLU → Dense(2048→64)                [B, L, 64]    (front end)
      → + sinusoidal positional encoding → dropout
      → n_layers Transformer encoder layers (d_model 64)       (optional: pooling, multi-scale)
      → temporal pooling (mean | discrete | continuous)         [B, 64]
      → dropout → Linear(64→n_classes)                          logits / log-probabilities

* **Patches.** A clip of n samples has ⌈n / 400⌉ patches; its last, partial patch is completed
  with zeros (the samples past a clip's own length are zeroed first, so whatever padding a batch
  carries never reaches a valid patch). 1 s of audio → 40 patches, UrbanSound8K's 4 s → 160.
* **Variants** (:data:`VARIANTS`): ``small`` (3 layers), ``large`` (6 layers), ``large_pooling``
  (average pooling by 2 along time after every second layer except the last: after layers 2 and 4
  of 6, so 40 → 20 → 10 patches for 1 s), ``large_multiscale`` and ``large_pooling_multiscale``.
* **Multi-scale** (REFERENCE §7: half of the embedding dimensions kept, the other half averaged
  over windows of 1, 2, 4, 8 frames, no learned parameters). Defined here as: after **every**
  Transformer layer (before the between-layer pooling, if any), dims ``[0, D/2)`` are kept; dims
  ``[D/2, D)`` are split into ``len(windows)`` equal contiguous groups (D = 64: four groups of 8
  dims, 32–39, 40–47, 48–55, 56–63) and group g is replaced, at every frame t, by the mean of its
  valid frames in the non-overlapping block ``⌊t / w_g⌋`` of ``w_g`` frames (w = 1, 2, 4, 8; a
  Haar approximation at scale w_g, repeated back to full rate). Blocks start at frame 0 of every
  clip and count valid frames only (a clip's last block may be short), so padding never leaks in.
  See :func:`multiscale_average`.
* **Pooling between layers**: masked average of frame pairs (2k, 2k+1); a clip of n frames keeps
  ⌈n / 2⌉, its last odd frame is averaged alone. See :func:`block_mean`.

Front ends and input scale (issue 30)
-------------------------------------
``frontend="dense"`` (the default above; ``frontend_hop`` < ``patch_size`` for overlapping
patches) or ``"conv"``, a mel-Gabor-initialised convolutional stem with a token every 40 ms
(:mod:`audioattn_sb.models.frontends`; ``frontend_options`` its arguments).
``input_norm`` says how the tokens meet the positions (:meth:`AudioTransformer.add_positions`):
``none`` (the paper), ``gain`` (a learned input gain, initially ``input_gain``), ``layernorm``
(a LayerNorm on the tokens before the positions are added) or ``scaled_positions`` (the
positions scaled to each clip's token RMS). :func:`signal_to_position_db` measures how far the
waveform's part of the tokens lies under the positions. ``hparams/urbansound8k_transformer_compact
.yaml`` chose among them by evidence (docs/results.md, "Compact Transformer").

Self-attention
--------------
Every layer's self-attention uses the same probability mapping ``max_activation`` (names of
:data:`audioattn_sb.attention.max_activations.DISCRETE_ALPHA`: ``softmax``, ``entmax1333`` (α = 4/3
exactly), ``entmax15``, ``sparsemax``, or ``entmax`` with any α ≥ 1 given by ``alpha``), applied to
the scores ``QKᵀ/√d_head`` of each head over the valid keys (key padding mask; padded keys get
exactly 0 weight; a clip with no valid patch gets all-zero weights, never NaN). Softmax without
requested weights runs through ``torch.nn.functional.scaled_dot_product_attention``; every other
case computes the weights explicitly with :func:`audioattn_sb.attention.discrete.masked_attention`
(the project's one implementation of the mappings and of their masking).
``forward(..., return_attention=True)`` returns the weights of every layer and head in the
returned :class:`~audioattn_sb.attention.output.Attention`'s ``self_attention`` (a list of
``[B, heads, Q, K]`` tensors); otherwise nothing is kept.
Layer ℓ's frames are :meth:`AudioTransformer.layer_samples_per_frame` ``[ℓ]`` samples long (400,
or 800, 1600 after between-layer pooling): frame i covers samples ``[i·spf, (i+1)·spf)``.

A continuous name (``gaussian``, ``triweight``, ``biweight``; ``sparsemax`` and ``softmax``
are both) given as ``max_activation`` selects the discrete mapping of the same α
(:func:`self_attention_max_activation`: ``biweight`` → ``entmax15``), so that one
``--attn_max_activation`` can name the continuous pooling and the self-attention, as
:func:`build_transformer_pooling` does the other way round.

Open choices (not in the paper; all constructor arguments)
----------------------------------------------------------
=================  =========================================================================
``n_heads=8``      8 heads of 8 dims (Vaswani et al.'s head count; the paper's notes give none)
``ff_dim=1536``    feed-forward width, chosen so the large(+pooling) model with FSD50K's 200
                   outputs has 2,256,008 parameters (paper: 2.3 M); 2048 would give 2.65 M
``dropout=0.1``    after the positional encoding, on both residual branches and before the
                   classifier (Vaswani et al.'s placement); none inside the FF block (Vaswani
                   et al. have none there; its 1536-wide mask took ~20 % of a CPU step)
``attn_dropout=0`` no dropout on attention weights: keeps sparse weights exact and rows summing
                   to 1 during training too
``norm_first``     False: post-norm layers (Vaswani et al.); True gives pre-norm plus a final
                   LayerNorm (+2·d_model parameters)
positional enc.    fixed sinusoidal, added to the front-end output without √d scaling
training           (``hparams/urbansound8k_transformer.yaml``) Adam, weight decay 2e-6, a
                   triangular cyclic LR 2e-5 ↔ 3e-4 with a half cycle of 4 epochs (the first
                   rise is the warm-up), batch 32, 30 epochs, NLL loss (single-label; the
                   paper used Adam, and its notes mention a Huber loss for FSD50K's 200
                   multi-label outputs). ``hparams/fsd50k_transformer.yaml``: the same on
                   1 s chunks with a half cycle of 2 (much longer) epochs, 20 epochs, BCE
                   with logits (``--loss=huber`` for Huber on the sigmoid outputs)
=================  =========================================================================

Parameter counts (D = 64, F = 2048, ff 1536; per layer 215,104; front end 952,384):

===================================  =============  ==============
variant                              200 outputs    10 outputs
===================================  =============  ==============
small (3 layers)                     1,610,696      1,598,346
large / large + pooling / + m.-s.    2,256,008      2,243,658
===================================  =============  ==============

The pooling and multi-scale variants add no parameter; discrete/continuous final pooling adds its
scorer (discrete: 64·64 + 64 + 64 = 4,224). **Difference from the paper:** the paper's small model
is quoted at 0.9 M parameters, which cannot share this front end (the front end alone has 0.95 M);
its small model must have had a narrower front end or other sizes the notes do not give. Here
"small" is only the 3-layer version of the same model (``frontend_dim=1024, ff_dim=1024`` would
give 0.94 M with 200 outputs if matching that count matters).

Interface
---------
Same as the ACRNN, so :class:`audioattn_sb.brains.classification.ClassificationBrain`
(``hparams/urbansound8k_transformer.yaml``),
:class:`audioattn_sb.brains.multilabel.MultiLabelBrain` (``hparams/fsd50k_transformer.yaml``,
``output="logits"``) and ``recipes/train.py`` work unchanged: ``model(feats, lengths)`` →
``(outputs [B, C], attention)`` (an :class:`~audioattn_sb.attention.output.Attention`) with
``feats`` the waveform [B, N] and ``lengths`` SpeechBrain's relative lengths (of samples).
:class:`WaveformFeatures` (identity, with a ``frame_lengths`` method that keeps the relative
sample lengths) and :class:`PassThroughNorm` fill the Brain's ``compute_features`` and
``mean_var_norm`` slots. ``output="log_softmax"`` for the single-label Brain (NLL loss),
``"logits"`` for multi-label training.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from audioattn_sb.attention import build_pooling
from audioattn_sb.attention.discrete import MeanPooling, masked_attention
from audioattn_sb.attention.max_activations import (
    CONTINUOUS_ALPHA,
    DISCRETE_ALPHA,
    discrete_alpha,
    resolve_continuous,
)
from audioattn_sb.lengths import frame_counts
from audioattn_sb.models.frontends import DensePatches, build_frontend

#: how the front end's tokens meet the sinusoidal positions (:meth:`AudioTransformer.add_positions`)
INPUT_NORMS = ("none", "gain", "layernorm", "scaled_positions")

#: sample rate the patch size refers to (25 ms = 400 samples)
SAMPLE_RATE = 16000

#: the paper's variants → constructor arguments
VARIANTS = {
    "small": {"n_layers": 3, "pool_between_layers": False, "multi_scale": False},
    "large": {"n_layers": 6, "pool_between_layers": False, "multi_scale": False},
    "large_pooling": {"n_layers": 6, "pool_between_layers": True, "multi_scale": False},
    "large_multiscale": {"n_layers": 6, "pool_between_layers": False, "multi_scale": True},
    "large_pooling_multiscale": {"n_layers": 6, "pool_between_layers": True,
                                 "multi_scale": True},
}


def sinusoidal_positions(length, dim, device=None, dtype=torch.float32):
    """Fixed sinusoidal positional encoding [length, dim] (Vaswani et al. 2017).

    ``PE[t, 2i] = sin(t / 10000^(2i/dim))``, ``PE[t, 2i+1] = cos(t / 10000^(2i/dim))``.

    Example:
        >>> pe = sinusoidal_positions(3, 4)
        >>> pe.shape, pe[0].tolist()
        (torch.Size([3, 4]), [0.0, 1.0, 0.0, 1.0])
    """
    pos = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64)
                    * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe.to(dtype)


def block_mean(x, mask, window):
    """Mean of the valid frames in non-overlapping blocks of ``window`` frames.

    Arguments
    ---------
    x : torch.Tensor
        [B, L, C] frames.
    mask : torch.Tensor or None
        [B, L] bool, True = valid (None: all valid).
    window : int
        Block size w; block k covers frames [k·w, (k+1)·w) (the last block may be short).

    Returns
    -------
    (means [B, ⌈L/w⌉, C], block mask [B, ⌈L/w⌉]): a block with no valid frame has mean 0 and
    mask False.

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [5.0], [100.0]]])
        >>> means, m = block_mean(x, torch.tensor([[True, True, True, False]]), 2)
        >>> means.squeeze(-1).tolist(), m.tolist()
        ([[2.0, 5.0]], [[True, True]])
    """
    batch, length, channels = x.shape
    n_blocks = -(-length // window)
    pad = n_blocks * window - length
    if mask is None:
        m = torch.ones(batch, length, dtype=x.dtype, device=x.device)
    else:
        m = mask.to(x.dtype)
    xm = x * m[..., None]
    if pad:
        xm = F.pad(xm, (0, 0, 0, pad))
        m = F.pad(m, (0, pad))
    sums = xm.reshape(batch, n_blocks, window, channels).sum(2)
    counts = m.reshape(batch, n_blocks, window).sum(2)
    return sums / counts.clamp(min=1)[..., None], counts > 0


def multiscale_average(x, mask=None, windows=(1, 2, 4, 8)):
    """Multi-scale embedding: keep dims [0, D/2), block-average the other half per group.

    Dims ``[D/2, D)`` are split into ``len(windows)`` equal contiguous groups; group g is replaced
    at frame t by the mean of the valid frames of block ``⌊t / w_g⌋`` (see :func:`block_mean`).
    No learned parameters. Padded frames are returned as they came (the model zeroes them).

    Example:
        >>> x = torch.arange(8.0).reshape(1, 4, 2)          # D = 2, one group, window 2
        >>> multiscale_average(x, None, windows=(2,))[0].tolist()
        [[0.0, 2.0], [2.0, 2.0], [4.0, 6.0], [6.0, 6.0]]
    """
    length, dim = x.shape[1], x.shape[2]
    half = dim // 2
    group = (dim - half) // len(windows)
    parts = [x[..., :half]]
    for g, w in enumerate(windows):
        seg = x[..., half + g * group: half + (g + 1) * group]
        if w == 1:
            parts.append(seg)
            continue
        means, _ = block_mean(seg, mask, w)
        parts.append(means.repeat_interleave(w, dim=1)[:, :length])
    return torch.cat(parts, dim=-1)


def self_attention_max_activation(max_activation, alpha=None):
    """``(discrete mapping name, α)`` of the self-attention for ``--attn_max_activation``.

    Discrete names are kept (:func:`~audioattn_sb.attention.max_activations.discrete_alpha`); a
    continuous name selects the discrete mapping of the same α (``entmax`` with that α when
    no named mapping has it). Unknown names raise ``ValueError`` listing both sets of names.

    Example:
        >>> self_attention_max_activation("biweight"), self_attention_max_activation("gaussian")
        (('entmax15', 1.5), ('softmax', 1.0))
        >>> self_attention_max_activation("entmax", 1.7)
        ('entmax', 1.7)
    """
    if max_activation in DISCRETE_ALPHA:
        return max_activation, discrete_alpha(max_activation, alpha)
    if max_activation in CONTINUOUS_ALPHA:
        _, a = resolve_continuous(max_activation, alpha)
        for name, fixed in DISCRETE_ALPHA.items():
            if fixed is not None and math.isclose(fixed, a, rel_tol=1e-9):
                return name, fixed
        return "entmax", a
    try:
        discrete_alpha(max_activation, alpha)
    except ValueError as err:
        raise ValueError(
            f"{err}; for the Transformer's self-attention a continuous name "
            f"({', '.join(f for f in CONTINUOUS_ALPHA if f not in DISCRETE_ALPHA)}) also "
            "selects the discrete mapping of the same α") from None
    raise AssertionError("unreachable")  # pragma: no cover


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with a pluggable probability mapping.

    Parameters: ``qkv`` Linear(D→3D) and ``out`` Linear(D→D), 4D² + 4D (as
    ``nn.MultiheadAttention``). Scores ``QKᵀ/√d_head``; the mapping is applied per head and query
    over the valid keys.

    Arguments
    ---------
    d_model : int
        Embedding size D (divisible by ``n_heads``).
    n_heads : int
        Number of heads.
    max_activation : str
        softmax | entmax1333 | entmax15 | sparsemax | entmax (with ``alpha``).
    alpha : float or None
        α of ``entmax``.
    dropout : float
        Dropout on the attention weights (training only).

    Example:
        >>> att = MultiHeadSelfAttention(16, 4, "sparsemax")
        >>> mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
        >>> out, w = att(torch.randn(2, 5, 16), mask, need_weights=True)
        >>> out.shape, w.shape, w[1, :, :, 3:].abs().sum().item()
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]), 0.0)
    """

    def __init__(self, d_model, n_heads, max_activation="softmax", alpha=None, dropout=0.0):
        super().__init__()
        if n_heads < 1 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by n_heads ({n_heads}) (n_heads ≥ 1)"
            )
        self.max_activation, self.alpha = self_attention_max_activation(max_activation, alpha)
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = float(dropout)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None, need_weights=False):
        """x [B, L, D], key mask [B, L] (True = valid, None = all) → (out [B, L, D], weights).

        ``weights`` is [B, heads, L, L] when ``need_weights`` (else None).
        """
        batch, length, dim = x.shape
        q, k, v = (self.qkv(x).reshape(batch, length, 3, self.n_heads, self.head_dim)
                   .permute(2, 0, 3, 1, 4))  # each [B, H, L, dh]
        p_drop = self.dropout if self.training else 0.0
        weights = None
        if self.alpha == 1.0 and not need_weights:
            attn_mask = None
            if mask is not None:
                # a clip with no valid key attends to all (finite garbage, zeroed by the model)
                # instead of the NaN of an all-False row
                attn_mask = (mask | ~mask.any(-1, keepdim=True))[:, None, None, :]
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p_drop)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            key_mask = None if mask is None else mask[:, None, None, :]
            weights = masked_attention(scores, key_mask, self.max_activation, self.alpha)
            w = F.dropout(weights, p_drop) if p_drop > 0 else weights
            ctx = torch.matmul(w.to(v.dtype), v)
        out = self.out(ctx.transpose(1, 2).reshape(batch, length, dim))
        return out, (weights if need_weights else None)

    def extra_repr(self):
        return f"heads={self.n_heads}, max_activation={self.max_activation}, alpha={self.alpha:.4g}"


class ConvolutionModule(nn.Module):
    r"""Conformer's convolution module (Gulati et al. 2020) with padding kept out.

    ``Conv(x) = W_o SiLU(LN(DWConv_k(mask · GLU(W_i x))))``: a pointwise projection to 2D
    channels and a gated linear unit, the padded frames zeroed, a depthwise convolution of
    ``kernel_size`` frames (odd; zero padding at both ends), LayerNorm (Conformer has BatchNorm,
    whose batch statistics would make a clip's output depend on the clips beside it), SiLU and a
    pointwise projection back to D. A valid frame sees only valid frames and zeros, as the
    same clip alone would: padding cannot change a clip's output.

    Example:
        >>> conv = ConvolutionModule(16, 7)
        >>> x = torch.randn(2, 30, 16)
        >>> conv(x, torch.arange(30)[None] < torch.tensor([[30], [12]])).shape
        torch.Size([2, 30, 16])
    """

    def __init__(self, d_model, kernel_size):
        super().__init__()
        kernel_size = int(kernel_size)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel must be 0 (none) or an odd number of frames ≥ 1, got "
                             f"{kernel_size}")
        self.kernel_size = kernel_size
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2,
                                   groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        """x [B, L, D], mask [B, L] (True = valid) or None → [B, L, D]."""
        h = F.glu(self.pointwise_in(x), dim=-1)
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        return self.pointwise_out(F.silu(self.norm(h)))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}"


class TransformerLayer(nn.Module):
    """Transformer encoder layer: self-attention and ReLU feed-forward, residuals, LayerNorm.

    Post-norm (``norm_first=False``): ``x = LN(x + Drop(Att(x)))``, ``x = LN(x + Drop(FF(x)))``;
    pre-norm: ``x = x + Drop(Att(LN(x)))``, ``x = x + Drop(FF(LN(x)))``.
    ``FF(x) = W₂ ReLU(W₁ x + b₁) + b₂`` (no dropout inside: see the module docstring).
    ``drop_path`` p: each residual branch is dropped per clip in training (:meth:`branch_keep`).
    ``conv_kernel`` k > 0 adds a third residual branch between the two, Conformer's
    :class:`ConvolutionModule` over k frames (pre-norm: ``x = x + Drop(Conv(LN(x)))``; post-norm:
    ``x = LN(x + Drop(Conv(x)))``); 0 (the default): none.
    """

    def __init__(self, d_model, n_heads, ff_dim, dropout=0.1, attn_dropout=0.0,
                 norm_first=False, max_activation="softmax", alpha=None, drop_path=0.0,
                 conv_kernel=0):
        super().__init__()
        if not 0.0 <= float(drop_path) < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        self.drop_path = float(drop_path)
        self.conv = ConvolutionModule(d_model, conv_kernel) if int(conv_kernel) else None
        self.norm_conv = nn.LayerNorm(d_model) if self.conv is not None else None
        self.drop_conv = nn.Dropout(dropout) if self.conv is not None else None
        self.attention = MultiHeadSelfAttention(d_model, n_heads, max_activation, alpha,
                                                attn_dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.ReLU(),
                                nn.Linear(ff_dim, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)
        self.norm_first = bool(norm_first)

    def branch_keep(self, x):
        """Stochastic depth (Huang et al. 2016; DeiT's ``drop_path``): in training, a [B, 1, 1]
        factor that drops a residual branch for a whole clip with probability p and scales
        the kept ones by 1 / (1 − p), so the expected branch is unchanged; 1 otherwise."""
        if not self.training or self.drop_path == 0.0:
            return 1.0
        keep = 1.0 - self.drop_path
        return x.new_empty(x.shape[0], 1, 1).bernoulli_(keep) / keep

    def forward(self, x, mask=None, need_weights=False):
        if self.norm_first:
            a, w = self.attention(self.norm1(x), mask, need_weights)
            x = x + self.drop1(a) * self.branch_keep(x)
            if self.conv is not None:
                x = x + self.drop_conv(self.conv(self.norm_conv(x), mask)) * self.branch_keep(x)
            x = x + self.drop2(self.ff(self.norm2(x))) * self.branch_keep(x)
        else:
            a, w = self.attention(x, mask, need_weights)
            x = self.norm1(x + self.drop1(a) * self.branch_keep(x))
            if self.conv is not None:
                x = self.norm_conv(x + self.drop_conv(self.conv(x, mask)) * self.branch_keep(x))
            x = self.norm2(x + self.drop2(self.ff(x)) * self.branch_keep(x))
        return x, w


class AudioTransformer(nn.Module):
    """Verma & Berger's raw-waveform Transformer with pluggable attention (module docstring).

    Arguments
    ---------
    n_classes : int
        Number of outputs.
    pooling : nn.Module or None
        Final temporal pooling over the frames (input size ``d_model``), built by
        :func:`build_transformer_pooling` / :func:`audioattn_sb.attention.build_pooling`; None
        = masked mean over the valid frames (the paper).
    n_layers : int
        Transformer layers (small 3, large 6).
    d_model, n_heads, ff_dim, frontend_dim, patch_size :
        Sizes (64, 8, 1536, 2048, 400 samples).
    dropout, attn_dropout, norm_first :
        See the module docstring.
    pool_between_layers : bool
        Average pooling by 2 along time after every second layer (not after the last).
    multi_scale : bool
        Multi-scale averaging after every layer (:func:`multiscale_average`).
    multi_scale_windows : tuple of int
        Its windows (1, 2, 4, 8); D/2 must be divisible by their number.
    drop_path : float
        Stochastic depth: layer i of L drops its residual branches with probability
        ``drop_path · i / (L − 1)`` in training (0 for the first layer; DeiT's linear rule).
    conv_kernel : int
        0 (the paper): none; an odd k: a Conformer convolution module over k frames in every
        layer (:class:`ConvolutionModule`; a local prior for small data).
    max_activation : str
        Probability mapping of every self-attention layer.
    alpha : float or None
        α for ``max_activation="entmax"``.
    output : str
        ``log_softmax`` (single-label, NLL) or ``logits`` (multi-label).

    Example:
        >>> model = AudioTransformer(10, n_layers=3, pool_between_layers=True,
        ...                          max_activation="entmax15")
        >>> out, attention = model(torch.randn(2, 16000), torch.tensor([1.0, 0.3]),
        ...                        return_attention=True)
        >>> out.shape, [tuple(w.shape) for w in attention.self_attention]
        (torch.Size([2, 10]), [(2, 8, 40, 40), (2, 8, 40, 40), (2, 8, 20, 20)])
        >>> attention.weights.shape                 # the final (mean) pooling's weights
        torch.Size([2, 20])
    """

    def __init__(
        self,
        n_classes,
        pooling=None,
        n_layers=6,
        d_model=64,
        n_heads=8,
        ff_dim=1536,
        frontend_dim=2048,
        patch_size=400,
        dropout=0.1,
        attn_dropout=0.0,
        norm_first=False,
        pool_between_layers=False,
        multi_scale=False,
        multi_scale_windows=(1, 2, 4, 8),
        max_activation="softmax",
        alpha=None,
        output="log_softmax",
        frontend="dense",
        frontend_hop=None,
        frontend_options=None,
        input_norm="none",
        input_gain=10.0,
        drop_path=0.0,
        conv_kernel=0,
    ):
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got "
                             f"{input_norm!r}")
        if output not in ("log_softmax", "logits"):
            raise ValueError(f"output must be 'log_softmax' or 'logits', got {output!r}")
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be ≥ 1, got {n_layers}")
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be ≥ 1 sample, got {patch_size}")
        windows = tuple(int(w) for w in multi_scale_windows)
        if multi_scale:
            if not windows or min(windows) < 1:
                raise ValueError(f"multi_scale_windows must be positive, got {windows}")
            if d_model % 2 or (d_model // 2) % len(windows):
                raise ValueError(
                    f"multi-scale needs d_model/2 ({d_model / 2:g}) divisible by the number of "
                    f"windows ({len(windows)})"
                )
        self.output = output
        self.patch_size = int(patch_size)
        self.d_model = int(d_model)
        self.max_activation, self.alpha = self_attention_max_activation(max_activation, alpha)
        self.pool_between_layers = bool(pool_between_layers)
        self.multi_scale = bool(multi_scale)
        self.multi_scale_windows = windows
        self.frontend = build_frontend(frontend, d_model, self.patch_size, frontend_dim,
                                       frontend_hop, frontend_options)
        self.frontend_name = frontend
        self.hop_samples = int(self.frontend.hop_samples)
        self.input_norm = input_norm
        self.log_input_gain = (nn.Parameter(torch.tensor(math.log(float(input_gain))))
                               if input_norm == "gain" else None)
        self.embed_norm = nn.LayerNorm(d_model) if input_norm == "layernorm" else None
        self.input_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, n_heads, ff_dim, dropout, attn_dropout, norm_first,
                             self.max_activation, self.alpha,
                             float(drop_path) * i / max(1, int(n_layers) - 1), conv_kernel)
            for i in range(int(n_layers))
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else None
        self.pooling = pooling if pooling is not None else MeanPooling(d_model)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_classes)

    # ------------------------------------------------------------------------------------------
    def sample_counts(self, wavs, lengths=None):
        """Each clip's sample count n = round(rel·N) from SpeechBrain's relative lengths."""
        if wavs.dim() != 2:
            raise ValueError(f"expected a waveform batch [B, N], got shape {tuple(wavs.shape)}")
        batch, n_samples = wavs.shape
        if lengths is None:
            return torch.full((batch,), n_samples, dtype=torch.long, device=wavs.device)
        lengths = torch.as_tensor(lengths, device=wavs.device).reshape(-1)
        if lengths.numel() != batch:
            raise ValueError(f"expected {batch} relative lengths, got {lengths.numel()}")
        return frame_counts(lengths, n_samples)

    def patchify(self, wavs, lengths=None):
        """wavs [B, N], relative lengths [B] → (patches [B, L, P], patches per clip [B] long) of
        the dense front end: a clip has n = round(rel·N) samples and ⌈n / hop⌉ patches; samples
        past n are zeroed, the last partial patch is completed with zeros."""
        if not isinstance(self.frontend, DensePatches):
            raise ValueError(f"patchify is the dense front end's; this model's is "
                             f"{self.frontend_name!r}")
        return self.frontend.patches(wavs, self.sample_counts(wavs, lengths))

    def embed(self, x, lengths=None):
        """The front end: (tokens [B, L, D] before the positions, tokens per clip [B] long)."""
        n = self.sample_counts(x, lengths)
        if self.log_input_gain is not None:
            x = x * self.log_input_gain.exp()
        return self.frontend(x, n)

    def add_positions(self, h, mask):
        """Tokens + sinusoidal positions, by ``input_norm`` (:data:`INPUT_NORMS`): ``none`` and
        ``gain`` add them as they are, ``layernorm`` normalises the tokens first,
        ``scaled_positions`` scales the positions to each clip's token RMS (over its valid
        tokens and dims, not differentiated)."""
        pe = sinusoidal_positions(h.shape[1], self.d_model, h.device, h.dtype)
        if self.embed_norm is not None:
            h = self.embed_norm(h)
        if self.input_norm == "scaled_positions":
            m = mask[..., None].to(h.dtype)
            rms = ((h.detach().square() * m).sum((1, 2)) / (m.sum((1, 2)) * h.shape[2])
                   .clamp(min=1)).sqrt()
            # PE has an RMS of 1/√2 over its dims: scaled to the tokens' RMS
            return h + pe * (math.sqrt(2) * rms)[:, None, None]
        return h + pe

    def pools_after(self, layer):
        """True when the frames are average-pooled by 2 after layer ``layer`` (0-based): every
        second layer but the last, with ``pool_between_layers``."""
        return self.pool_between_layers and layer % 2 == 1 and layer < len(self.layers) - 1

    def layer_samples_per_frame(self):
        """Samples per frame of each layer's self-attention (``patch_size``, doubled after every
        between-layer pooling), e.g. ``[400, 400, 800, 800, 1600, 1600]`` for large + pooling.

        Example:
            >>> AudioTransformer(10, n_layers=3, pool_between_layers=True).layer_samples_per_frame()
            [400, 400, 800]
        """
        spf, out = self.hop_samples, []
        for i in range(len(self.layers)):
            out.append(spf)
            if self.pools_after(i):
                spf *= 2
        return out

    def forward(self, x, lengths=None, return_attention=False):
        """x [B, N] waveform, relative lengths [B] → (outputs [B, n_classes], attention).

        ``attention``: the final pooling's :class:`~audioattn_sb.attention.output.Attention`
        (``weights``, ``mask``, ``lengths`` at the pooling …) and, with ``return_attention``,
        ``self_attention``: one [B, heads, Q, K] tensor per layer.
        """
        h, n_valid = self.embed(x, lengths)
        frames = h.shape[1]
        mask = torch.arange(frames, device=x.device)[None, :] < n_valid[:, None]
        # no padding in the batch: skip the key masks (and SDPA's masked kernel) altogether
        layer_mask = None if bool(mask.all()) else mask
        h = self.input_dropout(self.add_positions(h, mask))
        if layer_mask is not None:
            h = h.masked_fill(~layer_mask[..., None], 0.0)
        layers = [] if return_attention else None
        for i, layer in enumerate(self.layers):
            h, w = layer(h, layer_mask, return_attention)
            if layers is not None:
                layers.append(w)
            if self.multi_scale:
                h = multiscale_average(h, layer_mask, self.multi_scale_windows)
            if self.pools_after(i):
                h, pooled_mask = block_mean(h, layer_mask, 2)
                n_valid = torch.div(n_valid + 1, 2, rounding_mode="floor")
                layer_mask = None if layer_mask is None else pooled_mask
            if layer_mask is not None:
                h = h.masked_fill(~layer_mask[..., None], 0.0)
        if self.final_norm is not None:
            h = self.final_norm(h)
        rel = n_valid.to(h.dtype) / h.shape[1]
        context, attention = self.pooling(h, rel)
        if layers is not None:
            attention = attention.with_self_attention(layers)
        logits = self.classifier(self.dropout(context))
        if self.output == "log_softmax":
            return torch.log_softmax(logits, dim=-1), attention
        return logits, attention

    def attention_info(self):
        """JSON-ready description of the attention (merged into results.json by the recipe).

        ``alpha`` is the self-attention's α (``max_activation`` names the self-attention mapping
        for this model); the final pooling is described under ``pooling``.

        Example:
            >>> AudioTransformer(10, n_layers=1, max_activation="entmax1333").attention_info()[
            ...     "self_attention"]
            {'max_activation': 'entmax1333', 'alpha': 1.3333333333333333, 'layers': 1, 'heads': 8}
        """
        pool = self.pooling
        alpha = getattr(pool, "alpha", None)
        return {
            "alpha": self.alpha,
            "self_attention": {
                "max_activation": self.max_activation,
                "alpha": self.alpha,
                "layers": len(self.layers),
                "heads": self.layers[0].attention.n_heads,
            },
            "pooling": {
                "domain": getattr(pool, "domain", type(pool).__name__),
                "max_activation": getattr(pool, "max_activation", None),
                "alpha": None if alpha is None else float(alpha),
            },
        }


@torch.no_grad()
def signal_to_position_db(model, wav):
    """How loud the waveform is in the first layer's input, against the positions (issue 30):
    ``10·log10(E_signal / E_positions)`` for one clip ``wav`` [N], where E_signal is the mean
    energy of the part of the tokens (after :meth:`AudioTransformer.add_positions` but before
    the positions are added) that depends on the waveform, ``tokens(wav) − tokens(0)``, and
    E_positions that of the positions as added. Measured in eval mode (no dropout).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = AudioTransformer(10, n_layers=1)
        >>> loud = signal_to_position_db(m, 0.3 * torch.randn(16000))
        >>> quiet = signal_to_position_db(m, 0.003 * torch.randn(16000))
        >>> round(loud - quiet)                 # the dense front end is linear at this level
        40
    """
    was = model.training
    model.eval()
    try:
        h, _ = model.embed(torch.stack([wav, torch.zeros_like(wav)]), None)
        plain = h if model.embed_norm is None else model.embed_norm(h)  # as they meet the PE
        pe = model.add_positions(h, torch.ones(h.shape[:2], dtype=torch.bool))[0] - plain[0]
        signal = plain[0] - plain[1]
        return float(10 * torch.log10(signal.square().mean() / pe.square().mean()))
    finally:
        model.train(was)


def build_transformer_pooling(domain, max_activation, input_dim, alpha=None,
                              attention_dim=None, continuous=None):
    """The Transformer's final pooling: :func:`audioattn_sb.attention.build_pooling`, except that
    a discrete name given for the ``continuous`` domain selects the continuous density of
    the same α (``entmax15`` → ``biweight``, ``entmax1333`` → ``triweight``), so that one
    ``--attn_max_activation`` can name both the self-attention and the pooling mapping.

    Example:
        >>> pool = build_transformer_pooling("continuous", "entmax15", 8,
        ...                                  continuous={"num_centres": 4})
        >>> pool.max_activation, pool.alpha
        ('biweight', 1.5)
        >>> type(build_transformer_pooling("mean", "softmax", 8)).__name__
        'MeanPooling'
    """
    if (domain == "continuous" and max_activation not in CONTINUOUS_ALPHA
            and max_activation in DISCRETE_ALPHA):
        alpha = discrete_alpha(max_activation, alpha)
        max_activation = "entmax"
    return build_pooling(domain, max_activation, input_dim, alpha=alpha,
                         attention_dim=attention_dim, continuous=continuous)


class LogMelTransformer(AudioTransformer):
    """The introductory log-mel self-attention classifier: log-mel frames [B, T, n_mels] →
    Linear(n_mels → d_model) → sinusoidal positions → Transformer layers (the same layers,
    pluggable self-attention and options as :class:`AudioTransformer`) → pooling (mean or any
    attention pooling) → classifier. Frames are the features' own (``hop_samples`` each, which
    :meth:`layer_samples_per_frame` reports for the self-attention export); a clip's valid frames
    are ``round(relative length · T)`` (:func:`audioattn_sb.lengths.frame_counts`).

    Example:
        >>> model = LogMelTransformer(80, 10, n_layers=2, n_heads=4, ff_dim=32)
        >>> out, attention = model(torch.randn(2, 50, 80), torch.tensor([1.0, 0.5]),
        ...                        return_attention=True)
        >>> out.shape, tuple(attention.self_attention[0].shape), model.layer_samples_per_frame()
        (torch.Size([2, 10]), (2, 4, 50, 50), [320, 320])
    """

    def __init__(self, n_mels, n_classes, pooling=None, hop_samples=320, **kwargs):
        if "patch_size" in kwargs or "frontend_dim" in kwargs:
            raise ValueError("LogMelTransformer takes n_mels and hop_samples, not patch_size / "
                             "frontend_dim (the waveform front end)")
        super().__init__(n_classes, pooling=pooling, patch_size=int(hop_samples),
                         frontend_dim=1, **kwargs)
        self.n_mels = int(n_mels)
        self.frontend = nn.Linear(self.n_mels, self.d_model)
        self.frontend_name = "log-mel"

    def embed(self, x, lengths=None):
        feats, n = self.patchify(x, lengths)
        return self.frontend(feats), n

    def patchify(self, feats, lengths=None):
        """feats [B, T, n_mels], relative lengths [B] → (frames [B, T, n_mels] with the padded
        frames zeroed, valid frames per clip [B] long)."""
        if feats.dim() != 3 or feats.shape[-1] != self.n_mels:
            raise ValueError(f"expected log-mel features [B, T, {self.n_mels}], got shape "
                             f"{tuple(feats.shape)}")
        batch, frames, _ = feats.shape
        if lengths is None:
            return feats, torch.full((batch,), frames, dtype=torch.long, device=feats.device)
        n = frame_counts(torch.as_tensor(lengths, device=feats.device).reshape(-1), frames)
        ok = torch.arange(frames, device=feats.device)[None, :] < n[:, None]
        return feats * ok[..., None].to(feats.dtype), n


class WaveformFeatures(nn.Module):
    """``compute_features`` for waveform models: the waveform itself, lengths unchanged.

    ``frame_lengths`` (used by the Brain when it exists) keeps the relative sample lengths, which
    the model turns into patch counts itself.

    Example:
        >>> f = WaveformFeatures()
        >>> f(torch.ones(2, 5)).shape, f.frame_lengths(torch.tensor([1.0, 0.4]), 5, 5).tolist()
        (torch.Size([2, 5]), [1.0, 0.4000000059604645])
    """

    def forward(self, wavs):
        return wavs

    def frame_lengths(self, wav_lens, n_samples=None, n_frames=None):
        return wav_lens


class PassThroughNorm(nn.Module):
    """``mean_var_norm`` that leaves the input as is (the paper feeds the raw waveform).

    Example:
        >>> PassThroughNorm()(torch.ones(1, 3), torch.ones(1)).tolist()
        [[1.0, 1.0, 1.0]]
    """

    def forward(self, x, lengths=None):
        return x


__all__ = [
    "LogMelTransformer",
    "AudioTransformer",
    "INPUT_NORMS",
    "MultiHeadSelfAttention",
    "PassThroughNorm",
    "SAMPLE_RATE",
    "TransformerLayer",
    "VARIANTS",
    "WaveformFeatures",
    "block_mean",
    "build_transformer_pooling",
    "multiscale_average",
    "self_attention_max_activation",
    "signal_to_position_db",
    "sinusoidal_positions",
]
