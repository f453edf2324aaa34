"""Localisation of attention against labelled events: event_measures (hand-worked and numerical
references), the events csv reader, and the round trip make_noisy_folds → events.csv →
save_attentions --events_csv on trained demo runs."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from audioattn_sb.attention import beta_gaussian as bg
from audioattn_sb.attention.output import Attention
from audioattn_sb.data.noisy import make_noisy_folds, read_events_csv
from audioattn_sb.inspection.attention import clip_attention, continuous_mass, event_measures
from audioattn_sb.inspection.cli import save_attentions_main


@pytest.mark.parametrize("family,alpha", [("gaussian", 1.0), ("triweight", 4 / 3),
                                          ("biweight", 1.5), ("sparsemax", 2.0)])
def test_continuous_mass_in_event_against_quadrature(family, alpha):
    cfg = {"attn_domain": "continuous", "max_activation": family, "alpha_value": alpha}
    duration, mu, sigma_sq = 5.0, 0.3, 0.004
    r = clip_attention(Attention(mu=mu, sigma_sq=sigma_sq, var=0.0), cfg, duration)
    on, off = 1.2, 2.1                                     # seconds: normalised 0.24–0.42
    m = event_measures(r, on, off)

    def pdf(t):
        return float(bg.pdf(torch.tensor([t], dtype=torch.float64), mu,
                            torch.tensor(sigma_sq, dtype=torch.float64), alpha)[0])

    ref = quad(pdf, on / duration, off / duration, limit=200, points=[mu])[0]
    assert m["mass_in_event"] == pytest.approx(ref, abs=1e-6)
    assert m["mu_in_event"] == 1 and m["uniform_mass"] == pytest.approx(0.9 / 5.0)
    if alpha == 1.0:
        assert m["event_coverage"] == 1.0                  # the Gaussian's support is everything
    else:
        a = (r["support_end_s"] - r["support_start_s"]) / 2
        lo, hi = mu * duration - a, mu * duration + a
        assert m["event_coverage"] == pytest.approx(
            max(0.0, min(hi, off) - max(lo, on)) / (off - on))


def test_discrete_measures_by_hand_and_event_clipped_to_the_clip():
    cfg = {"attn_domain": "discrete", "max_activation": "softmax", "alpha_value": 1.0}
    w = torch.tensor([0.1, 0.2, 0.3, 0.0, 0.4])            # 5 frames over 2.5 s: centres .25 .75 …
    r = clip_attention(Attention(weights=w), cfg, duration=2.5)
    m = event_measures(r, 0.5, 1.8)                        # frames at 0.75, 1.25, 1.75
    assert m["mass_in_event"] == pytest.approx(0.5)
    assert m["event_coverage"] == pytest.approx(2 / 3)     # 1.75 s has weight 0
    assert m["mu_in_event"] == int(0.5 <= r["mu_seconds"] <= 1.8)
    m = event_measures(r, 2.0, 9.0)                        # clipped to [2.0, 2.5]
    assert m["uniform_mass"] == pytest.approx(0.2) and m["mass_in_event"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="empty inside the clip"):
        event_measures(r, 3.0, 4.0)


def test_mass_over_the_whole_clip_is_mass_in_clip():
    cfg = {"attn_domain": "continuous", "max_activation": "sparsemax", "alpha_value": 2.0}
    r = clip_attention(Attention(mu=0.95, sigma_sq=0.01, var=0.0), cfg, 4.0)
    assert event_measures(r, 0.0, 4.0)["mass_in_event"] == pytest.approx(r["mass_in_clip"])
    assert r["mass_in_clip"] == pytest.approx(continuous_mass(0, 1, 0.95, 0.01, 2.0))
    assert r["mass_in_clip"] < 1


def test_read_events_csv_errors_name_the_line(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("fname,onset_s,offset_s\n12,0,1\n13,2,1\n")
    with pytest.raises(ValueError, match=r"line 3: need 0 ≤ onset_s < offset_s"):
        read_events_csv(p)
    p.write_text("fname,onset_s,offset_s\n12,0,x\n")
    with pytest.raises(ValueError, match="line 2: onset_s/offset_s must be numbers"):
        read_events_csv(p)
    p.write_text("file,onset,offset\n")
    with pytest.raises(ValueError, match="header must hold"):
        read_events_csv(p)
    p.write_text("fname,onset_s,offset_s\n12,0,1\n12,0,2\n")
    with pytest.raises(ValueError, match="appears twice"):
        read_events_csv(p)
    with pytest.raises(FileNotFoundError, match="make_noisy_folds"):
        read_events_csv(tmp_path / "missing.csv")


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["discrete", "continuous"])
def test_events_round_trip_through_save_attentions(demo_trained_runs, tmp_path, domain):
    """Noisy copy of the demo (folds 1-3) with its events csv → a trained run's attention on the
    noisy test fold with --events_csv: every clip gets its event, the uniform baseline is the
    event's share, and the continuous mass is the β-Gaussian's mass on the event."""
    noisy = tmp_path / "noisy"
    make_noisy_folds(demo_trained_runs["data_folder"], noisy, folds=[1, 2, 3], progress=False)
    events = read_events_csv(noisy / "metadata" / "events.csv")
    args = [a for a in demo_trained_runs["args"][domain]
            if not a.startswith(("--data_folder", "--cache_folder"))]
    run = demo_trained_runs[domain]
    own = {n: (run / n).read_bytes() for n in ("train.json", "valid.json", "test.json",
                                                "prepare_options.json")}
    res = save_attentions_main([demo_trained_runs["hparams"], *args, f"--data_folder={noisy}",
                                f"--cache_folder={tmp_path / 'cache'}",
                                "--attn_fname", str(tmp_path / "a.csv"),
                                "--events_csv", str(noisy / "metadata" / "events.csv")])
    # the run's own manifests are untouched: the noisy copy's go to <run>/inspection/...
    assert {n: (run / n).read_bytes() for n in own} == own
    meta = json.loads((tmp_path / "a.json").read_text())
    manifest = Path(meta["manifest"])
    assert manifest.parent.parent == run / "inspection" and manifest.name == "test.json"
    assert manifest.parent.name.startswith("noisy-") and meta["data_folder"] == str(noisy)
    # the browser plays what the model heard: the noisy copy's clip, not the run's own
    from audioattn_sb.inspection.browser import _clip_wav, collect

    entries = json.loads(manifest.read_text())
    fid = next(iter(entries))
    table = {"run": run, "manifest": manifest}
    assert _clip_wav(table, fid)["wav"] == entries[fid]["wav"]
    assert Path(entries[fid]["wav"]).is_relative_to(tmp_path / "cache")  # the noisy copy, cached
    assert entries[fid]["wav"] != json.loads(own["test.json"])[fid]["wav"]
    page = collect([str(tmp_path / "a.csv")], max_clips=1)
    assert page["clips"][0]["audio"].startswith("data:audio/wav")
    with open(tmp_path / "a.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and res["localisation"]["n_clips_with_event"] == len(rows)
    for r in rows:
        on, off = events[r["file_id"]]
        assert float(r["event_onset_s"]) == pytest.approx(on)
        dur = float(r["duration"])
        assert float(r["uniform_mass"]) == pytest.approx((min(off, dur) - on) / dur, rel=1e-5)
        mass = float(r["mass_in_event"])
        assert 0.0 <= mass <= 1.0 + 1e-6 and r["mu_in_event"] in ("0", "1")
        if domain == "continuous":
            ref = continuous_mass(on / dur, min(off, dur) / dur, float(r["mu"]),
                                  float(r["sigma_sq"]), float(r["alpha_value"]))
            assert mass == pytest.approx(ref, abs=1e-5)
        else:
            w = np.array([float(x) for x in r["alpha"].split(";")])
            t = (np.arange(len(w)) + 0.5) * dur / len(w)
            assert mass == pytest.approx(w[(t >= on) & (t <= min(off, dur))].sum(), abs=1e-5)
    means = res["localisation"]
    assert means["mass_in_event"] == pytest.approx(
        np.mean([float(r["mass_in_event"]) for r in rows]), rel=1e-6)
    assert not math.isnan(means["uniform_mass"])
    supp = [float(r["supp"]) for r in rows]
    assert means["support_median"] == pytest.approx(np.median(supp), rel=1e-6)
    assert sum(len(v) for v in means["supports_by_class"].values()) == len(rows)


def test_plot_shades_the_labelled_event(tmp_path):
    from PIL import Image

    from audioattn_sb.plots import plot_clip_attention

    cfg = {"attn_domain": "continuous", "max_activation": "biweight", "alpha_value": 1.5}
    r = clip_attention(Attention(mu=0.5, sigma_sq=0.002, var=0.0), cfg, 4.0)
    plot_clip_attention(tmp_path / "plain.png", r)
    plot_clip_attention(tmp_path / "event.png", {**r, "event_onset_s": 0.4,
                                                 "event_offset_s": 1.2})
    plot_clip_attention(tmp_path / "nan.png", {**r, "event_onset_s": math.nan,
                                               "event_offset_s": math.nan})
    a, b = (np.asarray(Image.open(tmp_path / f).convert("RGB"), dtype=int)
            for f in ("plain.png", "event.png"))
    assert a.shape == b.shape == (400, 1000, 3)
    diff = np.abs(a - b).sum(axis=2) > 30
    cols = np.flatnonzero(diff.any(axis=0))
    # the changed pixels lie in the event's columns (0.4–1.2 s of a 4 s clip ≈ x 10–30 %)
    assert cols.size and 0.05 * 1000 < np.median(cols) < 0.35 * 1000
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "nan.png").convert("RGB")))


@pytest.mark.slow
def test_localise_folds_on_trained_runs_writes_events_csvs_and_the_table(demo_trained_runs,
                                                                       tmp_path):
    """localise_folds.py over the two trained demo runs: each gets saved_attentions/*_events.csv
    with one row per test clip, and the table has the mass-in-event column."""
    from tests.conftest import run_script

    noisy = tmp_path / "noisy"
    make_noisy_folds(demo_trained_runs["data_folder"], noisy, folds=[1, 2, 3], progress=False)
    runs = [demo_trained_runs["discrete"], demo_trained_runs["continuous"]]
    p = run_script("localise_folds.py", *runs, "--noisy_folder", noisy, "--out",
                   tmp_path / "table")
    assert "localised 2 runs" in p.stdout and "mass in event (uniform)" in p.stdout
    for run in runs:
        (csv_path,) = (run / "saved_attentions").glob("*_events.csv")
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        n_test = len([r for r in csv.DictReader(open(noisy / "metadata" / "UrbanSound8K.csv"))
                      if r["fold"] == "1"])
        assert len(rows) == n_test and all(r["mass_in_event"] != "" for r in rows)
    assert "mass_in_event_mean" in (tmp_path / "table.csv").read_text()
