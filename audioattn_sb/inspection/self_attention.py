r"""Export Transformer self-attention in STEVE's N×1×M×K×Q layout (REFERENCE §8).

STEVE (Shams & Carson-Berndsen 2024, github.com/erfanashams/steve) takes, per utterance, the
attention of N layers × batch 1 × M heads plus the audio samples per frame (``spf``). Its README
calls the last two axes "K×Q", but its code reads ``attention[layer][0][head]`` as the matrix
PyTorch attention modules return — rows = queries, columns = keys, and its softmax toggle
normalises the last axis (the keys). :func:`stack_self_attention` writes exactly that: axis 3 is
the query frame, axis 4 the key frame (for self-attention both are the clip's frames, so the shape
is N×1×M×T×T either way), and the ``.npz`` says so in its ``axes`` entry
(``"layer,batch,head,query,key"``): ``attention[n, 0, m, q, k]`` is the weight query frame q of
head m in layer n gives key frame k, and ``attention[n, 0, m, q].sum() == 1`` over the clip's
frames.

Frames and time: frame i covers samples ``[i·spf, (i+1)·spf)``, i.e. seconds
``[i·spf/sr, (i+1)·spf/sr)``; a clip of n samples has T = ⌈n / spf⌉ frames (its last frame
partial, as the model's last patch).

Layers whose frame rate differs (the Transformer's between-layer pooling halves it: layer
frames of 400, 400, 800, 800, 1600, 1600 samples in large + pooling) are brought to the finest
layer's T frames: a coarse frame j covers the fine frames ``[j·r, (j+1)·r)`` that exist
(r = spf_layer / spf_finest; the clip's last block may be short, exactly as the model's pooling
averaged it, :func:`block_sizes`), so each query row is repeated over its block's fine frames and
each key's weight is split evenly over its block's fine frames. Rows keep summing to 1, and the
coarse weights are recovered exactly by summing a block's keys (at any query of the block). Every
layer of the array therefore has T × T frames at ``spf`` = the patch size, and the file's
``layer_spf`` lists each layer's own frame length.

From a trained run (``recipes/save_self_attention.py``, :func:`save_run_self_attention`): one
``<out>/<id>.npz`` per clip (an audio file given with ``--wav``, or the first N clips of a split;
multi-label runs' items are 1 s chunks) with

=====================  ===========================================================
``attention``          float32 [N, 1, M, T, T] (axes above)
``spf``                samples per frame of the array (the patch size, 400)
``layer_spf``          [N] each layer's own samples per frame
``sample_rate``        Hz (16000)
``axes``               ``"layer,batch,head,query,key"``
``n_samples``          the clip's samples at ``sample_rate``; T = ⌈n_samples / spf⌉
``duration``           seconds (n_samples / sample_rate)
``file_id``            the item's id (``--wav``: the file's name without extension)
``source``             the audio file read
``label``              true label(s), ``;``-joined (empty for a ``--wav`` file)
``pred``, ``score``    the top class and its probability
``max_activation``,     the self-attention's mapping and its α
``alpha``
``run_folder``         the trained run, and ``checkpoint`` the checkpoint used
``words_*``            ``words_start``, ``words_end`` (seconds), ``words_label``:
                       the TextGrid's word intervals (``--textgrid`` only; also
                       ``phones_*`` and ``textgrid``, its path)
=====================  ===========================================================

    from audioattn_sb.inspection.self_attention import save_self_attention
    _, attention = model(wave, lengths, return_attention=True)
    save_self_attention("x.npz", attention.self_attention, model.layer_samples_per_frame())
"""

import os
from pathlib import Path

import numpy as np
import torch

from audioattn_sb.utils import atomic_write

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
        if valid_frames is not None:
            v = int(valid_frames)
            out = out[..., :v, :v]
    else:
        if any(s is None for s in spfs):
            raise ValueError(f"layers differ in length {sorted(shapes)}: give samples_per_frame "
                             "per layer (e.g. [400, 400, 800, 800, 1600, 1600])")
        spf = int(min(spfs))
        finest = [m for m, s in zip(mats, spfs) if int(s) == spf]
        n_q = min(m.shape[1] for m in finest)
        n_k = min(m.shape[2] for m in finest)
        if valid_frames is not None:
            n_q, n_k = min(n_q, int(valid_frames)), min(n_k, int(valid_frames))
        fine = []
        for n, (m, s) in enumerate(zip(mats, spfs)):
            ratio = int(s) // spf
            if ratio * spf != int(s):
                raise ValueError(f"layer {n}: samples_per_frame {s} is not a multiple of {spf}")
            fine.append(_to_frame_rate(m, ratio, n_q, n_k, n))
        out = np.stack(fine)[:, None]
    return np.ascontiguousarray(out, dtype=np.float32), spf


def block_sizes(n_frames, ratio):
    """How many of ``n_frames`` fine frames each coarse frame of ``ratio`` fine frames covers: the
    model's between-layer pooling averages blocks ``[j·r, (j+1)·r)`` of the clip's own frames, so
    the last block may be short.

    Example:
        >>> block_sizes(7, 2).tolist(), block_sizes(7, 4).tolist(), block_sizes(8, 1).tolist()
        ([2, 2, 2, 1], [4, 3], [1, 1, 1, 1, 1, 1, 1, 1])
    """
    n_coarse = -(-int(n_frames) // int(ratio))
    return np.minimum(int(ratio), int(n_frames) - int(ratio) * np.arange(n_coarse))


def _to_frame_rate(mat, ratio, n_q, n_k, layer=0):
    """One layer's ``[M, Q_c, K_c]`` attention at ``ratio`` fine frames per frame → ``[M, n_q,
    n_k]`` at the fine rate: each query row repeated over the fine frames its block covers, each
    key's weight split evenly over the fine frames of its block (so rows keep their sums)."""
    rows, cols = block_sizes(n_q, ratio), block_sizes(n_k, ratio)
    if mat.shape[1] < rows.size or mat.shape[2] < cols.size:
        raise ValueError(f"layer {layer}: {mat.shape[1]}×{mat.shape[2]} frames cannot cover "
                         f"{n_q}×{n_k} frames at {ratio} frames each")
    mat = mat[:, :rows.size, :cols.size]
    fine = np.repeat(np.repeat(mat, rows, axis=1), cols, axis=2)
    return fine / np.repeat(cols, cols)[None, None, :]


def save_self_attention(path, layers, samples_per_frame, sample_rate=16000, batch_index=0,
                        valid_frames=None, float16=False, **meta):
    """Write ``attention`` [N, 1, M, Q, K] (:func:`stack_self_attention`; float16 with
    ``float16``, else float32), ``spf`` (of the array), ``layer_spf`` (each layer's own; -1 when
    unknown), ``sample_rate``, ``axes`` and any extra ``meta`` (strings/numbers/arrays) to
    ``path`` (.npz), atomically. Returns the array written (float32).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> _ = save_self_attention(p, [torch.rand(1, 2, 5, 5)] * 3, 400, file_id="clip1")
        >>> d = load_self_attention(p)
        >>> d["attention"].shape, int(d["spf"]), str(d["axes"]), str(d["file_id"])
        ((3, 1, 2, 5, 5), 400, 'layer,batch,head,query,key', 'clip1')
    """
    arr, spf = stack_self_attention(layers, batch_index, samples_per_frame, valid_frames)
    layer_spf = (list(samples_per_frame) if not (samples_per_frame is None
                                                  or np.isscalar(samples_per_frame))
                 else [samples_per_frame if samples_per_frame is not None else -1] * len(arr))

    def write(tmp):
        np.savez(tmp, attention=arr.astype(np.float16) if float16 else arr, spf=np.int64(-1 if spf is None else spf),
                 layer_spf=np.asarray(layer_spf, dtype=np.int64),
                 sample_rate=np.int64(sample_rate), axes=np.str_(AXES),
                 **{k: np.asarray(v) for k, v in meta.items()})

    atomic_write(path, write, suffix=".tmp.npz")
    return arr


def load_self_attention(path):
    """The arrays of a :func:`save_self_attention` file as a dict (no pickle); files written
    before the key ``max_activation`` was named so (``mapping``) read the same."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "mapping" in arrays and "max_activation" not in arrays:
        arrays["max_activation"] = arrays.pop("mapping")
    return arrays


# --------------------------------------------------------------------------- from a trained run
def frames_of(n_samples, samples_per_frame):
    """Frames of a clip of ``n_samples``: ⌈n / spf⌉ (the last one partial).

    Example:
        >>> frames_of(16000, 400), frames_of(16001, 400), frames_of(16001, 1600)
        (40, 41, 11)
    """
    return -(-int(n_samples) // int(samples_per_frame))


def clip_self_attention(attention, index, layer_spf, n_samples):
    """Clip ``index`` of a batch's ``attention.self_attention`` (an
    :class:`~audioattn_sb.attention.output.Attention`) as a list of per-layer
    ``[heads, Q_ℓ, K_ℓ]`` float32 arrays, cropped to the clip's own ⌈n_samples / spf_ℓ⌉ frames
    (the frames past them are the batch's padding, with zero weight).

    Example:
        >>> from audioattn_sb.attention.output import Attention
        >>> w = [torch.rand(2, 3, 5, 5), torch.rand(2, 3, 3, 3)]
        >>> [a.shape for a in clip_self_attention(Attention(self_attention=w), 1, [400, 800], 1300)]
        [(3, 4, 4), (3, 2, 2)]
    """
    layers = getattr(attention, "self_attention", None)
    if not layers:
        raise ValueError("the forward pass returned no self-attention (Attention."
                         "self_attention); run it with self_attention=True on a Transformer model")
    if len(layers) != len(layer_spf):
        raise ValueError(f"{len(layers)} attention layers but {len(layer_spf)} frame lengths")
    out = []
    for layer, spf in zip(layers, layer_spf):
        t = frames_of(n_samples, spf)
        out.append(_as_numpy(layer[index])[:, :t, :t])
    return out


def alignment_arrays(words=None, phones=None):
    """``.npz`` entries of word/phone intervals: ``words_start``, ``words_end`` (seconds),
    ``words_label`` (and ``phones_*``); a tier that is None is left out.

    Example:
        >>> a = alignment_arrays(words=[(0.03, 0.52, "author")])
        >>> sorted(a), a["words_end"].tolist(), a["words_label"].tolist()
        (['words_end', 'words_label', 'words_start'], [0.52], ['author'])
    """
    out = {}
    for name, tier in (("words", words), ("phones", phones)):
        if tier is None:
            continue
        out[f"{name}_start"] = np.asarray([float(s) for s, _, _ in tier], dtype=np.float64)
        out[f"{name}_end"] = np.asarray([float(e) for _, e, _ in tier], dtype=np.float64)
        out[f"{name}_label"] = np.asarray([str(w) for _, _, w in tier], dtype=np.str_)
    return out


def alignments_of(data):
    """``(words, phones)`` interval lists of a loaded export (None where absent): the inverse
    of :func:`alignment_arrays`.

    Example:
        >>> alignments_of(alignment_arrays(words=[(0.03, 0.52, "author")]))
        ([(0.03, 0.52, 'author')], None)
    """
    out = []
    for name in ("words", "phones"):
        if f"{name}_start" not in data:
            out.append(None)
            continue
        out.append([(float(s), float(e), str(w)) for s, e, w in
                    zip(data[f"{name}_start"], data[f"{name}_end"], data[f"{name}_label"])])
    return tuple(out)


def export_clip(path, layers, layer_spf, n_samples, sample_rate, words=None, phones=None,
                **meta):
    """Write one clip's per-layer attention (:func:`clip_self_attention`) in the STEVE layout
    at the finest frame rate (T = ⌈n_samples / min(layer_spf)⌉), with ``n_samples``,
    ``duration``, the alignments and ``meta`` (module docstring). Returns the array."""
    valid = frames_of(n_samples, min(layer_spf))
    extra = {k: v for k, v in meta.items() if v is not None}
    return save_self_attention(path, layers, list(layer_spf), sample_rate=sample_rate,
                               valid_frames=valid, n_samples=np.int64(n_samples),
                               duration=np.float64(int(n_samples) / float(sample_rate)),
                               **alignment_arrays(words, phones), **extra)


def _file_stem(path):
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def save_run_self_attention(run, out_dir, wav=None, textgrid=None, n_clips=10, split="test",
                            word_tier=None, phone_tier=None, progress=True):
    """Export a trained Transformer run's self-attention (module docstring) into ``out_dir``.

    With ``wav``: that audio file (any rate / channels, read as the dataset preparation does:
    :meth:`~audioattn_sb.inspection.trained_run.TrainedRun.read_audio`), saved as
    ``<out_dir>/<wav stem>.npz``, with the intervals of ``textgrid`` (a Praat
    TextGrid; tiers found by name, :func:`audioattn_sb.textgrid.words_and_phones`). Without: the
    first ``n_clips`` items of ``split`` (manifest order; -1 = all), ``<out_dir>/<id>.npz`` each.
    Returns the paths written.
    """
    from audioattn_sb.inspection.export import entry_label, iterate_batches, split_data

    out_dir = Path(out_dir)
    model = run.model
    run.check_self_attention()
    common = {"max_activation": np.str_(model.max_activation), "alpha": np.float64(model.alpha),
              "run_folder": np.str_(run.run_folder), "checkpoint": np.str_(run.checkpoint)}
    written = []
    if wav is not None:
        words = phones = None
        if textgrid is not None:
            from audioattn_sb.textgrid import read_textgrid, words_and_phones

            words, phones = words_and_phones(read_textgrid(textgrid), word_tier, phone_tier)
        wave = run.read_audio(wav)
        out = run.forward_waveform(wave, wav, item_id=_file_stem(wav), capture_features=False,
                                   self_attention=True)
        n_samples = int(wave.numel())
        layer_spf = list(model.layer_samples_per_frame())
        maps = clip_self_attention(out.info, 0, layer_spf, n_samples)
        scores = out.scores[0]
        pred_id = int(np.argmax(scores))
        path = out_dir / f"{_file_stem(wav)}.npz"
        export_clip(path, maps, layer_spf, n_samples,
                    run.sample_rate, words, phones, file_id=np.str_(_file_stem(wav)),
                    source=np.str_(os.fspath(wav)), label=np.str_(""),
                    pred=np.str_(run.class_label(pred_id)),
                    score=np.float64(scores[pred_id]),
                    textgrid=None if textgrid is None else np.str_(os.fspath(textgrid)),
                    **common)
        return [str(path)]
    limit = None if n_clips is None or int(n_clips) < 0 else int(n_clips)
    dataset, entries, class_names = split_data(run, split, limit=limit)
    layer_spf = model.layer_samples_per_frame()
    for out in iterate_batches(run, dataset, progress, desc=f"self-attention ({split})",
                               capture_features=False, self_attention=True):
        for i, fid in enumerate(out.ids):
            entry = entries[fid]
            n_samples = out.input_lengths[i]
            layers = clip_self_attention(out.info, i, layer_spf, n_samples)
            pred = int(np.argmax(out.scores[i]))
            path = out_dir / f"{fid}.npz"
            export_clip(path, layers, layer_spf, n_samples, run.sample_rate,
                        file_id=np.str_(fid), source=np.str_(entry.get("wav", "")),
                        label=np.str_(entry_label(entry)),
                        pred=np.str_(class_names[pred] if pred < len(class_names) else pred),
                        score=np.float64(out.scores[i][pred]), **common)
            written.append(str(path))
    return written


__all__ = ["AXES", "alignment_arrays", "alignments_of", "block_sizes", "clip_self_attention",
           "export_clip", "frames_of", "load_self_attention", "save_run_self_attention",
           "save_self_attention", "stack_self_attention"]
