"""Transformer self-attention from trained runs: save_self_attention.py (STEVE's N×1×M×Q×K .npz),
plot_self_attention.py (layers × heads grids with TextGrid boundaries) and classify_file's maps.

A tiny large+pooling-style Transformer (3 layers: the third runs on frames pooled by 2, d_model
16, 4 heads, entmax15 self-attention) is trained once on the demo data (1 epoch, one training
fold); the scripts run through their command lines on it.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import missing_shared, run_script
import soundfile as sf
import torch

from audioattn_sb.inspection.self_attention import (
    block_sizes,
    load_self_attention,
    stack_self_attention,
)
from audioattn_sb.plots import (
    PHONE_LINE,
    WORD_LINE,
    alignment_lines,
    draw_self_attention_grid,
    new_figure,
    png_size,
)

REPO = Path(__file__).resolve().parent.parent
HPARAMS = str(REPO / "hparams" / "urbansound8k_transformer.yaml")
SAMPLE = REPO.parent / "shared" / "data" / "textgrid_sample"
WAV, TEXTGRID = SAMPLE / "arctic_a0001.wav", SAMPLE / "arctic_a0001.TextGrid"
#: the tiny model (as tests/test_transformer_model.py's TINY) and its layout
TINY = ["--d_model=16", "--n_heads=4", "--ff_dim=24", "--frontend_dim=32", "--n_layers=3"]
LAYERS, HEADS, LAYER_SPF = 3, 4, [400, 400, 800]
# arctic_a0001.TextGrid's word tier, read by hand: labelled words (empty intervals dropped)
WORDS_BY_HAND = [(0.03, 0.52, "author"), (0.52, 0.72, "of"), (0.72, 0.85, "the"),
                 (0.85, 1.24, "danger"), (1.32, 1.63, "trail"), (2.18, 2.60, "philip"),
                 (2.63, 3.20, "steels"), (3.30, 3.89, "etc")]
WORD_EDGES_BY_HAND = [0.03, 0.52, 0.72, 0.85, 1.24, 1.32, 1.63, 2.18, 2.60, 2.63, 3.20, 3.30,
                      3.89]
# the same edges in frame coordinates (25 ms frames: t / 0.025), and the frame each falls in
EDGE_FRAMES_BY_HAND = [1.2, 20.8, 28.8, 34.0, 49.6, 52.8, 65.2, 87.2, 104.0, 105.2, 128.0,
                       132.0, 155.6]
EDGE_FRAME_INDEX_BY_HAND = [1, 20, 28, 34, 49, 52, 65, 87, 104, 105, 128, 132, 155]


def same_intervals(got, expected):
    """Interval lists equal: labels exactly, times to 1e-9 s."""
    assert [w for _, _, w in got] == [w for _, _, w in expected]
    assert [t for s, e, _ in got for t in (s, e)] == pytest.approx(
        [t for s, e, _ in expected for t in (s, e)], abs=1e-9)


def script(name, *args):
    return run_script(name, *args, check=False)


def ok(p):
    assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


# --------------------------------------------------------------------------- unit
def test_pooled_layers_with_a_partial_last_block_keep_rows_summing_to_one():
    """9 frames pooled by 2 → 5, the last block covering one frame: its key weight must not be
    halved (rows sum to 1) and summing a block's keys gives the coarse weights back."""
    torch.manual_seed(0)
    fine = torch.softmax(torch.randn(1, 2, 9, 9), -1)
    coarse = torch.softmax(torch.randn(1, 2, 5, 5), -1)
    arr, spf = stack_self_attention([fine, coarse], samples_per_frame=[400, 800])
    assert arr.shape == (2, 1, 2, 9, 9) and spf == 400
    np.testing.assert_allclose(arr.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(arr[0, 0], fine[0].numpy(), atol=1e-7)
    sizes = block_sizes(9, 2)
    assert sizes.tolist() == [2, 2, 2, 2, 1]
    edges = np.concatenate([[0], np.cumsum(sizes)])
    for q in range(9):
        back = [arr[1, 0, :, q, a:b].sum(-1) for a, b in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(np.stack(back, -1), coarse[0, :, q // 2].numpy(), atol=1e-6)
    # padded batch: valid_frames crops every layer to the clip's own frames first
    arr, _ = stack_self_attention([torch.rand(1, 2, 12, 12), torch.rand(1, 2, 6, 6)],
                                  samples_per_frame=[400, 800], valid_frames=7)
    assert arr.shape == (2, 1, 2, 7, 7)


def test_boundaries_map_to_the_textgrid_word_times():
    """The grid's boundary lines are the TextGrid's word edges, in seconds (the plot's
    coordinates) and in 25 ms frames, against values read from the file by hand."""
    if not TEXTGRID.is_file():
        missing_shared(f"TextGrid sample not found at {TEXTGRID}")
    from audioattn_sb.textgrid import read_textgrid, words_and_phones

    words, phones = words_and_phones(read_textgrid(TEXTGRID))
    same_intervals(words, WORDS_BY_HAND)
    frames = 157                                    # ⌈3.9139 s · 16000 / 400⌉
    lines = alignment_lines(words, phones, t_max=frames * 0.025)
    assert lines["words"] == pytest.approx(WORD_EDGES_BY_HAND)
    assert [t / 0.025 for t in lines["words"]] == pytest.approx(EDGE_FRAMES_BY_HAND)
    assert [math.floor(t * 16000 / 400 + 1e-9) for t in lines["words"]] == \
        EDGE_FRAME_INDEX_BY_HAND
    assert 0.2 in lines["phones"] and not set(lines["phones"]) & set(lines["words"])
    assert alignment_lines(words, None, t_max=1.0)["words"] == [0.03, 0.52, 0.72, 0.85]

    # what the figure really draws: solid word lines at those seconds on both axes
    att = np.full((1, 1, 2, frames, frames), 1.0 / frames)
    fig = new_figure(620, 340)
    axes = draw_self_attention_grid(fig, att, 400, 16000, words=words, phones=phones)
    for ax in axes.ravel():
        vertical = {"-": [], ":": []}
        horizontal = {"-": [], ":": []}
        for line in ax.lines:
            x, y = line.get_xdata(), line.get_ydata()
            style = line.get_linestyle()
            if x[0] == x[1]:
                vertical[style].append(float(x[0]))
            else:
                horizontal[style].append(float(y[0]))
        assert sorted(vertical["-"]) == pytest.approx(WORD_EDGES_BY_HAND)
        assert sorted(horizontal["-"]) == pytest.approx(WORD_EDGES_BY_HAND)
        assert sorted(vertical[":"]) == pytest.approx(lines["phones"])
        assert ax.get_xlim() == pytest.approx((0.0, frames * 0.025))
    assert WORD_LINE["linestyle"] == "-" and PHONE_LINE["linestyle"] == ":"


def test_grid_cells_draw_the_chosen_layer_and_head():
    """Plot by content: cell (r, c) of a grid drawn for layers [2, 0] and heads [1, 3] shows
    exactly matrix att[layer, 0, head] (distinct random values per cell), spans the frames in
    seconds (origin at the top left), and is labelled with that layer and head; with
    ``softmax=True`` each row of the drawn matrix is the softmax of the scores."""
    rng = np.random.default_rng(0)
    att = rng.random((3, 1, 4, 5, 7))
    fig = new_figure(620, 340)
    axes = draw_self_attention_grid(fig, att, 400, 16000, layers=[2, 0], heads=[1, 3])
    assert axes.shape == (2, 2)
    for r, layer in enumerate([2, 0]):
        for c, head in enumerate([1, 3]):
            ax = axes[r, c]
            np.testing.assert_array_equal(ax.images[0].get_array(), att[layer, 0, head])
            assert ax.images[0].get_extent() == pytest.approx([0.0, 7 * 0.025, 5 * 0.025, 0.0])
            if r == 0:
                assert ax.get_title() == f"head {head}"
            if c == 0:
                assert ax.get_ylabel().startswith(f"layer {layer}")
    fig = new_figure(620, 340)
    axes = draw_self_attention_grid(fig, att, 400, 16000, layers=[1], heads=[2], softmax=True)
    drawn = np.asarray(axes[0, 0].images[0].get_array())
    scores = att[1, 0, 2]
    np.testing.assert_allclose(drawn, np.exp(scores) / np.exp(scores).sum(-1, keepdims=True))
    with pytest.raises(ValueError, match=r"heads \[4\] outside 0..3"):
        draw_self_attention_grid(new_figure(620, 340), att, 400, 16000, heads=[4])


def test_argument_errors_before_loading_anything(tmp_path, capsys):
    from audioattn_sb.inspection.cli import run_cli, save_self_attention_main

    base = [HPARAMS, f"--output_folder={tmp_path / 'none'}"]
    for extra, message in ((["--wav", "a.wav", "--attn_num_samples", "2"], "not both"),
                           (["--textgrid", "a.TextGrid"], "goes with --wav"),
                           (["--wav", str(tmp_path / "a.wav")], "no such audio file")):
        with pytest.raises(SystemExit) as exc:
            run_cli(save_self_attention_main, [*base, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


# --------------------------------------------------------------------------- trained run
@pytest.fixture(scope="module")
def transformer_run(demo_us8k, tmp_path_factory):
    """A tiny Transformer trained 1 epoch on the demo (train fold 3, valid 2, test 1)."""
    from conftest import train_in_process as run

    root = tmp_path_factory.mktemp("self_attention_run")
    args = [f"--data_folder={demo_us8k}", f"--cache_folder={root / 'cache'}",
            f"--output_folder={root / 'run'}", "--train_fold_nums=[3]", "--valid_fold_nums=[2]",
            "--test_fold_nums=[1]", "--number_of_epochs=1", *TINY,
            "--attn_max_activation", "entmax15", "--noprogressbar"]
    run([HPARAMS, *args])
    return {"folder": root / "run", "args": args}


@pytest.mark.slow
def test_save_and_plot_test_clips(transformer_run, tmp_path):
    run_folder, args = transformer_run["folder"], transformer_run["args"]
    p = ok(script("save_self_attention.py", HPARAMS, *args, "--attn_num_samples", "4"))
    out = run_folder / "self_attention"
    assert "saved the self-attention of 4 test clips" in p.stdout
    manifest = json.loads((run_folder / "test.json").read_text())
    ids = list(manifest)[:4]
    assert sorted(f.name for f in out.glob("*.npz")) == sorted(f"{i}.npz" for i in ids)

    from audioattn_sb.inference import load_model

    model = load_model(run_folder).run.model
    for fid in ids:
        d = load_self_attention(out / f"{fid}.npz")
        wave, sr = sf.read(manifest[fid]["wav"], dtype="float32")   # the 16 kHz cache
        frames = math.ceil(len(wave) / 400)
        att = d["attention"]
        assert att.shape == (LAYERS, 1, HEADS, frames, frames) and att.dtype == np.float32
        assert str(d["axes"]) == "layer,batch,head,query,key"
        assert int(d["spf"]) == 400 and d["layer_spf"].tolist() == LAYER_SPF
        assert int(d["sample_rate"]) == sr == 16000 and int(d["n_samples"]) == len(wave)
        assert str(d["file_id"]) == fid and str(d["label"]) == manifest[fid]["class_string"]
        assert str(d["max_activation"]) == "entmax15" and float(d["alpha"]) == 1.5
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)   # rows over the valid keys
        assert (att >= 0).all()
        # against the model's own forward on this clip alone: layers 0-1 as they are, the pooled
        # layer 2 recovered by summing each block's keys
        with torch.no_grad():
            _, info = model(torch.from_numpy(wave)[None], return_attention=True)
        native = [w[0].numpy() for w in info.self_attention]
        assert [w.shape[-1] for w in native] == [frames, frames, math.ceil(frames / 2)]
        for n in range(2):
            np.testing.assert_allclose(att[n, 0], native[n], atol=1e-5)
        sizes = block_sizes(frames, 2)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        coarse = np.stack([att[2, 0, :, ::2, a:b].sum(-1) for a, b in zip(edges[:-1],
                                                                         edges[1:])], -1)
        np.testing.assert_allclose(coarse, native[2], atol=1e-5)
    some = load_self_attention(out / f"{ids[1]}.npz")["attention"]
    assert (some == 0).any(), "entmax15 self-attention should give exact zeros"

    # plots: one grid per export, next to them by default
    ok(script("plot_self_attention.py", out))
    for fid in ids:
        png = out / f"{fid}.png"
        assert png.stat().st_size > 10_000
        assert png_size(png) == (100 + 260 * HEADS, 80 + 260 * LAYERS)
    ok(script("plot_self_attention.py", out / f"{ids[0]}.npz", "--layers", "2", "--heads", "1",
              "3", "--out", tmp_path))
    assert png_size(tmp_path / f"{ids[0]}.png") == (100 + 260 * 2, 80 + 260)


@pytest.mark.slow
def test_wav_with_textgrid_and_its_plot(transformer_run, tmp_path):
    if not WAV.is_file():
        missing_shared(f"sample wav not found at {WAV}")
    args = transformer_run["args"]
    ok(script("save_self_attention.py", HPARAMS, *args, "--wav", WAV, "--textgrid", TEXTGRID,
              f"--attn_out_folder={tmp_path / 'sa'}"))
    d = load_self_attention(tmp_path / "sa" / "arctic_a0001.npz")
    n = round(sf.info(str(WAV)).duration * 16000)   # 44.1 kHz file, resampled to 16 kHz
    frames = math.ceil(n / 400)
    assert frames == 157 and abs(int(d["n_samples"]) - n) <= 1
    assert d["attention"].shape == (LAYERS, 1, HEADS, frames, frames)
    np.testing.assert_allclose(d["attention"].sum(-1), 1.0, atol=1e-5)
    saved = list(zip(d["words_start"].tolist(), d["words_end"].tolist(),
                     d["words_label"].tolist()))
    same_intervals(saved, WORDS_BY_HAND)
    assert d["phones_label"][1] == "AO1" and d["phones_start"][1] == pytest.approx(0.03)
    assert str(d["source"]).endswith("arctic_a0001.wav") and str(d["label"]) == ""

    p = ok(script("plot_self_attention.py", tmp_path / "sa" / "arctic_a0001.npz"))
    png = tmp_path / "sa" / "arctic_a0001.png"
    assert "wrote 1 self-attention grid" in p.stdout
    assert png_size(png) == (100 + 260 * HEADS, 80 + 260 * LAYERS)
    assert png.stat().st_size > 50_000


@pytest.mark.slow
def test_classify_file_returns_the_models_self_attention(transformer_run, capsys):
    if not WAV.is_file():
        missing_shared(f"sample wav not found at {WAV}")
    from audioattn_sb.data.audio import read_audio, resample, to_mono
    from audioattn_sb.inference import load_model

    clf = load_model(transformer_run["folder"])
    res = clf.classify_file(WAV, top_k=3)
    wave, sr = read_audio(WAV)
    wave = torch.from_numpy(np.ascontiguousarray(resample(to_mono(wave), sr, 16000)))
    frames = math.ceil(wave.numel() / 400)
    assert res.self_attention_spf == LAYER_SPF
    assert [a.shape for a in res.self_attention] == [(HEADS, frames, frames)] * 2 + \
        [(HEADS, math.ceil(frames / 2), math.ceil(frames / 2))]
    model = clf.run.model.eval()
    with torch.no_grad():
        log_probs, info = model(wave[None], return_attention=True)
    for mine, theirs in zip(res.self_attention, info.self_attention):
        np.testing.assert_allclose(mine, theirs[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(mine.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(res.scores, log_probs[0].exp().numpy(), atol=1e-6)
    summary = res.as_dict()["self_attention"]
    assert summary == {"layers": LAYERS, "heads": HEADS,
                       "frames": [frames, frames, math.ceil(frames / 2)],
                       "samples_per_frame": LAYER_SPF}
    json.dumps(res.as_dict())
    from audioattn_sb.inference import main

    main([str(WAV), "--model", str(transformer_run["folder"]), "--top_k", "2"])
    assert (f"self-attention: 3 layers × 4 heads (entmax15), frames per layer "
            f"[{frames}, {frames}, {math.ceil(frames / 2)}] of [400, 400, 800] samples"
            ) in capsys.readouterr().out
