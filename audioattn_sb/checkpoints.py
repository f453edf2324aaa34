"""Checkpoints that a killed run cannot leave half-written.

SpeechBrain 1.1's ``Checkpointer.save_checkpoint`` writes a checkpoint's ``CKPT.yaml`` (the file
that makes a ``CKPT+…`` folder count as a checkpoint) *before* the recoverables' files, and
deletes old checkpoints with one ``rmtree``. A run killed inside a save (SIGKILL, the OOM killer,
a pre-empted machine) therefore left a folder that looked complete but held a truncated
``model.ckpt``, and the same command then died with ``EOFError`` instead of resuming.

:class:`AtomicCheckpointer` is SpeechBrain's ``Checkpointer`` with four changes:

* the meta file is written **last**, after every recoverable's file is on disk (each file is
  fsync'ed), through a temporary file renamed into place, and it records each file's size under
  the key ``files``;
* a folder whose recorded files are missing or of another size (a save or a deletion that was
  interrupted) is **not a checkpoint**: it is skipped with a warning, and removed at the next save;
* a checkpoint that cannot be loaded raises an error that names its folder and says what to do;
* in DDP, every process waits until the meta is written, so all of them list the same
  checkpoints afterwards (SpeechBrain prunes old checkpoints with one broadcast per deletion).

Checkpoints written by SpeechBrain's own ``Checkpointer`` (no ``files`` key) are still read.
All the yamls of this project use it::

    checkpointer: !new:audioattn_sb.checkpoints.AtomicCheckpointer
        checkpoints_dir: !ref <save_folder>
        recoverables: ...

Example:
    >>> import tempfile, torch
    >>> tmp = tempfile.mkdtemp()
    >>> lin = torch.nn.Linear(2, 2)
    >>> ckpter = AtomicCheckpointer(tmp, recoverables={"model": lin})
    >>> ckpt = ckpter.save_checkpoint(meta={"error": 0.5})
    >>> sorted(ckpt.meta["files"])
    ['model.ckpt']
    >>> (ckpt.path / "model.ckpt").stat().st_size == ckpt.meta["files"]["model.ckpt"]
    True
    >>> with open(ckpt.path / "model.ckpt", "r+b") as f:  # a save killed half-way
    ...     _ = f.truncate(10)
    >>> ckpter.list_checkpoints()
    []
"""

import logging
import os
import pathlib
import shutil
import time

import yaml
from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from audioattn_sb.sb_api import MetaHookCheckpointer
from audioattn_sb.utils import atomic_write_text

logger = logging.getLogger(__name__)

#: meta key: {file name: size in bytes} of the checkpoint's recoverable files
FILES_KEY = "files"


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform/file system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_meta_atomically(fpath, meta):
    """Write ``meta`` as SpeechBrain's ``CKPT.yaml`` at ``fpath`` through a temporary file that is
    fsync'ed and renamed into place (:func:`audioattn_sb.utils.atomic_write_text`): the file is
    either absent or complete; the folder entry is then fsync'ed too."""
    atomic_write_text(fpath, "# yamllint disable\n" + yaml.dump(meta))
    _fsync_dir(pathlib.Path(fpath).parent)


def files_problem(path, meta):
    """Why the checkpoint folder ``path`` with the parsed ``meta`` is incomplete, or ``None``:
    every file listed under ``files`` must exist with the recorded size (a meta without ``files``,
    written by SpeechBrain's Checkpointer, lists nothing to check)."""
    for fname, size in (meta.get(FILES_KEY) or {}).items():
        f = pathlib.Path(path) / fname
        if not f.exists():
            return f"{fname} is missing (a save or deletion that did not finish)"
        if f.stat().st_size != size:
            return (f"{fname} has {f.stat().st_size} bytes, {size} were saved "
                    "(a save that did not finish)")
    return None


def checkpoint_problem(path):
    """Why the ``CKPT+…`` folder ``path`` is not a complete checkpoint, or ``None`` if it is.

    Complete: its ``CKPT.yaml`` reads, and every file listed under ``files`` exists with the
    recorded size (:func:`files_problem`).
    """
    path = pathlib.Path(path)
    meta_path = path / METAFNAME
    if not meta_path.exists():
        return "no CKPT.yaml (a save that did not finish)"
    try:
        with open(meta_path, encoding="utf-8") as fi:
            meta = yaml.load(fi, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError) as e:
        return f"CKPT.yaml does not read ({e})"
    if not isinstance(meta, dict):
        return "CKPT.yaml is not a mapping"
    return files_problem(path, meta)


class AtomicCheckpointer(MetaHookCheckpointer):
    """SpeechBrain's ``Checkpointer`` whose checkpoints are complete or absent (see the module).

    Arguments are those of ``speechbrain.utils.checkpoints.Checkpointer``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending_meta = None
        self._warned = set()

    def build_meta(self, fpath, meta_to_include, end_of_epoch):
        # SpeechBrain's save_checkpoint calls this before it saves the recoverables
        # (audioattn_sb.sb_api): the meta (SpeechBrain's keys) is only built here;
        # save_checkpoint writes it
        meta = {"unixtime": time.time(), "end-of-epoch": end_of_epoch}
        meta.update(meta_to_include)
        self._pending_meta = (pathlib.Path(fpath), meta)
        return meta

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """As SpeechBrain's, but the meta file (with each file's size) is written after the
        recoverables' files are on disk; leftovers of interrupted saves are removed after."""
        self._pending_meta = None
        ckpt = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name,
                                       verbosity=verbosity)
        ddp_barrier()  # every process's files are written before the folder becomes a checkpoint
        if if_main_process() and self._pending_meta is not None:
            fpath, saved = self._pending_meta
            files = {}
            for p in sorted(fpath.parent.iterdir()):
                if p.suffix == PARAMFILE_EXT:
                    _fsync_file(p)
                    files[p.name] = p.stat().st_size
            saved[FILES_KEY] = files  # the same dict as ckpt.meta
            write_meta_atomically(fpath, saved)
            self._remove_incomplete(keep=fpath.parent)
        # every process sees the complete checkpoint before it goes on: SpeechBrain's
        # delete_checkpoints lists the checkpoints on each process and broadcasts once per
        # deletion, so processes that saw different lists would wait in different collectives
        ddp_barrier()
        self._pending_meta = None
        return ckpt

    def _remove_incomplete(self, keep):
        complete = {c.path for c in self.list_checkpoints()}
        for d in self.checkpoints_dir.iterdir():
            if d == keep or d in complete or not d.is_dir() or not d.name.startswith(CKPT_PREFIX):
                continue
            logger.warning("Removing %s, an incomplete checkpoint: %s", d, checkpoint_problem(d))
            shutil.rmtree(d, ignore_errors=True)

    def list_checkpoints(self):
        """SpeechBrain's list without the incomplete folders (checked on the meta it parsed)."""
        found = []
        for ckpt in super().list_checkpoints():
            problem = files_problem(ckpt.path, ckpt.meta)
            if problem is None:
                found.append(ckpt)
            elif ckpt.path not in self._warned:
                self._warned.add(ckpt.path)
                logger.warning("Ignoring %s, an incomplete checkpoint: %s", ckpt.path, problem)
        return found

    def load_checkpoint(self, checkpoint):
        """As SpeechBrain's; a failure names the checkpoint folder and what to do."""
        try:
            super().load_checkpoint(checkpoint)
        except Exception as e:
            raise RuntimeError(
                f"Checkpoint {checkpoint.path} cannot be loaded ({type(e).__name__}: {e}). "
                "If this run was killed while saving it, delete that folder and rerun the same "
                "command to resume from the checkpoint before it; if the model's hyperparameters "
                "changed since it was saved, use a new --output_folder.") from e
