"""TextGrid parsing (the real L2-ARCTIC sample) and the self-attention grid plot with alignments."""

from pathlib import Path

import numpy as np
import pytest

from conftest import missing_shared

from audioattn_sb.plots import plot_self_attention_grid, png_size
from audioattn_sb.textgrid import (
    TextGridError,
    boundaries,
    read_textgrid,
    words_and_phones,
)

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "textgrid_sample"
TEXTGRID = SAMPLE / "arctic_a0001.TextGrid"
XMAX = 3.9138775510204082  # the file's xmax, read by hand


@pytest.fixture(scope="module")
def sample():
    if not TEXTGRID.is_file():
        missing_shared(f"TextGrid sample not found at {TEXTGRID}")
    return TEXTGRID


def test_sample_tiers_and_boundaries_match_the_file(sample):
    tiers = read_textgrid(sample, include_empty=True)
    assert list(tiers) == ["words", "phones"]
    words, phones = tiers["words"], tiers["phones"]
    # "intervals: size = 14" and "size = 39" in the file
    assert len(words) == 14 and len(phones) == 39
    # values read from the file by hand
    assert words[0] == (0.0, 0.03, "")
    assert words[1] == (0.03, 0.52, "author")
    assert words[4] == (0.85, 1.24, "danger")
    assert words[12] == (3.3, 3.89, "etc")
    assert words[-1] == (3.89, XMAX, "")
    assert phones[0] == (0.0, 0.03, "sil")
    assert phones[1] == (0.03, 0.2, "AO1")
    assert phones[18] == (1.63, 2.18, "sp")
    assert phones[37] == (3.76, 3.89, "AH0")
    # tiers tile [0, xmax] without gaps
    for tier in (words, phones):
        assert tier[0][0] == 0.0 and tier[-1][1] == XMAX
        assert all(a[1] == b[0] for a, b in zip(tier, tier[1:]))


def test_empty_intervals_dropped_by_default(sample):
    words, phones = words_and_phones(read_textgrid(sample))
    assert [w for _, _, w in words] == ["author", "of", "the", "danger", "trail", "philip",
                                        "steels", "etc"]
    assert len(phones) == 38  # only the final "" interval is unlabelled
    assert phones[0][2] == "sil"  # silence labels are ordinary labels
    assert boundaries(words)[:4] == [0.03, 0.52, 0.72, 0.85]
    assert boundaries(words, t_min=3.0) == [3.2, 3.3, 3.89]


def test_missing_and_malformed_files_give_clear_errors(tmp_path):
    with pytest.raises(TextGridError, match="no such TextGrid file"):
        read_textgrid(tmp_path / "nope.TextGrid")
    bad = tmp_path / "bad.TextGrid"
    bad.write_text("this is not a TextGrid\n")
    with pytest.raises(TextGridError, match="not a readable Praat TextGrid"):
        read_textgrid(bad)
    with pytest.raises(TextGridError, match="no word tier named 'wrd'"):
        words_and_phones({"words": []}, word_tier="wrd")


def test_self_attention_grid_with_word_and_phone_boundaries(sample, tmp_path):
    words, phones = words_and_phones(read_textgrid(sample))
    spf, sr = 400, 16000  # 25 ms frames: the raw-waveform Transformer's patches
    frames = int(np.ceil(XMAX * sr / spf))  # 157
    rng = np.random.default_rng(0)
    att = rng.random((2, 1, 3, frames, frames))
    att /= att.sum(-1, keepdims=True)
    path = plot_self_attention_grid(tmp_path / "grid.png", att, spf, sr, words=words,
                                    phones=phones, title="synthetic")
    assert png_size(path) == (100 + 260 * 3, 80 + 260 * 2)
    path = plot_self_attention_grid(tmp_path / "sub.png", att, spf, sr, words=words,
                                    layers=[1], heads=[0, 2], softmax=True,
                                    time_range=(0.5, 2.0))
    assert png_size(path) == (100 + 260 * 2, 80 + 260)
    with pytest.raises(ValueError, match="layers, 1, heads, Q, K"):
        plot_self_attention_grid(tmp_path / "x.png", att[:, 0], spf, sr)
