"""The raw-waveform Transformer's learned front end seen as a filterbank (Verma & Berger 2021,
REFERENCE §7: its first layer learns "a non-linear, non-constant bandwidth filter-bank").

The first layer's filters (the dense front end's first ``Linear(patch → hidden)`` rows, the
convolutional stem's filterbank) are analysed like a filterbank:

* **responses**: the power response of each filter over frequency, ``|H(f)|²`` from a zero-padded
  FFT; for the stem's (cosine, sine) pairs the pair's energy response ``|H_cos(f)|² +
  |H_sin(f)|²`` (the phase-averaged response of ``re² + im²`` to a sinusoid at f);
* **peak frequency**: the frequency of the response's maximum;
* **bandwidth**: the width of the contiguous band around the peak where the response is at
  least half of it (−3 dB), from the FFT bins (a resolution of ``sample_rate / nfft``).

``recipes/plot_frontend.py RUN`` draws, for the run's trained model and for the same model at
initialisation (the run's yaml rebuilt with its own seed, which is seeded before any module is
built: the run's initial weights), the filters as waveforms (8, evenly spread over peak
frequency), their responses sorted by peak frequency (an image, dB) and peak frequency against
bandwidth, and writes each filter's peak and bandwidth to a CSV.
"""

import csv
import os

import numpy as np


def first_layer_filters(model):
    """``(filters [F, K] float64, paired)`` of a waveform Transformer's first layer: the dense
    front end's first Linear rows (``paired`` False) or the convolutional stem's filterbank, one
    row per (cosine, sine) pair stacked as ``[2F, K]`` (``paired`` True)."""
    from audioattn_sb.models.frontends import ConvStem, DensePatches

    front = getattr(model, "frontend", None)
    if isinstance(front, DensePatches):
        return front[0].weight.detach().double().cpu().numpy(), False
    if isinstance(front, ConvStem):
        return front.filterbank.weight.detach()[:, 0, :].double().cpu().numpy(), True
    raise ValueError(f"the model's front end ({type(front).__name__}) is not a waveform front "
                     "end (dense patches or the convolutional stem): only raw-waveform "
                     "Transformer runs have one to plot")


def power_responses(filters, paired=False, nfft=2048):
    """Power responses ``[F, nfft/2 + 1]`` (paired rows summed: module docstring).

    Example:
        >>> t = np.arange(64)
        >>> r = power_responses(np.stack([np.cos(2 * np.pi * 8 * t / 64)]), nfft=64)
        >>> int(r[0].argmax())
        8
    """
    filters = np.asarray(filters, dtype=np.float64)
    power = np.abs(np.fft.rfft(filters, n=max(int(nfft), filters.shape[1]), axis=1)) ** 2
    if paired:
        power = power[0::2] + power[1::2]
    return power


def peak_and_bandwidth(power, sample_rate):
    """``(peak frequencies [F] Hz, −3 dB bandwidths [F] Hz)`` of power responses
    ``[F, nfft/2 + 1]`` (module docstring).

    Example:
        >>> p = np.array([[0.0, 0.2, 0.6, 1.0, 0.7, 0.4, 0.0]])     # bins of 100 Hz
        >>> peak_and_bandwidth(p, 1200)
        (array([300.]), array([300.]))
    """
    power = np.asarray(power, dtype=np.float64)
    n_bins = power.shape[1]
    df = sample_rate / (2 * (n_bins - 1))
    peaks = power.argmax(1)
    widths = np.zeros(len(power))
    for i, (row, k) in enumerate(zip(power, peaks)):
        half = row[k] / 2
        lo = k
        while lo > 0 and row[lo - 1] >= half:
            lo -= 1
        hi = k
        while hi < n_bins - 1 and row[hi + 1] >= half:
            hi += 1
        widths[i] = (hi - lo + 1) * df
    return peaks * df, widths


def filterbank_summary(model, sample_rate=16000, nfft=2048):
    """``{"filters", "paired", "power", "freqs", "peak_hz", "bandwidth_hz", "order"}`` of a
    model's first layer; ``order`` sorts the filters by peak frequency."""
    filters, paired = first_layer_filters(model)
    power = power_responses(filters, paired, nfft)
    peak, width = peak_and_bandwidth(power, sample_rate)
    freqs = np.linspace(0, sample_rate / 2, power.shape[1])
    return {"filters": filters, "paired": paired, "power": power, "freqs": freqs,
            "peak_hz": peak, "bandwidth_hz": width, "order": np.argsort(peak, kind="stable")}


def plot_frontend(models, out_png, sample_rate=16000, nfft=2048, title=None):
    """One row per ``(name, model)`` of ``models``: filters as waveforms, responses sorted by
    peak frequency, peak frequency against bandwidth. Written atomically; returns the
    summaries ``{name: filterbank_summary}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audioattn_sb.plots import save_figure

    summaries = {name: filterbank_summary(m, sample_rate, nfft) for name, m in models}
    fig, axes = plt.subplots(len(summaries), 3, figsize=(15, 4.2 * len(summaries)),
                             squeeze=False)
    for row, (name, s) in zip(axes, summaries.items()):
        order = s["order"]
        step = 2 if s["paired"] else 1
        picks = order[np.linspace(0, len(order) - 1, 8).round().astype(int)]
        t_ms = 1000 * np.arange(s["filters"].shape[1]) / sample_rate
        for j, k in enumerate(picks):
            w = s["filters"][step * k]
            row[0].plot(t_ms, j + 0.45 * w / (np.abs(w).max() or 1), lw=0.8)
        row[0].set(xlabel="time (ms)", ylabel="filter (sorted by peak frequency)",
                   title=f"{name}: 8 of {len(order)} filters", yticks=[])
        db = 10 * np.log10(s["power"][order] / s["power"][order].max(1, keepdims=True) + 1e-10)
        im = row[1].imshow(db.T, origin="lower", aspect="auto", vmin=-40, vmax=0,
                           extent=[0, len(order), 0, sample_rate / 2000], cmap="magma")
        row[1].set(xlabel="filter (sorted by peak frequency)", ylabel="frequency (kHz)",
                   title=f"{name}: power responses (dB of each filter's peak)")
        fig.colorbar(im, ax=row[1], fraction=0.046)
        row[2].scatter(s["peak_hz"] / 1000, s["bandwidth_hz"], s=6, alpha=0.6)
        row[2].set(xlabel="peak frequency (kHz)", ylabel="−3 dB bandwidth (Hz)",
                   title=f"{name}: bandwidth against peak frequency", yscale="log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)
    return summaries


def write_summary_csv(summaries, path):
    """``model, filter, peak_hz, bandwidth_hz`` per filter (sorted by peak within each model),
    written atomically."""
    from audioattn_sb.utils import atomic_write_text

    lines = [["model", "filter", "peak_hz", "bandwidth_hz"]]
    for name, s in summaries.items():
        for k in s["order"]:
            lines.append([name, int(k), f"{s['peak_hz'][k]:.2f}", f"{s['bandwidth_hz'][k]:.2f}"])
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    atomic_write_text(path, buf.getvalue())
    return path


def initial_model(run_folder):
    """The run's model as initialised: its ``hyperparams.yaml`` rebuilt with its own seed (the
    yaml seeds before any module is built, so these are the run's initial weights)."""
    from hyperpyyaml import load_hyperpyyaml

    from audioattn_sb.inspection.trained_run import run_folder_overrides

    path = os.path.join(run_folder, "hyperparams.yaml")
    overrides = run_folder_overrides(run_folder, keep_seed=True)
    with open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)["model"].eval()


def _run_name(run):
    """The run's experiment/attention/split/seed (the last four parts of its folder).

    Example:
        >>> _run_name("results/esc10_x/discrete-softmax/test1_valid2/seed0")
        'esc10_x/discrete-softmax/test1_valid2/seed0'
    """
    parts = os.path.normpath(os.fspath(run)).split(os.sep)
    return "/".join(parts[-4:])


def main(argv=None):
    """``recipes/plot_frontend.py RUN [--out PNG] [--nfft N]``."""
    import argparse
    import sys

    from audioattn_sb.inspection.trained_run import load_trained_run

    p = argparse.ArgumentParser(prog="plot_frontend.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a trained raw-waveform Transformer run folder")
    p.add_argument("--out", default=None,
                   help="PNG to write (default <RUN>/frontend/frontend.png; the CSV beside it)")
    p.add_argument("--nfft", type=int, default=2048)
    ns = p.parse_args(sys.argv[1:] if argv is None else argv)
    trained = load_trained_run(run_folder=ns.run, device="cpu")
    sample_rate = int(trained.hparams.get("sample_rate", 16000))
    out = ns.out or os.path.join(ns.run, "frontend", "frontend.png")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    models = [("trained", trained.hparams["model"]), ("initial", initial_model(ns.run))]
    summaries = plot_frontend(models, out, sample_rate, ns.nfft,
                              title=f"{_run_name(ns.run)}: first layer")
    csv_path = write_summary_csv(summaries, os.path.splitext(out)[0] + ".csv")
    s = summaries["trained"]
    print(f"{len(s['order'])} filters ({'cos/sin pairs' if s['paired'] else 'dense rows'}); "
          f"median bandwidth trained {np.median(s['bandwidth_hz']):.0f} Hz, initial "
          f"{np.median(summaries['initial']['bandwidth_hz']):.0f} Hz -> {out}, {csv_path}")
    return out, csv_path


__all__ = ["filterbank_summary", "first_layer_filters", "initial_model", "peak_and_bandwidth",
           "plot_frontend", "power_responses", "write_summary_csv"]
