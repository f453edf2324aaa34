"""Feature-side helpers shared by the Brains and the datasets: exact frame lengths, and the
in-memory feature cache."""

import torch
from speechbrain.processing.features import InputNormalization

from audioattn_sb.lengths import frame_counts


def frame_lengths(wav_lens, n_samples, n_frames, hop_samples):
    """Relative frame lengths that count exactly the frames a clip has on its own.

    SpeechBrain passes relative lengths; ``round(rel · frames)`` can count one frame more for a
    padded clip than the clip has alone (a centred STFT of n samples has ``n // hop + 1`` frames),
    which breaks padding invariance. This returns ``(n_i // hop + 1) / n_frames`` with
    ``n_i = round(rel_i · n_samples)``.

    Example:
        >>> frame_lengths(torch.tensor([32137 / 48000, 1.0]), 48000, 301, 160).mul(301).tolist()
        [201.0, 301.0]
    """
    n = frame_counts(wav_lens, n_samples).double()
    frames = torch.clamp(torch.div(n, hop_samples, rounding_mode="floor") + 1, max=n_frames)
    return (frames / n_frames).to(wav_lens.dtype)


class FeatureCache:
    """Features computed once per clip, on the CPU, then kept in memory for every later epoch.

    The features of the seed models (Fbank, no augmentation) do not change between epochs, so
    recomputing them (and re-reading the audio) each epoch is wasted work. Memory: 80 mel bands ×
    100 frames/s × 4 bytes = 32 kB per second of audio (UrbanSound8K: ~1.1 GB). Set
    ``feature_cache: False`` to compute them per batch instead; with waveform augmentation the
    training split computes them per batch anyway (:func:`audioattn_sb.recipe.build_datasets`).

    Example:
        >>> import torch
        >>> cache = FeatureCache(lambda w: w.unsqueeze(-1) * 2)
        >>> cache("a", lambda: torch.ones(1, 3)).tolist(), cache("a", None).shape
        ([[2.0], [2.0], [2.0]], torch.Size([3, 1]))
    """

    def __init__(self, compute_features):
        self.compute_features = compute_features
        self.store = {}

    @classmethod
    def for_hparams(cls, hparams, compute_features=None, device=None):
        """The feature cache of a run's hyperparameters (the one way training and inspection
        build it): None unless ``feature_cache: True``; features by ``compute_features`` (default
        the yaml's), the audio moved to ``device`` first when given.

        Example:
            >>> FeatureCache.for_hparams({"feature_cache": False}) is None
            True
            >>> c = FeatureCache.for_hparams({"feature_cache": True}, lambda w: w * 2, "cpu")
            >>> c("a", lambda: torch.ones(1, 2)).tolist()
            [2.0, 2.0]
        """
        if not hparams.get("feature_cache", False):
            return None
        compute = compute_features if compute_features is not None else \
            hparams["compute_features"]
        if device is None:
            return cls(compute)
        return cls(lambda wave: compute(wave.to(device)))

    def __call__(self, key, load_audio):
        feats = self.store.get(key)
        if feats is None:
            with torch.no_grad():
                feats = self.compute_features(load_audio()).squeeze(0).contiguous()
            self.store[key] = feats
        return feats

    @property
    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.store.values())


class ClipNormalization(torch.nn.Module):
    """Subtract each clip's mean log energy over all its frames and bands (one scalar per clip).

    SpeechBrain's ``InputNormalization(norm_type="sentence")`` subtracts a mean *per band*: that
    makes a model blind to the gain of a clip, and also to its long-term spectral envelope, which is
    most of what tells stationary textures apart (helicopter, rain, sea waves). One scalar per clip
    keeps the gain invariance and the envelope. Padded frames do not enter the mean; they are
    shifted like the rest (as SpeechBrain's normaliser does). Stateless: nothing is learned or
    stored, so checkpoints of either normaliser load into the other's recipe without error.

    ``std_norm=True`` also divides by the clip's scalar standard deviation.

    Example:
        >>> x = torch.tensor([[[1.0, 3.0], [5.0, 7.0], [0.0, 0.0]]])   # 2 valid frames of 3
        >>> ClipNormalization()(x, torch.tensor([2 / 3])).tolist()
        [[[-3.0, -1.0], [1.0, 3.0], [-4.0, -4.0]]]
    """

    def __init__(self, std_norm=False, epsilon=1e-10):
        super().__init__()
        self.std_norm = std_norm
        self.epsilon = epsilon

    def forward(self, x, lengths=None):
        n_frames = x.shape[1]
        if lengths is None:
            counts = torch.full((x.shape[0],), n_frames, device=x.device)
        else:
            counts = frame_counts(lengths, n_frames).clamp(min=1).to(x.device)
        mask = (torch.arange(n_frames, device=x.device)[None, :] < counts[:, None]).to(x.dtype)
        mask = mask.reshape(mask.shape + (1,) * (x.dim() - 2))
        n = mask.sum(1, keepdim=True) * x[0, 0].numel()
        dims = tuple(range(1, x.dim()))
        mean = (x * mask).sum(dims, keepdim=True) / n.reshape(-1, *([1] * (x.dim() - 1)))
        out = x - mean
        if self.std_norm:
            var = ((out * mask) ** 2).sum(dims, keepdim=True) / n.reshape(-1, *([1] * (x.dim() - 1)))
            out = out / var.clamp(min=self.epsilon).sqrt()
        return out


class GlobalNormalization(InputNormalization):
    """SpeechBrain's ``InputNormalization(norm_type="global", std_norm=True)`` (the training set's
    per-band mean and std: running statistics updated on training batches, saved and loaded by
    the checkpointer through SpeechBrain's own hooks), with a clear error instead of a shape
    mismatch from inside SpeechBrain when it is asked to normalise at evaluation before it has
    seen any training batch (a model evaluated without training or without its checkpoint).

    Example:
        >>> norm = GlobalNormalization()
        >>> _ = norm.train()(torch.tensor([[[1.0, 10.0], [3.0, 30.0]]]), torch.ones(1))
        >>> norm.eval()(torch.tensor([[[2.0, 20.0]]]), torch.ones(1)).abs().max().item() < 1e-6
        True
        >>> GlobalNormalization().eval()(torch.zeros(1, 2, 2), torch.ones(1))
        Traceback (most recent call last):
            ...
        RuntimeError: global feature normalisation has no statistics yet: it learns the training set's per-band mean and std on training batches and keeps them in the checkpoint; train first or load the run's checkpoint, or choose feature_normalisation: band_per_clip (or clip), which need none
    """

    def __init__(self):
        super().__init__(norm_type="global", std_norm=True)

    def forward(self, x, lengths=None, epoch=None):
        if not self.training and self.count == 0:
            raise RuntimeError(
                "global feature normalisation has no statistics yet: it learns the training "
                "set's per-band mean and std on training batches and keeps them in the "
                "checkpoint; train first or load the run's checkpoint, or choose "
                "feature_normalisation: band_per_clip (or clip), which need none")
        return super().forward(x, lengths, epoch)


#: ``feature_normalisation`` choices of the compact yamls (:func:`build_normalization`)
NORMALIZATIONS = ("band_per_clip", "clip", "global")


def build_normalization(kind):
    """The feature normaliser a yaml names (``feature_normalisation``).

    - ``band_per_clip``: subtract each band's mean over the clip (SpeechBrain's
      ``InputNormalization(norm_type="sentence", std_norm=False)``; removes the clip's spectral
      envelope);
    - ``clip``: subtract the clip's mean over all bands (:class:`ClipNormalization`; keeps the
      envelope, removes the gain);
    - ``global``: subtract the training set's per-band mean and divide by its std
      (:class:`GlobalNormalization`: SpeechBrain's ``InputNormalization(norm_type="global")``,
      running statistics updated during training and stored in the checkpoint; keeps envelope
      and gain).

    Example:
        >>> type(build_normalization("clip")).__name__
        'ClipNormalization'
        >>> build_normalization("band")
        Traceback (most recent call last):
            ...
        ValueError: feature_normalisation must be one of ('band_per_clip', 'clip', 'global'), got 'band'
    """
    if kind == "band_per_clip":
        return InputNormalization(norm_type="sentence", std_norm=False)
    if kind == "clip":
        return ClipNormalization()
    if kind == "global":
        return GlobalNormalization()
    raise ValueError(f"feature_normalisation must be one of {NORMALIZATIONS}, got {kind!r}")
