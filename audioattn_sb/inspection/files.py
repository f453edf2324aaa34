"""Atomic writes of binary outputs (PNG, NPZ); text goes through
:func:`audioattn_sb.utils.atomic_write_text`."""

import os
import tempfile


def atomic_write(path, write, suffix=".tmp"):
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then ``os.replace`` it.

    A reader never sees a half-written file; on error the temporary file is removed. ``suffix``
    lets writers that pick a format from the name (``np.savez`` adds ``.npz``) see the right one.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> atomic_write(os.path.join(d, "a.bin"), lambda p: open(p, "wb").write(b"x"))
        '...a.bin'
        >>> sorted(os.listdir(d))
        ['a.bin']
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
