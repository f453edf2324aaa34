"""Packed audio (issue 13): the memory-mapped format yields exactly the manifests' items (ids,
chunk offsets, labels, samples), in DataLoader workers too, and the recipe switch trains the same."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch

from audioattn_sb.data.fsd50k import build_chunk_datasets, load_class_names, prepare_fsd50k
from audioattn_sb.data.packed import (AUDIO_FILE, INDEX_FILE, PackedAudio, PackError,
                                      ensure_packed, manifest_wavs)
from audioattn_sb.data.urbansound8k import build_single_label_datasets, prepare_urbansound8k

from conftest import train_in_process, REPO_ROOT


@pytest.fixture(scope="module")
def fsd_prepared(demo_fsd50k, tmp_path_factory):
    root = tmp_path_factory.mktemp("packed_fsd")
    paths = prepare_fsd50k(demo_fsd50k, root / "save", cache_folder=root / "cache",
                           progress=False, workers=1)
    return root, paths, len(load_class_names(demo_fsd50k))


def _items(dataset, keys):
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        out.append({k: (item[k].numpy() if torch.is_tensor(item[k]) else item[k]) for k in keys})
    return out


def _assert_same_items(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], np.ndarray):
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
            else:
                assert x[k] == y[k], k


def test_packed_chunks_equal_the_manifest_items(fsd_prepared):
    root, paths, n_classes = fsd_prepared
    audio = ensure_packed(paths, progress=False)
    assert len(audio) == 210 and audio.folder.startswith(str(root / "cache" / "packed"))
    files = build_chunk_datasets(paths, n_classes)
    packed = build_chunk_datasets(paths, n_classes, audio=audio)
    for split in paths:
        manifest = json.loads(open(paths[split]).read())
        a = _items(files[split], ["id", "clip", "sig", "targets"])
        b = _items(packed[split], ["id", "clip", "sig", "targets"])
        _assert_same_items(a, b)
        assert [x["id"] for x in b] == list(manifest)
        # the chunk offsets: each item's samples are its [start, stop) slice of the cached clip
        for item, entry in zip(b, manifest.values()):
            clip, _ = sf.read(entry["wav"], dtype="float32")
            part = clip[entry["start"]:entry["stop"]]
            assert np.array_equal(item["sig"][:len(part)], part)


def test_packed_clips_equal_the_files_urbansound8k(small_us8k, tmp_path):
    paths = prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                                 cache_folder=tmp_path / "cache", progress=False, workers=1)
    audio = ensure_packed(paths, progress=False)
    files = build_single_label_datasets(paths)
    packed = build_single_label_datasets(paths, audio=audio)
    for split in paths:
        _assert_same_items(_items(files[split], ["id", "sig", "label"]),
                           _items(packed[split], ["id", "sig", "label"]))
    # packed once: the same manifests find the same complete pack again
    before = os.stat(os.path.join(audio.folder, AUDIO_FILE)).st_mtime_ns
    again = ensure_packed(paths, progress=False)
    assert again.folder == audio.folder
    assert os.stat(os.path.join(again.folder, AUDIO_FILE)).st_mtime_ns == before


def test_dataloader_workers_read_the_pack(fsd_prepared):
    _, paths, n_classes = fsd_prepared
    audio = ensure_packed(paths, progress=False)
    test = {"test": paths["test"]}
    batches = {}
    for name, workers, reader in (("files", 0, None), ("packed", 2, audio)):
        ds = build_chunk_datasets(test, n_classes, audio=reader)["test"]
        loader = sb.dataio.dataloader.make_dataloader(ds, batch_size=7, num_workers=workers)
        batches[name] = [(b.id, b.sig.data.numpy(), b.targets.data.numpy()) for b in loader]
    assert len(batches["files"]) == len(batches["packed"]) > 1
    for (ia, sa, ta), (ib, sb_, tb) in zip(batches["files"], batches["packed"]):
        assert ia == ib and np.array_equal(sa, sb_) and np.array_equal(ta, tb)


def test_a_changed_cache_file_gets_a_new_pack(small_us8k, tmp_path):
    paths = prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                                 cache_folder=tmp_path / "cache", progress=False, workers=1)
    first = ensure_packed(paths, progress=False)
    wav = manifest_wavs(paths)[0]
    data, sr = sf.read(wav, dtype="float32")
    sf.write(wav, data * 0.5, sr, subtype="FLOAT")  # the cache entry rewritten
    second = ensure_packed(paths, progress=False)
    assert second.folder != first.folder
    assert np.allclose(second.read(wav), data * 0.5) and np.allclose(first.read(wav), data)


def test_pack_errors_name_the_file_and_what_to_do(small_us8k, tmp_path):
    paths = prepare_urbansound8k(small_us8k, tmp_path / "save", [1], [2], [3],
                                 cache_folder=tmp_path / "cache", progress=False, workers=1)
    audio = ensure_packed(paths, progress=False)
    with pytest.raises(PackError, match="not in the pack .*pack_corpus.py"):
        audio.read(str(tmp_path / "other.wav"))
    os.remove(os.path.join(audio.folder, INDEX_FILE))  # an interrupted pack
    with pytest.raises(PackError, match="no complete pack"):
        PackedAudio(audio.folder)
    assert len(ensure_packed(paths, progress=False)) == 30  # packed again


@pytest.mark.slow
def test_recipe_switch_trains_the_same(demo_us8k, tmp_path):
    """--packed_audio=True: the same run (same seed, same samples) gives the same test result."""
    hparams = str(REPO_ROOT / "hparams" / "urbansound8k_acrnn.yaml")
    common = [f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'cache'}",
              "--train_fold_nums=[3]", "--valid_fold_nums=[2]", "--test_fold_nums=[1]",
              "--number_of_epochs=1", "--feature_cache=False", "--noprogressbar"]
    files = train_in_process([hparams, *common, f"--output_folder={tmp_path / 'files'}"])
    packed = train_in_process([hparams, *common, f"--output_folder={tmp_path / 'packed'}",
                               "--packed_audio=True"])
    assert packed["test_accuracy"] == files["test_accuracy"]
    assert packed["test_loss"] == pytest.approx(files["test_loss"], rel=1e-6)
    assert os.path.isdir(tmp_path / "cache" / "packed")


def test_pack_corpus_script(small_us8k, tmp_path):
    from conftest import run_script

    prepare_urbansound8k(small_us8k, tmp_path / "run", [1], [2], [3],
                         cache_folder=tmp_path / "cache", progress=False, workers=1)
    p = run_script("pack_corpus.py", tmp_path / "run", "--quiet")
    assert "30 clips" in p.stdout and str(tmp_path / "cache" / "packed") in p.stdout
    bad = run_script("pack_corpus.py", tmp_path / "nothing", check=False)
    assert bad.returncode == 2 and "no train/valid/test.json" in bad.stderr
    assert "Usage" in run_script("pack_corpus.py", "--help").stdout
