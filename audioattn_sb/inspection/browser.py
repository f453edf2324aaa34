r"""An attention browser: one self-contained HTML page (Bokeh, inlined; opens from disk offline)
over the ``save_attentions`` / ``save_specs`` / ``save_self_attention`` outputs of one or more runs.

Inputs (``recipes/browse_attentions.py RUN_OR_CSV ...``): attention CSVs of
``save_attentions.py`` (``RUN/saved_attentions/<tag>.csv``, with their ``_density.csv``), or run
folders (every CSV of ``RUN/saved_attentions``). Each CSV is one *variant*, named by its
attention (``discrete sparsemax`` …; the run folder's name is added when two share a name).
Next to each CSV's run: ``RUN/specs/<id>.npz`` (``save_specs.py``; the spectrogram drawn under
the attention), the clip's audio for the player (its file in the manifest the CSV was computed
from, which the CSV's ``.json`` records — e.g. an events-in-noise copy —, else in
``RUN/test.json``) and ``RUN/self_attention/<id>.npz`` (``save_self_attention.py``; Transformer runs).

The page:

* **Clips** tab: a table with one row per clip and variant (file, label, prediction, score,
  correct, μ and support in seconds, mass in the event when the CSV has one), sortable by any
  column (click its header), filtered by class, by right / wrong and by variant. Selecting a row
  shows that clip: its log-mel spectrogram (a PNG) with every variant's attention over it
  (continuous densities, discrete frame weights, each scaled to its own maximum), the supports
  shaded, the labelled event shaded in gold when known, an audio player (the clip's 16 kHz cache
  downsampled to 8 kHz) and a button that plays only the selected variant's support.
* **Self-attention** tab (when an export exists): layer and head selectors over the map
  (query × key, seconds on both axes) with the TextGrid's word (solid) and phone (dotted)
  boundaries, as STEVE draws them.
* **Summary** tab: accuracy per variant; per class the mean μ and support per variant, and
  every clip's μ and support as points per class (one colour per variant).

Size: ``max_clips`` clips (the first in the CSVs' order), spectrograms and self-attention maps
as 8-bit PNGs, audio at 8 kHz 16-bit; a page over 50 MB is written with a warning.

Everything interactive is Bokeh's own widgets (DataTable, Select, Button, Tabs) wired with
short ``CustomJS`` callbacks; ``?clip=K&variant=V&sa_clip=C&layer=L&head=H&tab=T`` in the
page's URL sets those controls on load (their callbacks run as for a click): a link to a view.
Without ``clip`` the page opens with the table's first row selected.
"""

import base64
import functools
import html
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

WARN_BYTES = 50 * 2 ** 20
AUDIO_RATE = 8000
COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2",
          "#8c564b", "#bcbd22", "#7f7f7f"]


def _csvs(inputs):
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in (p / "saved_attentions").glob("*.csv")
                           if not q.name.endswith("_density.csv"))
            if not found:
                raise FileNotFoundError(f"{p}: no saved_attentions/*.csv (run save_attentions.py "
                                        "on that run first)")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such run folder or attention CSV")
    return out


def _png(array, flip=True):
    """A 2-D array as an 8-bit grey PNG data URI (min → black, max → white)."""
    from PIL import Image

    a = np.asarray(array, dtype=np.float64)
    lo, hi = np.nanmin(a), np.nanmax(a)
    a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
    img = Image.fromarray(np.uint8(np.round(255 * (a[::-1] if flip else a))), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _wav_uri(entry):
    """The audio the model heard for a manifest entry (the whole file, or a multi-label entry's
    chunk: :func:`~audioattn_sb.inspection.export.entry_waveform`) as an 8 kHz 16-bit WAV data
    URI, and its duration in seconds."""
    import soundfile as sf

    from audioattn_sb.data.audio import resample, to_mono
    from audioattn_sb.inspection.export import entry_waveform

    rate = sf.info(entry["wav"]).samplerate
    wave = np.asarray(entry_waveform(entry), dtype=np.float32)
    wave = resample(to_mono(wave.T if wave.ndim == 2 else wave), rate, AUDIO_RATE)
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1, 1), AUDIO_RATE, subtype="PCM_16", format="WAV")
    return ("data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode(),
            wave.shape[0] / AUDIO_RATE)


def _variant_names(tables):
    from audioattn_sb.plots import attention_label

    names = [attention_label(t["rows"][0]) if t["rows"] else t["csv"].stem for t in tables]
    runs = [t["run"] for t in tables]
    out = []
    for n, t in zip(names, tables):
        if names.count(n) > 1:  # the same attention twice: say which run / which CSV
            n += f" ({t['csv'].stem})" if runs.count(t["run"]) > 1 else f" ({t['run'].name})"
        out.append(n)
    return out


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def collect(inputs, max_clips=80):
    """The page's data: ``{"variants": [...], "clips": [...], "table": {...}}`` (plain lists and
    numbers, what the page embeds)."""
    from audioattn_sb.inspection.export import load_spec, read_attention_csv

    _manifest.cache_clear()  # manifests are read once per page, as they are now
    tables = []
    for csv_path in _csvs(inputs):
        rows = read_attention_csv(csv_path)
        tables.append({"csv": Path(csv_path), "run": Path(csv_path).resolve().parents[1],
                       "rows": rows, "by_id": {r["file_id"]: r for r in rows},
                       "manifest": _csv_manifest(csv_path)})
    names = _variant_names(tables)
    ids = []
    for t in tables:
        ids += [r["file_id"] for r in t["rows"] if r["file_id"] not in ids]
    ids = ids[:max(int(max_clips), 0)]
    clips, table = [], {k: [] for k in ("clip", "file", "variant", "label", "pred", "score",
                                        "correct", "mu_s", "support_s", "mass_in_event")}
    for k, fid in enumerate(ids):
        clip = {"id": fid, "variants": []}
        for v, t in enumerate(tables):
            r = t["by_id"].get(fid)
            if r is None:
                clip["variants"].append(None)
                continue
            clip.setdefault("label", r.get("label", ""))
            clip.setdefault("duration", _num(r.get("duration")))
            if _num(r.get("event_onset_s")) is not None:
                clip["event"] = [_num(r["event_onset_s"]), _num(r.get("event_offset_s"))]
            t_s = np.asarray(r.get("density_t", []), dtype=np.float64)
            dens = np.asarray(r.get("density", []), dtype=np.float64)
            peak = float(dens.max()) if dens.size else 0.0
            clip["variants"].append({
                "t": [round(float(x), 4) for x in t_s],
                "y": [round(float(x) / peak, 4) if peak > 0 else 0.0 for x in dens],
                "support": [_num(r.get("support_start_s")), _num(r.get("support_end_s"))],
                "pred": r.get("pred", ""), "score": _num(r.get("score")),
            })
            for key, value in (("clip", k), ("file", fid), ("variant", names[v]),
                               ("label", r.get("label", "")), ("pred", r.get("pred", "")),
                               ("score", _num(r.get("score"))),
                               ("correct", "right" if str(r.get("correct")) in ("1", "1.0",
                                                                                 "True") else
                                "wrong"),
                               ("mu_s", _num(r.get("mu_seconds"))),
                               ("support_s", _num(r.get("supp_seconds"))),
                               ("mass_in_event", _num(r.get("mass_in_event")))):
                table[key].append(value)
        runs = [t["run"] for t in tables if fid in t["by_id"]]
        spec_path = _first_file(runs, "specs", f"{fid}.npz")
        if spec_path is not None:
            spec = load_spec(spec_path)
            clip["spec"] = _png(np.asarray(spec["features"]).T)
            clip["spec_duration"] = float(len(spec["time_s"]) * float(spec["hop_seconds"]))
        wav = next((w for w in (_clip_wav(t, fid) for t in tables if fid in t["by_id"]) if w),
                   None)
        if wav is not None:
            clip["audio"], clip["audio_duration"] = _wav_uri(wav)
        sa_path = _first_file(runs, "self_attention", f"{fid}.npz")
        if sa_path is not None:
            clip["self_attention"] = _self_attention(sa_path)
        clips.append(clip)
    return {"variants": names, "colors": [COLORS[i % len(COLORS)] for i in range(len(names))],
            "clips": clips, "table": table, "summary": _summary(tables, names)}


def _first_file(runs, folder, name):
    """``RUN/<folder>/<name>`` of the first run that has it, or None."""
    return next((r / folder / name for r in runs if (r / folder / name).is_file()), None)


def _csv_manifest(csv_path):
    """The manifest the attention CSV was computed from (its ``.json``'s ``manifest``; CSVs
    written before it was recorded: None)."""
    from audioattn_sb.inspection.export import meta_json_path

    try:
        with open(meta_json_path(csv_path), encoding="utf-8") as f:
            path = json.load(f).get("manifest")
    except (OSError, ValueError):
        return None
    return Path(path) if path else None


def _clip_wav(table, fid):
    """The manifest entry of the audio the model heard for clip ``fid`` of this CSV: the
    clip's entry in the manifest the CSV was computed from (e.g. the events-in-noise copy),
    else in the run's own manifests (a chunk of a multi-label file is its own entry)."""
    paths = [table["manifest"]] if table.get("manifest") else []
    paths += [table["run"] / f"{split}.json" for split in ("test", "valid", "train")]
    for path in paths:
        entry = _manifest(str(path)).get(fid)
        if entry and os.path.isfile(entry.get("wav", "")):
            return entry
    return None


@functools.lru_cache(maxsize=64)
def _manifest(path):
    """A manifest's entries ({} when the file is missing); cleared by each :func:`collect`."""
    return json.loads(Path(path).read_text()) if os.path.isfile(path) else {}


def _self_attention(path):
    from audioattn_sb.inspection.self_attention import alignments_of, load_self_attention

    d = load_self_attention(path)
    att = np.asarray(d["attention"], dtype=np.float32)
    spf, sr = int(d["spf"]), int(d["sample_rate"])
    words, phones = alignments_of(d)
    return {"layers": int(att.shape[0]), "heads": int(att.shape[2]),
            "seconds": att.shape[-1] * spf / sr,
            "maps": [[_png(att[n, 0, h]) for h in range(att.shape[2])]
                     for n in range(att.shape[0])],
            "word_edges": sorted({float(x) for s, e, _ in (words or []) for x in (s, e)}),
            "phone_edges": sorted({float(x) for s, e, _ in (phones or []) for x in (s, e)})}


def _summary(tables, names):
    acc, per_class = [], {}
    for name, t in zip(names, tables):
        rows = t["rows"]
        correct = [str(r.get("correct")) in ("1", "1.0", "True") for r in rows]
        acc.append(float(np.mean(correct)) if rows else None)
        for r in rows:
            c = per_class.setdefault((r.get("label", ""), name), {"mu": [], "supp": []})
            if _num(r.get("mu_seconds")) is not None:
                c["mu"].append(_num(r["mu_seconds"]))
            if _num(r.get("supp_seconds")) is not None:
                c["supp"].append(_num(r["supp_seconds"]))
    classes = sorted({k[0] for k in per_class})
    return {"variant": names, "accuracy": acc, "n_clips": [len(t["rows"]) for t in tables],
            "class_rows": [{"class": c, "variant": n,
                            "mean_mu_s": float(np.mean(per_class[(c, n)]["mu"]))
                            if per_class.get((c, n), {}).get("mu") else None,
                            "mean_support_s": float(np.mean(per_class[(c, n)]["supp"]))
                            if per_class.get((c, n), {}).get("supp") else None}
                           for c in classes for n in names if (c, n) in per_class]}


#: the page's one rule for text from data (file, class, label and variant names): inserted as
#: text, never as HTML. Bokeh's tables, selects, axis labels and hover tooltips already do;
#: the two Divs built from data (the clip heading, the player) escape it with this function
_ESCAPE = r"""
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;',
  '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
"""

_SELECT_CLIP = _ESCAPE + r"""
const k = table_src.data['clip'][row];
const v = variants.indexOf(table_src.data['variant'][row]);
const clip = data.clips[k];
const dur = clip.duration || clip.spec_duration || 1;
xr.start = 0; xr.end = dur;
spec_src.data = clip.spec ? {url: [clip.spec], x: [0], y: [0], w: [clip.spec_duration || dur],
                             h: [1]} : {url: [], x: [], y: [], w: [], h: []};
const xs = [], ys = [], cs = [], qx0 = [], qx1 = [], qc = [];
clip.variants.forEach((c, i) => {
  if (!c) return;
  xs.push(c.t); ys.push(c.y); cs.push(data.colors[i]);
  if (c.support[0] !== null && c.support[1] !== null) {
    qx0.push(c.support[0]); qx1.push(c.support[1]); qc.push(data.colors[i]);
  }
});
att_src.data = {xs: xs, ys: ys, color: cs};
supp_src.data = {left: qx0, right: qx1, color: qc};
event_box.visible = !!clip.event;
if (clip.event) { event_box.left = clip.event[0]; event_box.right = clip.event[1]; }
const sel = (v >= 0 && clip.variants[v]) ? clip.variants[v] : null;
title.text = `<b>${esc(clip.id)}</b> · label ${esc(clip.label)} · ` + (sel ?
  `${esc(variants[v])}: pred ${esc(sel.pred)} (${(sel.score || 0).toFixed(2)})` : '');
player.text = clip.audio ? `<audio id="clip-audio" controls src="${esc(clip.audio)}"></audio>` :
  '<i>no audio (the run\'s test.json names no readable file)</i>';
play.tags = sel && sel.support[0] !== null ? [sel.support[0], sel.support[1]] : [];
"""

_PLAY_SUPPORT = r"""
const a = document.getElementById('clip-audio');
if (!a || play.tags.length < 2) return;
const [s, e] = play.tags;
a.currentTime = Math.max(0, s);
const stop = () => { if (a.currentTime >= e) { a.pause(); a.removeEventListener('timeupdate', stop); } };
a.addEventListener('timeupdate', stop);
a.play();
"""

_FILTER = r"""
const d = table_src.data, keep = [];
for (let i = 0; i < d['clip'].length; i++) {
  if (cls.value !== 'all' && d['label'][i] !== cls.value) continue;
  if (ok.value !== 'all' && d['correct'][i] !== ok.value) continue;
  if (var_sel.value !== 'all' && d['variant'][i] !== var_sel.value) continue;
  keep.push(i);
}
view.filter.indices = keep;
table_src.change.emit();
"""

_SELF_ATT = r"""
const clip = data.clips[sa_clip.value | 0];
const sa = clip && clip.self_attention;
if (!sa) { sa_src.data = {url: [], x: [], y: [], w: [], h: []}; return; }
const l = Math.min(layer.value | 0, sa.layers - 1), h = Math.min(head.value | 0, sa.heads - 1);
sa_src.data = {url: [sa.maps[l][h]], x: [0], y: [0], w: [sa.seconds], h: [sa.seconds]};
sa_x.start = 0; sa_x.end = sa.seconds; sa_y.start = 0; sa_y.end = sa.seconds;
edges_src.data = {x: sa.word_edges};
phones_src.data = {x: sa.phone_edges};
"""

_URL_STATE = r"""
const q = new URLSearchParams(window.location.search || window.location.hash.slice(1));
if (q.has('variant')) { var_sel.value = variants[q.get('variant') | 0] || var_sel.value; }
if (q.has('clip') || q.has('variant')) {
  const want = q.get('clip') | 0, v = variants[q.get('variant') | 0];
  const d = table_src.data;
  for (let i = 0; i < d['clip'].length; i++) {
    if (d['clip'][i] === want && (!v || d['variant'][i] === v)) { table_src.selected.indices = [i]; break; }
  }
} else if (table_src.data['clip'].length) {
  table_src.selected.indices = [0];  // the page opens with the first clip shown
}
if (q.has('layer')) layer.value = String(q.get('layer') | 0);
if (q.has('head')) head.value = String(q.get('head') | 0);
if (q.has('sa_clip')) sa_clip.value = String(q.get('sa_clip') | 0);
if (q.has('tab')) tabs.active = Math.min(q.get('tab') | 0, tabs.tabs.length - 1);
"""


def build_page(data, title="attention browser"):
    """The Bokeh layout of :func:`collect`'s data (module docstring)."""
    from bokeh.layouts import column, row
    from bokeh.models import (BoxAnnotation, Button, CDSView, ColumnDataSource, CustomJS,
                              DataTable, Div, IndexFilter, LinearAxis, NumberFormatter, Range1d,
                              Select, TableColumn, TabPanel, Tabs)
    from bokeh.plotting import figure

    variants = data["variants"]
    table_src = ColumnDataSource(data["table"])
    view = CDSView(filter=IndexFilter(list(range(len(data["table"]["clip"])))))
    fmt = NumberFormatter(format="0.000")
    cols = [TableColumn(field="file", title="file"), TableColumn(field="variant", title="variant"),
            TableColumn(field="label", title="label"), TableColumn(field="pred", title="pred"),
            TableColumn(field="score", title="score", formatter=fmt),
            TableColumn(field="correct", title="correct"),
            TableColumn(field="mu_s", title="μ (s)", formatter=fmt),
            TableColumn(field="support_s", title="support (s)", formatter=fmt),
            TableColumn(field="mass_in_event", title="mass in event", formatter=fmt)]
    dt = DataTable(source=table_src, view=view, columns=cols, width=980, height=260,
                   sortable=True, selectable=True, index_position=None)
    classes = sorted({c for c in data["table"]["label"] if c})
    cls = Select(title="class", value="all", options=["all"] + classes, width=180)
    ok = Select(title="prediction", value="all", options=["all", "right", "wrong"], width=120)
    var_sel = Select(title="variant", value="all", options=["all"] + variants, width=260)
    flt = CustomJS(args=dict(table_src=table_src, view=view, cls=cls, ok=ok, var_sel=var_sel),
                   code=_FILTER)
    for w in (cls, ok, var_sel):
        w.js_on_change("value", flt)

    xr = Range1d(0, 1)
    fig = figure(width=980, height=330, x_range=xr, y_range=Range1d(0, 1),
                 x_axis_label="time (s)", y_axis_label="log-mel band (low → high)",
                 tools="xpan,xwheel_zoom,reset,save", toolbar_location="right")
    fig.yaxis.visible = False
    spec_src = ColumnDataSource({"url": [], "x": [], "y": [], "w": [], "h": []})
    fig.image_url(url="url", x="x", y="y", w="w", h="h", anchor="bottom_left", source=spec_src,
                  global_alpha=0.85)
    fig.extra_y_ranges = {"att": Range1d(0, 1.05)}
    fig.add_layout(LinearAxis(y_range_name="att", axis_label="attention (÷ its max)"), "left")
    supp_src = ColumnDataSource({"left": [], "right": [], "color": []})
    fig.quad(left="left", right="right", bottom=0, top=1.05, color="color", alpha=0.12,
             source=supp_src, y_range_name="att")
    att_src = ColumnDataSource({"xs": [], "ys": [], "color": []})
    fig.multi_line(xs="xs", ys="ys", color="color", line_width=3, source=att_src,
                   y_range_name="att")
    event_box = BoxAnnotation(left=0, right=0, fill_color="gold", fill_alpha=0.25, visible=False)
    fig.add_layout(event_box)
    legend = Div(text=" ".join(f'<span style="color:{c};font-weight:bold">■ {html.escape(v)}'
                               '</span>' for v, c in zip(variants, data["colors"])))
    title_div = Div(text="select a row of the table", width=980)
    player = Div(text="", width=420)
    play = Button(label="play the selected variant's support", width=260)
    play.js_on_click(CustomJS(args=dict(play=play), code=_PLAY_SUPPORT))
    js_data = dict(data={"clips": data["clips"], "colors": data["colors"]}, variants=variants)
    table_src.selected.js_on_change("indices", CustomJS(
        args=dict(table_src=table_src, spec_src=spec_src, att_src=att_src, supp_src=supp_src,
                  event_box=event_box, title=title_div, player=player, play=play, xr=xr,
                  **js_data),
        code="const row = cb_obj.indices[0]; if (row === undefined) return;\n" + _SELECT_CLIP))
    clips_tab = column(row(cls, ok, var_sel), dt, title_div, legend, fig, row(player, play))
    tabs = [TabPanel(child=clips_tab, title="Clips")]

    with_sa = [i for i, c in enumerate(data["clips"]) if c.get("self_attention")]
    layer = Select(title="layer", value="0", options=["0"])
    head = Select(title="head", value="0", options=["0"])
    sa_clip = Select(title="clip", value=str(with_sa[0]) if with_sa else "0",
                     options=[(str(i), data["clips"][i]["id"]) for i in with_sa] or ["0"])
    if with_sa:
        sa0 = data["clips"][with_sa[0]]["self_attention"]
        layer.options = [str(i) for i in range(sa0["layers"])]
        head.options = [str(i) for i in range(sa0["heads"])]
        sa_x, sa_y = Range1d(0, sa0["seconds"]), Range1d(0, sa0["seconds"])
        sa_fig = figure(width=520, height=520, x_range=sa_x, y_range=sa_y,
                        x_axis_label="key (s)", y_axis_label="query (s)")
        sa_src = ColumnDataSource({"url": [sa0["maps"][0][0]], "x": [0], "y": [0],
                                   "w": [sa0["seconds"]], "h": [sa0["seconds"]]})
        sa_fig.image_url(url="url", x="x", y="y", w="w", h="h", anchor="bottom_left",
                         source=sa_src)
        edges_src = ColumnDataSource({"x": sa0["word_edges"]})
        phones_src = ColumnDataSource({"x": sa0["phone_edges"]})
        for src, dash, width in ((edges_src, "solid", 1.5), (phones_src, "dotted", 1)):
            sa_fig.ray(x="x", y=0, length=0, angle=np.pi / 2, source=src, color="cyan",
                       line_width=width, line_dash=dash)
            sa_fig.ray(x=0, y="x", length=0, angle=0, source=src, color="cyan",
                       line_width=width, line_dash=dash)
        cb = CustomJS(args=dict(sa_src=sa_src, edges_src=edges_src, phones_src=phones_src,
                                layer=layer, head=head,
                                sa_clip=sa_clip, sa_x=sa_x, sa_y=sa_y, **js_data),
                      code=_SELF_ATT)
        for w in (layer, head, sa_clip):
            w.js_on_change("value", cb)
        tabs.append(TabPanel(child=column(row(sa_clip, layer, head), sa_fig),
                             title="Self-attention"))
    s = data["summary"]
    acc_src = ColumnDataSource({"variant": s["variant"], "accuracy": s["accuracy"],
                                "n_clips": s["n_clips"]})
    cls_rows = s["class_rows"]
    cls_src = ColumnDataSource({k: [r[k] for r in cls_rows] for k in
                                ("class", "variant", "mean_mu_s", "mean_support_s")})
    summary = column(
        DataTable(source=acc_src, width=600, height=40 + 28 * len(variants), index_position=None,
                  columns=[TableColumn(field="variant", title="variant"),
                           TableColumn(field="accuracy", title="accuracy", formatter=fmt),
                           TableColumn(field="n_clips", title="clips")]),
        DataTable(source=cls_src, width=760, height=320, index_position=None,
                  columns=[TableColumn(field="class", title="class"),
                           TableColumn(field="variant", title="variant"),
                           TableColumn(field="mean_mu_s", title="mean μ (s)", formatter=fmt),
                           TableColumn(field="mean_support_s", title="mean support (s)",
                                       formatter=fmt)]))
    summary.children.append(_distributions(data))
    tabs.append(TabPanel(child=summary, title="Summary"))
    page = Tabs(tabs=tabs)
    # the URL's ?clip=&variant=&layer=&head= applied once the document is ready
    from bokeh.events import DocumentReady

    page_doc_ready = CustomJS(args=dict(table_src=table_src, var_sel=var_sel, layer=layer,
                                        head=head, sa_clip=sa_clip, variants=variants,
                                        tabs=page),
                              code=_URL_STATE)
    return page, page_doc_ready, DocumentReady


def _distributions(data):
    """Per class, every clip's μ and support (s) as points, one colour per variant."""
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    t = data["table"]
    classes = sorted({c for c in t["label"] if c})
    colour = dict(zip(data["variants"], data["colors"]))
    rng = np.random.default_rng(0)
    figs = []
    for key, name in (("mu_s", "μ (s)"), ("support_s", "support (s)")):
        keep = [i for i, v in enumerate(t[key]) if v is not None and t["label"][i] in classes]
        offsets = {v: (j + 0.5) / (len(data["variants"]) + 1) - 0.5
                   for j, v in enumerate(data["variants"])}
        src = ColumnDataSource({
            "y": [classes.index(t["label"][i]) + 0.5 + 0.7 * offsets[t["variant"][i]]
                  + 0.02 * rng.standard_normal() for i in keep],
            "x": [t[key][i] for i in keep], "color": [colour[t["variant"][i]] for i in keep],
            "variant": [t["variant"][i] for i in keep], "file": [t["file"][i] for i in keep]})
        fig = figure(width=480, height=40 + 26 * max(len(classes), 1), x_axis_label=name,
                     y_range=(0, max(len(classes), 1)), tools="xpan,xwheel_zoom,reset,hover",
                     tooltips=[("clip", "@file"), ("variant", "@variant"), (name, "@x")])
        fig.scatter("x", "y", color="color", size=5, alpha=0.7, source=src)
        fig.yaxis.ticker = [k + 0.5 for k in range(len(classes))]
        fig.yaxis.major_label_overrides = {k + 0.5: c for k, c in enumerate(classes)}
        figs.append(fig)
    return row(*figs)


def write_page(inputs, out, max_clips=80, title="attention browser"):
    """Collect, build and write the page to ``out`` (atomically); returns ``(path, bytes,
    clips, variants)``."""
    from bokeh.embed import file_html
    from bokeh.io import curdoc  # noqa: F401  (bokeh's document machinery)
    from bokeh.document import Document
    from bokeh.resources import INLINE

    from audioattn_sb.utils import atomic_write_text

    data = collect(inputs, max_clips)
    if not data["clips"]:
        raise ValueError("the attention CSVs hold no clip")
    page, on_ready, DocumentReady = build_page(data, title)
    doc = Document()
    doc.add_root(page)
    doc.js_on_event(DocumentReady, on_ready)
    page_html = file_html(doc, INLINE, title)
    atomic_write_text(out, page_html)
    size = len(page_html.encode())
    if size > WARN_BYTES:
        logger.warning("%s is %.0f MB (over 50 MB): use --max_clips to keep it smaller", out,
                       size / 2 ** 20)
    return str(out), size, len(data["clips"]), data["variants"]


__all__ = ["collect", "build_page", "write_page"]
