"""Export Transformer self-attention in STEVE's N×1×M×K×Q layout (REFERENCE §8).

STEVE (Shams & Carson-Berndsen 2024, github.com/erfanashams/steve) takes, per utterance, the
attention of N layers × batch 1 × M heads plus the audio samples per frame (``spf``). Its README
calls the last two axes "K×Q", but its code reads ``attention[layer][0][head]`` as the matrix
PyTorch attention modules return — rows = queries, columns = keys, and its softmax toggle
normalises the last axis (the keys). :func:`stack_self_attention` writes exactly that: axis 3 is
the query frame, axis 4 the key frame (for self-attention both are the clip's frames, so the shape
is N×1×M×T×T either way), and the ``.npz`` says so in its ``axes`` entry.

Layers whose frame rate differs (the Transformer's between-layer pooling halves it) are brought to
the finest layer's frames by repeating each frame ``spf_layer / spf_finest`` times along both axes
and dividing by the key repetition (rows keep summing to 1), then cropping to the finest count.

    from audioattn_sb.inspection.self_attention import save_self_attention
    _, info = model(wave, lengths, return_attention=True)
    save_self_attention("x.npz", info["self_attention"], samples_per_frame=400)
"""

import numpy as np
import torch

from audioattn_sb.inspection.files import atomic_write

AXES = "layer,batch,head,query,key"


def _as_numpy(t):
    if torch.is_tensor(t):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def stack_self_attention(layers, batch_index=0, samples_per_frame=None, valid_frames=None):
    """Per-layer attention ``[B, heads, Q, K]`` → ``(array [N, 1, M, Q, K], spf)``.

    Arguments
    ---------
    layers : list of tensors or arrays
        One ``[B, M, Q, K]`` (or ``[M, Q, K]``) attention per layer.
    batch_index : int
        The clip of the batch to export.
    samples_per_frame : int or list of int or None
        Samples per frame, one for all layers or one per layer (needed when layers differ in
        length; they must then be integer multiples of the finest).
    valid_frames : int or None
        Keep only the first ``valid_frames`` frames (at the finest rate): the clip's own frames
        when it was padded in a batch.

    Returns
    -------
    (numpy.ndarray, int or None)
        float32 ``[N, 1, M, Q, K]`` and the samples per frame of that array.

    Example:
        >>> a = [torch.softmax(torch.randn(2, 4, 6, 6), -1) for _ in range(3)]
        >>> arr, spf = stack_self_attention(a, batch_index=1, samples_per_frame=400)
        >>> arr.shape, spf, bool(np.allclose(arr[2, 0, 3], a[2][1, 3].numpy()))
        ((3, 1, 4, 6, 6), 400, True)
        >>> pooled = [torch.full((1, 2, 4, 4), 0.25), torch.full((1, 2, 2, 2), 0.5)]
        >>> arr, spf = stack_self_attention(pooled, samples_per_frame=[400, 800])
        >>> arr.shape, spf, arr[1, 0, 0].sum(-1).tolist()
        ((2, 1, 2, 4, 4), 400, [1.0, 1.0, 1.0, 1.0])
    """
    if not layers:
        raise ValueError("no attention layers to export")
    mats = []
    for n, layer in enumerate(layers):
        a = _as_numpy(layer)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"layer {n}: expected attention [B, heads, Q, K], got {a.shape}")
        if not 0 <= batch_index < a.shape[0]:
            raise ValueError(f"layer {n}: batch_index {batch_index} outside the batch of "
                             f"{a.shape[0]}")
        mats.append(a[batch_index])  # [M, Q, K]
    heads = {m.shape[0] for m in mats}
    if len(heads) != 1:
        raise ValueError(f"layers have different head counts {sorted(heads)}")
    n_layers = len(mats)
    if samples_per_frame is None or np.isscalar(samples_per_frame):
        spfs = [samples_per_frame] * n_layers
    else:
        spfs = list(samples_per_frame)
        if len(spfs) != n_layers:
            raise ValueError(f"samples_per_frame has {len(spfs)} entries for {n_layers} layers")
    shapes = {m.shape[1:] for m in mats}
    if len(shapes) == 1 and len(set(spfs)) == 1:
        out = np.stack(mats)[:, None]
        spf = spfs[0]
    else:
        if any(s is None for s in spfs):
            raise ValueError(f"layers differ in length {sorted(shapes)}: give samples_per_frame "
                             "per layer (e.g. [400, 400, 800, 800, 1600, 1600])")
        spf = int(min(spfs))
        target_q = max(m.shape[1] * (int(s) // spf) for m, s in zip(mats, spfs))
        target_k = max(m.shape[2] * (int(s) // spf) for m, s in zip(mats, spfs))
        fine = []
        for n, (m, s) in enumerate(zip(mats, spfs)):
            r = int(s) // spf
            if r * spf != int(s):
                raise ValueError(f"layer {n}: samples_per_frame {s} is not a multiple of {spf}")
            up = np.repeat(np.repeat(m, r, axis=1), r, axis=2) / r
            fine.append(up)
        n_q = min(min(f.shape[1] for f in fine), target_q)
        n_k = min(min(f.shape[2] for f in fine), target_k)
        out = np.stack([f[:, :n_q, :n_k] for f in fine])[:, None]
    if valid_frames is not None:
        v = int(valid_frames)
        out = out[..., :v, :v]
    return np.ascontiguousarray(out, dtype=np.float32), spf


def save_self_attention(path, layers, samples_per_frame, sample_rate=16000, batch_index=0,
                        valid_frames=None, **meta):
    """Write ``attention`` [N, 1, M, Q, K] (:func:`stack_self_attention`), ``spf``,
    ``sample_rate``, ``axes`` and any extra ``meta`` (strings/numbers) to ``path`` (.npz),
    atomically. Returns the array written.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> _ = save_self_attention(p, [torch.rand(1, 2, 5, 5)] * 3, 400, file_id="clip1")
        >>> d = load_self_attention(p)
        >>> d["attention"].shape, int(d["spf"]), str(d["axes"]), str(d["file_id"])
        ((3, 1, 2, 5, 5), 400, 'layer,batch,head,query,key', 'clip1')
    """
    arr, spf = stack_self_attention(layers, batch_index, samples_per_frame, valid_frames)
    def write(tmp):
        np.savez(tmp, attention=arr, spf=np.int64(spf), sample_rate=np.int64(sample_rate),
                 axes=np.str_(AXES), **{k: np.asarray(v) for k, v in meta.items()})

    atomic_write(path, write, suffix=".tmp.npz")
    return arr


def load_self_attention(path):
    """The arrays of a :func:`save_self_attention` file as a dict (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


__all__ = ["AXES", "load_self_attention", "save_self_attention", "stack_self_attention"]
