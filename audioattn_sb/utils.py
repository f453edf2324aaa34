"""Small shared helpers: atomic file writes."""

import os
import tempfile


def atomic_write_text(path, text, encoding="utf-8"):
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``.

    A reader never sees a half-written file, and a crash leaves the previous version (or nothing).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> atomic_write_text(os.path.join(d, "a.txt"), "hello")
        >>> open(os.path.join(d, "a.txt")).read(), sorted(os.listdir(d))
        ('hello', ['a.txt'])
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
