"""Feature-side helpers shared by the Brains and the datasets: exact frame lengths, and the
in-memory feature cache."""

import torch


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
    n = torch.round(wav_lens.double() * n_samples)
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
