"""The log-mel multi-head self-attention baseline (issue 14): the model's parameters by hand,
padding invariance, bad input, and the recipe through recipes/train.py on the demo data."""

import json

import pytest
import torch

from audioattn_sb.models.transformer import LogMelTransformer, build_transformer_pooling

from conftest import REPO_ROOT, train_in_process

HPARAMS = str(REPO_ROOT / "hparams" / "urbansound8k_logmel_mha.yaml")


def test_yaml_model_parameters_by_hand():
    from hyperpyyaml import load_hyperpyyaml

    with open(HPARAMS) as f:
        hp = load_hyperpyyaml(f, {"data_folder": "unused"})
    d, ff, mels, layers, classes = 64, 256, 80, 2, 10
    per_layer = (4 * d * d + 4 * d) + (d * ff + ff + ff * d + d) + 2 * (2 * d)
    by_hand = (mels * d + d) + layers * per_layer + (d * classes + classes)
    assert sum(p.numel() for p in hp["model"].parameters()) == by_hand == 105_802


@pytest.mark.parametrize("domain,name", [("mean", "softmax"), ("discrete", "sparsemax"),
                                         ("continuous", "entmax15")])
def test_padding_does_not_change_a_clip(domain, name):
    torch.manual_seed(0)
    pool = build_transformer_pooling(domain, name, 16, continuous={"num_centres": 8})
    model = LogMelTransformer(12, 5, pooling=pool, d_model=16, n_heads=2, ff_dim=24,
                              n_layers=2, max_activation=name).double().eval()
    clip = torch.randn(1, 30, 12, dtype=torch.float64)
    alone, _ = model(clip, torch.tensor([1.0]))
    padded = torch.cat([clip, 100 * torch.randn(1, 20, 12, dtype=torch.float64)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 50, 12, dtype=torch.float64)])
    together, _ = model(batch, torch.tensor([30 / 50, 1.0]))
    assert torch.allclose(alone[0], together[0], atol=1e-10)


def test_bad_input_and_options_raise():
    model = LogMelTransformer(80, 10, n_layers=1)
    with pytest.raises(ValueError, match=r"log-mel features \[B, T, 80\]"):
        model(torch.randn(2, 50, 64))
    with pytest.raises(ValueError, match="not patch_size"):
        LogMelTransformer(80, 10, patch_size=400)


@pytest.mark.slow
def test_recipe_trains_on_the_demo(demo_us8k, tmp_path):
    common = [HPARAMS, f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'cache'}",
              "--train_fold_nums=[3]", "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
              "--number_of_epochs=2", "--warmup_epochs=1", "--noprogressbar"]
    for domain, name in (("mean", "softmax"), ("continuous", "biweight")):
        out = tmp_path / domain
        res = train_in_process([*common, f"--output_folder={out}", "--attn_domain", domain,
                                "--attn_max_activation", name])
        saved = json.loads((out / "results.json").read_text())
        assert saved["test_accuracy"] == res["test_accuracy"]
        assert sum(map(sum, saved["test_confusion_matrix"])) == 30
        assert saved["epochs_completed"] == 2
