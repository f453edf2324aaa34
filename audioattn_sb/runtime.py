"""CPU memory settings of a training process (``recipes/train.py`` applies them before torch).

A training step allocates and frees the same large activations again and again (the compact
Transformer's feed-forward hidden layer was a [16, 125, 1536] float tensor, 12 MB, in each of
its first two layers, in the d_model 64 shape these settings were measured on). With glibc's
and PyTorch's defaults, each such block is returned to the kernel when it is freed and
page-faulted and zero-filled again at the next step, on 4 KiB pages.
:func:`tune_cpu_allocator` changes where the memory comes from, never what is computed:

* glibc's ``mallopt``: ``M_MMAP_THRESHOLD`` 32 MiB (blocks below it come from the heap, not
  from a fresh ``mmap`` each time) and ``M_TRIM_THRESHOLD`` 1 GiB (the heap's free top is kept
  for the next step instead of being handed back);
* PyTorch's ``THP_MEM_ALLOC_ENABLE=1``: CPU tensors of 2 MiB or more are aligned to and advised
  as transparent huge pages (where the kernel's ``transparent_hugepage`` mode is ``madvise`` or
  ``always``). PyTorch reads it once, at its first allocation, so it is set before ``import
  torch``.

A run's numbers are the same bit for bit either way (its ``train_log.txt`` losses and
accuracies are identical); its epochs are shorter and the process keeps its peak heap
between steps. Measured in bench/README.md, "Allocator, adopted". ``AUDIOATTN_CPU_ALLOCATOR=default``
in the environment keeps glibc's and PyTorch's defaults.
"""

import ctypes
import ctypes.util
import os
import platform
import sys

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the ceiling of glibc's own dynamic threshold on 64-bit systems
TRIM_THRESHOLD = 2**30
OPT_OUT = "AUDIOATTN_CPU_ALLOCATOR"


def _glibc_mallopt():
    """glibc's ``mallopt`` as a callable ``(param, value) -> int`` (1 = applied), or None on
    another C library (musl, macOS, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    mallopt = ctypes.CDLL(name).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def tune_cpu_allocator(environ=None, mallopt=None):
    """Apply the module docstring's settings to this process; returns what was applied.

    Arguments
    ---------
    environ : dict or None
        The environment to read the opt-out from and set ``THP_MEM_ALLOC_ENABLE`` in
        (default ``os.environ``); a value the user set is kept.
    mallopt : callable or None
        ``(param, value) -> int``; default glibc's (none elsewhere: skipped).

    Returns
    -------
    dict
        ``tuned`` (False when opted out), ``thp`` (the ``THP_MEM_ALLOC_ENABLE`` value now in
        force, None if unset), ``thp_before_torch`` (False when torch was already imported, so
        PyTorch may have read the variable before it was set) and ``mallopt`` (True when glibc
        returned success for both thresholds, False otherwise, None without glibc).

    Example:
        >>> calls = []
        >>> env = {}
        >>> info = tune_cpu_allocator(env, lambda p, v: calls.append((p, v)) or 1)
        >>> env["THP_MEM_ALLOC_ENABLE"], info["mallopt"], calls
        ('1', True, [(-3, 33554432), (-1, 1073741824)])
        >>> tune_cpu_allocator({OPT_OUT: "default"}, lambda p, v: 1)["tuned"]
        False
    """
    environ = os.environ if environ is None else environ
    thp_before_torch = "torch" not in sys.modules
    if environ.get(OPT_OUT, "tuned").strip().lower() == "default":
        return {"tuned": False, "thp": environ.get("THP_MEM_ALLOC_ENABLE"),
                "thp_before_torch": thp_before_torch, "mallopt": None}
    environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    mallopt = _glibc_mallopt() if mallopt is None else mallopt
    applied = None
    if mallopt is not None:
        applied = all([mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1,
                       mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1])
    return {"tuned": True, "thp": environ["THP_MEM_ALLOC_ENABLE"],
            "thp_before_torch": thp_before_torch, "mallopt": applied}


def describe(info):
    """One log line for :func:`tune_cpu_allocator`'s result.

    Example:
        >>> describe({"tuned": True, "thp": "1", "thp_before_torch": True, "mallopt": True})
        'CPU allocator: tuned (THP_MEM_ALLOC_ENABLE=1, glibc mallopt mmap 32 MiB / trim 1 GiB)'
        >>> describe({"tuned": False, "thp": None, "thp_before_torch": True, "mallopt": None})
        'CPU allocator: defaults (AUDIOATTN_CPU_ALLOCATOR=default)'
    """
    if not info["tuned"]:
        return f"CPU allocator: defaults ({OPT_OUT}=default)"
    glibc = {True: "glibc mallopt mmap 32 MiB / trim 1 GiB", False: "glibc refused mallopt",
             None: "no glibc: mallopt skipped"}[info["mallopt"]]
    late = "" if info["thp_before_torch"] else ", set after torch was imported"
    return f"CPU allocator: tuned (THP_MEM_ALLOC_ENABLE={info['thp']}{late}, {glibc})"
