"""The corpora the recipes know, in one registry: the yaml's ``dataset:`` names one.

Each :class:`Corpus` says how to check an experiment's values before any work, how to prepare its
manifests, where its class names come from, how its datasets are built, whether it is
multi-label and which Brain trains it. Nothing else in the package dispatches on the corpus name:
the recipe, the fold runner and the inspection side all go through :func:`get_corpus`.

======================  ===========  ===============================================  ===========
``dataset:``            labels       items                                            Brain
======================  ===========  ===============================================  ===========
``urbansound8k``        single       clips of the chosen folds                        ClassificationBrain
``fsd50k``              multi        1 s chunks of dev (train/val) and eval clips     MultiLabelBrain
======================  ===========  ===============================================  ===========

A new corpus: write its prepare function (validate, cache, manifests; the shared steps are in
:mod:`audioattn_sb.data.preparation`), its class names and datasets, and :func:`register` a
:class:`Corpus`.

Example:
    >>> corpus = get_corpus({"dataset": "fsd50k"})
    >>> corpus.name, corpus.multilabel, corpus.brain_class().__name__
    ('fsd50k', True, 'MultiLabelBrain')
    >>> get_corpus({}).name                      # the default
    'urbansound8k'
    >>> get_corpus({"dataset": "esc50"})
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'esc50' in the hparams file; valid: urbansound8k, fsd50k
"""

import importlib
from dataclasses import dataclass
from typing import Callable

DEFAULT = "urbansound8k"


@dataclass(frozen=True)
class Corpus:
    """One corpus the recipes can train on.

    Arguments
    ---------
    name : str
        The yaml's ``dataset:`` value.
    multilabel : bool
        Multi-label (chunked items, BCE, mAP) or single-label (clips, NLL, accuracy).
    prepare : callable
        ``prepare(data_folder, save_folder, cache_folder, sample_rate, skip_bad_files, progress,
        workers, **prepare_options(hparams))`` → ``{split: manifest path}``.
    prepare_options : callable
        ``hparams → dict``: the corpus's own preparation arguments (folds, chunking).
    class_names : callable
        ``data_folder → [names]`` in class-index order.
    datasets : callable
        ``(manifests {split: path}, hparams, feature_cache or None, audio or None)`` →
        ``{split: dataset}`` (``audio``: a :class:`~audioattn_sb.data.packed.PackedAudio` to read
        the samples from instead of the WAV files).
    check : callable
        ``values → {key: value}``: checks the plain hparams values before any work (a bad fold
        protocol, a class count that contradicts the data) and returns overrides to add
        (``n_classes`` read from the data).
    brain : str
        Dotted path of the Brain used when the yaml sets no ``brain_class``.
    uses_folds : bool
        Split by predefined folds (output folders ``test<k>_valid<j>``, the noisy test).
    """

    name: str
    multilabel: bool
    prepare: Callable
    prepare_options: Callable
    class_names: Callable
    datasets: Callable
    check: Callable
    brain: str
    uses_folds: bool = False

    def brain_class(self):
        """The Brain class named by :attr:`brain`."""
        module, _, cls = self.brain.rpartition(".")
        return getattr(importlib.import_module(module), cls)


CORPORA = {}


def register(corpus):
    """Add ``corpus`` to the registry (a name may be registered once)."""
    if corpus.name in CORPORA:
        raise ValueError(f"a corpus named {corpus.name!r} is already registered")
    CORPORA[corpus.name] = corpus
    return corpus


def get_corpus(values):
    """The :class:`Corpus` of hparams values (a dict with ``dataset``; default
    ``urbansound8k``) or of a name."""
    name = values if isinstance(values, str) else (values.get("dataset") or DEFAULT)
    if name not in CORPORA:
        raise ValueError(f"unknown dataset {name!r} in the hparams file; valid: "
                         f"{', '.join(CORPORA)}")
    return CORPORA[name]


def prepare_manifests(hparams, corpus=None, data_folder=None, save_folder=None,
                      cache_folder=None):
    """Run the corpus's preparation (on the main process; every process gets the paths of the
    manifests it wrote) into the run's output folder; returns ``(manifests, class names)`` and
    checks the class count against ``n_classes``. ``corpus``: default the hparams' own;
    ``data_folder`` / ``save_folder``: another copy of the corpus (the noisy test) and where its
    manifests go; its audio is cached in ``cache_folder`` (default: its own default place)."""
    import speechbrain as sb

    corpus = corpus or get_corpus(hparams)
    data_folder = data_folder or hparams["data_folder"]
    kwargs = dict(data_folder=data_folder,
                  save_folder=save_folder or hparams["output_folder"],
                  # another copy of the corpus caches its audio in its own default place
                  cache_folder=hparams.get("cache_folder") if save_folder is None
                  else cache_folder,
                  sample_rate=hparams["sample_rate"],
                  skip_bad_files=hparams.get("skip_bad_files", False),
                  workers=hparams.get("prepare_workers"),
                  **corpus.prepare_options(hparams))
    # the main process prepares; SpeechBrain hands its result (the manifest paths) to the others
    manifests = sb.utils.distributed.run_on_main(corpus.prepare, kwargs=kwargs)
    class_names = corpus.class_names(data_folder)
    if len(class_names) != hparams["n_classes"]:
        raise ValueError(f"{data_folder} has {len(class_names)} classes but the hparams say "
                         f"n_classes: {hparams['n_classes']}; pass --n_classes={len(class_names)}")
    return manifests, class_names


def packed_audio(hparams, manifests):
    """With ``packed_audio: True``, the :class:`~audioattn_sb.data.packed.PackedAudio` of the
    manifests' clips (packed on the main process first when needed); None otherwise."""
    if not hparams.get("packed_audio"):
        return None
    import speechbrain as sb

    from audioattn_sb.data.packed import ensure_packed

    # packed (or found) once, on the main process; the others get its reader
    return sb.utils.distributed.run_on_main(ensure_packed, kwargs={"manifests": manifests})


# --------------------------------------------------------------------------- UrbanSound8K
def _us8k_prepare(**kwargs):
    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    return prepare_urbansound8k(**kwargs)


def _us8k_options(hparams):
    return {"train_fold_nums": hparams["train_fold_nums"],
            "valid_fold_nums": hparams["valid_fold_nums"],
            "test_fold_nums": hparams["test_fold_nums"],
            "allow_valid_test_overlap": hparams.get("allow_valid_test_overlap", False)}


def _us8k_class_names(data_folder):
    from audioattn_sb.data.urbansound8k import load_class_names

    return load_class_names(data_folder)


def _us8k_datasets(manifests, hparams, feature_cache=None, audio=None):
    from audioattn_sb.data.urbansound8k import build_single_label_datasets

    return build_single_label_datasets(manifests, feature_cache, audio)


def _us8k_check(values):
    from audioattn_sb.data.urbansound8k import check_folds

    check_folds(values["train_fold_nums"], values["valid_fold_nums"], values["test_fold_nums"],
                values.get("allow_valid_test_overlap", False))
    return {}


register(Corpus(name="urbansound8k", multilabel=False, prepare=_us8k_prepare,
                prepare_options=_us8k_options, class_names=_us8k_class_names,
                datasets=_us8k_datasets, check=_us8k_check,
                brain="audioattn_sb.brains.classification.ClassificationBrain",
                uses_folds=True))


# --------------------------------------------------------------------------- FSD50K
def _fsd_prepare(**kwargs):
    from audioattn_sb.data.fsd50k import prepare_fsd50k

    return prepare_fsd50k(**kwargs)


def _fsd_options(hparams):
    return {"chunk_seconds": hparams.get("chunk_seconds", 1.0),
            "chunk_overlap": hparams.get("chunk_overlap", 0.5)}


def _fsd_class_names(data_folder):
    from audioattn_sb.data.fsd50k import load_class_names

    return load_class_names(data_folder)


def _fsd_datasets(manifests, hparams, feature_cache=None, audio=None):
    from audioattn_sb.data.fsd50k import build_chunk_datasets

    return build_chunk_datasets(manifests, hparams["n_classes"], feature_cache, audio)


def _fsd_check(values):
    """``n_classes: auto`` becomes the vocabulary's class count; another number must match it."""
    n = len(_fsd_class_names(values["data_folder"]))
    if str(values.get("n_classes", "auto")) == "auto":
        return {"n_classes": n}
    if values["n_classes"] != n:
        raise ValueError(
            f"{values['data_folder']} has {n} classes (vocabulary.csv) but the hparams say "
            f"n_classes: {values['n_classes']}; pass --n_classes={n} or --n_classes=auto")
    return {}


register(Corpus(name="fsd50k", multilabel=True, prepare=_fsd_prepare,
                prepare_options=_fsd_options, class_names=_fsd_class_names,
                datasets=_fsd_datasets, check=_fsd_check,
                brain="audioattn_sb.brains.multilabel.MultiLabelBrain"))


__all__ = ["CORPORA", "Corpus", "get_corpus", "packed_audio", "prepare_manifests", "register"]
