"""The typed attention (issue 31): every pooling family and every model returns an
audioattn_sb.attention.output.Attention whose fields have the documented shapes; the Brain's
forward returns a ForwardOutput and keeps nothing; forward_with_attention evaluates a batch."""

import dataclasses

import pytest
import speechbrain as sb
import torch

from audioattn_sb.attention import build_pooling
from audioattn_sb.attention.output import Attention
from audioattn_sb.brains.base import ForwardOutput

#: the fields each pooling family fills (the others stay None)
FAMILY_FIELDS = {
    "discrete": {"weights", "mask", "lengths", "alpha"},
    "mean": {"weights", "mask", "lengths"},
    "continuous": {"weights", "mask", "lengths", "alpha", "mu", "var", "sigma_sq", "support",
                   "cont_weights"},
}


def test_attention_fields_are_the_documented_ones():
    """Every field is documented in the dataclass's docstring (the one place that does)."""
    names = [f.name for f in dataclasses.fields(Attention)]
    assert names == ["weights", "mask", "lengths", "alpha", "mu", "var", "sigma_sq", "support",
                     "cont_weights", "self_attention"]
    doc = Attention.__doc__
    for name in names:
        assert f"\n    {name} : " in doc, name


@pytest.mark.parametrize("domain,name", [("discrete", "sparsemax"), ("mean", "softmax"),
                                         ("continuous", "biweight")])
def test_each_pooling_family_fills_its_fields_with_the_documented_shapes(domain, name):
    torch.manual_seed(0)
    pool = build_pooling(domain, name, 8, continuous={"num_centres": 8})
    lengths = torch.tensor([1.0, 0.5, 0.25])
    ctx, att = pool(torch.randn(3, 8, 8), lengths)
    assert isinstance(att, Attention) and ctx.shape == (3, 8)
    assert set(att.present()) == FAMILY_FIELDS[domain]
    assert att.weights.shape == att.mask.shape == (3, 8) and att.mask.dtype == torch.bool
    assert att.mask.sum(1).tolist() == [8, 4, 2]
    assert torch.equal(att.lengths, lengths)
    assert (att.weights[~att.mask] == 0).all()
    torch.testing.assert_close(att.weights.sum(1), torch.ones(3))
    if domain != "mean":
        assert att.alpha.dim() == 0 and att.alpha.item() == pool.alpha
    if domain == "continuous":
        for field in ("mu", "var", "sigma_sq", "support"):
            assert getattr(att, field).shape == (3,), field
        assert ((att.mu > 0) & (att.mu < 1)).all()                     # relative time
        assert att.cont_weights.shape == (3, 8) and (att.cont_weights[~att.mask] == 0).all()


def test_continuous_direct_encoder_without_fusion_has_no_discrete_weights():
    pool = build_pooling("continuous", "gaussian", 8,
                         continuous={"num_centres": 8, "encoder": "direct",
                                     "fuse_discrete": False})
    _, att = pool(torch.randn(2, 6, 8), torch.tensor([1.0, 0.5]))
    assert att.weights is None and att.mu.shape == (2,) and att.cont_weights.shape == (2, 6)


def test_clip_and_cpu_slice_every_per_clip_field():
    torch.manual_seed(0)
    pool = build_pooling("continuous", "sparsemax", 8, continuous={"num_centres": 8})
    _, att = pool(torch.randn(2, 6, 8, requires_grad=True), torch.tensor([1.0, 0.5]))
    att = att.with_self_attention([torch.rand(2, 4, 6, 6), torch.rand(2, 4, 3, 3)])
    one = att.cpu().clip(1)
    assert one.weights.shape == (6,) and one.mask.tolist() == [True] * 3 + [False] * 3
    assert one.mu.dim() == 0 and one.mu == att.mu[1] and one.alpha == att.alpha
    assert [tuple(w.shape) for w in one.self_attention] == [(4, 6, 6), (4, 3, 3)]
    assert not att.cpu().mu.requires_grad and att.mu.requires_grad


def test_models_return_the_pooling_attention():
    from audioattn_sb.models.acrnn import ACRNN
    from audioattn_sb.models.transformer import AudioTransformer, LogMelTransformer

    torch.manual_seed(0)
    pooling = build_pooling("continuous", "biweight", 8, continuous={"num_centres": 8})
    acrnn = ACRNN(16, 3, pooling, conv_channels=(8,)).eval()
    out, att = acrnn(torch.randn(2, 20, 16), torch.tensor([1.0, 0.5]))
    assert out.shape == (2, 3) and att.mu.shape == (2,) and att.self_attention is None
    assert att.lengths.tolist() == [1.0, 0.5]                          # relative, at the pooling
    wave = AudioTransformer(3, n_layers=3, d_model=16, n_heads=4, ff_dim=8, frontend_dim=8,
                            pool_between_layers=True).eval()
    out, att = wave(torch.randn(2, 4000), torch.tensor([1.0, 0.5]), return_attention=True)
    assert att.weights.shape == (2, 5) and (att.lengths * 5).tolist() == [5.0, 3.0]
    assert [tuple(w.shape) for w in att.self_attention] == [(2, 4, 10, 10)] * 2 + [(2, 4, 5, 5)]
    logmel = LogMelTransformer(16, 3, n_layers=1, n_heads=2, ff_dim=8, d_model=8).eval()
    _, att = logmel(torch.randn(2, 12, 16), torch.tensor([1.0, 0.5]), return_attention=True)
    assert att.weights.shape == (2, 12) and att.self_attention[0].shape == (2, 2, 12, 12)


# --------------------------------------------------------------------------- the Brain
class _Feats(torch.nn.Module):
    def forward(self, wavs):                       # [B, N] → [B, N / 10, 10] "frames"
        return wavs.reshape(wavs.shape[0], -1, 10)

    def frame_lengths(self, wav_lens, n_samples=None, n_frames=None):
        return wav_lens


class _Norm(torch.nn.Module):
    def forward(self, x, lengths=None):
        return x * 2


def _brain(model, mixup_alpha=0.0):
    from audioattn_sb.brains.classification import ClassificationBrain

    hparams = {"epoch_counter": sb.utils.epoch_loop.EpochCounter(limit=1), "n_classes": 3,
               "hop_samples": 10, "mixup_alpha": mixup_alpha}
    return ClassificationBrain(modules={"compute_features": _Feats(), "mean_var_norm": _Norm(),
                                        "model": model}, hparams=hparams,
                               run_opts={"device": "cpu"})


def _batch():
    from speechbrain.dataio.batch import PaddedBatch

    return PaddedBatch([{"id": "a", "sig": torch.randn(200), "label": torch.tensor([0])},
                        {"id": "b", "sig": torch.randn(100), "label": torch.tensor([2])}])


def test_compute_forward_returns_the_forward_output_and_keeps_nothing():
    from audioattn_sb.models.acrnn import ACRNN

    torch.manual_seed(0)
    brain = _brain(ACRNN(10, 3, build_pooling("discrete", "softmax", 8), conv_channels=(8,)),
                   mixup_alpha=0.4)
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN)
    before = set(vars(brain))
    out = brain.compute_forward(_batch(), sb.Stage.TRAIN)
    assert isinstance(out, ForwardOutput) and out.predictions.shape == (2, 3)
    assert isinstance(out.attention, Attention) and out.attention.weights.shape == (2, 20)
    assert out.mix is not None and out.teacher_predictions is None
    assert out.raw_features.shape == out.model_input.shape == (2, 20, 10)
    assert out.raw_lengths.dtype == torch.float64 and out.raw_lengths.tolist() == [1.0, 0.5]
    assert set(vars(brain)) == before                                  # no state on the Brain
    loss = brain.compute_objectives(out, _batch(), sb.Stage.TRAIN)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_forward_with_attention_evaluates_and_restores_the_modes():
    from audioattn_sb.models.transformer import LogMelTransformer

    torch.manual_seed(0)
    model = LogMelTransformer(10, 3, n_layers=2, n_heads=2, ff_dim=8, d_model=8)
    brain = _brain(model, mixup_alpha=0.4)
    brain.modules.train()
    out = brain.forward_with_attention(_batch(), self_attention=True)
    assert model.training                                              # mode restored
    assert out.mix is None and not out.predictions.requires_grad      # evaluation, no grad
    assert [tuple(w.shape) for w in out.attention.self_attention] == [(2, 2, 20, 20)] * 2
    torch.testing.assert_close(out.model_input, 2 * out.raw_features)
    model.eval()
    with torch.no_grad():
        ref, _ = model(out.model_input, out.lengths)
    torch.testing.assert_close(out.predictions, ref)                  # the same numbers
    assert brain.forward_with_attention(_batch()).attention.self_attention is None


def test_forward_with_attention_refuses_self_attention_of_models_without():
    from audioattn_sb.models.acrnn import ACRNN

    brain = _brain(ACRNN(10, 3, build_pooling("mean", "softmax", 8), conv_channels=(8,)))
    assert not brain.has_self_attention()
    with pytest.raises(ValueError, match=r"the model \(ACRNN\) has no self-attention"):
        brain.forward_with_attention(_batch(), self_attention=True)


def test_clip_attention_refuses_the_untyped_dict():
    from audioattn_sb.inspection.attention import clip_attention

    cfg = {"attn_domain": "discrete", "max_activation": "softmax", "alpha_value": 1.0}
    with pytest.raises(TypeError, match="Attention"):
        clip_attention({"weights": torch.ones(3) / 3}, cfg, 1.0)
    with pytest.raises(ValueError, match="fields: mask"):
        clip_attention(Attention(mask=torch.ones(3, dtype=torch.bool)), cfg, 1.0)

