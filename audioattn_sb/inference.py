"""Classify audio files with a trained run, and see where its attention looked.

    from audioattn_sb.inference import load_model
    model = load_model("results/urbansound8k_acrnn/continuous-biweight/test1_valid2/seed0")
    result = model.classify_file("dog.wav", top_k=5)
    result.top_k            # [("dog_bark", 0.91), ("children_playing", 0.04), ...]
    result.attention["mu_seconds"], result.attention["support_start_s"]

:func:`load_model` reads the run folder only: its ``hyperparams.yaml`` and the checkpoint with the
lowest valid error, with ``torch.load(..., weights_only=True)``; nothing is downloaded
(:func:`audioattn_sb.inspection.trained_run.load_trained_run`). ``classify_file`` reads any audio
file libsndfile reads (any sample rate, bit depth, channel count: downmixed to mono and resampled
to the run's rate exactly as dataset preparation does, :mod:`audioattn_sb.data.audio`) and runs
the training Brain's own evaluation forward pass, so a clip gets the same scores as in the run's
test stage.

The attention comes as the record of :func:`audioattn_sb.inspection.attention.clip_attention`:
continuous pooling gives μ, σ², variance, support (normalised time and seconds) and the density
per second on a grid; discrete pooling gives the frame weights (and their moments). Transformer
runs also give their self-attention: ``result.self_attention`` is one ``[heads, Q, K]`` array per
layer (rows = query frames, columns = key frames, each row summing to 1) over the clip's
⌈n_samples / spf⌉ frames, with ``result.self_attention_spf`` the samples per frame of each layer
(400, and 800, 1600 after between-layer pooling); None for models without self-attention
(:mod:`audioattn_sb.inspection.self_attention` saves them in STEVE's layout). The command line is
``recipes/classify.py FILE.wav --model RUN [--top_k 5] [--plot out.png]``.

Multi-label runs (FSD50K) score the whole file as one input, not as the mean over 1 s chunks of
their test protocol.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from audioattn_sb.inspection.attention import clip_attention
from audioattn_sb.inspection.trained_run import load_trained_run


@dataclass
class Classification:
    """The result of classifying one clip.

    ``top_k``: ``[(label, score), ...]`` best first (scores are class probabilities: softmax of a
    single-label model, sigmoid of a multi-label one); ``scores``: every class's score;
    ``attention``: the attention record (see the module docstring); ``spec``: the model's input
    features with their axes (``features``, ``raw_features``, ``time_s``, ``freqs_hz`` …) for
    plotting; ``self_attention`` / ``self_attention_spf``: a Transformer's per-layer
    ``[heads, Q, K]`` weights and samples per frame (module docstring), else None.
    """

    file: str
    duration: float
    top_k: list
    scores: np.ndarray
    pred: str
    pred_id: int
    attention: dict
    spec: dict = field(default=None, repr=False)
    self_attention: list = field(default=None, repr=False)
    self_attention_spf: list = None

    def as_dict(self):
        """JSON-friendly summary (no arrays but the top-k)."""
        keys = ("attn_domain", "max_activation", "alpha_value", "mu", "var", "sigma_sq", "supp",
                "mu_seconds", "supp_seconds", "support_start_s", "support_end_s",
                "mass_in_clip", "n_frames")
        att = {k: _plain(self.attention.get(k)) for k in keys}
        out = {"file": self.file, "duration": self.duration, "pred": self.pred,
               "top_k": [[lab, float(s)] for lab, s in self.top_k], "attention": att}
        if self.self_attention is not None:
            out["self_attention"] = {"layers": len(self.self_attention),
                                     "heads": int(self.self_attention[0].shape[0]),
                                     "frames": [int(a.shape[-1]) for a in self.self_attention],
                                     "samples_per_frame": list(self.self_attention_spf)}
        return out


def _plain(v):
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return None if math.isnan(v) else (str(v) if math.isinf(v) else v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def describe_attention(record):
    """One line about where a clip's attention is, in seconds.

    Example:
        >>> describe_attention({"attn_domain": "continuous", "max_activation": "sparsemax",
        ...     "mu_seconds": 1.5, "support_start_s": 1.0, "support_end_s": 2.0,
        ...     "supp_seconds": 1.0, "mass_in_clip": 1.0})
        'continuous sparsemax: μ = 1.50 s, support [1.00, 2.00] s (1.00 s), mass in clip 1.00'
        >>> import numpy as np
        >>> describe_attention({"attn_domain": "discrete", "max_activation": "sparsemax",
        ...     "mu_seconds": 0.5, "density": np.array([0.0, 0.75, 0.25, 0.0]),
        ...     "density_t": np.array([0.25, 0.75, 1.25, 1.75])})
        'discrete sparsemax: 2/4 frames nonzero, peak at 0.75 s, centre of mass 0.50 s'
    """
    name = f"{record.get('attn_domain', '')} {record.get('max_activation', '')}".strip()
    if record.get("attn_domain") == "mean":
        name = "mean pooling (no attention)"
    if record.get("attn_domain") == "continuous":
        start, end = record.get("support_start_s"), record.get("support_end_s")
        if start is not None and math.isfinite(start):
            supp = (f"support [{start:.2f}, {end:.2f}] s ({record['supp_seconds']:.2f} s)")
        else:
            sd = math.sqrt(record.get("var", float("nan"))) * record.get("duration", 1.0)
            supp = f"σ = {sd:.2f} s (unbounded support)"
        return (f"{name}: μ = {record['mu_seconds']:.2f} s, {supp}, mass in clip "
                f"{record.get('mass_in_clip', float('nan')):.2f}")
    w = np.asarray(record["density"])
    t = np.asarray(record["density_t"])
    peak = float(t[int(w.argmax())]) if w.size else float("nan")
    return (f"{name}: {int((w > 0).sum())}/{w.size} frames nonzero, peak at {peak:.2f} s, "
            f"centre of mass {record['mu_seconds']:.2f} s")


class AudioClassifier:
    """A trained run ready to classify audio (see :func:`load_model`)."""

    def __init__(self, run, density_points=200):
        self.run = run
        self.density_points = int(density_points)

    @property
    def class_names(self):
        return self.run.class_names

    @property
    def sample_rate(self):
        return self.run.sample_rate

    def attention_config(self):
        return self.run.attention_config()

    def load_audio(self, path):
        """Any audio file → 1-D float32 tensor, mono, at the run's sample rate
        (:meth:`~audioattn_sb.inspection.trained_run.TrainedRun.read_audio`)."""
        return self.run.read_audio(path)

    def classify_file(self, path, top_k=5):
        """Classify an audio file: a :class:`Classification`."""
        path = os.fspath(path)
        return self.classify_waveform(self.load_audio(path), self.sample_rate, top_k=top_k,
                                      name=path)

    def classify_waveform(self, wave, sample_rate, top_k=5, name="waveform"):
        """Classify a waveform (``[samples]`` or ``[channels, samples]``, any rate)."""
        from audioattn_sb.data.audio import resample, to_mono
        from audioattn_sb.inspection.export import spec_arrays
        from audioattn_sb.inspection.self_attention import clip_self_attention

        wave = np.asarray(wave.detach().cpu() if torch.is_tensor(wave) else wave,
                          dtype=np.float32)
        if int(sample_rate) != self.sample_rate or wave.ndim > 1:
            wave = resample(to_mono(wave), int(sample_rate), self.sample_rate)
        wave_t = torch.from_numpy(np.ascontiguousarray(wave))
        duration = wave_t.numel() / self.sample_rate
        with_self_attention = self.run.has_self_attention()
        out = self.run.forward_waveform(wave_t, name, self_attention=with_self_attention)
        self_attention = layer_spf = None
        if with_self_attention:
            layer_spf = list(self.run.model.layer_samples_per_frame())
            self_attention = clip_self_attention(out.info, 0, layer_spf, wave_t.numel())
        scores = out.scores[0].astype(np.float64)
        order = np.argsort(-scores, kind="stable")[:max(1, int(top_k))]
        label = self.run.class_label

        record = clip_attention(out.info.clip(0), self.attention_config(), duration,
                                self.density_points)
        spec = spec_arrays(self.run, out, 0, {"duration": duration}, lambda: wave)
        return Classification(
            file=str(name), duration=duration,
            top_k=[(label(int(i)), float(scores[i])) for i in order],
            scores=scores, pred=label(int(order[0])), pred_id=int(order[0]),
            attention=record, spec=spec, self_attention=self_attention,
            self_attention_spf=layer_spf)

    def plot(self, result, path):
        """A 1000 × 400 PNG of the clip's features with the attention over it."""
        from audioattn_sb import plots

        lab, score = result.top_k[0]
        title = (f"{os.path.basename(result.file)} → {lab} (p={score:.2f}) · "
                 f"{plots.attention_label(result.attention)}")
        return plots.plot_clip_attention(path, result.attention, result.spec, title=title)


def load_model(run_folder, device="cpu", density_points=200):
    """An :class:`AudioClassifier` from a trained run folder (hparams + best checkpoint).

    Raises ``FileNotFoundError`` for a missing run folder or checkpoint and ``ValueError`` when
    the checkpoint does not fit the run's hparams.

    Example:
        >>> load_model("/no/such/run")
        Traceback (most recent call last):
        ...
        FileNotFoundError: /no/such/run: no such run folder; ...
    """
    return AudioClassifier(load_trained_run(run_folder=run_folder, device=device),
                           density_points=density_points)


def main(argv=None):
    """``recipes/classify.py FILE ... --model RUN [--top_k 5] [--plot out.png] [--json]``."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(
        prog="classify.py", allow_abbrev=False,
        description="Classify audio files with a trained run and show where it attended.")
    parser.add_argument("files", nargs="+", help="audio files (any rate / channels / bit depth)")
    parser.add_argument("--model", required=True, help="a trained run's output folder")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--plot", default=None,
                        help="PNG of the features with the attention (one file; with several "
                             "files: a folder, one <name>.png each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if ns.top_k < 1:
        raise ValueError(f"--top_k must be ≥ 1, got {ns.top_k}")
    model = load_model(ns.model, device=ns.device)
    results = []
    for path in ns.files:
        res = model.classify_file(path, top_k=ns.top_k)
        results.append(res)
        if ns.json:
            print(json.dumps(res.as_dict()))
        else:
            print(f"{path} ({res.duration:.2f} s)")
            width = max(len(lab) for lab, _ in res.top_k)
            for rank, (lab, score) in enumerate(res.top_k, 1):
                print(f"  {rank}. {lab:<{width}}  {score:.4f}")
            if res.attention:
                print(f"  attention: {describe_attention(res.attention)}")
            if res.self_attention is not None:
                sa = res.as_dict()["self_attention"]
                print(f"  self-attention: {sa['layers']} layers × {sa['heads']} heads "
                      f"({model.run.model.max_activation}), frames per layer {sa['frames']} of "
                      f"{sa['samples_per_frame']} samples")
        if ns.plot:
            if len(ns.files) == 1:
                target = ns.plot
            else:
                stem = os.path.splitext(os.path.basename(path))[0]
                target = os.path.join(ns.plot, f"{stem}.png")
            model.plot(res, target)
            if not ns.json:
                print(f"  plot: {target}")
    return results


__all__ = ["AudioClassifier", "Classification", "describe_attention", "load_model", "main"]
