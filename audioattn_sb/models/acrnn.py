"""ACRNN: convolutional (+ optional recurrent) encoder, attention pooling over time, classifier.

Two configurations ship as hparams files:

* the predecessor's seed model (``hparams/urbansound8k_acrnn.yaml``): one Conv1d block over
  80 mel bands (80→128, k 5) + BatchNorm + MaxPool(3, stride 1) + ReLU + Dropout(0.15), no RNN,
  attention pooling, Linear(128→10): 69,514 parameters with discrete attention;
* Zhang et al.'s larger ACRNN (``hparams/urbansound8k_acrnn_zhang.yaml``): eight Conv2d layers
  (32, 32, 64, 64, 128, 128, 256, 256) with BatchNorm + ReLU and pooling between pairs, two
  bidirectional GRU layers, frame-level attention pooling.

Padding does not change a clip's output in eval mode: every block masks the frames beyond a clip's
length before they can leak into valid frames (zero before convolutions, −inf before max pooling),
and the pooling gives them zero weight.
"""

import torch
from torch import nn

from audioattn_sb.lengths import lengths_to_mask


class Conv1dBlock(nn.Module):
    """Conv1d(k, same padding) → BatchNorm1d → MaxPool1d(pool, stride 1) → ReLU → Dropout.

    Operates on [B, C, T] with a time mask [B, T] (True = valid).
    """

    def __init__(self, in_channels, out_channels, kernel_size=5, pool_size=3, dropout=0.15):
        super().__init__()
        if kernel_size % 2 != 1 or pool_size % 2 != 1:
            raise ValueError(
                f"kernel_size ({kernel_size}) and pool_size ({pool_size}) must be odd so that "
                "the time axis keeps its length"
            )
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm1d(out_channels)
        self.pool = nn.MaxPool1d(pool_size, stride=1, padding=pool_size // 2)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        m = mask[:, None, :]
        x = self.norm(self.conv(x.masked_fill(~m, 0.0)))
        x = self.pool(x.masked_fill(~m, float("-inf")))
        return self.drop(self.act(x)).masked_fill(~m, 0.0)


class Conv2dPair(nn.Module):
    """Two Conv2d(3×3) + BatchNorm2d + ReLU layers, then pooling (freq_pool × time_pool)."""

    def __init__(self, in_channels, out_channels, freq_pool=2, time_pool=1, dropout=0.0):
        super().__init__()
        if int(time_pool) < 1 or int(freq_pool) < 1:
            raise ValueError(f"time_pool ({time_pool}) and freq_pool ({freq_pool}) must be ≥ 1")
        layers = []
        for i in range(2):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
        self.layers = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d((time_pool, freq_pool), ceil_mode=True)
        self.drop = nn.Dropout(dropout)
        self.time_pool = time_pool

    def forward(self, x, mask):
        # x [B, C, T, F]; masking is skipped when no frame is padded (every clip full length)
        full = bool(mask.all())
        m = mask[:, None, :, None]
        x = self.layers[0:3](x if full else x.masked_fill(~m, 0.0))
        x = self.layers[3:6](x if full else x.masked_fill(~m, 0.0))
        x = self.pool(x if full else x.masked_fill(~m, float("-inf")))
        if self.time_pool > 1:
            mask = mask[:, :: self.time_pool]
        x = self.drop(x)
        return (x if full else x.masked_fill(~mask[:, None, :, None], 0.0)), mask


class ACRNN(nn.Module):
    """Attention-based convolutional recurrent network for clip classification.

    Arguments
    ---------
    n_mels : int
        Number of input feature bands F.
    n_classes : int
        Number of output classes.
    pooling : nn.Module
        Attention pooling (see :func:`audioattn_sb.attention.build_pooling`); its input size is
        the encoder output size (``conv_channels[-1]``, or 2×/1× ``rnn_neurons`` with an RNN).
    conv_channels : list of int
        Output channels of each Conv1d block (``conv2d=False``) or each Conv2d pair.
    kernel_sizes : list of int
        Kernel size of each Conv1d block (ignored by Conv2d pairs, which use 3×3).
    pool_size : int
        Max-pool width of the Conv1d blocks (stride 1).
    conv2d : bool
        Use Conv2d pairs over (time, frequency) instead of Conv1d blocks over time.
    freq_pool : int
        Frequency pooling after each Conv2d pair.
    time_pools : list of int or None
        Time pooling after each Conv2d pair (None: 1 everywhere, attention sees the input's
        10 ms frames). ``[2, 2, 1, 1]`` gives 40 ms frames. A padded clip keeps exactly
        ``ceil(n / pool)`` frames, so padding does not change its output.
    dropout : float
        Dropout after each block and before the classifier.
    conv_dropout : float or None
        Dropout after each Conv2d pair when it should differ from ``dropout`` (None: the same).
    rnn_type : str or None
        ``gru``, ``lstm`` or None (no RNN, the seed configuration).
    rnn_neurons, rnn_layers, rnn_bidirectional :
        RNN size.
    output : str
        ``log_softmax`` (single-label, NLL loss) or ``logits`` (multi-label).

    Example:
        >>> from audioattn_sb.attention import build_pooling
        >>> model = ACRNN(80, 10, build_pooling("discrete", "softmax", 128))
        >>> sum(p.numel() for p in model.parameters())
        69514
        >>> out, attention = model(torch.randn(2, 401, 80), torch.tensor([1.0, 0.5]))
        >>> out.shape, attention.weights.shape
        (torch.Size([2, 10]), torch.Size([2, 401]))
    """

    def __init__(
        self,
        n_mels,
        n_classes,
        pooling,
        conv_channels=(128,),
        kernel_sizes=(5,),
        pool_size=3,
        conv2d=False,
        freq_pool=2,
        time_pools=None,
        dropout=0.15,
        conv_dropout=None,
        rnn_type=None,
        rnn_neurons=0,
        rnn_layers=1,
        rnn_bidirectional=True,
        output="log_softmax",
    ):
        super().__init__()
        conv_channels = list(conv_channels)
        if not conv_channels:
            raise ValueError("conv_channels must name at least one block")
        if output not in ("log_softmax", "logits"):
            raise ValueError(f"output must be 'log_softmax' or 'logits', got {output!r}")
        self.output = output
        self.conv2d = bool(conv2d)
        blocks = []
        if self.conv2d:
            time_pools = [1] * len(conv_channels) if time_pools is None else list(time_pools)
            if len(time_pools) != len(conv_channels) or any(int(t) < 1 for t in time_pools):
                raise ValueError(
                    f"time_pools {time_pools} must have one entry ≥ 1 per Conv2d pair "
                    f"({len(conv_channels)})"
                )
            in_ch, freq = 1, n_mels
            for ch, tp in zip(conv_channels, time_pools):
                blocks.append(Conv2dPair(in_ch, ch, freq_pool=freq_pool, time_pool=int(tp),
                                         dropout=dropout if conv_dropout is None else conv_dropout))
                in_ch, freq = ch, -(-freq // freq_pool)
            enc_dim = in_ch * freq
        else:
            kernel_sizes = list(kernel_sizes)
            if len(kernel_sizes) == 1:
                kernel_sizes = kernel_sizes * len(conv_channels)
            if len(kernel_sizes) != len(conv_channels):
                raise ValueError(
                    f"kernel_sizes {kernel_sizes} must have one entry per conv block "
                    f"({len(conv_channels)})"
                )
            in_ch = n_mels
            for ch, k in zip(conv_channels, kernel_sizes):
                blocks.append(Conv1dBlock(in_ch, ch, k, pool_size, dropout))
                in_ch = ch
            enc_dim = in_ch
        self.blocks = nn.ModuleList(blocks)
        self.rnn = None
        if rnn_type:
            rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}.get(str(rnn_type).lower())
            if rnn_cls is None or rnn_neurons <= 0:
                raise ValueError(
                    f"rnn_type must be gru or lstm with rnn_neurons > 0, got {rnn_type!r}, "
                    f"{rnn_neurons}"
                )
            self.rnn = rnn_cls(
                enc_dim,
                rnn_neurons,
                num_layers=rnn_layers,
                batch_first=True,
                bidirectional=rnn_bidirectional,
                dropout=dropout if rnn_layers > 1 else 0.0,
            )
            enc_dim = rnn_neurons * (2 if rnn_bidirectional else 1)
        self.encoder_dim = enc_dim
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(enc_dim, n_classes)

    def encode(self, feats, lengths=None):
        """feats [B, T, F] → (frames [B, T', D], relative lengths [B])."""
        mask = lengths_to_mask(lengths, feats.shape[1], device=feats.device)
        mask = mask.expand(feats.shape[0], -1)
        if self.conv2d:
            x = feats.unsqueeze(1)  # [B, 1, T, F]
            for block in self.blocks:
                x, mask = block(x, mask)
            x = x.permute(0, 2, 1, 3).flatten(2)  # [B, T', C·F']
        else:
            x = feats.transpose(1, 2)  # [B, F, T]
            for block in self.blocks:
                x = block(x, mask)
            x = x.transpose(1, 2)
        n_valid = mask.sum(dim=1)
        if self.rnn is not None:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, n_valid.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.rnn(packed)
            x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        rel = n_valid.to(feats.dtype) / x.shape[1]
        return x, rel

    def forward(self, feats, lengths=None):
        """feats [B, T, F], relative lengths [B] → (outputs [B, C], the pooling's
        :class:`~audioattn_sb.attention.output.Attention` over the encoder's T' frames)."""
        frames, rel = self.encode(feats, lengths)
        context, attention = self.pooling(frames, rel)
        logits = self.classifier(self.dropout(context))
        if self.output == "log_softmax":
            return torch.log_softmax(logits, dim=-1), attention
        return logits, attention
