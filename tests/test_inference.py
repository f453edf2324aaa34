"""Inference from a trained run folder: same scores as the Brain's evaluation, any wav, errors."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from audioattn_sb.inference import load_model, main
from audioattn_sb.inspection.trained_run import RunLoadError
from audioattn_sb.plots import png_size


def _brain_test_scores(runs, domain, tmp_path, batch_size=1):
    """Per-clip probabilities of the training Brain's own test stage (SpeechBrain's checkpointer
    picks the best checkpoint)."""
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    from audioattn_sb.brains.classification import ClassificationBrain
    from audioattn_sb.data.corpora import prepare_manifests
    from audioattn_sb.data.urbansound8k import build_single_label_datasets
    from audioattn_sb.features import FeatureCache

    class Recording(ClassificationBrain):
        def compute_forward(self, batch, stage):
            out = super().compute_forward(batch, stage)
            for i, fid in enumerate(batch.id):
                self.record[fid] = out.predictions[i].exp().detach().cpu().double().numpy()
            return out

    _, run_opts, overrides = sb.parse_arguments([runs["hparams"], *runs["args"][domain]])
    overrides += f"\ntrain_log: {tmp_path / f'{domain}_log.txt'}"
    with open(runs["hparams"]) as f:
        hparams = load_hyperpyyaml(f, overrides)
    manifests, names = prepare_manifests(hparams)
    hparams["class_names"] = names
    data = build_single_label_datasets(manifests, FeatureCache(hparams["compute_features"]))
    brain = Recording(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                      checkpointer=hparams["checkpointer"])
    brain.record = {}
    brain.evaluate(data["test"], min_key="error",
                   test_loader_kwargs={"batch_size": batch_size, "shuffle": False})
    sources = {k: v["source"] for k, v in json.loads(open(manifests["test"]).read()).items()}
    return brain.record, sources, names


@pytest.fixture(scope="module")
def brain_scores(demo_trained_runs, tmp_path_factory):
    """``get(domain, batch_size)``: the Brain's test-stage scores, computed once each."""
    memo = {}
    root = tmp_path_factory.mktemp("brain_scores")

    def get(domain, batch_size=1):
        if (domain, batch_size) not in memo:
            memo[domain, batch_size] = _brain_test_scores(demo_trained_runs, domain, root,
                                                          batch_size)
        return memo[domain, batch_size]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["discrete", "continuous"])
def test_classify_file_matches_the_brains_evaluation(demo_trained_runs, brain_scores, domain):
    record, sources, names = brain_scores(domain)
    model = load_model(demo_trained_runs[domain])
    assert model.class_names == names
    assert len(record) == 30
    for fid, probs in sorted(record.items())[::3]:  # 10 of them, to keep the suite fast
        # the ORIGINAL file (8-96 kHz, mono/stereo, 8-24 bit/float), read and resampled here
        res = model.classify_file(demo_trained_runs["data_folder"] / sources[fid], top_k=3)
        assert res.pred_id == int(probs.argmax()) and res.pred == names[res.pred_id]
        np.testing.assert_allclose(res.scores, probs, atol=1e-5)
        assert [s for _, s in res.top_k] == sorted(res.scores, reverse=True)[:3]
        assert res.attention["attn_domain"] == domain
        assert res.self_attention is None and res.self_attention_spf is None  # no Transformer


@pytest.mark.slow
def test_brain_evaluation_does_not_depend_on_the_batch(brain_scores):
    single, _, _ = brain_scores("discrete", 1)
    padded, _, _ = brain_scores("discrete", 8)
    for fid, probs in single.items():
        np.testing.assert_allclose(padded[fid], probs, atol=1e-5)


@pytest.mark.slow
def test_any_wav_format_and_the_command_line(demo_trained_runs, tmp_path, capsys):
    run = demo_trained_runs["continuous"]
    manifest = json.loads((run / "test.json").read_text())
    entry = next(iter(manifest.values()))
    wave, sr = sf.read(entry["wav"], dtype="float32")
    stereo = tmp_path / "stereo_44k.wav"
    from audioattn_sb.data.audio import resample

    up = resample(wave, sr, 44100)
    sf.write(stereo, np.stack([up, 0.5 * up], axis=1), 44100, subtype="PCM_24")
    torch.manual_seed(123)
    model = load_model(run)  # must not re-seed the caller's RNGs (the yaml's __set_seed)
    assert torch.initial_seed() == 123
    res = model.classify_file(stereo, top_k=20)
    assert len(res.top_k) == 10 and res.scores.sum() == pytest.approx(1.0, abs=1e-5)
    assert res.duration == pytest.approx(entry["duration"], abs=1e-4)
    assert res.attention["density_kind"] == "pdf"
    json.dumps(res.as_dict())  # JSON-friendly

    png = tmp_path / "clip.png"
    main([str(stereo), "--model", str(run), "--top_k", "3", "--plot", str(png)])
    out = capsys.readouterr().out
    assert out.count("\n  1. ") == 1 and "\n  3. " in out and "\n  4. " not in out
    assert "attention: continuous biweight: μ =" in out
    assert png_size(png) == (1000, 400)
    main([str(stereo), "--model", str(demo_trained_runs["discrete"]), "--json"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["top_k"]) == 5 and line["attention"]["attn_domain"] == "discrete"


@pytest.mark.slow
def test_moved_run_folder_and_bad_runs(demo_trained_runs, tmp_path):
    run = demo_trained_runs["discrete"]
    wav = json.loads((run / "test.json").read_text())
    wav = next(iter(wav.values()))["wav"]
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    a = load_model(run).classify_file(wav)
    b = load_model(moved)
    assert b.run.checkpoint.parent == moved / "save"  # paths follow the folder
    np.testing.assert_allclose(b.classify_file(wav).scores, a.scores, atol=1e-6)

    with pytest.raises(FileNotFoundError, match="no such run folder"):
        load_model(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        load_model(empty)
    shutil.copy(run / "hyperparams.yaml", empty / "hyperparams.yaml")
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_model(empty)
    (empty / "save").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint with a valid 'error'"):
        load_model(empty)

    ckpt = next((moved / "save").glob("CKPT+*"))
    torch.save({"not": torch.zeros(1)}, ckpt / "model.ckpt")
    # a file that is not the one saved (another size): the checkpoint counts as incomplete
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint folders.*model.ckpt has"):
        load_model(moved)
    # without the recorded sizes (a checkpoint of SpeechBrain's own Checkpointer) the file is
    # read, and its content is refused
    meta = ckpt / "CKPT.yaml"
    meta.write_text("".join(ln for ln in meta.read_text().splitlines(keepends=True)
                            if not ln.startswith(("files:", "  "))))
    assert "files" not in meta.read_text() and "error" in meta.read_text()
    with pytest.raises(RunLoadError, match="does not fit the 'model'"):
        load_model(moved)
    torch.save({"weights": np.random.default_rng(0)}, ckpt / "model.ckpt")  # arbitrary pickle
    with pytest.raises(RunLoadError, match="not a plain weights file"):
        load_model(moved)
    (ckpt / "model.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="missing from the checkpoint"):
        load_model(moved)
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        load_model(run).classify_file(tmp_path / "none.wav")
