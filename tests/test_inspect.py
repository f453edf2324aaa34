"""Looking inside trained runs: attention records, CSV export, spectrograms, plots, STEVE export."""

import csv
import json
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audioattn_sb.attention import beta_gaussian as bg
from audioattn_sb.attention.output import Attention
from audioattn_sb.inspection.attention import clip_attention, continuous_mass, frame_positions
from audioattn_sb.inspection.cli import plot_attentions_main, save_attentions_main, \
    save_specs_main
from audioattn_sb.inspection.export import density_csv_path, load_spec, read_attention_csv
from audioattn_sb.inspection.self_attention import (
    load_self_attention,
    save_self_attention,
    stack_self_attention,
)
from audioattn_sb.plots import png_size

from conftest import REPO_ROOT as REPO
from conftest import read_csv_rows

FAMILIES = {"gaussian": 1.0, "triweight": 4 / 3, "biweight": 1.5, "sparsemax": 2.0,
            "entmax": 1.7}


# --------------------------------------------------------------------------- unit: records
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mu,var", [(0.5, 0.01), (0.05, 0.002), (0.9, 0.08), (0.5, 1e-4)])
def test_continuous_density_integrates_to_one_in_seconds(family, mu, var):
    alpha = FAMILIES[family]
    sigma_sq = float(bg.sigma_sq_from_variance(torch.tensor(var, dtype=torch.float64), alpha))
    cfg = {"attn_domain": "continuous", "max_activation": family, "alpha_value": alpha}
    duration = 3.7
    r = clip_attention(Attention(mu=mu, sigma_sq=sigma_sq, var=var), cfg, duration,
                       density_points=200)
    t, d = r["density_t"], r["density"]
    assert r["density_kind"] == "pdf" and t.size == 200  # exactly K points
    assert np.all(np.diff(t) >= 0) and np.all(d >= 0)
    assert np.trapezoid(d, t) == pytest.approx(1.0, abs=2e-3)  # a density per second
    inside = (t >= 0) & (t <= duration)
    assert np.trapezoid(d[inside], t[inside]) == pytest.approx(r["mass_in_clip"], abs=3e-3)
    assert r["mu_seconds"] == pytest.approx(mu * duration)
    assert r["var"] == var and r["sigma_sq"] == sigma_sq
    if family == "gaussian":
        assert math.isinf(r["supp"]) and math.isinf(r["support_end_s"])
    else:
        a = float(bg.support_half_width(torch.tensor(sigma_sq, dtype=torch.float64), alpha))
        assert r["supp"] == pytest.approx(2 * a)
        assert r["supp_seconds"] == pytest.approx(2 * a * duration)
        assert (r["support_start_s"], r["support_end_s"]) == pytest.approx(
            ((mu - a) * duration, (mu + a) * duration))
        assert t[0] == pytest.approx(min(0.0, r["support_start_s"]))
        assert d[0] < 1e-12 and d[-1] < 1e-12  # compact support: zero at its ends


def test_continuous_mass_matches_quadrature():
    for alpha in (1.0, 4 / 3, 1.5, 1.7, 2.0):
        sigma_sq = float(bg.sigma_sq_from_variance(torch.tensor(0.05, dtype=torch.float64),
                                                   alpha))
        t = np.linspace(0.0, 1.0, 200001)
        p = bg.pdf(torch.from_numpy(t), 0.2, sigma_sq, alpha).numpy()
        assert continuous_mass(0.0, 1.0, 0.2, sigma_sq, alpha) == pytest.approx(
            np.trapezoid(p, t), abs=1e-6)


def test_discrete_record_units():
    w = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 9.0, 9.0])  # 2 padded frames
    mask = torch.tensor([True] * 6 + [False] * 2)
    cfg = {"attn_domain": "discrete", "max_activation": "sparsemax", "alpha_value": 2.0}
    r = clip_attention(Attention(weights=w, mask=mask), cfg, duration=1.2)
    t = frame_positions(6)
    assert r["n_frames"] == 6 and r["density_kind"] == "frame_weight"
    assert r["density"].tolist() == [0.0, 0.5, 0.0, 0.5, 0.0, 0.0]  # padding dropped
    assert r["density_t"] == pytest.approx(t * 1.2)  # frame centres (ℓ - ½)·D/L
    assert r["density"].sum() == pytest.approx(1.0)
    assert r["supp"] == pytest.approx(2 / 6) and r["supp_seconds"] == pytest.approx(0.4)
    assert r["mu"] == pytest.approx((t[1] + t[3]) / 2)
    assert r["var"] == pytest.approx(((t[1] - r["mu"]) ** 2 + (t[3] - r["mu"]) ** 2) / 2)
    assert math.isnan(r["sigma_sq"]) and r["mass_in_clip"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="duration must be > 0"):
        clip_attention(Attention(weights=w), cfg, duration=0)


# --------------------------------------------------------------------------- unit: STEVE export
def test_stack_self_attention_layout_n_1_m_k_q(tmp_path):
    n_layers, batch, heads, q, k = 3, 2, 4, 7, 5  # Q ≠ K to pin the axis order down
    layers = [torch.rand(batch, heads, q, k) for _ in range(n_layers)]
    arr, spf = stack_self_attention(layers, batch_index=1, samples_per_frame=400)
    assert arr.shape == (n_layers, 1, heads, q, k) and arr.dtype == np.float32 and spf == 400
    for n in range(n_layers):
        for m in range(heads):
            np.testing.assert_allclose(arr[n, 0, m], layers[n][1, m].numpy())
    path = tmp_path / "att.npz"
    save_self_attention(path, layers, 400, sample_rate=16000, batch_index=1, valid_frames=4,
                        file_id="clip")
    d = load_self_attention(path)
    assert d["attention"].shape == (n_layers, 1, heads, 4, 4)
    assert int(d["spf"]) == 400 and int(d["sample_rate"]) == 16000
    assert str(d["axes"]) == "layer,batch,head,query,key" and str(d["file_id"]) == "clip"


def test_stack_self_attention_pooled_layers_and_errors():
    # 40 → 20 → 10 frames (between-layer pooling), rows summing to 1
    layers = [torch.softmax(torch.randn(1, 2, n, n), -1) for n in (40, 40, 20, 10)]
    arr, spf = stack_self_attention(layers, samples_per_frame=[400, 400, 800, 1600])
    assert arr.shape == (4, 1, 2, 40, 40) and spf == 400
    np.testing.assert_allclose(arr.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(arr[3, 0, 1, 5, 4], layers[3][0, 1, 1, 1].item() / 4, rtol=1e-6)
    with pytest.raises(ValueError, match="per layer"):
        stack_self_attention(layers)
    with pytest.raises(ValueError, match="head counts"):
        stack_self_attention([torch.rand(1, 2, 3, 3), torch.rand(1, 4, 3, 3)])
    with pytest.raises(ValueError, match="batch_index 3"):
        stack_self_attention([torch.rand(2, 2, 3, 3)], batch_index=3)


# --------------------------------------------------------------------------- trained round trip
def _script_args(runs, domain):
    return [runs["hparams"], *runs["args"][domain]]


@pytest.fixture(scope="module")
def exported(demo_trained_runs):
    """save_specs + save_attentions on both trained demo runs, through the scripts' own entry
    points with the training arguments as users type them."""
    out = {}
    for domain in ("discrete", "continuous"):
        args = _script_args(demo_trained_runs, domain)
        specs = save_specs_main([*args, "--attn_num_samples", "2"])
        name = f"saved_attentions/{domain}.csv"
        res = save_attentions_main([*args, "--attn_fname", name, "--attn_density_points", "64"])
        out[domain] = {"specs": specs, "res": res, "run": demo_trained_runs[domain]}
    return out


@pytest.mark.slow
def test_specs_hold_the_model_input_with_axes_in_seconds_and_hz(exported, demo_trained_runs):
    manifest = json.loads((demo_trained_runs["discrete"] / "test.json").read_text())
    first = list(manifest)[:2]
    for domain in ("discrete", "continuous"):
        paths = exported[domain]["specs"]
        assert [p.split("/")[-1] for p in paths] == [f"{f}.npz" for f in first]
        for path in paths:
            spec = load_spec(path)
            entry = manifest[spec["file_id"]]
            n = sf.info(entry["wav"]).frames
            assert spec["features"].shape == (n // 160 + 1, 80)  # centred STFT, hop 160
            assert spec["raw_features"].shape == spec["features"].shape
            assert spec["source"] == "model_input"
            # sentence mean normalisation: the model input is the raw Fbank minus its mean
            np.testing.assert_allclose(
                spec["features"], spec["raw_features"] - spec["raw_features"].mean(0),
                atol=1e-4)
            assert spec["hop_seconds"] == pytest.approx(0.01)
            assert spec["time_s"][:3] == pytest.approx([0.0, 0.01, 0.02])
            freqs = spec["freqs_hz"]
            assert np.all(np.diff(freqs) > 0) and 0 < freqs[0] < 50 and 7000 < freqs[-1] < 8000
            assert spec["duration"] == pytest.approx(entry["duration"])
            assert spec["fold"] == "1" and spec["label"] == entry["class_string"]
            assert png_size(path[:-4] + ".png") == (800, 300)


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["discrete", "continuous"])
def test_attention_csv_columns_units_and_densities(exported, demo_trained_runs, domain):
    res = exported[domain]["res"]
    run = exported[domain]["run"]
    csv_path = run / "saved_attentions" / f"{domain}.csv"
    assert res["csv"] == str(csv_path)  # relative --attn_fname resolves under the run
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    assert header[:10] == ["file_id", "label", "pred", "duration", "fold", "mu", "var",
                           "sigma_sq", "supp", "alpha"]
    assert header[10:13] == ["attn_domain", "max_activation", "alpha_value"]
    rows = read_attention_csv(csv_path)
    manifest = json.loads((run / "test.json").read_text())
    assert [r["file_id"] for r in rows] == list(manifest)  # every test clip, in order
    # ground truth straight from the dataset's csv and wavs (not from the manifests)
    data = demo_trained_runs["data_folder"]
    truth = {r["slice_file_name"][:-4]: r for r in read_csv_rows(data)}
    meta = json.loads((run / "saved_attentions" / f"{domain}.json").read_text())
    class_names = meta["class_names"]
    results = json.loads((run / "results.json").read_text())
    assert meta["accuracy"] == pytest.approx(results["test_accuracy"])
    for r in rows:
        t = truth[r["file_id"]]
        src = data / "audio" / f"fold{t['fold']}" / t["slice_file_name"]
        assert r["duration"] == pytest.approx(sf.info(str(src)).duration, abs=1 / 16000)
        assert r["fold"] == t["fold"] == "1"
        assert r["label"] == t["class"] and r["label_id"] == int(t["classID"])
        assert r["pred"] == class_names[r["pred_id"]]
        assert r["correct"] == int(r["label_id"] == r["pred_id"])
        assert r["attn_domain"] == domain
        assert r["mu_seconds"] == pytest.approx(r["mu"] * r["duration"], rel=1e-5)
        assert r["supp_seconds"] == pytest.approx(r["supp"] * r["duration"], rel=1e-5)
        t_s, dens = r["density_t"], r["density"]
        assert t_s.min() >= -0.25 * r["duration"] - 1e-6 or domain == "continuous"
        if domain == "discrete":
            assert r["max_activation"] == "sparsemax" and r["alpha_value"] == 2.0
            assert math.isnan(r["sigma_sq"])
            assert r["density_kind"] == "frame_weight"
            assert dens.size == r["n_frames"] == round(r["duration"] * 100) + 1 or \
                dens.size == r["n_frames"]
            assert dens.sum() == pytest.approx(1.0, abs=1e-5)
            np.testing.assert_allclose(dens, r["weights"], atol=1e-6)
            assert r["supp"] == pytest.approx((dens > 0).mean(), abs=1e-6)
            assert 0 <= r["mu"] <= 1
        else:
            assert r["max_activation"] == "biweight" and r["alpha_value"] == 1.5
            assert r["density_kind"] == "pdf" and dens.size == 64
            assert np.trapezoid(dens, t_s) == pytest.approx(1.0, abs=5e-3)
            assert 0 <= r["mu"] <= 1 and r["sigma_sq"] > 0 and math.isfinite(r["supp"])
            assert r["weights"].size == r["n_frames"]  # its discrete encoder's weights
        assert 0 < r["score"] <= 1
    # the density CSV is long-format with the documented columns
    with open(density_csv_path(csv_path), newline="") as f:
        assert next(csv.reader(f)) == ["file_id", "t_seconds", "density", "kind"]


@pytest.mark.slow
def test_plots_from_the_csvs(exported, tmp_path, monkeypatch):
    import audioattn_sb.plots as plots

    disc = exported["discrete"]["run"] / "saved_attentions" / "discrete.csv"
    cont = exported["continuous"]["run"] / "saved_attentions" / "continuous.csv"
    out = tmp_path / "plots"
    figures = {}   # png name → the figure saved there (checked by content below)
    save_figure = plots.save_figure

    def keep(fig, path):
        figures[os.path.basename(str(path))] = fig
        return save_figure(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    written = plot_attentions_main([str(cont), "--compare", str(disc), "--out", str(out),
                                    "--max_clips", "2"])
    # by content: each clip's figure draws the density the CSV holds for that clip (read here
    # with the csv module), on a time axis in seconds
    with open(density_csv_path(cont), newline="") as f:
        curves = {}
        for row in csv.DictReader(f):
            curves.setdefault(row["file_id"], []).append((float(row["t_seconds"]),
                                                          float(row["density"])))
    drawn = 0
    for name, fig in figures.items():
        if not name.startswith("attention_"):
            continue
        fid = name[len("attention_"):-4]
        t_ref, d_ref = map(np.array, zip(*curves[fid]))
        lines = [ln for ax in fig.axes for ln in ax.get_lines()
                 if len(ln.get_xdata()) == len(t_ref) and len(t_ref) > 2]
        assert lines, f"{name}: no curve of the clip's {len(t_ref)} density points"
        np.testing.assert_allclose(lines[0].get_xdata(), t_ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(lines[0].get_ydata(), d_ref, rtol=1e-5, atol=1e-6)
        assert lines[0].axes.get_ylabel() == "attention density (1/s)"
        assert any(ax.get_xlabel() == "time (s)" for ax in fig.axes)
        drawn += 1
    assert drawn == 2
    names = sorted(p.split("/")[-1] for p in written)
    assert len([n for n in names if n.startswith("attention_")]) == 2
    assert len([n for n in names if n.startswith("compare_")]) == 2
    assert "distributions.png" in names
    sizes = {n: png_size(out / n) for n in names}
    for n in names:
        assert (out / n).stat().st_size > 5000
        if n.startswith("attention_"):
            assert sizes[n] == (1000, 400)
        elif n.startswith("compare_"):
            assert sizes[n] == (1000, 60 + 240 * 2)
    assert sizes["distributions.png"] == (max(900, 110 * 10 + 200), 700)
    # the specs of the CSV's run are found by default; clips with one come first
    spec_ids = {p.split("/")[-1][:-4] for p in exported["continuous"]["specs"]}
    assert {n[len("attention_"):-4] for n in names if n.startswith("attention_")} == spec_ids
    # default output folder next to the CSV
    written = plot_attentions_main([str(disc), "--max_clips", "1"])
    assert all(str(disc.parent / "plots" / "discrete") in p for p in written)


@pytest.mark.slow
def test_scripts_report_user_errors_without_traceback(demo_trained_runs, tmp_path, capsys):
    from audioattn_sb.inspection.cli import run_cli

    args = _script_args(demo_trained_runs, "discrete")
    missing = [a for a in args if not a.startswith("--output_folder")] + \
        [f"--output_folder={tmp_path / 'nope'}"]
    with pytest.raises(SystemExit) as exc:
        run_cli(save_attentions_main, missing)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no such run folder" in err and "Traceback" not in err
    # other overrides than the training's: refused (a discrete sparsemax checkpoint would even
    # load silently into a continuous model: same parameters)
    wrong = [a if a != "discrete" else "continuous" for a in args]
    wrong = [a if a != "sparsemax" else "biweight" for a in wrong]
    with pytest.raises(SystemExit):
        run_cli(save_specs_main, wrong)
    err = capsys.readouterr().err
    assert "attn_domain: trained with 'discrete', given 'continuous'" in err
    assert "same hparams file and overrides" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        run_cli(plot_attentions_main, [str(tmp_path / "none.csv")])
    assert "no such attention CSV" in capsys.readouterr().err
    # an ACRNN has no self-attention to export
    from audioattn_sb.inspection.cli import save_self_attention_main

    with pytest.raises(SystemExit):
        run_cli(save_self_attention_main, [*args, "--attn_num_samples", "1"])
    err = capsys.readouterr().err
    assert "(ACRNN) has no self-attention to export" in err and "Traceback" not in err


def test_retyped_command_is_compared_key_by_key_with_the_run(tmp_path):
    """The retyped form compares only what was typed with the run's saved hyperparams.yaml:
    a yaml that gained keys since the run was trained (today's compact yaml against a run saved
    without ``drop_path`` and ``conv_dims``) still describes it; a typed value the run was not
    trained with, a key the run does not have, or another hparams file than results.json
    records is refused, naming it; the data, run and checkpoint-rule keys may differ; ``auto``
    matches."""
    import json

    from audioattn_sb.inspection.trained_run import RunLoadError, check_same_training

    compact = REPO / "hparams" / "urbansound8k_transformer_compact.yaml"
    text = compact.read_text()
    old = text.replace("    conv_dims: 1", "").replace("drop_path: 0.0", "")
    assert "drop_path" in text and "conv_dims" in text and "drop_path:" not in old.split(
        "model:")[0]
    (tmp_path / "hyperparams.yaml").write_text(old)
    check_same_training(tmp_path, str(compact))
    check_same_training(tmp_path, str(compact), "attn_domain: discrete\nseed: 0\n"
                        "data_folder: /elsewhere\ncache_folder: /c\noutput_folder: auto\n"
                        "test_checkpoint: best_valid")  # which checkpoint: a choice, not a model
    with pytest.raises(RunLoadError, match="attn_domain: trained with 'discrete', given "
                                           "'continuous'"):
        check_same_training(tmp_path, str(compact), "attn_domain: continuous")
    with pytest.raises(RunLoadError, match="drop_path: not a setting of this run"):
        check_same_training(tmp_path, str(compact), {"drop_path": 0.1})
    (tmp_path / "results.json").write_text(json.dumps(
        {"hparams_file": "hparams/urbansound8k_acrnn_compact.yaml"}))
    with pytest.raises(RunLoadError, match="trained with urbansound8k_acrnn_compact.yaml, not "
                                           "urbansound8k_transformer_compact.yaml"):
        check_same_training(tmp_path, str(compact))


def test_files_written_before_the_max_activation_rename_read_the_same(tmp_path):
    """CSVs with the old ``family`` column and npz files with the old ``mapping`` key (before the
    attention's name became ``max_activation`` everywhere) read with the new name."""
    old_csv = tmp_path / "old.csv"
    old_csv.write_text("file_id,attn_domain,family,alpha_value,mu\na,continuous,biweight,1.5,0.25\n")
    (row,) = read_attention_csv(old_csv)
    assert row["max_activation"] == "biweight" and "family" not in row and row["mu"] == 0.25
    old_npz = tmp_path / "old.npz"
    np.savez(old_npz, attention=np.ones((1, 1, 1, 2, 2), np.float32) / 2, spf=np.float64(0.025),
             mapping=np.str_("entmax15"))
    data = load_self_attention(old_npz)
    assert str(data["max_activation"]) == "entmax15" and "mapping" not in data
