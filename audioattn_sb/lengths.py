"""Relative lengths (SpeechBrain's convention: a fraction of the padded length per item) turned
into exact frame counts, masks and frame positions. The one rule of the package: the attention
poolings, the models (frames and samples), the Brain's normalisation, the feature normalisers,
the augmenters and inspection all count a clip's frames with :func:`frame_counts` and place them
with :func:`frame_positions` / :func:`clip_frame_positions` (tests/test_architecture.py checks
that no other module re-derives them)."""

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


def frame_positions(length, dtype=torch.float32, device=None, pad=0):
    """Frame mid-points in the clip's relative time, t_ℓ = (2ℓ−1)/(2L), ℓ = 1..L (computed in
    float64); ``pad`` > 0 continues the grid by ``pad`` frames past each end (ℓ = 1−pad …
    L+pad), e.g. for a basis evaluated beyond the clip.

    Example:
        >>> frame_positions(4).tolist()
        [0.125, 0.375, 0.625, 0.875]
        >>> frame_positions(1).tolist()
        [0.5]
        >>> frame_positions(2, torch.float64, pad=1).tolist()
        [-0.25, 0.25, 0.75, 1.25]
    """
    length = int(length)
    if length < 1:
        raise ValueError(f"length must be ≥ 1, got {length}")
    idx = torch.arange(1 - pad, length + pad + 1, dtype=torch.float64, device=device)
    return ((2.0 * idx - 1.0) / (2.0 * length)).to(dtype)


def clip_frame_positions(counts, max_len, dtype=torch.float32):
    """[B, max_len] frame mid-points of each clip in its own relative time: row b is
    (2ℓ−1)/(2 n_b) for its ``counts[b]`` = n_b ≥ 1 frames (the grid continues past n_b: mask
    those frames). Computed in float64.

    Example:
        >>> clip_frame_positions(torch.tensor([2, 4]), 4).tolist()
        [[0.25, 0.75, 1.25, 1.75], [0.125, 0.375, 0.625, 0.875]]
    """
    counts = torch.as_tensor(counts)
    idx = torch.arange(1, int(max_len) + 1, dtype=torch.float64, device=counts.device)
    return ((2.0 * idx - 1.0)[None, :] / (2.0 * counts.double()[:, None])).to(dtype)


__all__ = ["clip_frame_positions", "frame_counts", "frame_positions", "lengths_to_mask"]
