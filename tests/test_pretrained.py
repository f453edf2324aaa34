"""Self-attention of pretrained Hugging Face speech encoders (issue 14), with tiny randomly
initialised models built from transformers configs and saved to a folder (no download)."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import missing_shared, run_script

transformers = pytest.importorskip(
    "transformers", reason="the optional extra is not installed (pip install -e '.[hf]')")

from audioattn_sb.inspection.pretrained import (  # noqa: E402
    PretrainedEncoder,
    _frame_interval_ids,
    attention_summaries,
    conv_frames,
    export_pretrained,
)
from audioattn_sb.inspection.self_attention import load_self_attention  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEXTGRID = REPO.parent / "shared" / "data" / "textgrid_sample" / "arctic_a0001.TextGrid"
WAV2VEC_LIKE = {"wav2vec2": "Wav2Vec2", "hubert": "Hubert", "wavlm": "WavLM"}


def _save_tiny(folder, family):
    """A 2-layer, 2-head model of ``family`` with random weights and its feature extractor."""
    import torch

    torch.manual_seed(0)
    if family == "whisper":
        config = transformers.WhisperConfig(
            d_model=16, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80)
        model = transformers.WhisperModel(config)
        extractor = transformers.WhisperFeatureExtractor(feature_size=80)
    else:
        prefix = WAV2VEC_LIKE[family]
        config = getattr(transformers, f"{prefix}Config")(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        model = getattr(transformers, f"{prefix}Model")(config)
        extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["wav2vec2", "hubert", "wavlm", "whisper"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"tiny_{request.param}")
    return request.param, str(_save_tiny(folder, request.param))


def _wav(path, seconds, sr=44100, channels=2, seed=0):
    x = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return path


def test_shapes_rows_and_frame_hop(tiny, tmp_path):
    family, folder = tiny
    enc = PretrainedEncoder(folder)
    assert enc.model_type == family and enc.sample_rate == 16000
    assert enc.spf == 320  # 20 ms: the conv stride product, or Whisper's 10 ms hop × 2
    wav = _wav(tmp_path / "a.wav", 1.0)  # 44.1 kHz stereo: resampled and downmixed
    npz, csv_path, rows = export_pretrained(enc, wav, tmp_path / "out")
    d = load_self_attention(npz)
    att = d["attention"]
    expected_t = 50 if family == "whisper" else conv_frames(16000, (10, 3, 3, 3, 3, 2, 2),
                                                            (5, 2, 2, 2, 2, 2, 2))
    assert expected_t == (50 if family == "whisper" else 49)
    assert att.shape == (2, 1, 2, expected_t, expected_t) and att.dtype == np.float32
    assert np.allclose(att.sum(-1), 1.0, atol=1e-5) and (att >= 0).all()
    assert int(d["spf"]) == 320 and int(d["sample_rate"]) == 16000
    assert int(d["n_samples"]) == 16000 and str(d["model_type"]) == family
    mass = d["clip_mass"]
    if family == "whisper":  # 30 s of input: part of each row lies on the padding
        assert mass.shape == (2, 2) and (mass < 1).all() and (mass > 0).all()
    else:
        assert np.allclose(mass, 1.0, atol=1e-5)
    assert len(rows) == 4 and Path(csv_path).is_file()


def test_export_equals_the_library_attention(tmp_path):
    """The exported maps are the library's own output_attentions, cut to the clip."""
    import torch

    folder = str(_save_tiny(tmp_path / "w2v", "wav2vec2"))
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    wav = _wav(tmp_path / "b.wav", 0.5, sr=16000, channels=1, seed=2)
    x, _ = sf.read(wav, dtype="float32")
    ext = transformers.AutoFeatureExtractor.from_pretrained(folder)
    with torch.no_grad():
        ref = model(ext(x, sampling_rate=16000, return_tensors="pt").input_values,
                    output_attentions=True).attentions
    npz, _, _ = export_pretrained(PretrainedEncoder(folder), wav, tmp_path / "o")
    att = load_self_attention(npz)["attention"]
    for layer in range(2):
        assert np.allclose(att[layer, 0], ref[layer][0].numpy(), atol=1e-6)


def test_textgrid_frames_against_hand_times():
    # 20 ms frames: centres 0.01, 0.03, 0.05, 0.07, 0.09, 0.11 s
    words = [(0.0, 0.04, "a"), (0.04, 0.1, "b")]
    assert _frame_interval_ids(6, 320, 16000, words).tolist() == [0, 0, 1, 1, 1, -1]


def test_summaries_against_hand_values():
    t = 4
    block = np.zeros((t, t))
    block[:2, :2] = 0.5
    block[2:, 2:] = 0.5  # each query attends evenly within its own word
    uniform = np.full((t, t), 0.25)
    att = np.stack([block, uniform])[None, None]  # [1, 1, 2, 4, 4]
    words = [(0.0, 0.04, "w1"), (0.04, 0.08, "w2")]  # frames 0-1 and 2-3 (20 ms frames)
    rows = attention_summaries(att, 320, 16000, words=words)
    # block: entropy log 2; distance: queries 0 and 3 → ½·0.02, 1 and 2 → ½·0.02 → 0.01 s
    assert rows[0]["entropy"] == pytest.approx(math.log(2))
    assert rows[0]["mean_distance_s"] == pytest.approx(0.01)
    assert rows[0]["within_word"] == pytest.approx(1.0) and rows[0]["within_phone"] is None
    # uniform: log 4; distances per query (0,1,2,3)·0.02/4 → (6, 4, 4, 6)·0.005 → mean 0.025
    assert rows[1]["entropy"] == pytest.approx(math.log(4))
    assert rows[1]["mean_distance_s"] == pytest.approx(0.025)
    assert rows[1]["within_word"] == pytest.approx(0.5)
    # mass within ±1 frame: block 1 for every query; uniform (2, 3, 3, 2) keys of 0.25
    assert rows[0]["diagonality"] == pytest.approx(1.0)
    assert rows[1]["diagonality"] == pytest.approx((2 + 3 + 3 + 2) / 16)


def test_script_with_textgrid_float16_and_plot(tmp_path):
    if not TEXTGRID.is_file():
        missing_shared(f"the TextGrid sample is not at {TEXTGRID}")
    folder = _save_tiny(tmp_path / "hubert", "hubert")
    wav = _wav(tmp_path / "arctic.wav", 3.0, sr=22050, channels=1)
    out = tmp_path / "out"
    p = run_script("save_self_attention.py", "--hf_model", folder, "--wav", wav,
                   "--textgrid", TEXTGRID, "--attn_out_folder", out, "--float16")
    assert "hubert: 2 layers × 2 heads, 320 samples per frame" in p.stdout
    d = load_self_attention(out / "arctic.npz")
    assert d["attention"].dtype == np.float16 and str(d["words_label"][0]) == "author"
    with open(out / "arctic_summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(0 <= float(r["within_word"]) <= 1 for r in rows)
    run_script("plot_self_attention.py", out / "arctic.npz", "--out", tmp_path / "png")
    assert (tmp_path / "png" / "arctic.png").is_file()
    bad = run_script("save_self_attention.py", "--hf_model", folder, "--wav",
                     tmp_path / "missing.wav", check=False)
    assert bad.returncode == 2 and "no such audio file" in bad.stderr


def test_unknown_model_type_is_refused(tmp_path):
    folder = tmp_path / "bert"
    transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=16).save_pretrained(folder)
    with pytest.raises(ValueError, match="model type 'bert' is not a speech encoder"):
        PretrainedEncoder(str(folder))


@pytest.mark.parametrize("missing", ["preprocessor_config.json", "config.json"])
def test_model_folder_without_a_required_file_is_one_error_line(tmp_path, missing):
    """A folder saved with ``model.save_pretrained`` alone (no feature extractor), or without its
    config: one ``error:`` line naming the file, no ``transformers`` traceback (issue 29)."""
    folder = _save_tiny(tmp_path / "hubert", "hubert")
    (folder / missing).unlink()
    wav = _wav(tmp_path / "a.wav", 1.0, sr=16000, channels=1)
    p = run_script("save_self_attention.py", "--hf_model", folder, "--wav", wav, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"no {missing}" in errors[0] and str(folder) in errors[0]
