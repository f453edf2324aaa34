"""Augmentation (SpeechBrain augmenters, padding-safe), mixup, the warm-up + cosine schedule, the
early-stopping counter, and the compact ACRNN configuration."""

import math
from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

from audioattn_sb.augment import (augment_features, augment_waveforms, has_augmentations,
                                  mix_targets, mixup, zero_padding)
from audioattn_sb.training import EpochCounter, WarmupCosineLR
from tests.conftest import REPO_ROOT

COMPACT = REPO_ROOT / "hparams" / "urbansound8k_acrnn_compact.yaml"


def load_compact(overrides=""):
    with open(COMPACT, encoding="utf-8") as f:
        return load_hyperpyyaml(f, overrides)


@pytest.fixture(scope="module")
def compact():
    return load_compact("output_folder: /tmp/unused_compact")


# --------------------------------------------------------------------------- augmenters
def test_every_waveform_augmentation_keeps_batch_lengths_and_zero_padding(compact):
    """Each time-domain augmentation of the compact yaml, and all of them in a row: same batch
    size, same relative lengths, nothing but zeros beyond a clip's length, and the audio changed."""
    torch.manual_seed(0)
    wavs = torch.randn(3, 16000) * 0.1
    lens = torch.tensor([1.0, 0.5, 0.3])
    wavs = zero_padding(wavs, lens)
    aug = compact["wav_augment"]
    names = list(aug.augmentations)
    assert [type(a).__name__ for a in aug.augmentations.values()] == \
        ["AddNoise", "AddNoise", "DropChunk", "DropFreq", "SpeedPerturb"]
    assert aug.augmentations["AddNoise1"].noise_funct.func.__name__ == "pink_noise_like"
    for name in names + ["all"]:
        from speechbrain.augment.augmenter import Augmenter

        chosen = list(aug.augmentations.values()) if name == "all" else [aug.augmentations[name]]
        one = Augmenter(augmentations=chosen, min_augmentations=len(chosen),
                        max_augmentations=len(chosen))
        for _ in range(3):  # SpeedPerturb picks a speed per call
            out, new_lens = augment_waveforms(one, wavs, lens)
            assert out.shape[0] == 3 and torch.equal(new_lens, lens), name
            n = out.shape[1]
            for i, rel in enumerate(lens.tolist()):
                k = round(rel * n)
                assert torch.all(out[i, k:] == 0), f"{name}: padding of clip {i} not zero"
                assert torch.isfinite(out[i]).all()
        if name != "all" and "SpeedPerturb" not in name:
            assert out.shape == wavs.shape
            assert not torch.equal(out, wavs), f"{name} left the audio unchanged"


def test_noise_is_added_at_the_drawn_snr():
    """AddNoise (white, as in the yaml) at a fixed 10 dB: measured SNR 10 dB on the valid part,
    for a full-length and a padded clip (SpeechBrain's own class gives the padded one 13 dB)."""
    from speechbrain.augment.augmenter import Augmenter

    from audioattn_sb.augment import AddNoise

    torch.manual_seed(1)
    clean = torch.sin(torch.arange(16000) / 7.0).repeat(2, 1)
    lens = torch.tensor([1.0, 0.5])
    clean = zero_padding(clean, lens)
    aug = Augmenter(augmentations=[AddNoise(snr_low=10, snr_high=10)], min_augmentations=1,
                    max_augmentations=1)
    out, _ = augment_waveforms(aug, clean, lens)
    for i, n in enumerate([16000, 8000]):
        # AddNoise scales the clean part by 1 - f and the noise to f · rms(clean)
        f = 1 / (10 ** 0.5 + 1)
        noise = out[i, :n] - (1 - f) * clean[i, :n]
        snr = 20 * math.log10(((1 - f) * clean[i, :n]).pow(2).mean().sqrt()
                              / noise.pow(2).mean().sqrt())
        assert abs(snr - 10.0) < 0.3, snr


def test_feature_masks_keep_shape_and_padding(compact):
    torch.manual_seed(0)
    feats = torch.randn(4, 50, 64)
    lens = torch.tensor([1.0, 0.8, 0.5, 0.1])
    out = augment_features(compact["fea_augment"], feats, lens)
    assert out.shape == feats.shape
    for i, rel in enumerate(lens.tolist()):
        assert torch.all(out[i, round(rel * 50):] == 0)
    # masks only zero things: every value is either unchanged or zero
    assert torch.all((out == feats) | (out == 0))
    assert (out == 0).sum() > (zero_padding(feats, lens) == 0).sum()


def test_bad_augmenter_config_is_a_clear_error():
    from speechbrain.augment.augmenter import Augmenter
    from speechbrain.augment.time_domain import DropChunk

    aug = Augmenter(augmentations=[DropChunk()], min_augmentations=1, max_augmentations=1,
                    concat_original=True)
    with pytest.raises(ValueError, match="concat_original: False"):
        augment_waveforms(aug, torch.randn(2, 4000), torch.ones(2))
    assert not has_augmentations(None)
    assert not has_augmentations(Augmenter(augmentations=[], min_augmentations=0,
                                           max_augmentations=0))


# --------------------------------------------------------------------------- mixup
def test_mixup_mixes_features_and_lengths_pairwise():
    torch.manual_seed(0)
    feats = torch.randn(6, 10, 3)
    lens = torch.tensor([1.0, 0.5, 0.3, 1.0, 0.7, 0.9])
    mixed, new_lens, (perm, lam) = mixup(feats, lens, 0.4)
    assert sorted(perm.tolist()) == list(range(6))
    assert torch.all((lam >= 0) & (lam <= 1))
    for i in range(6):
        j = int(perm[i])
        xi = feats[i].clone()
        xi[round(lens[i].item() * 10):] = 0
        xj = feats[j].clone()
        xj[round(lens[j].item() * 10):] = 0
        assert torch.allclose(mixed[i], lam[i] * xi + (1 - lam[i]) * xj, atol=1e-6)
        assert new_lens[i] == max(lens[i], lens[j])
    with pytest.raises(ValueError, match="alpha must be > 0"):
        mixup(feats, lens, 0.0)


def test_mixup_targets_single_label_sum_to_one_multilabel_in_unit_interval():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (32,))
    _, _, (perm, lam) = mixup(torch.zeros(32, 4, 2), torch.ones(32), 0.2)
    soft = mix_targets(torch.nn.functional.one_hot(labels, 10), perm, lam)
    assert torch.allclose(soft.sum(dim=1), torch.ones(32))
    for i in range(32):  # the mass sits on the two labels, λ on the clip's own
        assert math.isclose(soft[i, labels[i]].item(),
                            lam[i].item() + (labels[perm[i]] == labels[i]) * (1 - lam[i].item()),
                            rel_tol=1e-5)
    multi = (torch.rand(32, 20) < 0.2).float()
    mixed = mix_targets(multi, perm, lam)
    assert torch.all((mixed >= 0) & (mixed <= 1))
    both = (multi == 1) & (multi[perm] == 1)
    assert torch.all(mixed[both] == 1) and torch.all(mixed[(multi == 0) & (multi[perm] == 0)] == 0)


def test_single_label_mixup_loss_is_the_lambda_weighted_nll():
    """ClassificationBrain's mixup loss = λ·NLL(y_i) + (1 − λ)·NLL(y_perm(i)) (hand computation)."""
    from audioattn_sb.attention.output import Attention
    from audioattn_sb.brains.base import ForwardOutput
    from audioattn_sb.brains.classification import ClassificationBrain

    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(4, 5), dim=-1)
    labels = torch.tensor([0, 3, 3, 1])
    perm, lam = torch.tensor([2, 0, 3, 1]), torch.tensor([0.9, 0.5, 0.2, 0.7])
    fake = SimpleNamespace(_count_items=lambda n: None, hparams=SimpleNamespace(),
                           mix_distillation=lambda loss, forward, stage: loss)  # no teacher
    batch = SimpleNamespace(label=SimpleNamespace(data=labels[:, None]))
    forward = ForwardOutput(logp, Attention(), mix=(perm, lam))
    loss = ClassificationBrain.compute_objectives(fake, forward, batch, sb.Stage.TRAIN)
    expected = torch.stack([-(lam[i] * logp[i, labels[i]] + (1 - lam[i]) * logp[i, labels[perm[i]]])
                            for i in range(4)]).mean()
    assert torch.allclose(loss, expected)


def test_label_smoothing_loss_matches_torch_and_stays_out_of_evaluation():
    """``label_smoothing`` ε: the training loss equals torch's own
    ``cross_entropy(label_smoothing=ε)`` on the same logits; with mixup it is the
    cross-entropy against ``(1 − ε)·mixed + ε/C`` (hand computation); validation reports the
    plain NLL."""
    from audioattn_sb.attention.output import Attention
    from audioattn_sb.brains.base import ForwardOutput
    from audioattn_sb.brains.classification import ClassificationBrain

    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    logp = torch.log_softmax(logits, dim=-1)
    labels = torch.tensor([0, 3, 3, 1, 4, 2])
    batch = SimpleNamespace(label=SimpleNamespace(data=labels[:, None]))
    kept = []
    fake = SimpleNamespace(_count_items=lambda n: None, hparams=SimpleNamespace(label_smoothing=0.1),
                           _keep=lambda loss, n, **kw: kept.append(loss),
                           mix_distillation=lambda loss, forward, stage: loss)  # no teacher
    loss = ClassificationBrain.compute_objectives(fake, ForwardOutput(logp, Attention()), batch,
                                                  sb.Stage.TRAIN)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, label_smoothing=0.1))
    assert not torch.allclose(loss, F.nll_loss(logp, labels))
    perm, lam = torch.tensor([2, 0, 3, 1, 5, 4]), torch.tensor([0.9, 0.5, 0.2, 0.7, 1.0, 0.6])
    mixed = ClassificationBrain.compute_objectives(
        fake, ForwardOutput(logp, Attention(), mix=(perm, lam)), batch, sb.Stage.TRAIN)
    expected = torch.stack([-(0.9 * (lam[i] * logp[i, labels[i]]
                                     + (1 - lam[i]) * logp[i, labels[perm[i]]])
                              + 0.1 * logp[i].mean()) for i in range(6)]).mean()
    torch.testing.assert_close(mixed, expected)
    valid = ClassificationBrain.compute_objectives(fake, ForwardOutput(logp, Attention()), batch,
                                                   sb.Stage.VALID)
    torch.testing.assert_close(valid, F.nll_loss(logp, labels))


# --------------------------------------------------------------------------- the Brain
def _brain(hparams):
    from audioattn_sb.brains.classification import ClassificationBrain

    return ClassificationBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                               hparams=hparams, run_opts={"device": "cpu"}, checkpointer=None)


def test_evaluation_is_bit_identical_with_and_without_augment(compact):
    """Validation/test never augment: same model, same batch → identical outputs whatever
    `augment`, `mixup_alpha` and `crop_fraction` say; training does augment (outputs differ, and
    the random crop shortens the model's input)."""
    torch.manual_seed(0)
    hp = load_compact("output_folder: /tmp/unused_compact\ncrop_fraction: 0.5")
    brain = _brain(hp)
    wavs = [torch.randn(16000) * 0.1, torch.randn(9000) * 0.1]
    batch = PaddedBatch([{"id": str(i), "sig": w, "label": torch.tensor([i])}
                         for i, w in enumerate(wavs)])
    # the yaml's global feature normalisation learns its statistics on training batches: one
    # un-augmented training forward fits them, evaluation then uses them frozen
    brain.hparams.augment, brain.hparams.mixup_alpha = False, 0.0
    brain.modules.train()
    with torch.no_grad():
        brain.compute_forward(batch, sb.Stage.TRAIN)
    brain.modules.eval()
    outs = {}
    for augment, alpha in ((True, 0.2), (False, 0.0)):
        brain.hparams.augment, brain.hparams.mixup_alpha = augment, alpha
        torch.manual_seed(123)
        with torch.no_grad():
            outs[augment] = [brain.compute_forward(batch, stage).predictions.clone()
                             for stage in (sb.Stage.VALID, sb.Stage.TEST)]
    for a, b in zip(outs[True], outs[False]):
        assert torch.equal(a, b)
    brain.hparams.augment, brain.hparams.mixup_alpha = True, 0.2
    with torch.no_grad():
        train_out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert train_out.mix is not None
    assert not torch.equal(train_out.predictions, outs[True][1])
    with torch.no_grad():
        valid_out = brain.compute_forward(batch, sb.Stage.VALID)
    assert train_out.model_input.shape[1] < valid_out.model_input.shape[1]
    assert valid_out.model_input.shape[1] == valid_out.raw_features.shape[1]


# --------------------------------------------------------------------------- schedule
def test_warmup_cosine_matches_the_formula_and_resumes(tmp_path):
    sched = WarmupCosineLR(lr=2e-3, warmup_epochs=2, number_of_epochs=10, min_lr=1e-5)
    sched.set_steps_per_epoch(4)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = [sched.on_batch_start(opt) for _ in range(40)]
    assert lrs[0] == pytest.approx(2e-3 / 8) and lrs[7] == pytest.approx(2e-3)
    for s in range(9, 41):
        frac = (s - 8) / 32
        assert lrs[s - 1] == pytest.approx(1e-5 + (2e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * frac)))
    assert lrs[-1] == pytest.approx(1e-5) and opt.param_groups[0]["lr"] == lrs[-1]
    # checkpoint after 13 steps: a fresh scheduler loaded from it continues at step 14
    s2 = WarmupCosineLR(lr=2e-3, warmup_epochs=2, number_of_epochs=10, min_lr=1e-5)
    s2.set_steps_per_epoch(4)
    for _ in range(13):
        s2.on_batch_start(opt)
    s2.save(tmp_path / "sched.ckpt")
    s3 = WarmupCosineLR(lr=2e-3, warmup_epochs=2, number_of_epochs=10, min_lr=1e-5)
    s3.set_steps_per_epoch(4)
    s3.load(tmp_path / "sched.ckpt")
    assert s3.on_batch_start(opt) == pytest.approx(lrs[13])
    with pytest.raises(ValueError, match="warmup_epochs"):
        WarmupCosineLR(lr=1e-3, warmup_epochs=5, number_of_epochs=5)
    with pytest.raises(RuntimeError, match="set_steps_per_epoch"):
        WarmupCosineLR(lr=1e-3, warmup_epochs=1, number_of_epochs=5).on_batch_start(opt)


def test_epoch_counter_early_stopping():
    errors = [0.9, 0.5, 0.6, 0.55, 0.4, 0.45, 0.5, 0.41, 0.3]
    seen = []
    counter = EpochCounter(20, patience=3)
    for epoch in counter:
        seen.append(epoch)
        counter.update_metric(errors[epoch - 1] if epoch <= len(errors) else 1.0)
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8]      # best at 5, three epochs without improvement
    off = EpochCounter(6, patience=None)
    assert [e for e in off if off.update_metric(1.0) is None] == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- compact model
def test_compact_config_size_and_frame_rate(compact):
    n_params = sum(p.numel() for p in compact["model"].parameters())
    assert n_params <= 1_500_000
    frame_s = compact["hop_samples"] / compact["sample_rate"]
    attn_frame_s = frame_s * math.prod(compact["time_pools"])
    assert attn_frame_s <= 0.040 + 1e-9
    # the model really outputs one frame per attn_frame_s: a 5 s clip → 125 frames of 40 ms
    feats = compact["compute_features"](torch.zeros(1, 80000))
    frames, _ = compact["model"].encode(feats, torch.ones(1))
    assert frames.shape[1] == math.ceil(feats.shape[1] / math.prod(compact["time_pools"]))
    assert abs(frames.shape[1] * attn_frame_s - 5.0) <= attn_frame_s + 1e-9


@pytest.mark.parametrize("domain,act", [("discrete", "sparsemax"), ("continuous", "biweight")])
def test_time_pooled_conv2d_acrnn_is_padding_invariant(domain, act):
    """A clip's output does not depend on the padding it is batched with (time pooling by 2 and
    by 3: the pooled frame count is ceil(n / pool))."""
    from audioattn_sb.attention import build_pooling
    from audioattn_sb.models.acrnn import ACRNN

    torch.manual_seed(0)
    model = ACRNN(16, 4, build_pooling(domain, act, 32), conv_channels=[4, 8], conv2d=True,
                  time_pools=[2, 3], rnn_type="gru", rnn_neurons=16).eval()
    x = torch.randn(1, 37, 16)
    with torch.no_grad():
        alone, _ = model(x, torch.ones(1))
        padded = torch.cat([x, 100 * torch.randn(1, 23, 16)], dim=1)
        batch = torch.cat([padded, torch.randn(1, 60, 16)])
        together, _ = model(batch, torch.tensor([37 / 60, 1.0]))
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_bad_time_pools_are_rejected():
    from audioattn_sb.attention import build_pooling
    from audioattn_sb.models.acrnn import ACRNN

    with pytest.raises(ValueError, match="time_pools"):
        ACRNN(16, 4, build_pooling("mean", "softmax", 32), conv_channels=[4, 8], conv2d=True,
              time_pools=[2])
    with pytest.raises(ValueError, match="time_pools"):
        ACRNN(16, 4, build_pooling("mean", "softmax", 32), conv_channels=[4, 8], conv2d=True,
              time_pools=[2, 0])


def test_roll_time_is_a_cyclic_shift_of_each_clip_within_its_length():
    """Each row: its valid part rolled by some k with |k| ≤ m·n (checked against torch.roll),
    padding untouched; features [B, T, F] rolled along time only; m = 0 is the identity."""
    from audioattn_sb.augment import RollTime

    torch.manual_seed(0)
    x = torch.randn(6, 50, 3)
    lengths = torch.tensor([1.0, 0.5, 0.2, 0.02, 1.0, 0.9])
    x = zero_padding(x, lengths)
    x[3, 1:] = 7.0  # a one-frame clip with garbage padding: stays as it is
    for m in (0.25, 1.0):
        y = RollTime(m)(x, lengths)
        for b, rel in enumerate(lengths.tolist()):
            n = max(1, round(rel * 50))
            assert torch.equal(y[b, n:], x[b, n:])
            shifts = [k for k in range(-n, n + 1)
                      if torch.equal(y[b, :n], torch.roll(x[b, :n], k, dims=0))]
            assert shifts and min(abs(k) for k in shifts) <= m * n + 1e-9, (b, m)
    assert torch.equal(RollTime(0.0)(x, lengths), x)
    with pytest.raises(ValueError):
        RollTime(1.5)


def test_random_crop_keeps_a_window_of_each_clip_at_its_start():
    """Each row: a contiguous window of its valid part, of w frames with round(f·n) ≤ w ≤ n,
    moved to the start, zeros after it; the batch trimmed to the longest window and the relative
    lengths those of the windows; features [B, T, F] cropped along time only; f = 1 is the
    identity; f outside (0, 1] is refused."""
    from audioattn_sb.augment import RandomCrop
    from audioattn_sb.lengths import frame_counts

    torch.manual_seed(0)
    x = torch.randn(6, 50, 3)
    lengths = torch.tensor([1.0, 0.5, 0.2, 0.02, 1.0, 0.9])
    x = zero_padding(x, lengths)
    for f in (0.3, 0.75):
        y, lens = RandomCrop(f)(x, lengths)
        width = y.shape[1]
        w = frame_counts(lens, width)
        assert int(w.max()) == width and y.shape[2] == 3 and lens.dtype == lengths.dtype
        for b, rel in enumerate(lengths.tolist()):
            n = max(1, round(rel * 50))
            assert max(1, round(f * n)) <= w[b] <= n, (b, f)
            starts = [s for s in range(n - int(w[b]) + 1)
                      if torch.equal(y[b, :w[b]], x[b, s:s + w[b]])]
            assert starts, (b, f)
            assert not y[b, w[b]:].any()
    y, lens = RandomCrop(1.0)(x, lengths)
    assert torch.equal(y, x) and torch.equal(lens, lengths)
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="min_fraction"):
            RandomCrop(bad)


def test_random_crop_draws_window_lengths_and_starts_as_documented():
    """One clip of 10 frames cropped 40 000 times with f = 0.2: w = round(10·u), u ~ U[0.2, 1],
    gives P(w = 2) = P(w = 10) = 0.05 / 0.8 and P(w = k) = 0.1 / 0.8 for k = 3…9 (worked by hand);
    given w, the start is uniform over 0…10 − w."""
    from audioattn_sb.augment import RandomCrop

    torch.manual_seed(0)
    x = torch.arange(1.0, 11.0).repeat(40000, 1)  # frame t holds t + 1: the start is y[:, 0] − 1
    y, lens = RandomCrop(0.2)(x, torch.ones(40000))
    w = (lens.double() * y.shape[1]).round().long()
    for k in range(1, 12):
        expected = {2: 0.0625, 10: 0.0625}.get(k, 0.125 if 3 <= k <= 9 else 0.0)
        assert abs((w == k).double().mean().item() - expected) < 0.01, k
    starts = (y[w == 3, 0] - 1).long()
    freq = torch.bincount(starts, minlength=8).double() / len(starts)
    assert len(freq) == 8 and (freq - 1 / 8).abs().max() < 0.02
