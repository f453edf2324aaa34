"""Small shared helpers: atomic file writes, the command-line error wrapper."""

import os
import sys
import tempfile


def _default_mode():
    """0666 minus the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write, suffix=".tmp"):
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then ``os.replace`` it.

    A reader never sees a half-written file; on error the temporary file is removed and the
    previous version (or nothing) stays. The file gets the usual permissions (0666 minus the
    umask), not ``mkstemp``'s 0600. ``suffix`` lets writers that pick a format from the name
    (``np.savez`` adds ``.npz``) see the right one.

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
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text, encoding="utf-8", fsync=True):
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`), flushed to disk (``fsync``;
    off for the many small files of a cache, whose loss on a crash only costs a recomputation).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> _ = atomic_write_text(os.path.join(d, "a.txt"), "hello")
        >>> open(os.path.join(d, "a.txt")).read(), sorted(os.listdir(d))
        ('hello', ['a.txt'])
    """
    def write(tmp):
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    return atomic_write(path, write)


def did_you_mean(name, valid, prefix=""):
    """``"did you mean A, B? "`` with the valid names closest to ``name`` (difflib), or ``""``.

    Example:
        >>> did_you_mean("encodr", ["encoder", "alpha"]), did_you_mean("x", ["encoder"])
        ('did you mean encoder? ', '')
    """
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=3, cutoff=0.6)
    return f"did you mean {', '.join(prefix + c for c in close)}? " if close else ""


def run_cli(func, argv=None):
    """Call ``func(argv)``; print errors a user can fix (``ValueError``, ``FileNotFoundError``)
    as one ``error:`` line without a traceback and exit with code 2
    (``AUDIOATTN_TRACEBACK=1`` shows the traceback)."""
    try:
        return func(argv)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("AUDIOATTN_TRACEBACK"):
            raise
        print(f"error: {err}\n(set AUDIOATTN_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        sys.exit(2)
