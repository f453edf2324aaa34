"""Atomic writes of binary outputs (PNG, NPZ): :func:`audioattn_sb.utils.atomic_write`."""

from audioattn_sb.utils import atomic_write

__all__ = ["atomic_write"]
