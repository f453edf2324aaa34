"""What every corpus preparation shares (UrbanSound8K, FSD50K, any later one): the error type,
the default cache folder, reuse of an earlier preparation with the same options, writable-folder
checks, unlisted audio files, and writing the report, manifests and options file (the options
file last: its presence means the preparation is complete)."""

import contextlib
import json
import logging
import os
import tempfile

from audioattn_sb.utils import atomic_write_text

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
OPTIONS_FILE = "prepare_options.json"
REPORT_FILE = "prepare_report.json"


class PrepareError(ValueError):
    """Bad dataset or options for preparation (the message says what to do)."""


def default_cache_folder(data_folder, sample_rate):
    """Where resampled audio goes when no ``cache_folder`` is given: inside the data folder.

    Example:
        >>> default_cache_folder("data/UrbanSound8K", 16000), default_cache_folder("d", 22050)
        ('data/UrbanSound8K/audioattn_cache_16k', 'd/audioattn_cache_22050hz')
    """
    tag = f"{sample_rate // 1000}k" if sample_rate % 1000 == 0 else f"{sample_rate}hz"
    return os.path.join(data_folder, f"audioattn_cache_{tag}")


def unsafe_name(name):
    """Why a file name that a csv row gives cannot name a file inside its audio folder, or None:
    an absolute path, a ``..`` that leaves the folder, a NUL byte. Such a row would make the
    preparation read audio from anywhere and write its cached copy (and sidecars) outside the
    cache folder, over any ``.wav`` the user can write (issue 29); it is a bad row.

    Example:
        >>> unsafe_name("100032-3-0-0.wav"), unsafe_name("sub/a.wav"), unsafe_name("a/../b.wav")
        (None, None, None)
        >>> unsafe_name("../../../outside/victim.wav")
        "the file name '../../../outside/victim.wav' leaves its audio folder (..); give a name inside it"
        >>> unsafe_name("/tmp/victim.wav")
        "the file name '/tmp/victim.wav' is an absolute path; give a name inside its audio folder"
    """
    if "\0" in name:
        return f"the file name {name!r} holds a NUL byte"
    if os.path.isabs(name):
        return f"the file name {name!r} is an absolute path; give a name inside its audio folder"
    norm = os.path.normpath(name)
    if norm in (".", "..") or norm.startswith(".." + os.sep):
        return f"the file name {name!r} leaves its audio folder (..); give a name inside it"
    return None


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_cache_folder(cache_folder, audio_folders, items):
    """Stop before any work when the cache could overwrite the corpus (issue 29): a cache folder
    that resolves to, or lies inside, one of ``audio_folders`` (e.g. ``--cache_folder`` set to
    the audio "to keep the cache next to it": every source would be rewritten at 16 kHz), or an
    ``items`` cache path (``[(source, cache path), ...]``) that resolves to a source file or
    outside the cache folder (through a symbolic link). Paths are compared after resolving links.
    ``items`` may be empty (the folder check alone, e.g. before reusing manifests, which writes
    nothing); the per-item check then runs before the caching itself.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp(); os.makedirs(d + "/audio/fold1")
        >>> check_cache_folder(d + "/cache", [d + "/audio"], [])
        >>> check_cache_folder(d + "/audio/fold1", [d + "/audio"], [])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        audioattn_sb.data.preparation.PrepareError: the cache folder .../audio/fold1 lies inside ...
    """
    cache = os.path.realpath(cache_folder)
    for folder in audio_folders:
        real = os.path.realpath(folder)
        if _inside(cache, real):
            where = "is" if cache == real else "lies inside"
            raise PrepareError(
                f"the cache folder {cache_folder} {where} the corpus's audio folder {folder}: "
                "preparing would write the resampled copies and their sidecar files over or "
                "beside the source audio; pass a cache folder outside it (--cache_folder=DIR, "
                "e.g. the default <data_folder>/audioattn_cache_16k)")
    sources = {os.path.realpath(src) for src, _ in items}
    for src, dst in items:
        real = os.path.realpath(dst)
        if real in sources:
            raise PrepareError(
                f"the cache path {dst} of {src} resolves to the source file {real}: preparing "
                "would overwrite it; pass another --cache_folder=DIR")
        if not _inside(real, cache):
            raise PrepareError(
                f"the cache path {dst} of {src} resolves to {real}, outside the cache folder "
                f"{cache_folder} (a symbolic link); remove the link or pass another "
                "--cache_folder=DIR")


def _ensure_writable(folder, what, hint):
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write_test.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise PrepareError(f"cannot write the {what} {folder} ({err}); {hint}") from err


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _reusable(save_folder, options):
    """Manifest paths if save_folder holds manifests prepared with exactly these options."""
    old = _load_json(os.path.join(save_folder, OPTIONS_FILE))
    if old is None:
        return None
    if old != options:
        changed = sorted(k for k in set(old) | set(options) if old.get(k) != options.get(k))
        logger.info("%s: preparation options or sources changed (%s); preparing again",
                    save_folder, ", ".join(changed))
        return None
    paths, counts = {}, {}
    for split in SPLITS:
        path = os.path.join(save_folder, f"{split}.json")
        data = _load_json(path)
        if not isinstance(data, dict) or not data:
            return None
        if not all(isinstance(e, dict) and os.path.isfile(str(e.get("wav")))
                   for e in data.values()):
            logger.info("%s: some cached audio of %s.json is gone; preparing again",
                        save_folder, split)
            return None
        paths[split], counts[split] = path, len(data)
    logger.info("manifests in %s are up to date (train %d / valid %d / test %d); reusing them",
                save_folder, counts["train"], counts["valid"], counts["test"])
    return paths


def begin_prepare(save_folder, cache_folder, options):
    """The manifests of an earlier preparation with the same ``options`` (reused as they are), or
    None after checking that both folders are writable and removing the stale options file (the
    old options no longer describe what is about to be written)."""
    reused = _reusable(save_folder, options)
    if reused is not None:
        return reused
    _ensure_writable(save_folder, "save folder", "choose another output folder")
    _ensure_writable(cache_folder, "cache folder",
                     "pass a writable cache_folder=DIR (--cache_folder=DIR); the dataset "
                     "folder may be read-only")
    try:
        os.remove(os.path.join(save_folder, OPTIONS_FILE))
    except FileNotFoundError:
        pass
    return None


def unlisted_audio_files(folders, listed):
    """``<name>/<file>`` of the .wav files in ``folders`` (``{name: path}``) that are not in
    ``listed`` (the file names the csv rows give): they are not used, and the preparation counts
    and logs them.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> for n in ("a.wav", "b.wav", "notes.txt"):
        ...     open(os.path.join(d, n), "w").close()
        >>> unlisted_audio_files({"fold1": d, "fold2": d + "_absent"}, {"a.wav"})
        ['fold1/b.wav']
    """
    found = []
    for name, folder in folders.items():
        if os.path.isdir(folder):
            found += [f"{name}/{n}" for n in sorted(os.listdir(folder))
                      if n.lower().endswith(".wav") and n not in listed]
    return found


def log_unlisted(unlisted, csv_desc):
    """Warn about audio files that no csv row names (at most 5 listed)."""
    if unlisted:
        logger.warning("%d audio file(s) have no row in %s and are not used (add rows for them "
                       "to use them): %s%s", len(unlisted), csv_desc, ", ".join(unlisted[:5]),
                       " ..." if len(unlisted) > 5 else "")


def resolve_workers(workers):
    """Number of preparation processes: ``None``/``"auto"``/0 → one per CPU core (of those this
    process may use), else the number given (≥ 1).

    Example:
        >>> resolve_workers(3), resolve_workers(None) >= 1
        (3, True)
    """
    if workers in (None, "auto", 0, "0"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover (not Linux)
            return max(1, os.cpu_count() or 1)
    try:
        n = int(workers)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(n) != str(workers).strip():
        raise PrepareError(f"prepare_workers must be a whole number ≥ 1 or null (one per core), "
                           f"got {workers!r}")
    return n


#: fewer clips to resample than this are done in this process (measured: 30 demo clips take
#: the same time with and without 2 forked workers; bench/README.md: parallel preparation)
POOL_MIN_CLIPS = 32


def _one_thread():
    """Pool initialiser: one torch thread per worker (the workers are the parallelism)."""
    import torch

    torch.set_num_threads(1)


def cache_many(items, sample_rate, workers=1, progress=True, desc="prepare"):
    """Resample (or reuse) ``items`` = ``[(source path, cache path), ...]`` into the cache and
    yield ``(info, reason)`` per item **in input order**, as
    :func:`audioattn_sb.data.audio.try_cache_resampled` does (``reason`` names a bad file).

    Entries already valid in the cache are found here (a stat and a small JSON read each); only
    the others go to ``workers`` processes (one torch thread each), and only when
    there are at least :data:`POOL_MIN_CLIPS` of them, so a warm cache starts no pool. The output, and so the manifests and the cache, do not depend on
    ``workers``; a progress bar shows clips/s. Stopping the iteration early (a bad file without
    ``skip_bad_files``) cancels the work not yet started.
    """
    from tqdm import tqdm

    from audioattn_sb.data import audio

    items = list(items)
    found = [audio.reusable_entry(src, dst, sample_rate) for src, dst in items]
    todo = [i for i, f in enumerate(found) if f is None]
    bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not progress,
               dynamic_ncols=True)
    workers = min(int(workers), len(todo)) if len(todo) >= POOL_MIN_CLIPS else 1
    with contextlib.ExitStack() as stack:
        stack.enter_context(bar)
        if workers > 1:
            import concurrent.futures as cf

            # the platform's default start (fork on Linux, as torch's DataLoader workers)
            pool = stack.enter_context(cf.ProcessPoolExecutor(workers, initializer=_one_thread))
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            done = pool.map(audio.try_cache_resampled, [items[i][0] for i in todo],
                            [items[i][1] for i in todo], [sample_rate] * len(todo),
                            chunksize=max(1, min(32, len(todo) // (8 * workers))))
        else:
            done = (audio.try_cache_resampled(items[i][0], items[i][1], sample_rate)
                    for i in todo)
        worked = iter(done)
        for f in found:
            result = next(worked) if f is None else (f, None)
            bar.update(1)
            yield result


def finish_prepare(save_folder, manifests, report, progress, split_desc, indent=2):
    """Write the report, refuse an empty split (naming the report), then write the manifests and
    the options file (last: its presence means the preparation is complete) and log the summary.
    Returns the manifest paths."""
    report_path = os.path.join(save_folder, REPORT_FILE)
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    for split in SPLITS:
        if not manifests[split]:
            raise PrepareError(
                f"the {split} split ({split_desc[split]}) is empty: all its rows were skipped "
                f"as bad; see {report_path}")
    paths = {}
    for split in SPLITS:
        paths[split] = os.path.join(save_folder, f"{split}.json")
        atomic_write_text(paths[split], json.dumps(manifests[split], indent=indent) + "\n")
    atomic_write_text(os.path.join(save_folder, OPTIONS_FILE),
                      json.dumps(report["options"], indent=2) + "\n")
    logger.info(report["summary"])
    if progress and not logger.isEnabledFor(logging.INFO):
        print(report["summary"])
    return paths


__all__ = ["OPTIONS_FILE", "REPORT_FILE", "SPLITS", "PrepareError", "begin_prepare",
           "cache_many", "check_cache_folder", "default_cache_folder", "finish_prepare", "log_unlisted",
           "resolve_workers", "unlisted_audio_files", "unsafe_name"]
