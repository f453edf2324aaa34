"""audioattn-sb: SpeechBrain recipes for attention in audio classification."""

__version__ = "0.1.0"

import logging as _logging


class _DropTorchvisionWarning(_logging.Filter):
    """SpeechBrain logs "torchvision is not available - cannot save figures" when
    ``speechbrain.utils.train_logger`` is imported (an optional image saver no recipe uses):
    dropped, without importing SpeechBrain here (plotting stays free of it)."""

    def filter(self, record):
        return "torchvision is not available" not in record.getMessage()


_logging.getLogger("speechbrain.utils.train_logger").addFilter(_DropTorchvisionWarning())
