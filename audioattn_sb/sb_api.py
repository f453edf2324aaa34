"""Every use of SpeechBrain's private API, in one module (issue 31).

audioattn-sb is written against SpeechBrain :data:`SUPPORTED` (``pyproject.toml``). Three
behaviours need SpeechBrain's private methods; they live here only, so that a SpeechBrain upgrade
that renames one breaks this module and nothing else:

* :class:`MetaHookCheckpointer`: ``Checkpointer._save_checkpoint_metafile`` (called by
  ``save_checkpoint`` *before* the recoverables are saved) is replaced by the public hook
  :meth:`MetaHookCheckpointer.build_meta`, so that
  :class:`audioattn_sb.checkpoints.AtomicCheckpointer` can write the meta file *after* the files;
* :class:`CpuDistributedBrain`: ``Brain._wrap_distributed`` wraps the modules in DDP on CPU
  (gloo) without SpeechBrain's SyncBatchNorm conversion (CUDA only);
* :func:`has_statistics` / :func:`load_statistics`: the feature normaliser's
  ``_load_statistics_dict`` (loading a run's checkpoint for inspection without a Brain).

Importing this module (the Brain and the checkpointer do) checks the installed version
(:func:`check_version`: a warning naming the supported range and what to do). The package's
``__init__`` drops SpeechBrain's import-time message "torchvision is not available - cannot save
figures" (its optional image saver, which no recipe here uses).

Example:
    >>> check_version("1.1.2") is None
    True
    >>> "1.2" in check_version("1.2.0")
    True
"""

import re
import warnings

import speechbrain as sb
from speechbrain.utils.checkpoints import Checkpointer

#: the SpeechBrain versions this code is written and tested against (as pyproject.toml)
SUPPORTED = (">=1.1", "<1.2")
_LOW, _HIGH = (1, 1), (1, 2)


def check_version(version=None):
    """None when ``version`` (default: the installed SpeechBrain's) is in :data:`SUPPORTED`,
    else the message saying so and what to do."""
    version = sb.__version__ if version is None else version
    m = re.match(r"(\d+)\.(\d+)", str(version))
    if m and _LOW <= (int(m.group(1)), int(m.group(2))) < _HIGH:
        return None
    return (f"SpeechBrain {version} is installed; audioattn-sb supports SpeechBrain "
            f"{','.join(SUPPORTED)} (its private API differs between minor versions: "
            "audioattn_sb/sb_api.py). Install a supported one: "
            f"pip install 'speechbrain{','.join(SUPPORTED)}'")


class MetaHookCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` whose meta-file writing goes through :meth:`build_meta`
    (SpeechBrain 1.1: ``save_checkpoint`` calls ``_save_checkpoint_metafile(fpath,
    meta_to_include, end_of_epoch)`` before it saves the recoverables and uses its return
    value as the checkpoint's meta)."""

    def _save_checkpoint_metafile(self, fpath, meta_to_include={}, end_of_epoch=True):
        return self.build_meta(fpath, dict(meta_to_include), end_of_epoch)

    def build_meta(self, fpath, meta, end_of_epoch):
        """The checkpoint's meta dict for ``fpath`` (default: SpeechBrain's, written now)."""
        return super()._save_checkpoint_metafile(fpath, meta, end_of_epoch)


class CpuDistributedBrain(sb.Brain):
    """SpeechBrain's ``Brain`` whose DDP wrapping on CPU goes through
    :meth:`wrap_distributed_cpu` (SpeechBrain 1.1: ``_wrap_distributed`` converts BatchNorm to
    SyncBatchNorm, which only works for CUDA modules); GPU runs keep SpeechBrain's."""

    def _wrap_distributed(self):
        if not self.distributed_launch or str(self.device).startswith("cuda"):
            return super()._wrap_distributed()
        return self.wrap_distributed_cpu()

    def wrap_distributed_cpu(self):
        """Wrap the modules for a CPU (gloo) DDP run (subclasses define it)."""
        raise NotImplementedError


def has_statistics(obj):
    """Whether ``obj`` keeps SpeechBrain normalisation statistics (``InputNormalization``)."""
    return callable(getattr(obj, "_load_statistics_dict", None))


def load_statistics(obj, state):
    """Load a checkpoint's statistics ``state`` into the normaliser ``obj``."""
    obj._load_statistics_dict(state)


#: the SpeechBrain private names used in this module (tests/test_architecture.py: no other
#: module of the package uses one)
PRIVATE_NAMES = ("_save_checkpoint_metafile", "_wrap_distributed", "_load_statistics_dict")

__all__ = ["CpuDistributedBrain", "MetaHookCheckpointer", "PRIVATE_NAMES", "SUPPORTED",
           "check_version", "has_statistics", "load_statistics"]

if check_version() is not None:
    warnings.warn(check_version(), stacklevel=2)
