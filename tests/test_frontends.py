"""The raw-waveform Transformer's front ends and input scale (issue 30): the mel-Gabor filterbank
against a hand computation, token counts, padding invariance and float64 gradchecks for each
front end, bad configurations refused, and the signal-to-position energy ratio at
initialisation on a quiet and a loud clip."""

import csv
import math

import numpy as np
import pytest
import torch

from audioattn_sb.models.frontends import (ConvStem, DensePatches, build_frontend,
                                           conv_token_counts, gabor_filterbank, mask_bands,
                                           mel_centres)
from audioattn_sb.models.transformer import AudioTransformer, signal_to_position_db

TINY = dict(n_layers=2, d_model=16, n_heads=4, ff_dim=24, frontend_dim=32, dropout=0.0)
CONV = {"n_filters": 8, "kernel_size": 400, "hop": 160, "channels": 12, "strides": [2, 2]}
FRONT_ENDS = {"dense": {}, "dense_overlap": {"frontend_hop": 200},
              "conv": {"frontend": "conv", "frontend_options": CONV},
              "conv2d": {"frontend": "conv", "frontend_options": {**CONV, "conv_dims": 2}},
              "conv_band_norm": {"frontend": "conv",
                                 "frontend_options": {**CONV, "band_norm": "batch"}}}


def test_gabor_filter_against_a_hand_computation():
    """Filter k = 5 of 16 at 16 kHz recomputed in numpy from the formulas: mel points
    2595·log10(1 + f/700) equally spaced, FWHM (f_{k+2} − f_k)/2, σ = sr·√(2 ln 2)/(π b)
    (capped at kernel/6), Gaussian window on the kernel centre, unit-norm cosine row."""
    n, k, kernel, sr = 16, 5, 400, 16000
    mels = np.linspace(0.0, 2595 * np.log10(1 + 8000 / 700), n + 2)
    hz = 700 * (10 ** (mels / 2595) - 1)
    f, b = hz[k + 1], (hz[k + 2] - hz[k]) / 2
    sigma = min(sr * np.sqrt(2 * np.log(2)) / (np.pi * b), kernel / 6)
    t = np.arange(kernel) - (kernel - 1) / 2
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    cos, sin = g * np.cos(2 * np.pi * f * t / sr), g * np.sin(2 * np.pi * f * t / sr)
    w = gabor_filterbank(n, kernel, sr).numpy()
    np.testing.assert_allclose(w[2 * k], cos / np.linalg.norm(cos), atol=1e-12)
    np.testing.assert_allclose(w[2 * k + 1], sin / np.linalg.norm(cos), atol=1e-12)
    centres, widths = mel_centres(n, sr)
    assert centres[k] == pytest.approx(f) and widths[k] == pytest.approx(b)


def test_gabor_filters_peak_at_their_mel_centres():
    """The magnitude response of each (cos + i·sin) filter peaks at its centre frequency (to
    one FFT bin), centres increasing: a filterbank sorted by frequency."""
    n, sr, nfft = 32, 16000, 16000
    w = gabor_filterbank(n, 400, sr).numpy()
    response = np.abs(np.fft.fft(w[0::2] + 1j * w[1::2], nfft))[:, : nfft // 2]
    peaks = response.argmax(1) * sr / nfft
    centres, _ = mel_centres(n, sr)
    np.testing.assert_allclose(peaks, centres, atol=sr / nfft + 1e-9)
    assert np.all(np.diff(peaks) > 0)


@pytest.mark.parametrize("conv_dims", [1, 2])
@pytest.mark.parametrize("n", [1, 159, 160, 161, 639, 640, 641, 16000, 64000])
def test_conv_token_counts_match_the_output(n, conv_dims):
    stem = ConvStem(8, n_filters=4, channels=4, conv_dims=conv_dims)
    h, counts = stem(torch.randn(1, n), torch.tensor([n]))
    assert counts.item() == h.shape[1] == conv_token_counts(torch.tensor([n]), 160, (2, 2)).item()
    assert counts.item() == math.ceil(math.ceil(math.ceil(n / 160) / 2) / 2)


@pytest.mark.parametrize("name", FRONT_ENDS)
def test_padding_does_not_change_a_clip(name):
    """A clip alone and the same clip at the start of a longer padded batch (with garbage in
    the padding): identical outputs and pooling weights, float64."""
    torch.manual_seed(0)
    model = AudioTransformer(5, pooling=None, **TINY, **FRONT_ENDS[name]).double().eval()
    clip = torch.randn(1, 7333, dtype=torch.float64)
    batch = torch.randn(2, 12000, dtype=torch.float64)  # garbage past the clip's samples
    batch[0, :7333] = clip[0]
    alone, info_alone = model(clip, torch.tensor([1.0], dtype=torch.float64))
    padded, info_padded = model(batch, torch.tensor([7333 / 12000, 1.0], dtype=torch.float64))
    torch.testing.assert_close(padded[0], alone[0], atol=1e-10, rtol=1e-10)
    n = info_alone.weights.shape[1]
    torch.testing.assert_close(info_padded.weights[0, :n], info_alone.weights[0])
    assert info_padded.weights[0, n:].abs().sum() == 0


@pytest.mark.parametrize("name", ["dense", "dense_overlap", "conv", "conv2d", "conv_band_norm"])
def test_front_end_gradcheck_float64(name):
    torch.manual_seed(0)
    if name.startswith("conv"):
        fe = ConvStem(6, n_filters=3, kernel_size=20, hop=8, channels=4, compression=10.0,
                      conv_dims=2 if name == "conv2d" else 1,
                      band_norm="batch" if name == "conv_band_norm" else "none")
    else:
        fe = DensePatches(20, 8, 6, hop=10 if name == "dense_overlap" else None)
    fe = fe.double()
    x = torch.randn(2, 70, dtype=torch.float64, requires_grad=True)
    n = torch.tensor([70, 45])
    assert torch.autograd.gradcheck(lambda w: fe(w, n)[0], (x,), eps=1e-6, atol=1e-5)


def test_masked_band_norm_is_batch_norm_of_the_valid_frames():
    """In training: the output on the valid frames and the running statistics equal
    torch.nn.BatchNorm1d's on the valid frames of all clips laid end to end (no padding), the
    padding stays 0; more padding with garbage in it changes nothing; in eval mode the running
    statistics normalise."""
    from audioattn_sb.models.frontends import MaskedBandNorm

    torch.manual_seed(0)
    norm, ref = MaskedBandNorm(3).double(), torch.nn.BatchNorm1d(3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        ref.weight.copy_(norm.weight)
        ref.bias.copy_(norm.bias)
    counts = torch.tensor([5, 2])
    x = torch.randn(2, 3, 7, dtype=torch.float64)
    y = norm.train()(x, counts)
    valid = torch.cat([x[0, :, :5], x[1, :, :2]], dim=1)[None]
    want = ref.train()(valid)[0]
    torch.testing.assert_close(torch.cat([y[0, :, :5], y[1, :, :2]], dim=1), want)
    assert y[0, :, 5:].abs().sum() == 0 and y[1, :, 2:].abs().sum() == 0
    torch.testing.assert_close(norm.running_mean, ref.running_mean)
    torch.testing.assert_close(norm.running_var, ref.running_var)
    longer = torch.randn(2, 3, 11, dtype=torch.float64)
    longer[:, :, :7] = x
    torch.testing.assert_close(MaskedBandNorm(3).double().train()(longer, counts)[..., :7],
                               MaskedBandNorm(3).double().train()(x, counts))
    torch.testing.assert_close(norm.eval()(x, counts)[0, :, :5], ref.eval()(x[:1, :, :5])[0])


def test_conv2d_stem_kernels_slide_along_the_bands():
    """The 2-D stem's first convolution is one kernel moved along the bands: band energies
    shifted up by 2 bands (stride 2) give the first layer's map shifted up by one row (the
    rows away from the edges), where the 1-D stem mixes all bands in one channel."""
    torch.manual_seed(0)
    stem = ConvStem(8, n_filters=16, channels=4, strides=[1], conv_dims=2).double()
    conv = stem.convs[0]
    x = torch.zeros(1, 1, 16, 10, dtype=torch.float64)
    x[0, 0, 4:7, 3:6] = torch.randn(3, 3, dtype=torch.float64)
    moved = torch.roll(x, 2, dims=2)
    torch.testing.assert_close(conv(moved)[..., 3:7, :], conv(x)[..., 2:6, :])
    assert stem.proj.in_features == 4 * 8


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="unknown front end 'cnn'; valid: dense, conv"):
        build_frontend("cnn", 8)
    with pytest.raises(ValueError, match="1 ≤ hop ≤ patch_size"):
        DensePatches(400, 8, 8, hop=500)
    with pytest.raises(ValueError, match="init must be 'mel_gabor' or 'random'"):
        ConvStem(8, init="mel")
    with pytest.raises(ValueError, match="hop ≤ kernel_size"):
        ConvStem(8, kernel_size=100, hop=160)
    with pytest.raises(ValueError, match="time_masks and band_masks are"):
        ConvStem(8, time_masks=(2, -1))
    with pytest.raises(ValueError, match="conv_dims must be 1 or 2, got 3"):
        ConvStem(8, conv_dims=3)
    with pytest.raises(ValueError, match="band_norm must be 'none' or 'batch', got 'layer'"):
        ConvStem(8, band_norm="layer")
    with pytest.raises(ValueError, match="input_norm must be one of none, gain"):
        AudioTransformer(5, input_norm="rms")
    with pytest.raises(ValueError, match="patchify is the dense front end's"):
        AudioTransformer(5, frontend="conv").patchify(torch.zeros(1, 400))


def test_token_times_follow_the_front_end():
    assert AudioTransformer(5, n_layers=3, pool_between_layers=True, frontend="conv",
                            frontend_options=CONV).layer_samples_per_frame() == [640, 640, 1280]
    assert AudioTransformer(5, n_layers=1, frontend_hop=200).layer_samples_per_frame() == [200]


def test_signal_to_position_ratio_at_initialisation():
    """Issue 30's cause 1, measured at initialisation on a quiet and a loud clip (white noise at
    the RMS of ESC-10's quietest and loudest clips, 0.007 and 0.27): the paper's dense front end
    puts a quiet clip ~50 dB under the positions, and every clip's level moves its ratio by as
    much as the level itself (linear); the convolutional stem of the compact yaml (log band
    energies, LayerNorm) keeps both clips within 10 dB of the positions."""
    torch.manual_seed(0)
    quiet, loud = 0.007 * torch.randn(64000), 0.27 * torch.randn(64000)
    dense = AudioTransformer(10)
    conv = AudioTransformer(10, frontend="conv", norm_first=True)
    d_quiet, d_loud = signal_to_position_db(dense, quiet), signal_to_position_db(dense, loud)
    c_quiet, c_loud = signal_to_position_db(conv, quiet), signal_to_position_db(conv, loud)
    print(f"signal/positions (dB): dense quiet {d_quiet:.1f} loud {d_loud:.1f}; "
          f"conv quiet {c_quiet:.1f} loud {c_loud:.1f}")
    assert d_quiet < -40 and d_loud - d_quiet == pytest.approx(20 * math.log10(0.27 / 0.007),
                                                               abs=1.0)
    assert -10 < c_quiet < 10 and -10 < c_loud < 10


@pytest.mark.slow
def test_compact_yamls_train_their_filterbank(demo_us8k, demo_fsd50k, tmp_path):
    """hparams/{urbansound8k,fsd50k}_transformer_compact.yaml through recipes/train.py (tiny
    widths, 3 epochs): the convolutional stem's filterbank starts as the mel-Gabor filterbank
    and is trained (augmentation and mixup on), the results are complete."""
    from conftest import REPO_ROOT, run_script, train_in_process

    tiny = ["--d_model=16", "--n_heads=4", "--ff_dim=24", "--n_layers=2",
            "--number_of_epochs=3", "--warmup_epochs=1", "--noprogressbar"]
    us8k = tmp_path / "us8k"
    res = train_in_process([str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml"),
                            f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'c1'}",
                            f"--output_folder={us8k}", "--train_fold_nums=[3]",
                            "--valid_fold_nums=[2]", "--test_fold_nums=[1]", *tiny])
    assert res["epochs_completed"] == res["tested_epoch"] == 3 and res["augment"]
    assert res["mixup_alpha"] == 0.2
    assert sum(map(sum, res["test_confusion_matrix"])) == 30
    (ckpt,) = sorted(us8k.glob("save/CKPT*/model.ckpt"))[-1:]
    fb = torch.load(ckpt, weights_only=True)["frontend.filterbank.weight"][:, 0]
    init = gabor_filterbank(64, 400).float()
    assert fb.shape == init.shape and not torch.allclose(fb, init)
    assert torch.nn.functional.cosine_similarity(fb, init).min() > 0.5  # trained, not replaced
    # recipes/plot_frontend.py: the trained and the initial filterbank, sorted by peak frequency
    p = run_script("plot_frontend.py", us8k)
    assert "64 filters (cos/sin pairs)" in p.stdout
    png, table = us8k / "frontend" / "frontend.png", us8k / "frontend" / "frontend.csv"
    from PIL import Image

    assert Image.open(png).size[0] > 1000
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    for name in ("trained", "initial"):
        peaks = [float(r["peak_hz"]) for r in rows if r["model"] == name]
        assert len(peaks) == 64 and peaks == sorted(peaks)
    initial = [float(r["peak_hz"]) for r in rows if r["model"] == "initial"]
    # the lowest band (28 Hz, its window capped at the kernel) peaks at 0 Hz: its cosine and
    # sine images at ±28 Hz overlap; every other band peaks at its mel centre
    np.testing.assert_allclose(initial[1:], mel_centres(64, 16000)[0][1:], atol=16000 / 2048)
    fsd = tmp_path / "fsd"
    res = train_in_process([str(REPO_ROOT / "hparams" / "fsd50k_transformer_compact.yaml"),
                            f"--data_folder={demo_fsd50k}", f"--cache_folder={tmp_path / 'c2'}",
                            f"--output_folder={fsd}", *tiny])
    assert res["epochs_completed"] == 3 and 0.0 < res["test_mAP"] <= 1.0


def test_peak_and_bandwidth_of_a_hann_windowed_tone():
    """A 400-sample Hann-windowed tone at 1 kHz (16 kHz): peak 1 kHz, −3 dB bandwidth 1.44
    bins of 40 Hz (the Hann window's, Harris 1978) = 57.6 Hz, to the 1 Hz FFT resolution; for
    a (cos, sin) pair the same (its energy response)."""
    from audioattn_sb.inspection.frontend import peak_and_bandwidth, power_responses

    t = np.arange(400)
    hann = np.hanning(400)
    tones = np.stack([hann * np.cos(2 * np.pi * 1000 * t / 16000),
                      hann * np.sin(2 * np.pi * 1000 * t / 16000)])
    for filters, paired in ((tones[:1], False), (tones, True)):
        peak, width = peak_and_bandwidth(power_responses(filters, paired, nfft=16000), 16000)
        assert peak[0] == pytest.approx(1000, abs=1) and width[0] == pytest.approx(57.6, abs=2)


@pytest.mark.slow
def test_initial_model_is_the_runs_initialisation(demo_us8k, tmp_path):
    """With a learning rate of 1e-30 (below float32 resolution) the trained weights are the
    initial ones: the model that plot_frontend rebuilds from the run's yaml and seed equals
    them (dense front end, whose initialisation is random)."""
    from audioattn_sb.inference import load_model
    from audioattn_sb.inspection.frontend import initial_model
    from conftest import REPO_ROOT, train_in_process

    run = tmp_path / "run"
    train_in_process([str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml"),
                      f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'c'}",
                      f"--output_folder={run}", "--train_fold_nums=[3]", "--valid_fold_nums=[2]",
                      "--test_fold_nums=[1]", "--frontend=dense", "--frontend_dim=32",
                      "--d_model=16", "--n_heads=4", "--ff_dim=24", "--n_layers=1",
                      "--number_of_epochs=2", "--warmup_epochs=1", "--lr=1e-30", "--min_lr=0",
                      "--noprogressbar"])
    trained = load_model(run).run.hparams["model"].frontend[0].weight
    init = initial_model(run).frontend[0].weight
    torch.testing.assert_close(init, trained, rtol=0, atol=0)
    torch.manual_seed(123)  # another seed gives other weights: the check can fail
    assert not torch.equal(AudioTransformer(10, d_model=16, frontend_dim=32, n_layers=1,
                                            n_heads=4, ff_dim=24).frontend[0].weight, init)


def test_band_masks_stay_inside_each_clip_and_within_their_widths():
    """SpecAugment on the band energies: each clip's zeroed frames form ≤ count spans of ≤ widest
    frames inside its own frames; zeroed bands ≤ count spans of ≤ widest bands, across all frames."""
    gen = torch.Generator().manual_seed(3)
    counts = torch.tensor([50, 7, 1, 0])
    for _ in range(200):
        x = torch.rand(4, 16, 60) + 0.5                    # no natural zeros
        y = mask_bands(x, counts, (2, 10), (0, 0), gen)
        for i, n in enumerate(counts.tolist()):
            dead = (y[i] == 0).all(0)                      # frames zeroed in every band
            assert torch.equal(dead, (y[i] == 0).any(0))   # a time mask takes whole frames
            assert not dead[n:].any()                      # never past the clip's frames
            idx = torch.nonzero(dead).flatten().tolist()
            spans = [j for j in idx if j - 1 not in idx]   # starts of zeroed runs
            assert len(idx) <= 20 and len(spans) <= 2
        z = mask_bands(x, counts, (0, 0), (2, 3), gen)
        dead_bands = (z == 0).all(2)                       # [B, K]
        assert torch.equal(dead_bands, (z == 0).any(2))
        assert int(dead_bands.sum(1).max()) <= 6
    # some masks are drawn at all (widths uniform in [0, widest])
    y = mask_bands(torch.ones(64, 16, 60), torch.full((64,), 60), (2, 10), (2, 3), gen)
    assert 0.05 < float((y == 0).double().mean()) < 0.6


def test_band_masks_act_in_training_only_and_keep_padding_invariance():
    opts = dict(CONV, time_masks=(2, 5), band_masks=(2, 3))
    torch.manual_seed(0)
    masked, plain = ConvStem(8, **opts), ConvStem(8, **CONV)
    plain.load_state_dict(masked.state_dict())
    wav = torch.randn(2, 8000)
    n = torch.tensor([8000, 5000])
    masked.eval(), plain.eval()
    assert torch.equal(masked(wav, n)[0], plain(wav, n)[0])
    masked.train(), plain.train()
    assert not torch.allclose(masked(wav, n)[0], plain(wav, n)[0])
    # the masks depend on each clip's own frame count, not on the batch's padding
    padded = torch.cat([wav, torch.randn(2, 3000)], 1)
    torch.manual_seed(7)
    a, na = masked(wav, n)
    torch.manual_seed(7)
    b, nb = masked(padded, n)
    assert torch.equal(na, nb)
    for i, k in enumerate(na.tolist()):
        torch.testing.assert_close(a[i, :k], b[i, :k], atol=1e-5, rtol=1e-5)
