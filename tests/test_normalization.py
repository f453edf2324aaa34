"""Feature normalisers of the compact yamls (audioattn_sb.features.build_normalization): the
per-clip scalar mean against a direct masked computation, padding invariance, what each kind keeps
of a clip (gain, spectral envelope), and the error on an unknown name."""

import numpy as np
import pytest
import torch

from audioattn_sb.features import (NORMALIZATIONS, ClipNormalization, GlobalNormalization,
                                   build_normalization)


def _reference(x, n_valid, std_norm):
    """Loop over clips with numpy: the mean (and std) of the valid frames, all bands."""
    out = []
    for clip, n in zip(x.numpy(), n_valid):
        valid = clip[:n].astype(np.float64)
        y = clip - valid.mean()
        if std_norm:
            y = y / valid.std()
        out.append(y)
    return np.stack(out)


@pytest.mark.parametrize("std_norm", [False, True])
def test_clip_normalization_matches_a_direct_masked_computation(std_norm):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 11, 5, generator=g, dtype=torch.float64) * 3 + 7
    n_valid = [11, 6, 2]
    got = ClipNormalization(std_norm=std_norm)(x, torch.tensor(n_valid, dtype=torch.float64) / 11)
    ref = _reference(x, n_valid, std_norm)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_clip_normalization_ignores_padding():
    """A clip normalised alone and padded inside a batch: its valid frames are the same."""
    g = torch.Generator().manual_seed(1)
    clip = torch.randn(1, 7, 4, generator=g)
    padded = torch.cat([clip, torch.full((1, 5, 4), 99.0)], dim=1)
    norm = ClipNormalization()
    alone = norm(clip, torch.ones(1))
    inside = norm(torch.cat([padded, torch.randn(1, 12, 4, generator=g)]),
                  torch.tensor([7 / 12, 1.0]))
    torch.testing.assert_close(inside[0, :7], alone[0])


def test_each_kind_keeps_what_it_says():
    """A stationary clip whose bands differ in level (its spectral envelope), and the same clip
    6 dB louder (log energy + const): band_per_clip maps both to zeros (envelope gone), clip keeps
    the envelope and removes the gain, global (once fitted) keeps both apart."""
    envelope = torch.tensor([4.0, 1.0, -2.0, 0.5])
    quiet = envelope.expand(1, 20, 4).clone()
    loud = quiet + 1.5
    lens = torch.ones(1)
    band = build_normalization("band_per_clip")
    assert band(quiet, lens).abs().max() == 0
    clip = build_normalization("clip")
    torch.testing.assert_close(clip(quiet, lens), clip(loud, lens))
    torch.testing.assert_close(clip(quiet, lens)[0, 0], envelope - envelope.mean())
    glob = build_normalization("global")
    glob.train()
    glob(torch.cat([quiet, loud]), torch.ones(2))    # fits the running statistics
    glob.eval()
    assert not torch.allclose(glob(quiet, lens), glob(loud, lens))


def test_unknown_normalization_is_refused():
    assert NORMALIZATIONS == ("band_per_clip", "clip", "global")
    with pytest.raises(ValueError, match="feature_normalisation must be one of"):
        build_normalization("sentence")


def test_global_normalization_before_any_training_batch_says_so():
    """Evaluated before it has statistics (no training, no checkpoint): a clear error naming the
    way out, not SpeechBrain's shape mismatch; once fitted it standardises each band with the
    training batches' mean and std."""
    norm = build_normalization("global")
    assert isinstance(norm, GlobalNormalization)
    with pytest.raises(RuntimeError, match="no statistics yet.*band_per_clip"):
        norm.eval()(torch.zeros(1, 4, 3), torch.ones(1))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2]) + 3
    norm.train()(x, torch.ones(2))
    frames = x.reshape(-1, 3).numpy()
    got = norm.eval()(x[:1], torch.ones(1))[0].numpy()
    ref = (x[0].numpy() - frames.mean(0)) / frames.std(0, ddof=0)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_global_statistics_survive_a_checkpoint(tmp_path):
    """SpeechBrain's checkpointer saves and restores the subclass's statistics (its hooks are
    found through the base class): a fresh normaliser loaded from the checkpoint gives the same
    output as the fitted one."""
    from speechbrain.utils.checkpoints import Checkpointer

    fitted = GlobalNormalization()
    fitted.train()(torch.randn(3, 10, 4) * 2 + 1, torch.ones(3))
    Checkpointer(tmp_path, {"norm": fitted}).save_checkpoint()
    fresh = GlobalNormalization()
    Checkpointer(tmp_path, {"norm": fresh}).recover_if_possible()
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(fresh.eval()(x, torch.ones(2)), fitted.eval()(x, torch.ones(2)))
