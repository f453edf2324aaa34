"""Relative lengths (SpeechBrain's convention: a fraction of the padded length per item) turned
into exact frame counts and masks. Shared by the attention poolings, the models, the Brain's
normalisation and the augmenters, so that all of them count a clip's frames the same way."""

import torch


def frame_counts(lengths, max_len):
    """Frame counts from SpeechBrain relative lengths: round(length·L) in float64 (float32 can
    land a count one off), at least 1 for any length > 0, at most L.

    Example:
        >>> frame_counts(torch.tensor([1.0, 0.61596, 1e-6, 0.0]), 401).tolist()
        [401, 247, 1, 0]
    """
    lengths = torch.as_tensor(lengths)
    counts = torch.round(lengths.double() * max_len).long()
    return torch.where(lengths > 0, counts.clamp(min=1), counts).clamp(max=max_len)


def lengths_to_mask(lengths, max_len, device=None):
    """Boolean mask [B, L] (True = valid frame) from SpeechBrain relative lengths.

    Relative lengths in (0, 1] are scaled by ``max_len`` and rounded; every row keeps at least one
    frame unless its relative length is exactly 0. ``None`` means all frames are valid.

    Example:
        >>> lengths_to_mask(torch.tensor([1.0, 0.5]), 4).tolist()
        [[True, True, True, True], [True, True, False, False]]
    """
    if lengths is None:
        return torch.ones(1, max_len, dtype=torch.bool, device=device)
    abs_len = frame_counts(torch.as_tensor(lengths, device=device), max_len)
    return torch.arange(max_len, device=abs_len.device)[None, :] < abs_len[:, None]


__all__ = ["frame_counts", "lengths_to_mask"]
