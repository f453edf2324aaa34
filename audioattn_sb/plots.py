"""Figures for looking inside the models: spectrograms, attention over time, distributions.

Everything is drawn on a ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend change, no display needed) and written atomically (a temporary file in the same folder,
then ``os.replace``). Sizes are fixed in pixels (``dpi`` 100, no tight bounding box), so a figure
has the same size whatever it shows:

==================================  =================================================
figure                              pixels (width × height)
==================================  =================================================
:func:`plot_spectrogram`            800 × 300
:func:`plot_clip_attention`         1000 × 400
:func:`plot_attention_comparison`   1000 × (60 + 240·n) for n attention variants
:func:`plot_attention_distributions`  max(900, 110·classes + 200) × 700
:func:`plot_self_attention_grid`    (100 + 260·heads) × (80 + 260·layers)
==================================  =================================================

Attention records are the dicts of :func:`audioattn_sb.inspection.attention.clip_attention` (or
rebuilt from the CSVs by :func:`audioattn_sb.inspection.export.read_attention_csv`): a continuous
density is drawn as a curve per second with its support shaded (sparse families) and μ dashed;
discrete weights as stems at the frame centres. Spectrograms are the dicts of
:func:`audioattn_sb.inspection.export.load_spec` (``raw_features`` [T, F], ``time_s``,
``freqs_hz``).
"""

import math

import numpy as np

DPI = 100
#: Okabe–Ito colours (colour-blind safe), for attention variants in order
COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")


def new_figure(width_px, height_px, dpi=DPI, layout="constrained"):
    """A Figure of exactly ``width_px`` × ``height_px`` pixels on an Agg canvas.

    Example:
        >>> fig = new_figure(300, 200)
        >>> [int(v) for v in fig.get_size_inches() * fig.dpi]
        [300, 200]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    """Write ``fig`` as a PNG at its own pixel size, atomically; returns the path."""
    from audioattn_sb.utils import atomic_write

    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=fig.dpi, format="png"),
                        suffix=".tmp.png")


def png_size(path):
    """(width, height) of a PNG file, read from its IHDR chunk.

    Example:
        >>> import tempfile, os
        >>> p = save_figure(new_figure(120, 80), os.path.join(tempfile.mkdtemp(), "a.png"))
        >>> png_size(p)
        (120, 80)
    """
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# --------------------------------------------------------------------------- spectrograms
def _band_ticks(freqs_hz, n_ticks=5):
    """(band indices, labels) for a mel-band axis drawn by index, labelled in Hz/kHz."""
    freqs = np.asarray(freqs_hz, dtype=float)
    n = freqs.size
    if n == 0 or not np.isfinite(freqs).all():
        idx = np.linspace(0, max(n - 1, 0), min(n_ticks, max(n, 1))).round().astype(int)
        return idx + 0.5, [str(i) for i in idx]
    idx = np.linspace(0, n - 1, n_ticks).round().astype(int)
    labels = [f"{freqs[i] / 1000:.1f}k" if freqs[i] >= 1000 else f"{freqs[i]:.0f}" for i in idx]
    return idx + 0.5, labels


def draw_spectrogram(ax, spec, cmap="Greys", key="raw_features"):
    """Draw ``spec[key]`` ([T, F], frames at ``spec["time_s"]``) with time in seconds."""
    feats = np.asarray(spec.get(key) if spec.get(key) is not None else spec["features"])
    time_s = np.asarray(spec["time_s"], dtype=float)
    hop = float(spec.get("hop_seconds", time_s[1] - time_s[0] if time_s.size > 1 else 0.01))
    extent = [time_s[0] - hop / 2, time_s[-1] + hop / 2, 0, feats.shape[1]]
    ax.imshow(feats.T, origin="lower", aspect="auto", extent=extent, cmap=cmap,
              interpolation="nearest")
    ticks, labels = _band_ticks(spec.get("freqs_hz", np.full(feats.shape[1], np.nan)))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    hz = np.isfinite(np.asarray(spec.get("freqs_hz", [np.nan]), dtype=float)).all()
    ax.set_ylabel("mel band centre (Hz)" if hz else "feature")
    ax.set_xlabel("time (s)")


def plot_spectrogram(path, spec, title=None):
    """An 800 × 300 PNG of a clip's features (see :func:`draw_spectrogram`)."""
    fig = new_figure(800, 300)
    ax = fig.add_subplot()
    draw_spectrogram(ax, spec, cmap="magma")
    ax.set_title(title or _spec_title(spec), fontsize=10)
    return save_figure(fig, path)


def _spec_title(spec):
    parts = [str(spec.get("file_id", ""))]
    if spec.get("label") not in (None, ""):
        parts.append(str(spec["label"]))
    if spec.get("fold") not in (None, ""):
        parts.append(f"fold {spec['fold']}")
    if spec.get("duration") is not None:
        parts.append(f"{float(spec['duration']):.2f} s")
    src = str(spec.get("source", ""))
    if src and src != "model_input":
        parts.append(f"[{src}]")
    return " · ".join(p for p in parts if p)


# --------------------------------------------------------------------------- attention
def attention_label(record):
    """``"continuous biweight (α=1.5)"``-style name of a record's attention.

    Example:
        >>> attention_label({"attn_domain": "discrete", "max_activation": "entmax1333",
        ...                  "alpha_value": 4 / 3})
        'discrete entmax1333 (α=1.333)'
    """
    alpha = record.get("alpha_value")
    tail = f" (α={alpha:.4g})" if alpha is not None and math.isfinite(float(alpha)) else ""
    return f"{record.get('attn_domain', '')} {record.get('max_activation', '')}{tail}".strip()


def draw_attention(ax, record, colour=COLOURS[0], label=None, shade=True):
    """Draw a record's attention on ``ax`` (y = density per second, or frame weight)."""
    t = np.asarray(record["density_t"], dtype=float)
    d = np.asarray(record["density"], dtype=float)
    label = label or attention_label(record)
    if record.get("density_kind") == "frame_weight":
        nz = d > 0
        ax.vlines(t[nz], 0, d[nz], colors=colour, linewidth=1.2, label=label)
        ax.plot(t[nz], d[nz], "o", color=colour, markersize=2.5)
        ax.set_ylabel("frame weight")
    else:
        ax.plot(t, d, color=colour, linewidth=1.8, label=label)
        ax.fill_between(t, 0, d, color=colour, alpha=0.15, linewidth=0)
        ax.set_ylabel("attention density (1/s)")
        start, end = record.get("support_start_s"), record.get("support_end_s")
        if shade and start is not None and end is not None and math.isfinite(start) \
                and math.isfinite(end):
            ax.axvspan(start, end, color=colour, alpha=0.07, linewidth=0)
            ax.axvline(start, color=colour, linewidth=0.8, linestyle=":")
            ax.axvline(end, color=colour, linewidth=0.8, linestyle=":")
    mu_s = record.get("mu_seconds")
    if mu_s is not None and math.isfinite(mu_s):
        ax.axvline(mu_s, color=colour, linewidth=1.0, linestyle="--")
    top = float(np.nanmax(d)) if d.size else 1.0
    ax.set_ylim(0, 1.12 * top if top > 0 else 1.0)


def _time_limits(records, duration):
    """x-limits in seconds: the clip, widened to show a support reaching past its ends (by at
    most a quarter of the clip on each side)."""
    lo, hi = 0.0, float(duration)
    for r in records:
        for key, fn in (("support_start_s", min), ("support_end_s", max)):
            v = r.get(key)
            if v is not None and math.isfinite(v):
                if fn is min:
                    lo = min(lo, max(v, -0.25 * duration))
                else:
                    hi = max(hi, min(v, 1.25 * duration))
    pad = 0.01 * duration
    return lo - pad, hi + pad


def _record_title(record, row=None):
    parts = []
    if row is not None:
        parts.append(str(row.get("file_id", "")))
        if row.get("label") not in (None, ""):
            pred = row.get("pred", "")
            score = row.get("score")
            sc = f" (p={float(score):.2f})" if score not in (None, "") else ""
            parts.append(f"label {row['label']} → pred {pred}{sc}")
    parts.append(attention_label(record))
    return " · ".join(p for p in parts if p)


def _draw_panel(fig, ax, record, spec, colour, title):
    duration = float(record.get("duration") or (spec or {}).get("duration") or 1.0)
    if spec is not None:
        draw_spectrogram(ax, spec)
        over = ax.twinx()
    else:
        over = ax
        ax.set_xlabel("time (s)")
    draw_attention(over, record, colour)
    on, off = record.get("event_onset_s"), record.get("event_offset_s")
    if on is not None and off is not None and math.isfinite(on) and math.isfinite(off):
        # the labelled event (save_attentions.py --events_csv), hatched in gold
        ax.axvspan(on, off, facecolor="gold", alpha=0.25, edgecolor="darkgoldenrod",
                   hatch="//", linewidth=0.8, zorder=0.5)
    for edge in (0.0, duration):
        ax.axvline(edge, color="0.35", linewidth=0.8)
    ax.set_xlim(*_time_limits([record], duration))
    ax.set_title(title, fontsize=10)
    return over


def plot_clip_attention(path, record, spec=None, row=None, title=None):
    """A 1000 × 400 PNG: the clip's spectrogram (if given) with its attention over it, and the
    labelled event shaded in gold when the record has ``event_onset_s``/``event_offset_s``."""
    fig = new_figure(1000, 400)
    ax = fig.add_subplot()
    _draw_panel(fig, ax, record, spec, COLOURS[0], title or _record_title(record, row))
    return save_figure(fig, path)


def plot_attention_comparison(path, named_records, spec=None, title=None):
    """One clip under several attention variants, stacked on a shared time axis.

    ``named_records``: list of ``(name, record)``. 1000 × (60 + 240·n) pixels.
    """
    n = len(named_records)
    if n == 0:
        raise ValueError("nothing to compare: give at least one (name, record)")
    fig = new_figure(1000, 60 + 240 * n)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    duration = float(named_records[0][1].get("duration") or 1.0)
    for k, ((name, record), ax) in enumerate(zip(named_records, axes)):
        _draw_panel(fig, ax, record, spec, COLOURS[k % len(COLOURS)], name)
        if k < n - 1:
            ax.set_xlabel("")
    axes[-1].set_xlim(*_time_limits([r for _, r in named_records], duration))
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_attention_distributions(path, tables, class_names=None):
    """Per-class distributions of μ and of the support width for several attention variants.

    ``tables``: list of ``(name, rows)`` with rows of the attention CSV (floats parsed): ``label``,
    ``mu`` (normalised time) and ``supp`` (continuous: support width in normalised time, drawn
    when finite; discrete: fraction of frames with nonzero weight). Grouped box plots, one colour
    per variant, classes on the x axis. max(900, 110·classes + 200) × 700 pixels.
    """
    if not tables:
        raise ValueError("no attention table to plot")
    if class_names is None:
        seen = []
        for _, rows in tables:
            for r in rows:
                if r["label"] not in seen:
                    seen.append(r["label"])
        class_names = seen
    n_cls, n_var = len(class_names), len(tables)
    fig = new_figure(max(900, 110 * n_cls + 200), 700)
    axes = fig.subplots(2, 1, sharex=True)
    width = 0.8 / n_var
    for panel, (key, ylabel) in enumerate((
            ("mu", "μ (fraction of the clip)"),
            ("supp", "support width (fraction of the clip)\ndiscrete: frames with weight > 0"))):
        ax = axes[panel]
        for j, (name, rows) in enumerate(tables):
            colour = COLOURS[j % len(COLOURS)]
            data, pos = [], []
            for c, cls in enumerate(class_names):
                vals = [float(r[key]) for r in rows if r["label"] == cls
                        and r.get(key) is not None and math.isfinite(float(r[key]))]
                if vals:
                    data.append(vals)
                    pos.append(c - 0.4 + width * (j + 0.5))
            if data:
                bp = ax.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True,
                                showfliers=False, manage_ticks=False)
                for box in bp["boxes"]:
                    box.set(facecolor=colour, alpha=0.45, edgecolor=colour)
                for part in ("whiskers", "caps", "medians"):
                    for line in bp[part]:
                        line.set(color=colour)
                rng = np.random.default_rng(j)
                for p, vals in zip(pos, data):
                    ax.plot(p + rng.uniform(-0.3, 0.3, len(vals)) * width, vals, ".",
                            color=colour, markersize=3, alpha=0.7)
            unbounded = key == "supp" and any(
                not math.isfinite(float(r["supp"])) for r in rows if r.get("supp") is not None)
            ax.plot([], [], "s", color=colour, alpha=0.6,
                    label=name + (" (unbounded support: not drawn)" if unbounded else ""))
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].set_xticks(range(n_cls))
    axes[1].set_xticklabels(class_names, rotation=30, ha="right")
    axes[0].set_title("attention location (μ) and spread per class", fontsize=11)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- self-attention
def alignment_lines(words=None, phones=None, t_max=None):
    """Where the self-attention grid draws alignment boundaries: ``{"words": [...],
    "phones": [...]}``, each the sorted unique interval edges in seconds within [0, t_max]
    (:func:`audioattn_sb.textgrid.boundaries`); phone edges that are also word edges are drawn
    once, as word edges. Seconds are the plot's coordinates on both axes (frame i of ``spf``
    samples spans [i·spf/sr, (i+1)·spf/sr)), so a boundary at t seconds lies in frame
    ⌊t·sr/spf⌋.

    Example:
        >>> alignment_lines([(0.03, 0.52, "author"), (0.52, 0.72, "of")],
        ...                 [(0.03, 0.2, "AO1"), (0.2, 0.52, "TH")], t_max=0.6)
        {'words': [0.03, 0.52], 'phones': [0.2]}
    """
    from audioattn_sb.textgrid import boundaries

    word_edges = boundaries(words, 0.0, t_max) if words else []
    phone_edges = [t for t in (boundaries(phones, 0.0, t_max) if phones else [])
                   if t not in set(word_edges)]
    return {"words": word_edges, "phones": phone_edges}


#: line styles of the alignment boundaries (words solid, phones dotted)
WORD_LINE = {"color": "w", "linewidth": 0.9, "linestyle": "-"}
PHONE_LINE = {"color": "w", "linewidth": 0.4, "linestyle": ":"}


def draw_self_attention_grid(fig, attention, samples_per_frame, sample_rate=16000, words=None,
                             phones=None, layers=None, heads=None, softmax=False,
                             time_range=None, title=None):
    """Draw the grid of :func:`plot_self_attention_grid` on ``fig``; returns the axes array
    [layers, heads] (alignment boundaries are ``axvline``/``axhline`` lines in seconds, styled
    :data:`WORD_LINE` / :data:`PHONE_LINE`)."""
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 5 or att.shape[1] != 1:
        raise ValueError(f"expected attention of shape [layers, 1, heads, Q, K], got {att.shape}")
    layers = list(range(att.shape[0])) if layers is None else list(layers)
    heads = list(range(att.shape[2])) if heads is None else list(heads)
    for what, chosen, n in (("layer", layers, att.shape[0]), ("head", heads, att.shape[2])):
        bad = [i for i in chosen if not 0 <= int(i) < n]
        if bad or not chosen:
            raise ValueError(f"{what}s {bad or chosen} outside 0..{n - 1}")
    frame_s = float(samples_per_frame) / float(sample_rate)
    n_q, n_k = att.shape[3], att.shape[4]
    t_q, t_k = n_q * frame_s, n_k * frame_s
    lines = alignment_lines(words, phones, max(t_q, t_k))
    axes = fig.subplots(len(layers), len(heads), squeeze=False, sharex=True, sharey=True)
    image = None
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            ax = axes[r, c]
            a = att[layer, 0, head]
            if softmax:
                a = np.exp(a - a.max(axis=-1, keepdims=True))
                a = a / a.sum(axis=-1, keepdims=True)
            image = ax.imshow(a, origin="upper", aspect="auto", cmap="viridis",
                              extent=[0.0, t_k, t_q, 0.0], interpolation="nearest")
            for edges, style in ((lines["phones"], PHONE_LINE), (lines["words"], WORD_LINE)):
                for t in edges:
                    ax.axvline(t, **style)
                    ax.axhline(t, **style)
            if r == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"layer {layer}\nquery time (s)", fontsize=9)
            if r == len(layers) - 1:
                ax.set_xlabel("key time (s)", fontsize=9)
    axes[0, 0].set_xlim(*(time_range if time_range is not None else (0.0, t_k)))
    axes[0, 0].set_ylim(*((time_range[1], time_range[0]) if time_range is not None
                          else (t_q, 0.0)))
    if words:
        labelled = [(s, e, w) for s, e, w in words if w]
        mids = [(s + e) / 2 for s, e, _ in labelled]
        for ax in axes[0, :]:  # word labels above the top row
            top = ax.twiny()
            top.set_xticks(mids)
            top.set_xticklabels([w for _, _, w in labelled], rotation=90, fontsize=7)
            top.set_xlim(ax.get_xlim())  # after the ticks: set_xticks widens the limits
        for ax in axes[:, -1]:  # and right of the last column
            side = ax.twinx()
            side.set_yticks(mids)
            side.set_yticklabels([w for _, _, w in labelled], fontsize=7)
            side.set_ylim(ax.get_ylim())
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="softmax(score)" if softmax else "weight")
    if title:
        fig.suptitle(title, fontsize=11)
    return axes


def self_attention_grid_size(n_layers, n_heads):
    """Pixel size (width, height) of :func:`plot_self_attention_grid` for a grid.

    Example:
        >>> self_attention_grid_size(6, 8)
        (2180, 1640)
    """
    return 100 + 260 * int(n_heads), 80 + 260 * int(n_layers)


def plot_self_attention_grid(path, attention, samples_per_frame, sample_rate=16000,
                             words=None, phones=None, layers=None, heads=None, softmax=False,
                             time_range=None, title=None):
    """Self-attention maps, one panel per (layer, head), time in seconds on both axes.

    (100 + 260·heads) × (80 + 260·layers) pixels (:func:`self_attention_grid_size`).

    Arguments
    ---------
    attention : array [N, 1, M, Q, K]
        The STEVE layout of :func:`audioattn_sb.inspection.self_attention.stack_self_attention`
        (rows = queries, columns = keys).
    samples_per_frame : int
        Audio samples per attention frame (frame i covers [i·spf, (i+1)·spf) samples).
    words, phones : list of (start, end, label) or None
        Alignments (e.g. :func:`audioattn_sb.textgrid.read_textgrid`) drawn as boundaries on both
        axes (:func:`alignment_lines`): words solid, phones dotted; word labels on the outer axes.
    layers, heads : list of int or None
        Which layers/heads to draw (default all).
    softmax : bool
        Apply a softmax over the keys first (for raw scores, as STEVE's toggle).
    time_range : (start, end) or None
        Seconds to show (default the whole clip).
    """
    att = np.asarray(attention)
    n_layers = att.shape[0] if layers is None else len(layers)
    n_heads = (att.shape[2] if att.ndim == 5 else 1) if heads is None else len(heads)
    fig = new_figure(*self_attention_grid_size(n_layers, n_heads))
    draw_self_attention_grid(fig, att, samples_per_frame, sample_rate, words, phones, layers,
                             heads, softmax, time_range, title)
    return save_figure(fig, path)


def box_plot(rows, path, title="Test accuracy over folds"):
    """One box per configuration (rows of :func:`audioattn_sb.folds.aggregate`), the fold
    accuracies as dots; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 4.0), dpi=100)
    data = [r["accuracies"] for r in rows]
    labels = [r["attention"] if len({x["experiment"] for x in rows}) == 1
              else f"{r['experiment']}\n{r['attention']}" for r in rows]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
    for i, accs in enumerate(data, start=1):
        ax.scatter([i] * len(accs), accs, s=12, color="tab:blue", alpha=0.7, zorder=3)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def best_epochs_plot(rows, path):
    """Histogram of the selected (best) epochs, one panel per configuration: a schedule that
    converges selects epochs before the last; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    cols = min(4, n)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.0 * cols, 2.4 * nrows), dpi=100,
                             squeeze=False)
    for ax, r in zip(axes.flat, rows):
        best = [int(b) for b in str(r.get("best_epochs", "")).split()]
        limit = int(r["epochs"]) if r.get("epochs") else (max(best) if best else 1)
        ax.hist(best, bins=range(1, limit + 2), color="tab:blue")
        ax.axvline(limit + 0.5, color="tab:red", lw=1, ls="--")
        ax.set_xlim(0.5, limit + 1.5)
        ax.set_title(r["attention"] if len({x["experiment"] for x in rows}) == 1
                     else f"{r['experiment']}\n{r['attention']}", fontsize=8)
        ax.set_xlabel("best epoch (dashed: last)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


__all__ = [
    "COLOURS",
    "DPI",
    "PHONE_LINE",
    "WORD_LINE",
    "alignment_lines",
    "attention_label",
    "best_epochs_plot",
    "box_plot",
    "draw_attention",
    "draw_self_attention_grid",
    "draw_spectrogram",
    "new_figure",
    "plot_attention_comparison",
    "plot_attention_distributions",
    "plot_clip_attention",
    "plot_self_attention_grid",
    "plot_spectrogram",
    "png_size",
    "save_figure",
    "self_attention_grid_size",
]
