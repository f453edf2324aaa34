"""The raw-waveform Transformer (Verma & Berger 2021) with pluggable self-attention.

Model tests in the style of torchaudio's model tests: output shapes per variant, parameter counts
against a formula, padding invariance (float64, eval), each probability mapping inside the
self-attention, the SDPA fast path against the explicit-weights path, gradients, errors, the
multi-scale averaging against a hand computation, and the recipe end to end.
"""

import json
import math
import os
from types import SimpleNamespace

import pytest
from conftest import run_script
import torch

import audioattn_sb.models.transformer as tr
from audioattn_sb.models.transformer import (
    VARIANTS,
    AudioTransformer,
    MultiHeadSelfAttention,
    PassThroughNorm,
    WaveformFeatures,
    block_mean,
    build_transformer_pooling,
    multiscale_average,
    sinusoidal_positions,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAPPINGS = [("softmax", None), ("entmax1333", None), ("entmax15", None), ("sparsemax", None),
            ("entmax", 1.7)]
SPARSE = [m for m in MAPPINGS if m[0] != "softmax"]
TINY = dict(d_model=16, n_heads=4, ff_dim=24, frontend_dim=32)


def tiny(n_classes=5, **kw):
    """A structurally complete but small model (fast tests)."""
    return AudioTransformer(n_classes, **{**TINY, **kw})


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def expected_params(n_classes, n_layers, d=64, frontend=2048, ff=1536, patch=400,
                    norm_first=False, pooling=0):
    """Parameter count from the layer sizes (independent of the implementation)."""
    front = patch * frontend + frontend + frontend * d + d
    attention = 4 * d * d + 4 * d                     # q, k, v, out projections with biases
    feed_forward = d * ff + ff + ff * d + d
    norms = 2 * 2 * d
    final_norm = 2 * d if norm_first else 0
    return front + n_layers * (attention + feed_forward + norms) + final_norm + pooling \
        + d * n_classes + n_classes


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_output_shapes_of_each_variant(variant):
    torch.manual_seed(0)
    model = AudioTransformer(10, **VARIANTS[variant]).eval()
    n_layers = VARIANTS[variant]["n_layers"]
    for n_samples, frames in ((16000, 40), (16001, 41), (64000, 160)):
        expect = [frames] * n_layers
        if VARIANTS[variant]["pool_between_layers"]:                   # after layers 2 and 4
            f2 = -(-frames // 2)
            expect = [frames, frames, f2, f2, -(-f2 // 2), -(-f2 // 2)]
        want_attention = n_samples < 64000                              # (4 s: time)
        with torch.no_grad():
            out, info = model(torch.randn(2, n_samples), torch.tensor([1.0, 0.5]),
                              return_attention=want_attention)
        assert out.shape == (2, 10)
        assert torch.allclose(out.exp().sum(-1), torch.ones(2))       # log-probabilities
        assert info.weights.shape == (2, expect[-1])                # final (mean) pooling
        if want_attention:
            att = info.self_attention
            assert [tuple(w.shape) for w in att] == [(2, 8, q, q) for q in expect]


def test_logits_output_and_no_attention_kept_by_default():
    model = tiny(output="logits").eval()
    out, info = model(torch.randn(3, 4000))
    assert out.shape == (3, 5) and not torch.allclose(out.exp().sum(-1), torch.ones(3))
    assert info.self_attention is None


def test_patches_zero_pad_the_last_partial_patch_and_ignore_batch_padding():
    model = tiny()
    wav = torch.randn(2, 1000)
    patches, n = model.patchify(wav, torch.tensor([1.0, 0.45]))
    assert patches.shape == (2, 3, 400) and n.tolist() == [3, 2]
    assert torch.equal(patches[0].flatten()[:1000], wav[0])
    assert patches[0, 2, 200:].abs().sum() == 0                        # partial patch: zeros
    assert torch.equal(patches[1].flatten()[:450], wav[1, :450])
    assert patches[1].flatten()[450:].abs().sum() == 0                 # past the clip: zeros


def test_sinusoidal_positions_formula():
    pe = sinusoidal_positions(50, 16, dtype=torch.float64)
    t, i = 37, 3
    assert pe[t, 2 * i].item() == pytest.approx(math.sin(t / 10000 ** (2 * i / 16)))
    assert pe[t, 2 * i + 1].item() == pytest.approx(math.cos(t / 10000 ** (2 * i / 16)))


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("n_classes", [10, 200])
def test_parameter_count_matches_the_formula(variant, n_classes):
    model = AudioTransformer(n_classes, **VARIANTS[variant])
    assert n_params(model) == expected_params(n_classes, VARIANTS[variant]["n_layers"])


def test_parameter_counts_against_the_paper():
    large_pooling = AudioTransformer(200, **VARIANTS["large_pooling"])
    assert n_params(large_pooling) == 2_256_008
    assert abs(n_params(large_pooling) - 2.3e6) / 2.3e6 < 0.03       # paper: 2.3 M
    # the paper's small model (0.9 M) cannot share this front end, which alone has 0.95 M
    # parameters; "small" here is the 3-layer version of the same model (documented)
    small = AudioTransformer(200, **VARIANTS["small"])
    assert n_params(small) == 1_610_696
    assert n_params(small.frontend) == 952_384 > 0.9e6
    narrow = AudioTransformer(200, n_layers=3, frontend_dim=1024, ff_dim=1024)
    assert abs(n_params(narrow) - 0.9e6) / 0.9e6 < 0.05


def test_parameter_count_with_attention_pooling_and_pre_norm():
    pool = build_transformer_pooling("discrete", "sparsemax", 16)
    model = tiny(7, n_layers=3, norm_first=True, pooling=pool)
    assert n_params(model) == expected_params(7, 3, d=16, frontend=32, ff=24, norm_first=True,
                                              pooling=16 * 16 + 16 + 16)


# ------------------------------------------------------------------------------ padding
PAD_CASES = [
    ("large_pooling_multiscale", "discrete", "entmax15", None),
    ("large", "mean", "sparsemax", None),
    ("small", "continuous", "softmax", None),
    ("large_pooling", "discrete", "entmax", 1.7),
    ("large_multiscale", "mean", "softmax", None),
]


def _short_and_long_batch():
    """A 7,300-sample clip and a 16,000-sample clip, alone and batched (the short one padded with
    garbage): ``(short, long, batch, relative lengths)``."""
    short, long = torch.randn(7300, dtype=torch.float64), torch.randn(16000, dtype=torch.float64)
    batch = torch.randn(2, 16000, dtype=torch.float64) * 5                   # garbage padding
    batch[0, :7300], batch[1] = short, long
    return short, long, batch, torch.tensor([7300 / 16000, 1.0])


@pytest.mark.parametrize("variant,domain,mapping,alpha", PAD_CASES)
def test_padding_invariance(variant, domain, mapping, alpha):
    """A clip's output and attention do not depend on the longer clip it is batched with."""
    torch.manual_seed(1)
    pool = build_transformer_pooling(domain, mapping, 16, alpha=alpha,
                                     continuous={"num_centres": 8})
    model = tiny(**VARIANTS[variant], pooling=pool, max_activation=mapping,
                 alpha=alpha).double().eval()
    short, long, batch, lens = _short_and_long_batch()
    with torch.no_grad():
        out_b, info_b = model(batch, lens, return_attention=True)
        out_s, info_s = model(short[None], None, return_attention=True)
        out_l, _ = model(long[None], torch.tensor([1.0]), return_attention=True)
    assert torch.allclose(out_b[0], out_s[0], atol=1e-10, rtol=0)
    assert torch.allclose(out_b[1], out_l[0], atol=1e-10, rtol=0)
    for w_b, w_s in zip(info_b.self_attention, info_s.self_attention):
        q = w_s.shape[-1]                                   # 19 patches, pooled: 10, 5
        assert torch.allclose(w_b[0, :, :q, :q], w_s[0], atol=1e-10, rtol=0)
        assert w_b[0, :, :, q:].abs().max() == 0            # padded patches get no weight


# ------------------------------------------------------------------------------ mappings
def _masked_batch(d=16, scale=4.0):
    torch.manual_seed(2)
    x = torch.randn(3, 9, d, dtype=torch.float64) * scale
    mask = torch.arange(9)[None, :] < torch.tensor([9, 5, 0])[:, None]     # clip 3: empty
    return x, mask


@pytest.mark.parametrize("mapping,alpha", MAPPINGS)
def test_each_mapping_sums_to_one_over_valid_keys(mapping, alpha):
    x, mask = _masked_batch()
    att = MultiHeadSelfAttention(16, 4, mapping, alpha).double()
    out, w = att(x, mask, need_weights=True)
    assert w.shape == (3, 4, 9, 9) and torch.isfinite(out).all()
    sums = w.sum(-1)
    assert torch.allclose(sums[:2], torch.ones_like(sums[:2]), atol=1e-9)
    assert w[1, :, :, 5:].abs().max() == 0                  # padded keys: exactly 0
    assert w[2].abs().max() == 0                            # fully padded clip: zeros, no NaN


@pytest.mark.parametrize("mapping,alpha", SPARSE)
def test_sparse_mappings_give_exact_zeros_on_valid_keys(mapping, alpha):
    x, mask = _masked_batch(scale=8.0)
    att = MultiHeadSelfAttention(16, 4, mapping, alpha).double()
    _, w = att(x, mask, need_weights=True)
    valid = w[0]                                            # clip 1: all 9 keys valid
    assert (valid == 0).any(), "no exact zero among valid keys"
    assert (valid > 0).any(-1).all()


def test_entmax1333_is_exactly_four_thirds():
    att = MultiHeadSelfAttention(16, 4, "entmax1333")
    assert att.alpha == 4.0 / 3.0


def test_softmax_weights_equal_a_manual_computation():
    x, mask = _masked_batch(scale=1.0)
    att = MultiHeadSelfAttention(16, 4, "softmax").double()
    out, w = att(x, mask, need_weights=True)
    W, b = att.qkv.weight, att.qkv.bias
    q, k, v = (x @ W[i * 16:(i + 1) * 16].T + b[i * 16:(i + 1) * 16] for i in range(3))
    heads = lambda t: t.reshape(3, 9, 4, 4).transpose(1, 2)                 # noqa: E731
    q, k, v = heads(q), heads(k), heads(v)
    for bi, n in ((0, 9), (1, 5)):
        scores = q[bi] @ k[bi, :, :n].transpose(-1, -2) / math.sqrt(4)
        manual = torch.softmax(scores, dim=-1)                               # [4, 9, n]
        assert torch.allclose(w[bi, :, :, :n], manual, atol=1e-12)
        ctx = (manual @ v[bi, :, :n]).transpose(0, 1).reshape(9, 16)
        assert torch.allclose(out[bi], att.out(ctx), atol=1e-12)


@pytest.mark.parametrize("variant", ["large", "large_pooling_multiscale"])
def test_sdpa_path_equals_the_weights_path(variant, monkeypatch):
    torch.manual_seed(3)
    model = tiny(**VARIANTS[variant]).double().eval()
    x = torch.randn(3, 12000, dtype=torch.float64)
    lens = torch.tensor([1.0, 0.61, 0.0])
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(tr.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with torch.no_grad():
        fast, _ = model(x, lens)
        assert len(calls) == len(model.layers)              # softmax, no weights: SDPA
        slow, info = model(x, lens, return_attention=True)
        assert len(calls) == len(model.layers)              # weights requested: explicit path
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, slow, atol=1e-10, rtol=0)
    # unpadded batch too (no mask at all)
    with torch.no_grad():
        assert torch.allclose(model(x[:1])[0], model(x[:1], return_attention=True)[0],
                              atol=1e-10, rtol=0)


def test_sparse_mappings_never_call_sdpa(monkeypatch):
    calls = []
    monkeypatch.setattr(tr.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1))
    model = tiny(n_layers=2, max_activation="entmax15").eval()
    out, info = model(torch.randn(2, 4000))
    assert not calls and info.self_attention is None and torch.isfinite(out).all()


@pytest.mark.parametrize("mapping,alpha", MAPPINGS)
@pytest.mark.parametrize("domain", ["mean", "discrete", "continuous"])
def test_model_attention_and_gradients_are_finite(mapping, alpha, domain):
    torch.manual_seed(4)
    pool = build_transformer_pooling(domain, mapping, 16, alpha=alpha,
                                     continuous={"num_centres": 8})
    model = tiny(**VARIANTS["large_pooling_multiscale"], pooling=pool, max_activation=mapping,
                 alpha=alpha)
    model.train()
    x = torch.randn(3, 8000)
    lens = torch.tensor([1.0, 0.37, 0.0])                  # the last clip is fully padded
    out, info = model(x, lens, return_attention=True)
    assert torch.isfinite(out).all()
    for w, n in zip(info.self_attention, [20, 20, 10, 10, 5, 5]):
        assert torch.isfinite(w).all() and w[2].abs().max() == 0
        sums = w[:2].sum(-1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
        n_short = -(-8 // (20 // n))                       # 8 patches → 4 → 2 after pooling
        assert w[1, :, :, n_short:].abs().max() == 0
    loss = torch.nn.functional.nll_loss(out, torch.tensor([0, 1, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the SDPA path with a fully padded clip: no NaN either
    out2, _ = model(x, lens)
    assert torch.isfinite(out2).all()


# ------------------------------------------------------------------------------ errors
def test_unknown_mapping_lists_the_valid_names():
    with pytest.raises(ValueError, match="softmax, entmax1333, entmax15, sparsemax, entmax"):
        AudioTransformer(10, max_activation="softmaxx")
    with pytest.raises(ValueError, match="needs --attn_alpha"):
        AudioTransformer(10, max_activation="entmax")
    with pytest.raises(ValueError, match="contradicts"):
        AudioTransformer(10, max_activation="entmax15", alpha=1.7)


@pytest.mark.parametrize("kwargs,match", [
    (dict(d_model=60, n_heads=8), "divisible by n_heads"),
    (dict(d_model=20, n_heads=4, multi_scale=True), "multi-scale"),
    (dict(multi_scale=True, multi_scale_windows=(0, 2)), "positive"),
    (dict(output="probs"), "log_softmax"),
    (dict(n_layers=0), "n_layers"),
    (dict(patch_size=0), "patch_size"),
])
def test_bad_configuration_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioTransformer(10, **kwargs)


def test_bad_input_and_pooling_names_raise():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        tiny()(torch.randn(2, 3, 400))
    with pytest.raises(ValueError, match="discrete, continuous, mean"):
        build_transformer_pooling("gaussian", "softmax", 16)
    with pytest.raises(ValueError, match="unknown continuous attention max_activation"):
        build_transformer_pooling("continuous", "nope", 16)


# ------------------------------------------------------------------- pooling, multi-scale
def test_block_mean_and_pooling_between_layers_by_hand():
    x = torch.arange(10.0).reshape(2, 5, 1)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    means, m = block_mean(x, mask, 2)
    assert means.squeeze(-1).tolist() == [[0.5, 2.5, 4.0], [5.5, 7.0, 0.0]]
    assert m.tolist() == [[True, True, True], [True, True, False]]
    # in the model: 19 patches → 10 → 5 frames at the final pooling
    model = tiny(**VARIANTS["large_pooling"]).eval()
    _, info = model(torch.randn(2, 16000), torch.tensor([1.0, 7300 / 16000]))
    assert (info.lengths * 10).tolist() == [10.0, 5.0]


def _multiscale_by_hand(x, n_valid, windows):
    batch, length, dim = x.shape
    half, group = dim // 2, dim // 2 // len(windows)
    out = x.clone()
    for b in range(batch):
        for t in range(n_valid[b]):
            for c in range(half, dim):
                w = windows[(c - half) // group]
                start = (t // w) * w
                frames = [s for s in range(start, start + w) if s < n_valid[b]]
                out[b, t, c] = sum(x[b, s, c] for s in frames) / len(frames)
    return out


def test_multiscale_average_against_a_hand_computation():
    torch.manual_seed(5)
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    n_valid = [11, 7]
    mask = torch.arange(11)[None, :] < torch.tensor(n_valid)[:, None]
    got = multiscale_average(x, mask, (1, 2, 4, 8))
    hand = _multiscale_by_hand(x, n_valid, (1, 2, 4, 8))
    assert torch.allclose(got[0], hand[0], atol=1e-12)
    assert torch.allclose(got[1, :7], hand[1, :7], atol=1e-12)
    assert torch.equal(got[..., :8], x[..., :8])                       # half kept
    assert torch.equal(got[..., 8:10], x[..., 8:10])                   # window 1 = identity
    # no mask: every frame valid
    assert torch.allclose(multiscale_average(x), _multiscale_by_hand(x, [11, 11], (1, 2, 4, 8)))


def test_model_applies_multiscale_after_every_layer(monkeypatch):
    calls = []
    real = tr.multiscale_average
    monkeypatch.setattr(tr, "multiscale_average",
                        lambda h, m, w: calls.append((h.shape[1], w)) or real(h, m, w))
    model = tiny(**VARIANTS["large_pooling_multiscale"])
    assert n_params(model) == n_params(tiny(**VARIANTS["large_pooling"]))  # no parameters
    model(torch.randn(1, 16000))
    assert calls == [(40, (1, 2, 4, 8))] * 2 + [(20, (1, 2, 4, 8))] * 2 + [(10, (1, 2, 4, 8))] * 2


# ------------------------------------------------------------------------------ brain, recipe
def test_pooling_mapping_translation():
    cont = {"num_centres": 4}
    for name, family in (("softmax", "gaussian"), ("entmax1333", "triweight"),
                         ("entmax15", "biweight"), ("sparsemax", "sparsemax")):
        assert build_transformer_pooling("continuous", name, 8, continuous=cont).max_activation == family
    assert build_transformer_pooling("continuous", "entmax", 8, 1.7, continuous=cont).alpha == 1.7
    assert build_transformer_pooling("discrete", "entmax1333", 8).alpha == 4 / 3
    assert build_transformer_pooling("mean", "entmax15", 8).domain == "mean"


def test_brain_counts_waveform_lengths_with_the_feature_module():
    """ClassificationBrain.compute_features uses WaveformFeatures.frame_lengths (no +1 frame)."""
    from audioattn_sb.brains.classification import ClassificationBrain
    from audioattn_sb.features import FeatureCache

    wavs, lens = torch.randn(2, 800), torch.tensor([1.0, 0.5])
    fake = SimpleNamespace(hparams=SimpleNamespace(feature_cache=False, hop_samples=160),
                           modules=SimpleNamespace(compute_features=WaveformFeatures()))
    feats, got = ClassificationBrain.compute_features(fake, SimpleNamespace(sig=(wavs, lens)))
    assert feats is wavs and torch.equal(got, lens)
    assert torch.equal(PassThroughNorm()(feats, got), wavs)
    cache = FeatureCache(WaveformFeatures())                     # the cache holds the waveform
    assert torch.equal(cache("a", lambda: wavs[:1, :400]), wavs[0, :400])


def test_attention_info_for_results_json():
    pool = build_transformer_pooling("discrete", "sparsemax", 16)
    info = tiny(pooling=pool, max_activation="entmax", alpha=1.7).attention_info()
    assert info["alpha"] == 1.7
    assert info["self_attention"]["max_activation"] == "entmax"
    assert info["pooling"] == {"domain": "discrete", "max_activation": "sparsemax", "alpha": 2.0}
    json.dumps(info)


@pytest.mark.slow
def test_recipe_two_epochs(demo_us8k, tmp_path):
    """urbansound8k_transformer.yaml through recipes/train.py (smaller sizes and one training
    fold for CI time; the full-size model runs the same code path)."""
    run_script("train.py", os.path.join(REPO, "hparams", "urbansound8k_transformer.yaml"),
               f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'cache'}",
               f"--results_root={tmp_path / 'results'}", "--train_fold_nums=[3]",
               "--number_of_epochs=2", "--attn_max_activation", "entmax15",
               "--attn_domain", "discrete", "--frontend_dim=64", "--ff_dim=64", "--n_layers=3",
               "--noprogressbar")
    out = tmp_path / "results" / "urbansound8k_transformer" / "discrete-entmax15" / \
        "test1_valid2" / "seed0"
    res = json.loads((out / "results.json").read_text())
    att = res["attention"]
    assert att["domain"] == "discrete" and att["max_activation"] == "entmax15"
    assert att["alpha"] == 1.5 and att["tag"] == "discrete-entmax15"
    assert att["self_attention"] == {"max_activation": "entmax15", "alpha": 1.5, "layers": 3,
                                     "heads": 8}
    assert att["pooling"] == {"domain": "discrete", "max_activation": "entmax15", "alpha": 1.5}
    assert res["epochs_completed"] == 2 and res["experiment_name"] == "urbansound8k_transformer"
    assert res["n_parameters"] == expected_params(10, 3, frontend=64, ff=64,
                                                  pooling=64 * 64 + 64 + 64)
    assert 0.0 <= res["test_accuracy"] <= 1.0 and res["test_loss"] == res["test_loss"]
    assert sum(map(sum, res["test_confusion_matrix"])) == res["n_clips"]["test"] == 30
    assert any((out / "save").glob("CKPT*/model.ckpt"))
    assert any((out / "save").glob("CKPT*/lr_annealing.ckpt"))


def test_stochastic_depth_rates_expectation_and_eval_identity():
    """``drop_path`` p: layer i of L gets p·i/(L − 1); in training a branch is dropped for a
    whole clip with probability p and kept ones are scaled by 1/(1 − p) (mean factor 1); in
    evaluation the model equals the same weights without stochastic depth; p = 1 is refused."""
    torch.manual_seed(0)
    model = AudioTransformer(5, n_layers=5, drop_path=0.2, **TINY)
    assert [layer.drop_path for layer in model.layers] == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
    layer = model.layers[-1].train()
    factors = torch.cat([layer.branch_keep(torch.zeros(1000, 3, 4)).flatten() for _ in range(20)])
    assert factors.unique().tolist() == pytest.approx([0.0, 1 / 0.8])
    assert (factors == 0).float().mean().item() == pytest.approx(0.2, abs=0.02)
    assert factors.mean().item() == pytest.approx(1.0, abs=0.03)
    plain = AudioTransformer(5, n_layers=5, **TINY)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 8000)
    torch.testing.assert_close(model.eval()(x)[0], plain.eval()(x)[0])
    model.train()
    torch.manual_seed(1)
    outs = [model(x)[0] for _ in range(2)]
    assert not torch.allclose(outs[0], outs[1])
    with pytest.raises(ValueError, match=r"drop_path must be in \[0, 1\), got 1.0"):
        AudioTransformer(5, n_layers=2, drop_path=1.0, **TINY)


# ------------------------------------------------------------------------------ convolution module
def _conv_module_by_hand(module, x, mask):
    """Conformer's convolution module, written out with loops over frames and channels
    (independent of the implementation's GLU, Conv1d and LayerNorm calls)."""
    w_in, b_in = module.pointwise_in.weight, module.pointwise_in.bias
    kernel, k_bias = module.depthwise.weight[:, 0, :], module.depthwise.bias
    gamma, beta = module.norm.weight, module.norm.bias
    w_out, b_out = module.pointwise_out.weight, module.pointwise_out.bias
    batch, frames, d = x.shape
    half = module.kernel_size // 2
    out = torch.zeros_like(x)
    for b in range(batch):
        z = x[b] @ w_in.T + b_in                                   # [L, 2D]
        g = z[:, :d] * torch.sigmoid(z[:, d:])                     # GLU: first half gated
        g = g * mask[b, :, None]
        for t in range(frames):
            h = k_bias.clone()
            for j in range(module.kernel_size):
                s = t + j - half
                if 0 <= s < frames:
                    h = h + kernel[:, j] * g[s]
            mu, var = h.mean(), h.var(unbiased=False)
            h = (h - mu) / torch.sqrt(var + module.norm.eps) * gamma + beta
            out[b, t] = (h * torch.sigmoid(h)) @ w_out.T + b_out
    return out


def test_convolution_module_against_a_hand_computation_and_its_locality():
    torch.manual_seed(3)
    module = tr.ConvolutionModule(6, 5).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    mask = torch.arange(11)[None, :] < torch.tensor([11, 7])[:, None]
    torch.testing.assert_close(module(x, mask), _conv_module_by_hand(module, x, mask))
    # frame 8 reaches frames 6..10 only; the padded frames 7.. of clip 2 reach no valid frame
    y = x.clone()
    y[0, 0:6] += 10.0
    y[1, 7:] += 10.0
    out, out_y = module(x, mask), module(y, mask)
    torch.testing.assert_close(out[0, 8:], out_y[0, 8:])
    assert not torch.allclose(out[0, 5], out_y[0, 5])
    torch.testing.assert_close(out[1, :7], out_y[1, :7])


def test_convolution_module_gradcheck_float64():
    torch.manual_seed(4)
    module = tr.ConvolutionModule(4, 3).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 4])[:, None]
    assert torch.autograd.gradcheck(lambda v: module(v, mask), (x,))


@pytest.mark.parametrize("norm_first", [True, False])
def test_convolution_layers_keep_padding_invariance_and_add_their_parameters(norm_first):
    """With ``conv_kernel`` every layer has the module (parameters by formula) and a clip's
    output does not depend on the longer clip beside it (conv stem, pooling between layers)."""
    torch.manual_seed(5)
    d, k, n_layers = 16, 5, 4
    kw = dict(n_layers=n_layers, pool_between_layers=True, norm_first=norm_first,
              frontend="conv", frontend_options={"n_filters": 8, "channels": 8})
    plain, model = tiny(**kw), tiny(**kw, conv_kernel=k)
    per_layer = (d * 2 * d + 2 * d) + (d * k + d) + 2 * d + (d * d + d) + 2 * d
    assert n_params(model) - n_params(plain) == n_layers * per_layer
    model = model.double().eval()
    short, long, batch, lens = _short_and_long_batch()
    with torch.no_grad():
        out_b, _ = model(batch, lens)
        out_s, _ = model(short[None])
        out_l, _ = model(long[None])
    torch.testing.assert_close(out_b[0], out_s[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(out_b[1], out_l[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("kernel", [4, -1])
def test_convolution_kernel_must_be_odd_and_positive(kernel):
    with pytest.raises(ValueError, match="conv_kernel must be"):
        tiny(conv_kernel=kernel)


@pytest.mark.parametrize("name", ["urbansound8k_transformer_compact.yaml",
                                  "fsd50k_transformer_compact.yaml"])
def test_compact_yamls_pass_conv_kernel_to_every_layer(name, tmp_path):
    """``--conv_kernel`` (0 in the yamls: none) reaches every layer of the model."""
    from hyperpyyaml import load_hyperpyyaml

    with open(os.path.join(REPO, "hparams", name)) as f:
        text = f.read()
    base = {"output_folder": str(tmp_path), "n_classes": 10}
    hp = load_hyperpyyaml(text, base)
    assert all(layer.conv is None for layer in hp["model"].layers)
    hp = load_hyperpyyaml(text, {**base, "conv_kernel": 7})
    kernels = [layer.conv.depthwise.kernel_size for layer in hp["model"].layers]
    assert kernels == [(7,)] * 6
