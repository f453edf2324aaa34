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


#: /proc/cpuinfo flags of x86 CPUs that compute bf16 matrix products natively
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU computes bf16 natively (True), emulates it (False), or unknown (None).

    Without ``avx512_bf16`` or ``amx_bf16`` PyTorch's CPU kernels convert bf16 to float32 and
    back around every operation: measured here on an AMD EPYC without them, a compact ACRNN
    training epoch took 80 s in bf16 against 11 s in fp32 (on an Intel CPU with AMX, bf16 is
    faster than fp32). None where the file cannot be read (not Linux) or lists no x86 flags.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("flags\\t\\t: fpu sse avx2 avx512f\\n")
        >>> cpu_has_native_bf16(f.name), cpu_has_native_bf16("/nonexistent")
        (False, None)
    """
    return _native_bf16(_cpuinfo_fields(cpuinfo).get("flags"))


def _cpuinfo_fields(cpuinfo):
    """``{key: value}`` of ``cpuinfo`` (e.g. ``/proc/cpuinfo``), the first occurrence of each key
    (the first processor's); ``{}`` where the file cannot be read."""
    fields = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _native_bf16(flags):
    """:func:`cpu_has_native_bf16` from a ``flags`` value (None: no x86 flags line)."""
    if flags is None:
        return None
    return any(flag in flags.split() for flag in NATIVE_BF16_FLAGS)


def machine_info(cpuinfo="/proc/cpuinfo"):
    """What a run's figures depend on besides code and seed: the CPU model (``model name`` of
    ``cpuinfo``; ``platform.processor()`` where that file is missing), its family/model/stepping
    (``"26/2/1"``: tells apart CPUs with one model name), the number of logical
    cores, whether bf16 is native (:func:`cpu_has_native_bf16`) and torch's intra-op threads.
    The same code and seed give fold accuracies up to ~4 points apart on two CPU models, so
    ``results.json`` records this and :func:`audioattn_sb.folds.aggregate` names the machines
    of each row.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("cpu family\\t: 26\\nmodel\\t\\t: 2\\nmodel name\\t: AMD EPYC\\n"
        ...                 "stepping\\t: 1\\nflags\\t\\t: fpu avx2\\n")
        >>> info = machine_info(f.name)
        >>> info["cpu"], info["cpu_family_model_stepping"], info["native_bf16"]
        ('AMD EPYC', '26/2/1', False)
    """
    import platform

    fields = _cpuinfo_fields(cpuinfo)
    cpu = fields.get("model name")
    # two machines sold under one name ("AMD EPYC") differ here
    ids = [fields.get(k) for k in ("cpu family", "model", "stepping")]
    cpu_id = "/".join(ids) if all(ids) else None
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        threads = None
    return {"cpu": cpu or platform.processor() or platform.machine() or None,
            "cpu_family_model_stepping": cpu_id,
            "logical_cores": os.cpu_count(),
            "native_bf16": _native_bf16(fields.get("flags")),
            "torch_threads": threads}


def code_commit(path=None):
    """The git commit of the checkout holding ``path`` (default: this package), with
    ``-dirty`` when tracked files differ from it; None outside a git checkout (an installed
    wheel) or without git. What ``results.json`` records as ``code_commit``.

    Example:
        >>> import tempfile
        >>> code_commit(tempfile.mkdtemp()) is None
        True
    """
    import subprocess

    where = os.path.abspath(path or os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(where):
        where = os.path.dirname(where)

    def git(*args):
        return subprocess.run(["git", "-C", where, *args], capture_output=True, text=True,
                              timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
