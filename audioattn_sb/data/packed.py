"""Packed audio: the cached clips of a run's manifests in one float32 file, read by memory mapping.

Reading one small WAV file per item (open, parse the header, seek, read, close) costs a few
hundred microseconds; at full-corpus scale on a GPU the loader, not the model, would set the epoch
time. ``packed_audio: True`` (every yaml; ``--packed_audio=True``) makes the recipe write, once,
every distinct cached WAV that its manifests name into

    <cache>/packed/<key>/audio.f32      the samples of every clip, one after the other
                                        (raw little-endian float32, numpy.memmap)
    <cache>/packed/<key>/index.json     {"version", "n_samples",
                                         "clips": {wav path: [offset, frames]},
                                         "sources": {wav path: [size, mtime_ns]}}

(``<cache>`` = the folder holding the manifests' WAVs; ``<key>`` = a hash of their paths, sizes
and modification times, so a changed cache gets a new pack and runs on the same clips share one).
The datasets then read ``audio.f32[offset + start : offset + stop]`` instead of opening the WAV:
the same samples (the cache is float32 already), the same items, chunks and labels, a copy of a
memory slice per item. The index is written last: a folder without it is incomplete and is
packed again. ``recipes/pack_corpus.py`` packs the manifests of a prepared run by hand.

Example:
    >>> import tempfile, os, json, numpy as np, soundfile as sf
    >>> d = tempfile.mkdtemp(); wav = os.path.join(d, "cache", "a.wav"); os.mkdir(d + "/cache")
    >>> sf.write(wav, np.arange(6, dtype=np.float32) / 8, 16000, subtype="FLOAT")
    >>> _ = open(d + "/m.json", "w").write(json.dumps({"a": {"wav": wav}}))
    >>> audio = ensure_packed({"test": d + "/m.json"}, progress=False)
    >>> (audio.read(wav, 2, 5) * 8).tolist(), len(audio)
    ([2.0, 3.0, 4.0], 1)
"""

import hashlib
import json
import os

import numpy as np

from audioattn_sb.utils import atomic_write, atomic_write_text

PACK_VERSION = 1
PACK_DIR = "packed"
AUDIO_FILE = "audio.f32"
INDEX_FILE = "index.json"


class PackError(ValueError):
    """A packed folder that does not hold what is asked of it (the message says what to do)."""


def manifest_wavs(manifests):
    """Sorted distinct ``wav`` paths of the manifests (``{split: path}``)."""
    wavs = set()
    for path in manifests.values():
        with open(path, encoding="utf-8") as f:
            wavs.update(e["wav"] for e in json.load(f).values())
    return sorted(wavs)


def _sources(wavs):
    out = {}
    for w in wavs:
        st = os.stat(w)
        out[w] = [st.st_size, st.st_mtime_ns]
    return out


def pack_folder(wavs):
    """``<common folder of the wavs>/packed/<key>`` for these WAV files as they are now."""
    sources = _sources(wavs)
    key = hashlib.sha1(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]
    common = os.path.commonpath([os.path.dirname(os.path.abspath(w)) for w in wavs])
    return os.path.join(common, PACK_DIR, key), sources


def pack(wavs, folder, sources=None, progress=True):
    """Write ``folder/audio.f32`` and ``folder/index.json`` for ``wavs`` (mono float32 WAVs of the
    resampling cache); returns the folder. The audio goes to a temporary file renamed into place,
    the index last."""
    import soundfile as sf
    from tqdm import tqdm

    sources = sources or _sources(wavs)
    clips = {}

    def write(tmp):
        offset = 0
        with open(tmp, "wb") as out:
            for w in tqdm(wavs, desc="pack audio", unit="clip", disable=not progress,
                          dynamic_ncols=True):
                data, _ = sf.read(w, dtype="float32", always_2d=False)
                if data.ndim != 1:
                    raise PackError(f"{w}: {data.shape[1]} channels; the packed format holds the "
                                    "mono cache of the preparation")
                out.write(data.astype("<f4", copy=False).tobytes())
                clips[w] = [offset, int(data.shape[0])]
                offset += int(data.shape[0])

    atomic_write(os.path.join(folder, AUDIO_FILE), write)
    n_samples = sum(n for _, n in clips.values())
    index = {"version": PACK_VERSION, "n_samples": n_samples, "clips": clips, "sources": sources}
    atomic_write_text(os.path.join(folder, INDEX_FILE), json.dumps(index) + "\n")
    return folder


class PackedAudio:
    """Reader of a packed folder: :meth:`read` ``(wav, start, stop)`` → float32 samples.

    The memory map is opened on first use in each process (DataLoader workers included: the
    object pickles without it).
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        index_path = os.path.join(self.folder, INDEX_FILE)
        try:
            with open(index_path, encoding="utf-8") as f:
                index = json.load(f)
        except (OSError, ValueError) as err:
            raise PackError(f"{index_path}: no complete pack here ({err}); pack again with "
                            "recipes/pack_corpus.py or --packed_audio=True") from None
        if index.get("version") != PACK_VERSION:
            raise PackError(f"{index_path}: pack version {index.get('version')}, this code reads "
                            f"{PACK_VERSION}; delete the folder to pack again")
        self.clips = {w: (int(o), int(n)) for w, (o, n) in index["clips"].items()}
        self.n_samples = int(index["n_samples"])
        self._audio = None

    def __len__(self):
        return len(self.clips)

    def __getstate__(self):
        return {**self.__dict__, "_audio": None}

    def _array(self):
        if self._audio is None:
            path = os.path.join(self.folder, AUDIO_FILE)
            self._audio = np.memmap(path, dtype="<f4", mode="r", shape=(self.n_samples,))
        return self._audio

    def read(self, wav, start=0, stop=None):
        """Samples ``[start, stop)`` of ``wav`` (all by default) as a float32 array (a copy)."""
        try:
            offset, frames = self.clips[wav]
        except KeyError:
            raise PackError(f"{wav} is not in the pack {self.folder}; pack the run's manifests "
                            "again (recipes/pack_corpus.py)") from None
        start = 0 if start is None else int(start)
        stop = frames if stop is None else min(int(stop), frames)
        return np.array(self._array()[offset + start: offset + stop], dtype=np.float32)


def ensure_packed(manifests, progress=True):
    """The :class:`PackedAudio` of the manifests' WAVs, packing them first when no complete pack
    of these files (as they are now) exists."""
    wavs = manifest_wavs(manifests)
    if not wavs:
        raise PackError("the manifests name no audio file to pack")
    folder, sources = pack_folder(wavs)
    if not os.path.isfile(os.path.join(folder, INDEX_FILE)):
        pack(wavs, folder, sources, progress=progress)
    return PackedAudio(folder)


def pack_corpus_main(argv=None):
    """``pack_corpus.py RUN [RUN ...] [--quiet]``: pack the manifests of prepared runs."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="pack_corpus.py", allow_abbrev=False,
                                description="Pack the audio of prepared runs' manifests.")
    p.add_argument("runs", nargs="+")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    out = []
    for run_folder in a.runs:
        manifests = {s: os.path.join(run_folder, f"{s}.json") for s in ("train", "valid", "test")}
        manifests = {s: m for s, m in manifests.items() if os.path.isfile(m)}
        if not manifests:
            raise FileNotFoundError(f"{run_folder}: no train/valid/test.json manifests; give the "
                                    "output folder of a prepared run")
        audio = ensure_packed(manifests, progress=not a.quiet)
        print(f"{run_folder}: {len(audio)} clips, {audio.n_samples} samples "
              f"({audio.n_samples * 4 / 1e9:.2f} GB) in {audio.folder}")
        out.append(audio.folder)
    return out


__all__ = ["PackError", "PackedAudio", "ensure_packed", "manifest_wavs", "pack",
           "pack_corpus_main", "pack_folder"]
