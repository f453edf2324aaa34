"""Audio reading, downmixing, resampling and a 16 kHz resampling cache.

Everything goes through ``soundfile`` (libsndfile): ``torchaudio.load`` needs torchcodec, which
this stack does not have. Readable: any rate (UrbanSound8K has 8–192 kHz), 8-bit unsigned,
16/24/32-bit integer and 32/64-bit float WAV, mono or multichannel (and whatever else libsndfile
reads: FLAC, OGG, AIFF …).

Errors: a file that cannot be decoded (zero bytes, not audio, a WAV whose header promises more
audio than the file holds, no samples at all) raises :class:`AudioReadError`; a file with NaN or
infinite samples raises :class:`NonFiniteAudioError` (a subclass). Both are ``ValueError`` and name
the file and what to do.

Resampling uses ``torchaudio.functional.resample`` (pure PyTorch, works without torchaudio's C++
extension). Measured on this machine (2 cores, one thread, 4 s of audio → 16 kHz):
44.1 kHz 0.9 ms, 48 kHz 0.8 ms, 96 kHz 0.9 ms with torchaudio's default windowed sinc, against
1.7 / 1.5 / 3.0 ms for ``scipy.signal.resample_poly``. Output length is
``ceil(n * new_sr / orig_sr)`` samples, so a resampled clip's duration equals the source's to
within one output sample period.

The cache (:func:`cache_resampled`)
----------------------------------
``cache_resampled(src, cache_path)`` writes ``cache_path`` as a mono float32 WAV (soundfile subtype
``FLOAT``) at 16 kHz, and next to it a sidecar ``<cache_path>.json``::

    {"version": 1, "sample_rate": 16000,
     "source": {"path": "/abs/src.wav", "size": 352844, "mtime_ns": 1700000000000000000},
     "cached": {"size": 256088, "mtime_ns": 1700000000100000000},
     "frames": 64000, "duration": 4.0,
     "source_sample_rate": 44100, "source_channels": 2, "source_subtype": "PCM_16",
     "source_frames": 176400, "source_duration": 4.0}

The cached file is valid, and reused without opening the source, when the sidecar exists, its
``version``/``sample_rate``/``source`` (absolute path, byte size, modification time in ns) match
the source's ``os.stat`` now, and the cached WAV's own size and mtime match the sidecar. A source
that changed (rewritten, touched, replaced) or a cached WAV that was replaced by another writer is
redone. Both files are written atomically (a temporary file in the same folder, then
``os.replace``; the sidecar last), and each entry is written under an exclusive lock
(``flock`` on ``.<name>.lock``), so several processes can fill one cache folder at the same time:
a reader sees either no entry, an old complete entry (which fails the check and is redone) or a
new complete entry, and an entry is computed once. Use one cache folder per dataset copy: the source path is part of the key, so
two datasets sharing a cache folder stay correct but keep overwriting each other's entries.
"""

import contextlib
import json
import os
import struct

import numpy as np
import soundfile as sf

from audioattn_sb.utils import atomic_write, atomic_write_text

CACHE_VERSION = 1
CACHE_SUBTYPE = "FLOAT"


class AudioReadError(ValueError):
    """An audio file cannot be read (empty, truncated, not audio, no samples)."""


class NonFiniteAudioError(AudioReadError):
    """An audio file holds NaN or infinite samples."""


def _fix_hint(path):
    return (f"re-download or re-export {path}, or delete it (and its metadata row); "
            "dataset preparation can skip such files with skip_bad_files=True")


def _check_riff_complete(path):
    """Raise AudioReadError when a RIFF/WAVE header declares more audio data than the file holds.

    libsndfile silently reads what is there when a WAV was cut in the middle of its data; this
    check turns that into an error. Placeholder sizes of streaming writers (0 and 0xFFFFFFFF) and a
    shortfall of less than one frame are tolerated. Non-RIFF files are not checked.
    """
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return
            endian = "<" if head[:4] == b"RIFF" else ">"
            pos = 12
            block_align = 1
            while pos + 8 <= file_size:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return
                cid, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) >= 14:
                        block_align = max(1, struct.unpack(endian + "H", fmt[12:14])[0])
                elif cid == b"data":
                    if size in (0, 0xFFFFFFFF):
                        return
                    available = file_size - (pos + 8)
                    if size - available >= block_align:
                        raise AudioReadError(
                            f"{path}: truncated WAV: its header declares {size} bytes of audio but "
                            f"the file holds only {available}; {_fix_hint(path)}")
                    return
                pos += 8 + size + (size & 1)
    except OSError as err:
        raise AudioReadError(f"{path}: cannot open ({err}); {_fix_hint(path)}") from err


def audio_info(path):
    """``soundfile.info`` of ``path``, with errors turned into :class:`AudioReadError`."""
    try:
        return sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioReadError(f"{path}: not a readable audio file ({err}); "
                             f"{_fix_hint(path)}") from err


def read_audio(path, check_finite=True):
    """Read an audio file as float32: ``(wave, sample_rate)``.

    ``wave`` is 1-D ``[samples]`` for a mono file and ``[channels, samples]`` otherwise. Integer
    formats are scaled to [-1, 1) (8-bit unsigned included); float files keep their values.

    Raises :class:`AudioReadError` for a file that cannot be decoded or holds no samples, and
    :class:`NonFiniteAudioError` for NaN/inf samples (unless ``check_finite=False``).

    Example:
        >>> import tempfile, os, numpy as np, soundfile as sf
        >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> sf.write(p, np.zeros((800, 2)), 8000, subtype="PCM_U8")
        >>> wave, sr = read_audio(p)
        >>> wave.shape, wave.dtype, sr
        ((2, 800), dtype('float32'), 8000)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioReadError(f"{path}: no such file; restore it, or delete its metadata row")
    if os.path.getsize(path) == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes); {_fix_hint(path)}")
    _check_riff_complete(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioReadError(f"{path}: not a readable audio file ({err}); "
                             f"{_fix_hint(path)}") from err
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: holds no audio samples; {_fix_hint(path)}")
    if check_finite and not np.isfinite(data).all():
        bad = int(np.size(data) - np.isfinite(data).sum())
        raise NonFiniteAudioError(
            f"{path}: {bad} of {data.size} samples are NaN or infinite; {_fix_hint(path)}")
    wave = np.ascontiguousarray(data.T)
    if wave.shape[0] == 1:
        wave = wave[0]
    return wave, int(sr)


def to_mono(wave):
    """Average the channels of ``[channels, samples]``; a 1-D wave is returned unchanged.

    Example:
        >>> to_mono(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
        array([0.5, 0.5], dtype=float32)
    """
    wave = np.asarray(wave)
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise ValueError(f"expected a [channels, samples] or [samples] array, got {wave.shape}")
    return wave.mean(axis=0, dtype=np.float64).astype(wave.dtype if wave.dtype.kind == "f"
                                                      else np.float32)


def resample(wave, orig_sr, new_sr):
    """Resample along the last axis with ``torchaudio.functional.resample`` (windowed sinc).

    Output length is ``ceil(n * new_sr / orig_sr)``; float32 in, float32 out.

    Example:
        >>> resample(np.zeros(44100, dtype=np.float32), 44100, 16000).shape
        (16000,)
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} → {new_sr}")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == new_sr:
        return wave
    import torch
    import torchaudio.functional as AF

    with torch.no_grad():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig_sr, new_sr)
    return out.numpy().astype(np.float32, copy=False)


def read_mono(path, sample_rate):
    """Any audio file → 1-D float32 array, mono, at ``sample_rate``: :func:`read_audio`, then
    :func:`to_mono` and :func:`resample` (what the preparation's cache does, without the cache).

    Example:
        >>> import tempfile, os, numpy as np, soundfile as sf
        >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> sf.write(p, np.zeros((4410, 2)), 44100, subtype="PCM_16")
        >>> read_mono(p, 16000).shape
        (1600,)
    """
    wave, sr = read_audio(path)
    return resample(to_mono(wave), sr, sample_rate)


def sidecar_path(cache_path):
    """The JSON sidecar that keys a cached file: ``<cache_path>.json``."""
    return os.fspath(cache_path) + ".json"


def _source_key(src_path):
    st = os.stat(src_path)
    return {"path": os.path.abspath(src_path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _valid_cache_entry(src_key, cache_path, sample_rate):
    """The sidecar's info when the cached file is valid for this source, else None."""
    try:
        with open(sidecar_path(cache_path), encoding="utf-8") as f:
            info = json.load(f)
        st = os.stat(cache_path)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    ok = (info.get("version") == CACHE_VERSION and info.get("sample_rate") == sample_rate
          and info.get("source") == src_key
          and info.get("cached") == {"size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return info if ok else None


def reusable_entry(src_path, cache_path, sample_rate=16000):
    """The valid cache entry of ``src_path`` as :func:`cache_resampled` would return it
    (``reused`` True), without reading any audio; None when there is none (or no source).

    Example:
        >>> reusable_entry("/nonexistent.wav", "/tmp/x.wav") is None
        True
    """
    cache_path = os.path.abspath(os.fspath(cache_path))
    try:
        key = _source_key(src_path)
    except OSError:
        return None
    info = _valid_cache_entry(key, cache_path, int(sample_rate))
    return None if info is None else {**info, "path": cache_path, "reused": True}


def cache_resampled(src_path, cache_path, sample_rate=16000):
    """Make ``cache_path`` a mono float32 WAV of ``src_path`` at ``sample_rate``, once.

    Returns the sidecar info (see the module docstring) plus ``"path"`` (absolute path of the
    cached file) and ``"reused"`` (True when a valid cached file was found and the source was not
    read). Raises :class:`AudioReadError` / :class:`NonFiniteAudioError` for a bad source
    (nothing is written then), ``FileNotFoundError`` when the source does not exist.

    Example:
        >>> import tempfile, os, numpy as np, soundfile as sf
        >>> d = tempfile.mkdtemp(); src = os.path.join(d, "a.wav")
        >>> sf.write(src, np.zeros((4410, 2)), 44100, subtype="PCM_16")
        >>> info = cache_resampled(src, os.path.join(d, "cache", "a.wav"))
        >>> info["frames"], info["reused"], sf.info(info["path"]).subtype
        (1600, False, 'FLOAT')
        >>> cache_resampled(src, os.path.join(d, "cache", "a.wav"))["reused"]
        True
    """
    src_path, cache_path = os.fspath(src_path), os.path.abspath(os.fspath(cache_path))
    sample_rate = int(sample_rate)
    if not os.path.exists(src_path):
        raise FileNotFoundError(f"{src_path}: no such audio file")
    found = reusable_entry(src_path, cache_path, sample_rate)
    if found is not None:
        return found
    key = _source_key(src_path)
    with _entry_lock(cache_path):
        # another process may have written the entry while this one waited for the lock
        info = _valid_cache_entry(key, cache_path, sample_rate)
        if info is not None:
            return {**info, "path": cache_path, "reused": True}
        return _write_cache_entry(src_path, cache_path, sample_rate, key)


@contextlib.contextmanager
def _entry_lock(cache_path):
    """An exclusive per-entry lock (``flock`` on ``.<name>.lock`` next to the entry) so that two
    processes never write the same entry at once (the wav of one with the sidecar of the other
    would fail the check and be redone). Without ``fcntl`` (Windows) the writes stay atomic,
    which is still safe."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    folder, base = os.path.split(cache_path)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f".{base}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


#: libsndfile's ``SFC_SET_ADD_PEAK_CHUNK`` (sndfile.h)
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def write_float_wav(path, data, sample_rate):
    """Write a mono float32 WAV whose bytes depend on the samples only.

    libsndfile adds a PEAK chunk to float WAVs that records the time of writing, so two writes
    of the same samples differ by a few bytes; the cache turns it off (through soundfile's
    libsndfile handle; where that handle is missing the file is written with the chunk).

    Example:
        >>> import tempfile, os, time
        >>> d = tempfile.mkdtemp(); x = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
        >>> a, b = os.path.join(d, "a.wav"), os.path.join(d, "b.wav")
        >>> write_float_wav(a, x, 16000); time.sleep(1.01); write_float_wav(b, x, 16000)
        >>> open(a, "rb").read() == open(b, "rb").read()  # a second later: the same bytes
        True
        >>> np.array_equal(sf.read(a, dtype="float32")[0], x)
        True
    """
    with sf.SoundFile(os.fspath(path), "w", int(sample_rate), 1, subtype=CACHE_SUBTYPE,
                      format="WAV") as f:
        snd, ffi = getattr(sf, "_snd", None), getattr(sf, "_ffi", None)
        if snd is not None and ffi is not None:
            snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, ffi.NULL, 0)
        f.write(np.asarray(data, dtype=np.float32))


def _write_cache_entry(src_path, cache_path, sample_rate, key):
    """Read, downmix, resample and write the entry (wav, then its sidecar); returns the info."""
    wave, sr = read_audio(src_path)
    src_info = audio_info(src_path)
    n_src = wave.shape[-1]
    channels = 1 if wave.ndim == 1 else wave.shape[0]
    mono = resample(to_mono(wave), sr, sample_rate)
    atomic_write(cache_path, lambda tmp: write_float_wav(tmp, mono, sample_rate))
    st = os.stat(cache_path)
    info = {
        "version": CACHE_VERSION,
        "sample_rate": sample_rate,
        "source": key,
        "cached": {"size": st.st_size, "mtime_ns": st.st_mtime_ns},
        "frames": int(mono.shape[0]),
        "duration": mono.shape[0] / sample_rate,
        "source_sample_rate": sr,
        "source_channels": int(channels),
        "source_subtype": src_info.subtype,
        "source_frames": int(n_src),
        "source_duration": n_src / sr,
    }
    atomic_write_text(sidecar_path(cache_path), json.dumps(info, indent=1, sort_keys=True),
                      fsync=False)  # one per clip: no disk flush in the preparation loop
    return {**info, "path": cache_path, "reused": False}


def try_cache_resampled(src_path, cache_path, sample_rate=16000):
    """:func:`cache_resampled`, with a bad source turned into a reason instead of an exception:
    ``(info, None)`` on success, ``(None, reason)`` for a missing file, an unreadable file or
    non-finite samples (the preparation scripts report or skip the row with that reason).

    Example:
        >>> try_cache_resampled("/nonexistent.wav", "/tmp/x.wav")
        (None, 'audio file missing: /nonexistent.wav')
    """
    if not os.path.isfile(src_path):
        return None, f"audio file missing: {src_path}"
    try:
        return cache_resampled(src_path, cache_path, sample_rate), None
    except NonFiniteAudioError as err:
        return None, f"NaN/infinite samples: {err}"
    except AudioReadError as err:
        return None, f"unreadable audio: {err}"
