"""Feature-side helpers shared by the Brains."""

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
