"""Atomic writes: content, no leftovers, usual permissions, previous version kept on error."""

import os
import stat

import pytest

from audioattn_sb.utils import atomic_write, atomic_write_text


def test_atomic_text_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "r.json"
        atomic_write_text(path, "{}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.umask(0o077)
        atomic_write_text(path, "{1}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)
    assert path.read_text() == "{1}"


def test_failed_write_keeps_previous_version_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, lambda p: open(p, "wb").write(b"old"))

    def broken(p):
        with open(p, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]
