"""Preparation never writes outside its cache folder nor over a source file (issue 29).

The two ways a new user destroyed the corpus, for both layouts (UrbanSound8K, FSD50K):
``--cache_folder`` set to the audio folder (every source would be rewritten at 16 kHz) and a csv
row whose file name leaves its audio folder (``../../../outside/victim.wav``: the outside file
would be read and rewritten). Each must stop before any work with a clear error naming the
folder or the row, every source byte unchanged and nothing created beside the sources."""

import hashlib
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data.fsd50k import prepare_fsd50k
from audioattn_sb.data.preparation import PrepareError
from audioattn_sb.data.urbansound8k import prepare_urbansound8k
from conftest import REPO_ROOT, read_csv_rows, run_script, write_csv_rows


def _snapshot(*folders):
    """``{path: sha1}`` of every file under ``folders`` (what must not change)."""
    out = {}
    for folder in folders:
        for d, _, files in os.walk(folder):
            for f in files:
                p = os.path.join(d, f)
                with open(p, "rb") as fh:
                    out[p] = hashlib.sha1(fh.read()).hexdigest()
    return out


def _as_44k_24bit(path, seed=0):
    """Rewrite ``path`` as a 44.1 kHz 24-bit WAV (the source a 16 kHz copy would destroy)."""
    x = 0.1 * np.random.default_rng(seed).standard_normal(44100 // 4)
    sf.write(path, x, 44100, subtype="PCM_24")


def _victim(tmp_path):
    """``<tmp>/outside/victim.wav``, a 44.1 kHz file outside every data folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    _as_44k_24bit(outside / "victim.wav", seed=7)
    return outside


# --------------------------------------------------------------------------- UrbanSound8K
@pytest.mark.parametrize("where", ["audio", "audio/fold1"])
def test_us8k_cache_in_the_audio_folder_stops_before_any_work(small_us8k, tmp_path, where):
    rows = read_csv_rows(small_us8k)
    for r in rows[:3]:
        _as_44k_24bit(small_us8k / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
    before = _snapshot(small_us8k)
    with pytest.raises(PrepareError, match=r"cache folder .* the corpus's audio folder"):
        prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                             cache_folder=small_us8k / where, progress=False)
    assert _snapshot(small_us8k) == before  # same files, same bytes: nothing added beside them
    assert not (tmp_path / "save").exists()


def test_us8k_cache_linked_onto_the_sources_is_refused(small_us8k, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.symlink(small_us8k / "audio" / "fold1", cache / "fold1")  # cache/fold1 → the sources
    before = _snapshot(small_us8k)
    with pytest.raises(PrepareError, match="resolves to the source file"):
        prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3], cache_folder=cache,
                             progress=False)
    assert _snapshot(small_us8k) == before


def test_us8k_row_leaving_its_fold_folder_is_a_bad_row(small_us8k, tmp_path):
    outside = _victim(tmp_path)
    rows = read_csv_rows(small_us8k)
    rel = os.path.relpath(outside / "victim.wav", small_us8k / "audio" / "fold1")
    assert rel.startswith("..")
    rows[0]["slice_file_name"] = rel
    write_csv_rows(small_us8k, rows)
    before = _snapshot(small_us8k, outside)
    with pytest.raises(PrepareError) as err:
        prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                             cache_folder=tmp_path / "cache", progress=False)
    assert f"line {rows[0]['_line']}" in str(err.value) and "leaves its audio folder" in \
        str(err.value)
    assert _snapshot(small_us8k, outside) == before
    # skipped and counted with skip_bad_files; the victim is neither read nor rewritten
    paths = prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                                 cache_folder=tmp_path / "cache", progress=False,
                                 skip_bad_files=True)
    report = (tmp_path / "save" / "prepare_report.json").read_text()
    assert '"n_skipped": 1' in report and "leaves its audio folder" in report
    assert os.path.isfile(paths["train"])
    assert _snapshot(outside) == {k: v for k, v in before.items() if k.startswith(str(outside))}
    assert sorted(os.listdir(outside)) == ["victim.wav"]
    cached = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert cached and all(os.path.realpath(p).startswith(str(tmp_path / "cache")) for p in cached)


@pytest.mark.parametrize("name", ["/abs/victim.wav", "a/../../victim.wav"])
def test_us8k_absolute_or_escaping_names_are_bad_rows(small_us8k, tmp_path, name):
    rows = read_csv_rows(small_us8k)
    rows[1]["slice_file_name"] = name
    write_csv_rows(small_us8k, rows)
    with pytest.raises(PrepareError, match=f"line {rows[1]['_line']} .*"
                       "(is an absolute path|leaves its audio folder)"):
        prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                             cache_folder=tmp_path / "cache", progress=False)


def test_train_with_the_cache_in_the_audio_folder_is_one_error_line(small_us8k, tmp_path):
    """The user's command (train.py ``--cache_folder=<data>/audio``): exit 2, one line, no run
    folder left behind, the sources unchanged."""
    first = read_csv_rows(small_us8k)[0]
    _as_44k_24bit(small_us8k / "audio" / f"fold{first['fold']}" / first["slice_file_name"])
    before = _snapshot(small_us8k)
    p = run_script("train.py", REPO_ROOT / "hparams" / "urbansound8k_acrnn.yaml",
                   f"--data_folder={small_us8k}", f"--cache_folder={small_us8k / 'audio'}",
                   f"--output_folder={tmp_path / 'exp' / 'run'}", "--train_fold_nums=[1]",
                   "--valid_fold_nums=[2]", "--test_fold_nums=[3]", "--noprogressbar",
                   check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the corpus's audio folder" in errors[0]
    assert "Traceback" not in p.stderr
    assert _snapshot(small_us8k) == before
    assert not (tmp_path / "exp").exists()


# --------------------------------------------------------------------------- FSD50K
@pytest.fixture
def small_fsd(tmp_path):
    from audioattn_sb.data.synthetic_fsd50k import make_demo_fsd50k

    out = tmp_path / "fsd"
    make_demo_fsd50k(out, n_train=4, n_val=3, n_eval=3, seed=3, sample_rate=16000)
    return out


@pytest.mark.parametrize("where", ["FSD50K.dev_audio", "FSD50K.eval_audio"])
def test_fsd50k_cache_in_an_audio_folder_stops_before_any_work(small_fsd, tmp_path, where):
    first = sorted((small_fsd / "FSD50K.dev_audio").glob("*.wav"))[0]
    _as_44k_24bit(first)
    before = _snapshot(small_fsd)
    with pytest.raises(PrepareError, match="the corpus's audio folder"):
        prepare_fsd50k(small_fsd, tmp_path / "save", cache_folder=small_fsd / where,
                       progress=False)
    assert _snapshot(small_fsd) == before


def test_fsd50k_fname_leaving_its_audio_folder_is_a_bad_row(small_fsd, tmp_path):
    outside = _victim(tmp_path)
    dev = small_fsd / "FSD50K.ground_truth" / "dev.csv"
    lines = dev.read_text().split("\n")
    fname = lines[1].split(",", 1)[0]
    rel = os.path.relpath(outside / "victim", small_fsd / "FSD50K.dev_audio")
    lines[1] = rel + lines[1][len(fname):]
    dev.write_text("\n".join(lines))
    before = _snapshot(small_fsd, outside)
    with pytest.raises(PrepareError, match="dev.csv line 2 .*leaves its audio folder"):
        prepare_fsd50k(small_fsd, tmp_path / "save", cache_folder=tmp_path / "cache",
                       progress=False)
    prepare_fsd50k(small_fsd, tmp_path / "save", cache_folder=tmp_path / "cache",
                   progress=False, skip_bad_files=True)
    assert '"n_skipped": 1' in (tmp_path / "save" / "prepare_report.json").read_text()
    assert _snapshot(small_fsd, outside) == before
    assert sorted(os.listdir(outside)) == ["victim.wav"]
    shutil.rmtree(tmp_path / "cache")
