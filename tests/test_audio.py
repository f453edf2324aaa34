"""audioattn_sb.data.audio: reading every format, errors, mono, resampling, the cache."""

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp

import numpy as np
import pytest
import soundfile as sf

from audioattn_sb.data import audio
from audioattn_sb.data.audio import (AudioReadError, NonFiniteAudioError, cache_resampled,
                                     read_audio, resample, sidecar_path, to_mono)

# quantization step of each subtype (tolerance of a write/read round trip)
STEP = {"PCM_U8": 2 / 256, "PCM_16": 2 / 65536, "PCM_24": 2 / 2 ** 24, "PCM_32": 2 / 2 ** 32,
        "FLOAT": 1e-7, "DOUBLE": 1e-7}


def _tone(sr, seconds, channels=1, freq=440.0, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    x = np.stack([amp * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1)
    return x if channels > 1 else x[:, 0]


def _no_tmp_files(folder):
    return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".tmp")]


@pytest.mark.parametrize("subtype", list(STEP))
@pytest.mark.parametrize("sr", [8000, 11025, 44100, 96000, 192000])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_audio_every_format(tmp_path, subtype, sr, channels):
    x = _tone(sr, 0.05, channels)
    p = tmp_path / "a.wav"
    sf.write(p, x, sr, subtype=subtype)
    wave, got_sr = read_audio(p)
    assert got_sr == sr
    assert wave.dtype == np.float32
    if channels == 1:
        assert wave.shape == (len(x),)
    else:
        assert wave.shape == (channels, len(x))
    ref = x if channels == 1 else x.T
    assert np.max(np.abs(wave - ref)) <= max(STEP[subtype] * 1.01, 1e-7)  # float32 output


def test_read_audio_u8_values(tmp_path):
    p = tmp_path / "u8.wav"
    x = np.array([-1.0, -0.5, 0.0, 0.5, 0.99])
    sf.write(p, x, 8000, subtype="PCM_U8")
    wave, _ = read_audio(p)
    np.testing.assert_allclose(wave, x, atol=1 / 128)


def test_read_audio_all_zero_is_fine(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(1000), 16000, subtype="PCM_16")
    wave, sr = read_audio(p)
    assert sr == 16000 and not wave.any() and wave.shape == (1000,)


def _make_bad(tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    good = tmp_path / "good.wav"
    sf.write(good, _tone(44100, 0.5, 2), 44100, subtype="PCM_16")
    data = good.read_bytes()
    if kind == "zero_bytes":
        p.write_bytes(b"")
    elif kind == "truncated_data":
        p.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_header":
        p.write_bytes(data[:30])
    elif kind == "text":
        p.write_text("slice_file_name,fold\nthis is not audio\n" * 20)
    elif kind == "no_samples":
        sf.write(p, np.zeros((0, 1)), 16000, subtype="PCM_16")
    elif kind == "missing":
        pass
    return p


@pytest.mark.parametrize("kind", ["zero_bytes", "truncated_data", "truncated_header", "text",
                                  "no_samples", "missing"])
def test_unreadable_raises_audio_read_error(tmp_path, kind):
    p = _make_bad(tmp_path, kind)
    with pytest.raises(AudioReadError) as e:
        read_audio(p)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    assert str(p) in msg
    assert "delete" in msg  # says what to do


def test_truncation_message_gives_sizes(tmp_path):
    p = _make_bad(tmp_path, "truncated_data")
    with pytest.raises(AudioReadError, match="truncated WAV"):
        read_audio(p)


def test_streaming_placeholder_data_size_is_tolerated(tmp_path):
    # a WAV whose data-chunk size is 0xFFFFFFFF (written by streaming tools) is not "truncated"
    p = tmp_path / "stream.wav"
    sf.write(p, _tone(16000, 0.1), 16000, subtype="PCM_16")
    b = bytearray(p.read_bytes())
    i = b.index(b"data")
    b[i + 4:i + 8] = b"\xff\xff\xff\xff"
    p.write_bytes(bytes(b))
    wave, sr = read_audio(p)
    assert sr == 16000 and len(wave) == 1600


@pytest.mark.parametrize("fill", ["all_nan", "all_inf", "one_nan"])
def test_non_finite_samples(tmp_path, fill):
    x = _tone(16000, 0.1)
    if fill == "all_nan":
        x[:] = np.nan
    elif fill == "all_inf":
        x[:] = np.inf
    else:
        x[100] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="NaN or infinite"):
        read_audio(p)
    wave, _ = read_audio(p, check_finite=False)  # still readable on request
    assert not np.isfinite(wave).all()


def test_to_mono():
    st = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(to_mono(st), [0.5, 0.5, 0.5])
    assert to_mono(st).dtype == np.float32
    mono = np.arange(4, dtype=np.float32)
    assert to_mono(mono) is mono
    with pytest.raises(ValueError):
        to_mono(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_resample_length_and_content(sr):
    n = int(sr * 0.537) + 3
    x = _tone(sr, n / sr, freq=1000.0).astype(np.float32)
    y = resample(x, sr, 16000)
    assert y.dtype == np.float32
    assert len(y) == math.ceil(n * 16000 / sr)
    spec = np.abs(np.fft.rfft(y[200:-200] * np.hanning(len(y) - 400)))
    peak_hz = np.argmax(spec) * 16000 / (len(y) - 400)
    assert abs(peak_hz - 1000) < 20
    assert abs(np.max(np.abs(y[200:-200])) - 0.5) < 0.02


def test_resample_rejects_above_nyquist():
    sr = 48000
    x = _tone(sr, 1.0, freq=11000.0).astype(np.float32)  # above the 8 kHz Nyquist of 16 kHz
    y = resample(x, sr, 16000)
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 0.35 * 10 ** (-30 / 20)  # ≥ 30 dB down


def test_resample_same_rate_is_identity():
    x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)


# --------------------------------------------------------------------------- cache
@pytest.mark.parametrize("sr,subtype,channels", [(44100, "PCM_16", 2), (96000, "PCM_24", 1),
                                                 (8000, "PCM_U8", 2), (48000, "DOUBLE", 1),
                                                 (16000, "FLOAT", 2)])
def test_cache_writes_mono_float_16k(tmp_path, sr, subtype, channels):
    src = tmp_path / "src.wav"
    x = _tone(sr, 0.3, channels)
    sf.write(src, x, sr, subtype=subtype)
    dst = tmp_path / "cache" / "fold1" / "src.wav"
    info = cache_resampled(src, dst)
    i = sf.info(dst)
    assert (i.samplerate, i.channels, i.subtype, i.format) == (16000, 1, "FLOAT", "WAV")
    assert i.frames == info["frames"] == math.ceil(len(x) * 16000 / sr)
    assert abs(info["duration"] - len(x) / sr) <= 1 / 16000
    assert info["source_sample_rate"] == sr and info["source_channels"] == channels
    assert info["source_subtype"] == subtype and info["reused"] is False
    assert info["path"] == str(dst)
    side = json.loads(open(sidecar_path(dst)).read())
    assert side["source"]["path"] == str(src) and side["sample_rate"] == 16000
    assert _no_tmp_files(tmp_path) == []


def test_cache_reuse_reads_no_source(tmp_path, monkeypatch):
    src = tmp_path / "src.wav"
    sf.write(src, _tone(44100, 0.2, 2), 44100, subtype="PCM_16")
    dst = tmp_path / "c" / "src.wav"
    first = cache_resampled(src, dst)
    before = os.stat(dst).st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("the source was read although the cache is valid")

    monkeypatch.setattr(audio, "read_audio", boom)
    monkeypatch.setattr(audio.sf, "read", boom)
    monkeypatch.setattr(audio.sf, "info", boom)
    again = cache_resampled(src, dst)
    assert again["reused"] is True
    assert again["frames"] == first["frames"] and again["duration"] == first["duration"]
    assert os.stat(dst).st_mtime_ns == before


def test_cache_redone_after_source_change(tmp_path):
    src = tmp_path / "src.wav"
    sf.write(src, _tone(44100, 0.2), 44100, subtype="PCM_16")
    dst = tmp_path / "c" / "src.wav"
    assert cache_resampled(src, dst)["frames"] == math.ceil(0.2 * 16000)
    # same name, new content and length (and a later mtime)
    sf.write(src, _tone(22050, 0.5), 22050, subtype="PCM_24")
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    info = cache_resampled(src, dst)
    assert info["reused"] is False and info["frames"] == 8000
    assert sf.info(dst).frames == 8000
    assert cache_resampled(src, dst)["reused"] is True


def test_cache_redone_when_only_mtime_changes(tmp_path):
    src = tmp_path / "src.wav"
    sf.write(src, _tone(16000, 0.1), 16000, subtype="PCM_16")
    dst = tmp_path / "c" / "src.wav"
    cache_resampled(src, dst)
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert cache_resampled(src, dst)["reused"] is False


@pytest.mark.parametrize("damage", ["delete_wav", "delete_sidecar", "replace_wav",
                                    "garbage_sidecar", "other_rate"])
def test_cache_redone_when_entry_invalid(tmp_path, damage):
    src = tmp_path / "src.wav"
    sf.write(src, _tone(44100, 0.2), 44100, subtype="PCM_16")
    dst = tmp_path / "c" / "src.wav"
    cache_resampled(src, dst)
    rate = 16000
    if damage == "delete_wav":
        os.remove(dst)
    elif damage == "delete_sidecar":
        os.remove(sidecar_path(dst))
    elif damage == "replace_wav":
        time.sleep(0.01)
        sf.write(dst, np.zeros(10), 16000, subtype="FLOAT")
    elif damage == "garbage_sidecar":
        open(sidecar_path(dst), "w").write("{not json")
    else:
        rate = 8000
    info = cache_resampled(src, dst, sample_rate=rate)
    assert info["reused"] is False
    assert sf.info(dst).frames == math.ceil(0.2 * rate) and sf.info(dst).samplerate == rate
    assert cache_resampled(src, dst, sample_rate=rate)["reused"] is True


@pytest.mark.parametrize("kind", ["zero_bytes", "truncated_data", "text"])
def test_cache_bad_source_writes_nothing(tmp_path, kind):
    p = _make_bad(tmp_path, kind)
    dst = tmp_path / "c" / "x.wav"
    with pytest.raises(AudioReadError):
        cache_resampled(p, dst)
    assert not dst.exists() and not os.path.exists(sidecar_path(dst))
    assert _no_tmp_files(tmp_path) == []


def test_cache_nan_source_raises(tmp_path):
    p = tmp_path / "nan.wav"
    sf.write(p, np.full(100, np.nan), 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError):
        cache_resampled(p, tmp_path / "c" / "nan.wav")


def test_cache_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError):
        cache_resampled(tmp_path / "nope.wav", tmp_path / "c" / "nope.wav")


def _worker(args):
    srcs, cache = args
    out = []
    for s in srcs:
        info = cache_resampled(s, os.path.join(cache, os.path.basename(s)))
        out.append(info["frames"])
    return out


def test_cache_parallel_writers_share_a_folder(tmp_path):
    """Four processes fill one cache folder with the same files at once: all valid, no debris.

    (16 kHz stereo sources: downmixed but not resampled, so the spawned workers need not import
    torch; the race under test is the atomic write, not the resampling.)"""
    srcs = []
    for i in range(24):
        p = tmp_path / "src" / f"{i}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, _tone(16000, 0.3 + 0.01 * i, 2), 16000, subtype="PCM_16")
        srcs.append(str(p))
    cache = str(tmp_path / "cache")
    with ProcessPoolExecutor(4, mp_context=mp.get_context("spawn")) as ex:
        results = list(ex.map(_worker, [(srcs, cache)] * 4))
    assert all(r == results[0] for r in results)
    for s, frames in zip(srcs, results[0]):
        dst = os.path.join(cache, os.path.basename(s))
        assert sf.info(dst).frames == frames
        assert cache_resampled(s, dst)["reused"] is True
    assert _no_tmp_files(tmp_path) == []
