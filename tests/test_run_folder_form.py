"""The inspection scripts take a run folder (issue 31): ``save_attentions.py RUN`` writes the same
CSV as the retyped training command on the same run; ``--data_folder`` reads another copy of the
corpus through its own cache; anything that would rebuild another model is refused."""

import hashlib
import os
import shutil

import pytest

from conftest import run_script


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.mark.slow
def test_run_folder_form_writes_what_the_retyped_form_writes(demo_trained_runs, tmp_path):
    from audioattn_sb.inspection.cli import save_attentions_main

    run = demo_trained_runs["continuous"]
    retyped = save_attentions_main([demo_trained_runs["hparams"],
                                    *demo_trained_runs["args"]["continuous"],
                                    "--attn_fname", str(tmp_path / "retyped.csv")])
    by_folder = save_attentions_main([str(run), "--attn_fname", str(tmp_path / "folder.csv"),
                                      "--noprogressbar"])
    assert by_folder["n_clips"] == retyped["n_clips"] == 30
    assert _sha(by_folder["csv"]) == _sha(retyped["csv"])
    assert _sha(by_folder["density_csv"]) == _sha(retyped["density_csv"])


@pytest.mark.slow
def test_run_folder_form_reads_another_copy_through_its_own_cache(demo_trained_runs, tmp_path):
    run = demo_trained_runs["discrete"]
    copy = tmp_path / "copy"
    os.makedirs(copy / "audio")
    shutil.copytree(demo_trained_runs["data_folder"] / "metadata", copy / "metadata")
    for k in (1, 2, 3):
        shutil.copytree(demo_trained_runs["data_folder"] / "audio" / f"fold{k}",
                        copy / "audio" / f"fold{k}")
    cache = demo_trained_runs["cache_folder"]
    before = {p: _sha(p) for p in map(str, cache.rglob("*.wav"))}
    p = run_script("save_attentions.py", run, f"--data_folder={copy}", "--attn_num_samples",
                   "3", "--attn_fname", tmp_path / "copy.csv")
    assert "saved the attention of 3 test clips" in p.stdout
    assert (copy / "audioattn_cache_16k" / "fold1").is_dir()  # the copy's own cache
    assert {p: _sha(p) for p in map(str, cache.rglob("*.wav"))} == before
    # the retyped training command with the copy as --data_folder: its explicit --cache_folder
    # is the training data's, whose entries have the copy's clip paths; the copy's clips must
    # go to the copy's own cache all the same
    shutil.rmtree(copy / "audioattn_cache_16k")
    args = [a if not a.startswith("--data_folder=") else f"--data_folder={copy}"
            for a in demo_trained_runs["args"]["discrete"]]
    assert any(a.startswith("--cache_folder=") for a in args)
    p = run_script("save_attentions.py", demo_trained_runs["hparams"], *args,
                   "--attn_num_samples", "3", "--attn_fname", tmp_path / "retyped_copy.csv")
    assert "saved the attention of 3 test clips" in p.stdout
    assert (copy / "audioattn_cache_16k" / "fold1").is_dir()
    assert {p: _sha(p) for p in map(str, cache.rglob("*.wav"))} == before
    bad = run_script("save_attentions.py", run, "--lr=0.5", check=False)
    assert bad.returncode == 2 and "--lr: the run-folder form rebuilds the model" in bad.stderr
    assert "Traceback" not in bad.stderr
