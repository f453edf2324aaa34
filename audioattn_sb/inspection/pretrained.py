r"""Self-attention of pretrained Hugging Face speech encoders, in the STEVE layout.

Families: wav2vec 2.0, HuBERT, WavLM, data2vec-audio (a convolutional feature encoder of total
stride 320 samples = 20 ms at 16 kHz, then Transformer layers) and Whisper's encoder (log-mel
frames every 10 ms, a stride-2 convolution: 20 ms per position). The model is loaded with
``transformers`` (the optional extra: ``pip install -e '.[hf]'``), from a local folder (offline) or
a hub name (downloaded as ``transformers`` does), with its eager attention, and every layer's
and head's attention is read from the library's own ``output_attentions`` — no patched copy of
their code.

The export (:func:`export_pretrained`) is the one of this project's own Transformer
(:mod:`audioattn_sb.inspection.self_attention`): ``attention`` float32 (or float16 with
``--float16``) [layers, 1, heads, T, T] (rows = query frames, columns = key frames), ``spf`` =
the model's samples per frame (320), ``sample_rate``, ``n_samples``, the TextGrid's intervals,
plus ``hf_model``, ``model_type`` and ``clip_mass`` [layers, heads]: the mean share of each
head's attention that falls on the clip's own frames. Whisper's encoder always sees 30 s (the
clip is padded, as its feature extractor does): its maps are cut to the clip's T = ⌈n / 320⌉
frames and each row renormalised over them (``clip_mass`` says how much was on the padding);
the other families see the clip alone (``clip_mass`` = 1). Frame i covers samples
``[i·spf, (i+1)·spf)``; wav2vec-style encoders give ⌊…⌋ frames from their convolution
arithmetic (:func:`conv_frames`), so T may be one or two frames less than ⌈n / spf⌉.

Summaries per layer and head (:func:`attention_summaries`, ``<name>_summary.csv``):

=====================  ==================================================================
``entropy``            mean over queries of −Σ_k p_qk log p_qk (nats; log T = uniform)
``mean_distance_s``    mean over queries of Σ_k p_qk |q − k| · spf / sr (seconds)
``diagonality``        mean over queries of the mass within ±1 frame of the query
``within_word``        mean over queries inside a word of the mass on keys in the same word
                       (empty without a TextGrid); ``within_phone`` likewise for phones
=====================  ==================================================================

A frame belongs to the interval holding its centre ((i + ½) · spf / sr seconds).
"""

import math
import os

import numpy as np

FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")
WARN_BYTES = 200 * 2 ** 20


def require_transformers():
    """The ``transformers`` module, or an ``ImportError`` saying how to install it."""
    try:
        import transformers
    except ImportError as err:  # pragma: no cover (depends on the environment)
        raise ImportError("--hf_model needs the optional extra: pip install -e '.[hf]' (installs "
                          "transformers)") from err
    return transformers


#: what a local model folder must hold: the model's config and its feature extractor (the
#: weights are checked by ``from_pretrained``, which names the file it misses)
REQUIRED_FILES = {"config.json": "the model's config (model.save_pretrained(DIR) writes it)",
                  "preprocessor_config.json":
                      "its feature extractor (sampling rate, normalisation); save it with "
                      "AutoFeatureExtractor.from_pretrained(<the model it was trained from>)"
                      ".save_pretrained(DIR), or copy that model's preprocessor_config.json "
                      "into DIR"}


def _check_local_folder(name, fname):
    """A local model folder without a file :data:`REQUIRED_FILES` lists is refused with one
    line naming the file and what to do (``transformers`` would end in an ``OSError`` traceback;
    guessing the extractor could silently change the input normalisation).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> open(d + "/config.json", "w").close()
        >>> _check_local_folder(d, "config.json")
        >>> _check_local_folder(d, "preprocessor_config.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...: no preprocessor_config.json, the file of its feature extractor ...
    """
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, fname)):
        what = REQUIRED_FILES[fname]
        what = what.replace("its ", "the file of its ", 1) if what.startswith("its ") \
            else "the file of " + what
        raise ValueError(f"{name}: no {fname}, {what}")


def _loaded(auto_class, name, what, **kwargs):
    """``auto_class.from_pretrained(name)`` with its ``OSError`` (a missing file, a hub name
    that cannot be reached offline) as one ``ValueError`` line naming ``name``."""
    try:
        return auto_class.from_pretrained(name, **kwargs)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name}: cannot load {what} ({first})") from err


def conv_frames(n_samples, kernels, strides):
    """Frames of a convolutional feature encoder: L ← ⌊(L − k) / s⌋ + 1 per layer.

    Example (wav2vec 2.0's encoder: 1 s at 16 kHz → 49 frames):
        >>> conv_frames(16000, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))
        49
    """
    n = int(n_samples)
    for k, s in zip(kernels, strides):
        n = (n - int(k)) // int(s) + 1
        if n < 1:
            return 0
    return n


class PretrainedEncoder:
    """A Hugging Face speech encoder that returns its self-attention per layer and head.

    Arguments
    ---------
    name_or_path : str
        A local folder holding the model and its feature extractor (``save_pretrained``), or a
        hub name.
    device : str
        torch device.

    Attributes: ``model_type`` (one of :data:`FAMILIES`), ``sample_rate``, ``spf`` (samples
    per attention frame), ``n_layers``, ``n_heads``.
    """

    def __init__(self, name_or_path, device="cpu"):
        transformers = require_transformers()
        self.name = os.fspath(name_or_path)
        _check_local_folder(self.name, "config.json")
        config = _loaded(transformers.AutoConfig, self.name, "its config")
        self.model_type = config.model_type
        if self.model_type not in FAMILIES:
            raise ValueError(f"{self.name}: model type {self.model_type!r} is not a speech "
                             f"encoder this export knows; valid: {', '.join(FAMILIES)}")
        _check_local_folder(self.name, "preprocessor_config.json")
        model = _loaded(transformers.AutoModel, self.name, "the model",
                        attn_implementation="eager")
        if self.model_type == "whisper":
            model = model.get_encoder()
        self.model = model.to(device).eval()
        self.device = device
        self.extractor = _loaded(transformers.AutoFeatureExtractor, self.name,
                                 "its feature extractor")
        self.sample_rate = int(self.extractor.sampling_rate)
        if self.model_type == "whisper":
            self.spf = int(self.extractor.hop_length) * 2  # conv2 of the encoder has stride 2
            self.n_layers, self.n_heads = config.encoder_layers, config.encoder_attention_heads
        else:
            self.spf = int(np.prod(config.conv_stride))
            self.n_layers, self.n_heads = config.num_hidden_layers, config.num_attention_heads
        self.config = config

    def frames(self, n_samples):
        """Attention frames of a clip of ``n_samples`` (module docstring)."""
        if self.model_type == "whisper":
            return math.ceil(int(n_samples) / self.spf)
        return conv_frames(n_samples, self.config.conv_kernel, self.config.conv_stride)

    def attention(self, wave):
        """Per-layer attention ``[heads, T, T]`` (float32 numpy) of a mono ``wave`` at
        :attr:`sample_rate`, and the ``clip_mass`` [layers, heads] (module docstring)."""
        import torch

        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        n_frames = self.frames(wave.shape[0])
        if n_frames < 1:
            raise ValueError(f"{wave.shape[0]} samples are too short for {self.name} "
                             f"(no attention frame)")
        if self.model_type == "whisper":
            limit = self.extractor.n_samples
            if wave.shape[0] > limit:
                raise ValueError(f"Whisper's encoder reads at most {limit / self.sample_rate:g} s; "
                                 f"the clip has {wave.shape[0] / self.sample_rate:.1f} s (cut it)")
        inputs = self.extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        key = "input_features" if self.model_type == "whisper" else "input_values"
        with torch.no_grad():
            out = self.model(inputs[key].to(self.device), output_attentions=True)
        layers, mass = [], []
        for a in out.attentions:
            a = a[0].float().cpu().numpy()  # [heads, Q, K]
            a = a[:, :n_frames, :n_frames]
            m = a.sum(axis=-1)  # [heads, T]
            mass.append(m.mean(axis=-1))
            layers.append((a / np.maximum(m[..., None], 1e-12)).astype(np.float32))
        return layers, np.asarray(mass, dtype=np.float64)


def _frame_interval_ids(n_frames, spf, sample_rate, intervals):
    """For each frame, the index of the interval holding its centre (−1 outside)."""
    centres = (np.arange(n_frames) + 0.5) * spf / float(sample_rate)
    ids = np.full(n_frames, -1, dtype=np.int64)
    for j, (start, end, _) in enumerate(intervals or []):
        ids[(centres >= float(start)) & (centres < float(end))] = j
    return ids


def attention_summaries(attention, spf, sample_rate, words=None, phones=None):
    """Rows ``{layer, head, entropy, mean_distance_s, diagonality, within_word,
    within_phone}`` of an ``attention`` array [layers, 1, heads, T, T] (module docstring).

    Example (a head attending to the previous frame, one to everything):
        >>> prev = np.eye(4, k=-1); prev[0, 0] = 1.0
        >>> att = np.stack([prev, np.full((4, 4), 0.25)])[None, None]   # [1, 1, 2, 4, 4]
        >>> rows = attention_summaries(att, 320, 16000)
        >>> [round(r["entropy"], 4) for r in rows], [r["mean_distance_s"] for r in rows]
        ([0.0, 1.3863], [0.015, 0.025])
        >>> [r["diagonality"] for r in rows]
        [1.0, 0.625]
    """
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 5 or att.shape[1] != 1 or att.shape[-1] != att.shape[-2]:
        raise ValueError(f"expected attention [layers, 1, heads, T, T], got {att.shape}")
    n_layers, _, n_heads, t, _ = att.shape
    q, k = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
    distance = np.abs(q - k) * spf / float(sample_rate)
    band = np.abs(q - k) <= 1
    tiers = {}
    for name, intervals in (("word", words), ("phone", phones)):
        if intervals is not None:
            ids = _frame_interval_ids(t, spf, sample_rate, intervals)
            tiers[name] = (ids, (ids[:, None] == ids[None, :]) & (ids[:, None] >= 0))
    rows = []
    for layer in range(n_layers):
        for head in range(n_heads):
            p = att[layer, 0, head]
            plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
            row = {"layer": layer, "head": head,
                   "entropy": float(0.0 - plogp.sum(axis=1).mean()),
                   "mean_distance_s": float((p * distance).sum(axis=1).mean()),
                   "diagonality": float((p * band).sum(axis=1).mean())}
            for name in ("word", "phone"):
                value = None
                if name in tiers:
                    ids, same = tiers[name]
                    inside = ids >= 0
                    if inside.any():
                        value = float((p * same).sum(axis=1)[inside].mean())
                row[f"within_{name}"] = value
            rows.append(row)
    return rows


SUMMARY_COLUMNS = ("layer", "head", "entropy", "mean_distance_s", "diagonality", "within_word",
                   "within_phone")


def summary_csv_text(rows):
    """The summary rows as CSV text (empty cells where a value is None)."""
    lines = [",".join(SUMMARY_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else (repr(r[c]) if isinstance(r[c], float)
                                                        else str(r[c])) for c in SUMMARY_COLUMNS))
    return "\n".join(lines) + "\n"


def export_pretrained(encoder, wav, out_dir, textgrid=None, word_tier=None, phone_tier=None,
                      float16=False):
    """Export ``wav`` (any rate / channels / format; resampled to the model's rate as the
    preparation does) through ``encoder`` (:class:`PretrainedEncoder`) into
    ``<out_dir>/<stem>.npz`` and ``<out_dir>/<stem>_summary.csv``; returns ``(npz path, csv
    path, summary rows)``."""
    import logging

    from audioattn_sb.data.audio import read_mono
    from audioattn_sb.inspection.self_attention import alignment_arrays, save_self_attention
    from audioattn_sb.utils import atomic_write_text

    wave = read_mono(wav, encoder.sample_rate)
    words = phones = None
    if textgrid is not None:
        from audioattn_sb.textgrid import read_textgrid, words_and_phones

        words, phones = words_and_phones(read_textgrid(textgrid), word_tier, phone_tier)
    layers, mass = encoder.attention(wave)
    stem = os.path.splitext(os.path.basename(os.fspath(wav)))[0]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{stem}.npz")
    t = layers[0].shape[-1]
    nbytes = len(layers) * layers[0].shape[0] * t * t * (2 if float16 else 4)
    if nbytes > WARN_BYTES:
        logging.getLogger(__name__).warning(
            "%s: the attention array takes %.0f MB%s", path, nbytes / 2 ** 20,
            "" if float16 else " (--float16 halves it)")
    arr = save_self_attention(
        path, layers, encoder.spf, sample_rate=encoder.sample_rate,
        n_samples=np.int64(wave.shape[0]), duration=np.float64(wave.shape[0] /
                                                               encoder.sample_rate),
        file_id=np.str_(stem), source=np.str_(os.fspath(wav)), hf_model=np.str_(encoder.name),
        model_type=np.str_(encoder.model_type), clip_mass=mass,
        **({"textgrid": np.str_(os.fspath(textgrid))} if textgrid is not None else {}),
        **alignment_arrays(words, phones), float16=float16)
    rows = attention_summaries(arr, encoder.spf, encoder.sample_rate, words, phones)
    csv_path = os.path.join(out_dir, f"{stem}_summary.csv")
    atomic_write_text(csv_path, summary_csv_text(rows))
    return path, csv_path, rows


__all__ = ["FAMILIES", "PretrainedEncoder", "attention_summaries", "conv_frames",
           "export_pretrained", "require_transformers", "summary_csv_text"]
