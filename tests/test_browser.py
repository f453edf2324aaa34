"""The attention browser (issue 16): the page built from demo runs (one discrete, one continuous,
one Transformer) holds every clip with the CSVs' values and audio of the right duration, and a
headless Chromium renders it without console errors, with its controls set from the URL.

The runs are trained on ``hostile_us8k`` (issue 29): every file name and four class names hold
quotes, commas, ``&``, non-ASCII letters and HTML (``<img … onerror=…>``, ``<script>``) whose
script would set the page title. Preparation, training, the exports, the plots and the page all
go through it; in every view of the page the names show as text and no script from them runs."""

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf

from conftest import HOSTILE_CLASSES, PWNED, REPO_ROOT, run_script, train_in_process

pytest.importorskip("bokeh", reason="bokeh is not installed (pip install -r requirements.txt)")

ACRNN = str(REPO_ROOT / "hparams" / "urbansound8k_acrnn.yaml")
TRANSFORMER = str(REPO_ROOT / "hparams" / "urbansound8k_transformer.yaml")
TINY = ["--d_model=16", "--n_heads=4", "--ff_dim=24", "--frontend_dim=32", "--n_layers=2"]
N_CLIPS = 6


@pytest.fixture(scope="module")
def runs(hostile_us8k, tmp_path_factory):
    """Three 1-epoch demo runs, each with saved attentions (first N_CLIPS test clips), specs,
    and for the Transformer its self-attention exports."""
    from audioattn_sb.inspection.cli import (save_attentions_main, save_self_attention_main,
                                             save_specs_main)

    root = tmp_path_factory.mktemp("browser_runs")
    split = ["--train_fold_nums=[3]", "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
             f"--data_folder={hostile_us8k}", f"--cache_folder={root / 'cache'}",
             "--noprogressbar"]
    out = {}
    for name, hp, extra in (("discrete", ACRNN, ["--attn_max_activation=sparsemax"]),
                            ("continuous", ACRNN, ["--attn_domain=continuous",
                                                   "--attn_max_activation=biweight"]),
                            ("transformer", TRANSFORMER, TINY)):
        args = [*split, f"--output_folder={root / name}", *extra]
        train_in_process([hp, *args, "--number_of_epochs=1"])
        save_attentions_main([hp, *args, "--attn_num_samples", str(N_CLIPS)])
        save_specs_main([hp, *args, "--attn_num_samples", str(N_CLIPS)])
        if name == "transformer":
            save_self_attention_main([hp, *args, "--attn_num_samples", "2"])
        out[name] = root / name
    return out


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.json, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "script" and dict(attrs).get("type") == "application/json"

    def handle_data(self, data):
        if self._in:
            self.json.append(data)
            self._in = False


def _page_json(parser):
    """The page's Bokeh document: its JSON is HTML-escaped inside the script tag (so a name
    holding ``</script>`` cannot close it) and BokehJS unescapes it before parsing, as here."""
    import html as htmllib

    return json.loads(htmllib.unescape(parser.json[0]))


def _plain(obj):
    """Bokeh's serialised maps ({"type": "map", "entries": [[k, v], ...]}) as dicts."""
    if isinstance(obj, dict):
        if obj.get("type") == "map" and "entries" in obj:
            return {k: _plain(v) for k, v in obj["entries"]}
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    return obj


def _find(obj, key):
    """The first dict value under ``key`` anywhere in a JSON tree."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for x in obj:
            found = _find(x, key)
            if found is not None:
                return found
    return None


def _csv_rows(run):
    (path,) = [p for p in (run / "saved_attentions").glob("*.csv")
               if not p.name.endswith("_density.csv")]
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_page_holds_every_clip_with_the_csv_values(runs, tmp_path):
    out = tmp_path / "page.html"
    p = run_script("browse_attentions.py", *runs.values(), "--out", out)
    assert f"{N_CLIPS} clips × 3 variants" in p.stdout
    parser = _Scripts()
    parser.feed(out.read_text())
    assert parser.json, "no embedded Bokeh document"
    clips = _find(_plain(_page_json(parser)), "clips")
    assert isinstance(clips, list), "no clip data in the page"
    rows = {name: {r["file_id"]: r for r in _csv_rows(run)} for name, run in runs.items()}
    assert [c["id"] for c in clips] == [r["file_id"] for r in _csv_rows(runs["discrete"])]
    for c in clips:
        for v, name in enumerate(["discrete", "continuous", "transformer"]):
            r = rows[name][c["id"]]
            assert c["variants"][v]["pred"] == r["pred"]
            assert c["variants"][v]["score"] == pytest.approx(float(r["score"]))
        assert c["spec"].startswith("data:image/png;base64,")
        wav = base64.b64decode(c["audio"].split(",", 1)[1])
        info = sf.info(io.BytesIO(wav))
        assert info.samplerate == 8000
        assert info.frames / 8000 == pytest.approx(float(c["duration"]), abs=1 / 8000 + 1e-6)
    with_sa = [c for c in clips if c.get("self_attention")]
    assert len(with_sa) == 2 and with_sa[0]["self_attention"]["layers"] == 2
    assert len(with_sa[0]["self_attention"]["maps"][1]) == 4  # 4 heads


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    why = ("no Chromium on PATH (.ci/run installs Debian's chromium; it could not be "
           "installed here)")
    if os.environ.get("AUDIOATTN_REQUIRE_BROWSER") == "1":  # CI: the XSS guard must run
        pytest.fail(why)
    pytest.skip(why)


def _shot(page, query, png, tmp_path):
    chrome = _chromium()
    p = subprocess.run([chrome, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1100,1300",
                        "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=1",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
                        f"file://{page}?{query}"], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and png.is_file(), p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r"error|uncaught", line, re.I)]
    assert not errors, errors
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _count(img, rgb, tol=40):
    return int((np.abs(img - np.array(rgb)).sum(axis=-1) < tol).sum())


@pytest.mark.slow
def test_chromium_renders_the_controls_set_from_the_url(runs, tmp_path):
    from audioattn_sb.inspection.browser import COLORS

    page = tmp_path / "page.html"
    run_script("browse_attentions.py", *runs.values(), "--out", page)
    # the Clips tab, clip 1 of variant 1 (continuous biweight, drawn in COLORS[1]): its density
    img = _shot(page, "clip=1&variant=1", tmp_path / "clips.png", tmp_path)
    blue = tuple(int(COLORS[1][i:i + 2], 16) for i in (1, 3, 5))
    assert _count(img, blue) > 200  # the curve (and its legend) are drawn
    # without a clip in the URL the page opens with the first row's clip shown
    first = _dump(page, "", tmp_path)
    assert "select a row of the table" not in first["text"]  # the heading before any selection
    assert " · label " in first["text"]                      # ... replaced by the clip's
    # the Self-attention tab, layer 1, head 2: a grey-level map fills the figure
    sa = _shot(page, "tab=1&layer=1&head=2", tmp_path / "sa.png", tmp_path)
    grey = (np.abs(sa[..., 0] - sa[..., 1]) < 3) & (np.abs(sa[..., 1] - sa[..., 2]) < 3)
    mid = grey & (sa[..., 0] > 20) & (sa[..., 0] < 235)
    assert mid.sum() > 5000


#: appended to a copy of the page: once it has settled, every text node (shadow roots included),
#: the title and any element that a name could have made live, written into <pre id="probe">
_PROBE = """<script>
setTimeout(() => {
  const texts = [], live = [];
  const walk = (node, shadow) => {
    if (node.shadowRoot) walk(node.shadowRoot, true);
    for (const c of node.childNodes) {
      if (c.nodeType === 3) { texts.push(c.textContent); continue; }
      if (c.nodeType !== 1 && c.nodeType !== 11) continue;
      if (c.nodeType === 1) {
        const on = [...c.attributes].filter((a) => a.name.startsWith('on'));
        const script = c.tagName === 'SCRIPT' && c.type !== 'application/json' &&
          c.textContent.includes('PWN' + 'ED');
        if (on.length || script || (c.tagName === 'IMG' && c.getAttribute('src') === 'x'))
          live.push(c.outerHTML.slice(0, 200));
      }
      if (c.tagName !== 'SCRIPT' && c.tagName !== 'STYLE') walk(c, shadow);
    }
  };
  walk(document.documentElement, false);
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({title: document.title, live: live, text: texts.join('\\n'),
                                    pwned: window.pwned || null});
  document.body.appendChild(pre);
}, 4000);
</script>"""


def _dump(page, query, tmp_path):
    """The probe's findings in headless Chromium for ``page?query``."""
    import html as htmllib

    chrome = _chromium()
    probed = page.with_name(page.stem + "_probed.html")
    text = page.read_text(encoding="utf-8")
    head, tail = text.rsplit("</body>", 1)
    probed.write_text(head + _PROBE + "</body>" + tail, encoding="utf-8")
    p = subprocess.run([chrome, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--window-size=1100,1300",
                        "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=1",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                        f"file://{probed}?{query}"], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines()
              if "CONSOLE" in line and re.search(r"error|uncaught", line, re.I)]
    assert not errors, errors
    found = re.search(r'<pre id="probe">(.*?)</pre>', p.stdout, re.S)
    assert found, "the probe did not run (the page did not load): " + p.stdout[-1000:]
    return json.loads(htmllib.unescape(found.group(1)))


@pytest.mark.slow
def test_no_script_from_a_name_runs_in_any_view(runs, tmp_path):
    """Every view of the page opened with a hostile clip selected: the title is the page's own,
    no element made from a name is live, the names show as text (issue 29)."""
    page = tmp_path / "page.html"
    run_script("browse_attentions.py", *runs.values(), "--out", page)
    parser = _Scripts()
    parser.feed(page.read_text(encoding="utf-8"))
    clips = _find(_plain(_page_json(parser)), "clips")
    assert all(any(ch in c["id"] for ch in "<\"'é") for c in clips), "not hostile names"
    hostile_labels = set(HOSTILE_CLASSES.values())
    assert hostile_labels & {c["label"] for c in clips}
    img = next(k for k, c in enumerate(clips) if "onerror" in c["id"])
    labelled = next(k for k, c in enumerate(clips) if c["label"] in hostile_labels
                    and "<" in c["label"])
    sa = next(k for k, c in enumerate(clips) if c.get("self_attention"))
    views = {f"clip={img}": [clips[img]["id"], clips[img]["label"]],
             f"clip={labelled}&variant=1": [clips[labelled]["id"], clips[labelled]["label"]],
             f"tab=1&sa_clip={sa}&clip={img}": [clips[sa]["id"]],
             f"tab=2&clip={labelled}": [clips[labelled]["label"]]}
    for query, shown in views.items():
        probe = _dump(page, query, tmp_path)
        assert probe["title"] == "attention browser" and PWNED not in probe["title"], query
        assert probe["live"] == [], (query, probe["live"])
        for name in shown:
            assert name in probe["text"], (query, name)


@pytest.mark.slow
def test_plots_of_hostile_names(runs, tmp_path):
    """plot_attentions.py on the hostile runs: one PNG per clip, titles with the names."""
    from audioattn_sb.inspection.cli import plot_attentions_main

    (disc,) = [p for p in (runs["discrete"] / "saved_attentions").glob("*.csv")
               if not p.name.endswith("_density.csv")]
    (cont,) = [p for p in (runs["continuous"] / "saved_attentions").glob("*.csv")
               if not p.name.endswith("_density.csv")]
    written = plot_attentions_main([str(cont), "--compare", str(disc), "--out",
                                    str(tmp_path / "png"), "--max_clips", "3"])
    base = [os.path.basename(p) for p in written]
    ids = [b[len("attention_"):-len(".png")] for b in base if b.startswith("attention_")]
    names = {r["file_id"] for r in _csv_rows(runs["continuous"])}
    assert len(ids) == 3 and set(ids) <= names and "distributions.png" in base
    from PIL import Image

    for p in written:
        assert Image.open(p).size[0] >= 900  # a whole figure, not an empty file


def test_player_audio_is_the_manifest_clip_at_8khz_sample_for_sample(tmp_path):
    """The audio the page plays for a clip is that clip's file from the run's manifest, whole,
    at 8 kHz: decoded from the page's data URI, its samples equal the analytic signal of the
    file at t = i / 8000 for every i (no sample dropped or shifted at either end), length
    ceil(N / 2) of a 16 kHz file. No training: a hand-made run folder (CSV + test.json)."""
    from audioattn_sb.inspection.browser import AUDIO_RATE, collect

    sr, n = 16000, 16001  # odd: an 8 kHz copy of ceil(n / 2) samples
    t = np.arange(n) / sr
    freqs, amps, phases = (310.0, 770.0, 1490.0), (0.3, 0.25, 0.2), (0.4, 1.9, 3.0)

    def signal(times):  # tones under 1.5 kHz, faded in and out over 50 ms (no edge transient)
        fade = np.clip(np.minimum(times, n / sr - times) / 0.05, 0.0, 1.0)
        env = 0.5 - 0.5 * np.cos(np.pi * fade)
        return env * sum(a * np.sin(2 * np.pi * f * times + p)
                         for f, a, p in zip(freqs, amps, phases))

    run = tmp_path / "run"
    (run / "saved_attentions").mkdir(parents=True)
    wav = tmp_path / "audio" / "clip7.wav"
    wav.parent.mkdir()
    sf.write(wav, signal(t).astype(np.float32), sr, subtype="FLOAT")
    other = tmp_path / "audio" / "other.wav"  # another clip of the manifest: not this one's audio
    sf.write(other, np.zeros(n, dtype=np.float32), sr, subtype="FLOAT")
    (run / "test.json").write_text(json.dumps({"other": {"wav": str(other)},
                                               "clip7": {"wav": str(wav)}}))
    with open(run / "saved_attentions" / "discrete-softmax.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_id", "label", "pred", "duration", "attn_domain", "max_activation",
                    "alpha_value", "score", "correct"])
        w.writerow(["clip7", "dog", "dog", n / sr, "discrete", "softmax", 1.0, 0.9, 1])
    (clip,) = collect([run])["clips"]
    assert clip["id"] == "clip7"
    head, b64 = clip["audio"].split(",", 1)
    assert head == "data:audio/wav;base64"
    got, rate = sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float64")
    assert rate == AUDIO_RATE == 8000
    assert got.shape == (-(-n // 2),)
    assert clip["audio_duration"] == pytest.approx(got.shape[0] / 8000)
    expected = signal(np.arange(got.shape[0]) / 8000)
    # every sample, to 16-bit PCM and the windowed-sinc filter's accuracy (a shift of one
    # sample moves the interior by up to 0.4)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.abs(expected).max() > 0.5


def test_player_audio_of_a_chunk_is_that_chunk(tmp_path):
    """A multi-label run's clip is a chunk of its file (``<fname>_<k>`` with ``start``,
    ``stop``, ``chunk_samples``): the page plays that chunk (tiled when short, as the model
    heard it), not the whole file. Checked sample for sample at 8 kHz against the file's
    samples themselves, resampled independently (scipy's polyphase filter)."""
    from scipy.signal import resample_poly

    from audioattn_sb.inspection.browser import AUDIO_RATE, collect

    sr = 16000
    rng = np.random.default_rng(0)
    # a smooth signal (under 2 kHz) so that two resamplers agree closely
    full = resample_poly(rng.standard_normal(5 * sr // 8), 8, 1).astype(np.float32) * 0.1
    wav = tmp_path / "f.wav"
    sf.write(wav, full, sr, subtype="FLOAT")
    run = tmp_path / "run"
    (run / "saved_attentions").mkdir(parents=True)
    chunks = {"f_1": {"wav": str(wav), "start": 24000, "stop": 40000, "chunk_samples": 16000},
              "f_4": {"wav": str(wav), "start": 72000, "stop": 80000, "chunk_samples": 16000}}
    (run / "test.json").write_text(json.dumps(chunks))
    with open(run / "saved_attentions" / "discrete-softmax.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_id", "label", "pred", "duration", "attn_domain", "max_activation",
                    "alpha_value", "score", "correct"])
        for fid in chunks:
            w.writerow([fid, "Bark", "Bark", 1.0, "discrete", "softmax", 1.0, 0.9, 1])
    clips = {c["id"]: c for c in collect([run])["clips"]}
    expected = {"f_1": full[24000:40000],
                "f_4": np.concatenate([full[72000:80000], full[72000:80000]])}  # tiled
    for fid, want in expected.items():
        got, rate = sf.read(io.BytesIO(base64.b64decode(clips[fid]["audio"].split(",", 1)[1])),
                            dtype="float64")
        assert rate == AUDIO_RATE and got.shape == (8000,)
        assert clips[fid]["audio_duration"] == pytest.approx(1.0)
        ref = resample_poly(want.astype(np.float64), 1, 2)
        # away from the chunk's ends (the two filters differ at a cut)
        np.testing.assert_allclose(got[200:-200], ref[200:-200], atol=2e-2)
