"""A training run's output folder, created and held by one process (issue 29).

* **Created, not assumed**: the missing folders down to the run folder are made one ``mkdir`` at
  a time, and this process remembers which ones *it* made. A set-up that fails
  (:meth:`RunFolder.removed_if_setup_fails`) removes the run folder only if this process made it,
  and the parents it made only while they are empty: two runs started together under a new
  ``EXP/`` (``EXP/A`` and ``EXP/B``) never delete each other's folder, whichever fails.
* **Held**: ``<run folder>/.run.lock`` is locked (``flock``, exclusive) for the whole run, and
  records the holder (process id, host, start time, command). A second process on the same run
  folder (the same command started twice, a forgotten ``--output_folder``) stops at once with an
  error naming the holder, instead of writing every epoch twice and deleting the other's
  checkpoints. The kernel releases the lock when the holder exits, however it ends: after a
  ``kill -9`` the same command takes the folder over and resumes from its checkpoints. Only the
  main process of a ``torchrun`` job takes the lock (its other processes share its folder).

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> run = RunFolder(os.path.join(d, "exp", "run"), main_process=True).claim()
    >>> [os.path.relpath(p, d) for p in run.created]
    ['exp', 'exp/run']
    >>> RunFolder(run.path, main_process=True).claim()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    audioattn_sb.run_folder.RunFolderInUse: ... is already used by this process ...
    >>> run.release()
"""

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time

logger = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"
#: folders held by this process (a second claim in the same process is refused too: ``flock``
#: on a new descriptor of the same file would block against this process's own lock)
_HELD = {}


class RunFolderInUse(ValueError):
    """Another process holds the run folder (the message names it and says what to do)."""


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True
    return True


def make_folders(path, tries=5):
    """Create ``path`` and its missing parents one ``mkdir`` at a time; return the folders this
    call created (top first). A folder made meanwhile by another process is not this call's; a
    parent removed meanwhile (another run's failed set-up) is made again."""
    path = os.path.abspath(path)
    for _ in range(tries):
        missing, p = [], path
        while not os.path.isdir(p):
            if os.path.lexists(p):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder (choose another "
                                         "--output_folder)", p)
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        created = []
        try:
            for d in reversed(missing):
                try:
                    os.mkdir(d)
                    created.append(d)
                except FileExistsError:
                    if not os.path.isdir(d):
                        raise
            return created
        except FileNotFoundError:
            # a parent vanished between two mkdir calls: undo ours and walk again
            for d in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
    raise OSError(f"could not create {path}: its parent folders keep disappearing")


class RunFolder:
    """The output folder of one run, created (:func:`make_folders`) and locked by :meth:`claim`,
    released by :meth:`release` (or on leaving the ``with`` block, or when the process ends).

    ``main_process``: only the main process of a distributed job creates and locks the folder
    (default: SpeechBrain's ``if_main_process()``)."""

    def __init__(self, path, main_process=None):
        self.path = os.path.abspath(os.fspath(path))
        if main_process is None:
            import speechbrain as sb

            main_process = sb.utils.distributed.if_main_process()
        self.main_process = bool(main_process)
        self.created = []
        self._fd = None

    # ------------------------------------------------------------------ claim / release
    def claim(self, wait_for_orphans=10.0):
        """Create the folder and take its lock; :class:`RunFolderInUse` when another process
        holds it. A lock still held after its recorded holder died (worker processes it forked
        outliving a ``kill -9``) is waited for up to ``wait_for_orphans`` seconds."""
        if not self.main_process:
            return self
        if self.path in _HELD:
            raise RunFolderInUse(f"{self.path} is already used by this process (a run in the "
                                 "same Python process); choose another --output_folder")
        self.created = make_folders(self.path)
        lock = os.path.join(self.path, LOCK_FILE)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait_for_orphans
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                if _pid_alive(holder.get("pid")) or time.monotonic() > deadline:
                    os.close(fd)
                    raise RunFolderInUse(
                        f"{self.path} is in use by another run ({_describe(holder)}); wait for "
                        "it to finish, stop it, or choose another --output_folder") from None
                time.sleep(0.2)
        previous = _read_holder(fd)
        if previous.get("pid") and not previous.get("released"):
            logger.info("%s: the run that held it (%s) ended without releasing it; taking it "
                        "over", self.path, _describe(previous))
        _write_holder(fd, {"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.datetime.now().isoformat(timespec="seconds"),
                           "command": " ".join(sys.argv)[:500]})
        self._fd = fd
        _HELD[self.path] = self
        return self

    def release(self):
        """Unlock (the lock file stays, marked released: removing it could let two processes
        lock two different files of the same name)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            holder = _read_holder(self._fd)
            _write_holder(self._fd, {**holder, "released": True})
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        _HELD.pop(self.path, None)

    def __enter__(self):
        return self.claim()

    def __exit__(self, *exc):
        self.release()
        return False

    # ------------------------------------------------------------------ failed set-up
    @contextlib.contextmanager
    def removed_if_setup_fails(self):
        """Run the set-up (hparams, preparation, datasets); when it raises, remove what this
        process created (module docstring) and re-raise. A folder that existed before (a run
        being resumed) is kept."""
        try:
            yield self
        except BaseException:
            self.remove_created()
            raise

    def remove_created(self):
        """Remove the run folder if this process created it, then the parents it created while
        they are empty (a sibling run's folder inside one keeps it)."""
        if not self.main_process or not self.created:
            return
        self.release()
        if self.created[-1] == self.path:
            shutil.rmtree(self.path, ignore_errors=True)
        for d in reversed(self.created[:-1] if self.created[-1] == self.path else self.created):
            try:
                os.rmdir(d)
            except OSError:
                break  # not empty: another run uses it
        self.created = []


def _read_holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096).decode("utf-8", "replace")
        holder = json.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_holder(fd, holder):
    text = json.dumps(holder) + "\n"
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("utf-8"))


def _describe(holder):
    if not holder:
        return "holder unknown"
    parts = [f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"]
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    if holder.get("command"):
        parts.append(f"command: {holder['command']}")
    return ", ".join(parts)


__all__ = ["LOCK_FILE", "RunFolder", "RunFolderInUse", "make_folders"]
