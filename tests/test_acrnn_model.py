"""ACRNN model: parameter counts, shapes, padding invariance (eval mode), bad configs."""

import os

import pytest
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from audioattn_sb.attention import build_pooling
from audioattn_sb.features import frame_lengths
from audioattn_sb.models.acrnn import ACRNN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("mapping,alpha", [("softmax", None), ("entmax1333", None),
                                           ("entmax15", None), ("sparsemax", None),
                                           ("entmax", 1.7)])
def test_seed_model_has_predecessor_parameter_count(mapping, alpha):
    # REFERENCE §1: 69,514 parameters in every attention variant:
    # conv 80*128*5+128, BN 2*128, scorer 128*128+128 + 128, classifier 128*10+10
    expected = (80 * 128 * 5 + 128) + 2 * 128 + (128 * 128 + 128 + 128) + (128 * 10 + 10)
    model = ACRNN(80, 10, build_pooling("discrete", mapping, 128, alpha=alpha))
    assert sum(p.numel() for p in model.parameters()) == expected == 69514


def _zhang():
    return ACRNN(40, 10, build_pooling("discrete", "softmax", 64), conv_channels=[4, 8],
                 conv2d=True, freq_pool=2, dropout=0.5, rnn_type="gru", rnn_neurons=32,
                 rnn_layers=2)


@pytest.mark.parametrize("make", [
    lambda: ACRNN(40, 10, build_pooling("discrete", "softmax", 16), conv_channels=[16]),
    lambda: ACRNN(40, 10, build_pooling("discrete", "sparsemax", 16), conv_channels=[8, 16],
                  kernel_sizes=[7, 11]),
    _zhang,
])
def test_padding_does_not_change_a_clips_output(make):
    torch.manual_seed(0)
    model = make().eval()
    short = torch.randn(1, 23, 40)
    long = torch.randn(1, 40, 40)
    alone, _ = model(short, torch.tensor([1.0]))
    padded = torch.cat([short, torch.randn(1, 17, 40) * 50], dim=1)
    both, _ = model(torch.cat([padded, long]), torch.tensor([23 / 40, 1.0]))
    torch.testing.assert_close(both[0], alone[0], rtol=1e-5, atol=1e-5)


def test_full_pipeline_padding_invariance_from_waveform():
    """Fbank + sentence mean norm + model: a zero-padded clip scores like the clip alone."""
    torch.manual_seed(0)
    fbank = Fbank(sample_rate=16000, n_fft=400, n_mels=80)
    norm = InputNormalization(norm_type="sentence", std_norm=False)
    model = ACRNN(80, 10, build_pooling("discrete", "entmax15", 128)).eval()
    wav = torch.randn(1, 16000 * 2 + 137) * 0.1
    other = torch.randn(1, 16000 * 3) * 0.1

    def run(wavs, lens):
        feats = fbank(wavs)
        lens = frame_lengths(lens, wavs.shape[1], feats.shape[1], 160)
        return model(norm(feats, lens), lens)[0]

    alone = run(wav, torch.tensor([1.0]))
    padded = torch.nn.functional.pad(wav, (0, other.shape[1] - wav.shape[1]))
    both = run(torch.cat([padded, other]), torch.tensor([wav.shape[1] / other.shape[1], 1.0]))
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-4)


def test_zhang_variant_shapes_and_gradients():
    model = _zhang()
    out, info = model(torch.randn(3, 50, 40), torch.tensor([1.0, 0.5, 0.1]))
    assert out.shape == (3, 10)
    assert torch.allclose(out.exp().sum(-1), torch.ones(3), atol=1e-5)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_configs_raise_value_error():
    pool = build_pooling("discrete", "softmax", 16)
    with pytest.raises(ValueError, match="odd"):
        ACRNN(40, 10, pool, conv_channels=[16], kernel_sizes=[4])
    with pytest.raises(ValueError, match="one entry per conv block"):
        ACRNN(40, 10, pool, conv_channels=[16, 16, 16], kernel_sizes=[5, 7])
    with pytest.raises(ValueError, match="rnn_type"):
        ACRNN(40, 10, pool, conv_channels=[16], rnn_type="transformer", rnn_neurons=8)
    with pytest.raises(ValueError, match="output"):
        ACRNN(40, 10, pool, conv_channels=[16], output="softmax")


@pytest.mark.parametrize("name,low,high", [
    ("urbansound8k_acrnn_zhang.yaml", 6.15e6, 6.25e6),      # README: 6.2 M parameters
    ("urbansound8k_acrnn_compact.yaml", 215_522, 215_522),  # README: 215,522
    ("urbansound8k_acrnn.yaml", 69_514, 69_514),            # README: 69,514
])
def test_readme_parameter_counts_of_the_yamls(tmp_path, name, low, high):
    """The yamls as shipped build the models whose sizes README gives (discrete softmax)."""
    from hyperpyyaml import load_hyperpyyaml

    with open(os.path.join(REPO, "hparams", name)) as f:
        hp = load_hyperpyyaml(f, f"output_folder: {tmp_path}")
    n = sum(p.numel() for p in hp["model"].parameters())
    assert low <= n <= high, n
