"""hparams/fsd50k_transformer.yaml: the raw-waveform Transformer on FSD50K-layout data through
recipes/train.py with the multi-label Brain (tiny widths, demo data), its attention variants, and
the "look inside" scripts on a multi-label run (save_specs works per chunk, save_attentions is
single-label only and says so, save_self_attention exports chunks)."""

import csv
import json
import math
import os

import numpy as np
import pytest
from conftest import HOSTILE_CLASSES, independent_test_map, run_script

from audioattn_sb.models.transformer import AudioTransformer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(REPO, "hparams", "fsd50k_transformer.yaml")
TINY = ["--d_model=16", "--n_heads=4", "--ff_dim=24", "--frontend_dim=32", "--n_layers=3"]


def tiny_params(n_classes, d=16, frontend=32, ff=24, n_layers=3, patch=400):
    """Parameter count of the tiny model with mean pooling (as test_transformer_model's)."""
    front = patch * frontend + frontend + frontend * d + d
    layer = 4 * d * d + 4 * d + d * ff + ff + ff * d + d + 4 * d
    return front + n_layers * layer + d * n_classes + n_classes


def test_self_attention_accepts_continuous_family_names():
    """--attn_domain continuous --attn_max_activation biweight names the pooling's family; the
    self-attention then uses the discrete mapping of the same α."""
    for name, mapping, alpha in (("biweight", "entmax15", 1.5), ("triweight", "entmax1333", 4 / 3),
                                 ("gaussian", "softmax", 1.0), ("sparsemax", "sparsemax", 2.0)):
        model = AudioTransformer(5, n_layers=1, d_model=16, n_heads=4, ff_dim=8, frontend_dim=8,
                                 max_activation=name)
        info = model.attention_info()["self_attention"]
        assert (info["max_activation"], info["alpha"]) == (mapping, alpha)
        assert model.layers[0].attention.max_activation == mapping
    with pytest.raises(ValueError, match="continuous name .*triweight, biweight"):
        AudioTransformer(5, n_layers=1, max_activation="biweight2")


@pytest.fixture(scope="module")
def fsd(hostile_fsd50k, tmp_path_factory):
    """The FSD50K-layout demo with hostile fnames and labels (issue 29): preparation, training
    and the inspection scripts below go through names with quotes, ``&``, HTML and non-ASCII."""
    root = tmp_path_factory.mktemp("fsd50k_transformer")
    return {"data": str(hostile_fsd50k), "cache": str(root / "cache"), "root": root}


@pytest.fixture(scope="module")
def trained(fsd):
    """The yaml through recipes/train.py: 2 epochs, tiny widths, default attention."""
    out = fsd["root"] / "run"
    args = [f"--data_folder={fsd['data']}", f"--cache_folder={fsd['cache']}",
            f"--output_folder={out}", *TINY]
    run_script("train.py", HPARAMS, *args, "--number_of_epochs=2", "--noprogressbar")
    return {"out": out, "args": args}


@pytest.mark.slow
def test_recipe_results(trained):
    out = trained["out"]
    res = json.loads((out / "results.json").read_text())
    assert res["experiment_name"] == "fsd50k_transformer"
    assert "folds" not in res and "test_accuracy" not in res
    # the reported mAP is the best checkpoint's, recomputed outside the Brain chunk by chunk
    mAP, n_scored = independent_test_map(out)
    assert res["test_mAP"] == pytest.approx(mAP, abs=1e-5) and math.isfinite(res["test_dprime"])
    assert res["test_n_classes_scored"] == n_scored
    for key in ("test_auc", "test_loss", "test_mAP_chance", "test_per_class_ap", "n_chunks"):
        assert key in res, key
    assert res["checkpoint_selected_by"] == "max valid mAP" and res["loss"] == "bce"
    assert res["n_clips"] == {"train": 120, "valid": 30, "test": 60}
    assert res["chunking"]["chunk_seconds"] == 1.0 and res["overrides_dict"]["n_classes"] == 10
    assert res["epochs_completed"] == 2 and len(res["class_names"]) == 10
    att = res["attention"]
    assert att["domain"] == "mean" and att["tag"] == "mean-softmax"
    assert att["self_attention"] == {"max_activation": "softmax", "alpha": 1.0, "layers": 3,
                                     "heads": 4}
    assert att["pooling"]["domain"] == "mean"
    assert res["n_parameters"] == tiny_params(10)
    with open(out / "test_per_class_ap.csv") as f:
        assert [r["label"] for r in csv.DictReader(f)] == res["class_names"]
    assert any((out / "save").glob("CKPT*/model.ckpt"))
    assert any((out / "save").glob("CKPT*/lr_annealing.ckpt"))
    # the resolved hyperparams: logits for the multi-label Brain, 1 s chunks, pooling by default
    saved = (out / "hyperparams.yaml").read_text()
    for line in ("output: logits", "pool_between_layers: true", "n_classes: 10"):
        assert line in saved.lower(), line


@pytest.mark.slow
@pytest.mark.parametrize("variant,self_att,pooling", [
    (["--attn_domain", "continuous", "--attn_max_activation", "biweight", "--loss=huber"],
     {"max_activation": "entmax15", "alpha": 1.5},
     {"domain": "continuous", "max_activation": "biweight", "alpha": 1.5}),
    (["--attn_max_activation", "sparsemax"],
     {"max_activation": "sparsemax", "alpha": 2.0},
     {"domain": "mean", "max_activation": None, "alpha": None}),
])
def test_attention_variants_run(fsd, variant, self_att, pooling):
    from conftest import train_in_process as run

    out = fsd["root"] / "_".join(variant[1::2]).replace("-", "")
    res = run([HPARAMS, f"--data_folder={fsd['data']}", f"--cache_folder={fsd['cache']}",
               f"--output_folder={out}", *TINY, "--number_of_epochs=1", "--chunk_overlap=0",
               *variant, "--noprogressbar"])
    assert res["test_mAP"] == pytest.approx(independent_test_map(out)[0], abs=1e-5)
    assert math.isfinite(res["test_dprime"])
    assert {k: res["attention"]["self_attention"][k] for k in self_att} == self_att
    assert res["attention"]["pooling"] == pooling
    assert res["loss"] == ("huber" if "--loss=huber" in variant else "bce")


@pytest.mark.slow
def test_inspection_scripts_on_a_multilabel_run(trained, capsys):
    """save_specs: one file per chunk (labels joined); save_attentions: refused, single-label
    only; save_self_attention: 1 s chunks = 40 frames."""
    from audioattn_sb.inspection.cli import (
        run_cli,
        save_attentions_main,
        save_self_attention_main,
        save_specs_main,
    )
    from audioattn_sb.inspection.export import load_spec
    from audioattn_sb.inspection.self_attention import load_self_attention

    args = [HPARAMS, *trained["args"], "--noprogressbar"]
    out = trained["out"]
    manifest = json.loads((out / "test.json").read_text())
    first = list(manifest)[:2]

    # the hostile names went through preparation and training (conftest.make_hostile_fsd50k)
    names = json.loads((out / "results.json").read_text())["class_names"]
    assert {n.replace(",", "") for n in HOSTILE_CLASSES.values()} <= set(names)
    assert any("onerror" in e["clip"] for e in manifest.values())
    written = save_specs_main([*args, "--attn_num_samples", "2"])
    assert [os.path.basename(p) for p in written] == [f"{c}.npz" for c in first]
    for path, cid in zip(written, first):
        spec = load_spec(path)
        assert spec["file_id"] == cid and spec["label"] == ";".join(manifest[cid]["labels"])
        assert spec["source"] == "display_fbank" and spec["duration"] == pytest.approx(1.0)
        assert spec["features"].shape == (101, 80)   # 1 s chunk, 10 ms hop, centred
        assert spec["fold"] == ""

    with pytest.raises(SystemExit) as exc:
        run_cli(save_attentions_main, args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "save_attentions.py is single-label only" in err and "multi-label run" in err
    assert "Traceback" not in err and not (out / "saved_attentions").exists()

    written = save_self_attention_main([*args, "--attn_num_samples", "2"])
    for path, cid in zip(written, first):
        d = load_self_attention(path)
        assert d["attention"].shape == (3, 1, 4, 40, 40)
        assert d["layer_spf"].tolist() == [400, 400, 800]
        np.testing.assert_allclose(d["attention"].sum(-1), 1.0, atol=1e-5)
        assert str(d["label"]) == ";".join(manifest[cid]["labels"])
        assert str(d["pred"]) in json.loads((out / "results.json").read_text())["class_names"]


@pytest.mark.slow
def test_classify_file_on_a_multilabel_run(trained, fsd):
    """README: classify_file works on an FSD50K run: the whole file scored as one input, sigmoid
    scores per class (independent, in [0, 1], not a distribution), top-k of the run's classes."""
    from audioattn_sb.inference import load_model

    manifest = json.loads((trained["out"] / "test.json").read_text())
    wav = next(iter(manifest.values()))["wav"]
    model = load_model(trained["out"])
    res = model.classify_file(wav, top_k=3)
    names = json.loads((trained["out"] / "results.json").read_text())["class_names"]
    assert len(res.scores) == len(names) and len(res.top_k) == 3
    assert all(0.0 <= s <= 1.0 for s in res.scores)
    assert abs(float(np.sum(res.scores)) - 1.0) > 1e-3  # sigmoid scores, not a softmax
    assert [n for n, _ in res.top_k] == [names[i] for i in np.argsort(-res.scores)[:3]]
    assert res.pred == res.top_k[0][0] and res.self_attention is not None
