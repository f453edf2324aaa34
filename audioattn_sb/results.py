"""One schema for a run's ``results.json``: :class:`RunResults`, built once by the recipe
(:func:`audioattn_sb.recipe.build_results`), written once (atomically, :meth:`RunResults.write`)
and read back by :meth:`RunResults.load` (:mod:`audioattn_sb.folds`, the cross-validation table).

Schema versions (``schema_version``):

* 1: the layout written before the version was recorded (files without ``schema_version``);
* 2 (:data:`SCHEMA_VERSION`): the same keys with the same meanings, plus ``schema_version``.

The file is flat (every key at the top level, as schema 1; users, docs/runs and scripts read it
by key). The dataclass groups it: the run's description (command, data, folds, attention,
training), ``figures`` (the Brain's test figures: single-label ``test_accuracy``,
``test_error``, …; multi-label ``test_mAP``, ``test_dprime``, …; written by
:meth:`audioattn_sb.brains.base.ClipBrain.results`), ``noisy_test`` (``noisy_test_folder``,
``test_noisy_accuracy``, … of ``--noisy_test_folder``), ``without_weight_average`` (the test of
the checkpoint's own weights when a weight average is in use), and the environment (versions,
machine, code commit). :meth:`RunResults.get` reads any key of the flat file.

Example:
    >>> r = RunResults(experiment_name="e", attention={"tag": "discrete-softmax"},
    ...                folds={"train": [3], "valid": [2], "test": [1]},
    ...                figures={"test_accuracy": 0.75, "test_error": 0.25})
    >>> d = r.to_dict()
    >>> d["schema_version"], d["test_accuracy"], r.metric, r.test_score, r.attention_tag
    (2, 0.75, 'accuracy', 0.75, 'discrete-softmax')
    >>> RunResults.from_dict(d) == r
    True
    >>> RunResults.from_dict({"test_accuracy": 0.5}).schema_version  # no version: schema 1
    1
"""

import dataclasses
import json
import os
from dataclasses import dataclass, field

from audioattn_sb.utils import atomic_write_text

#: the schema this code writes
SCHEMA_VERSION = 2

#: the file name in a run folder
RESULTS_JSON = "results.json"

_NOT_IN_FILE = {"path", "localisation"}


def _is_noisy_key(key):
    return key == "noisy_test_folder" or key.startswith("test_noisy_")


@dataclass
class RunResults:
    """Everything a run's ``results.json`` holds (one flat JSON object; :meth:`to_dict`).

    Fields, in the file's order
    ---------------------------
    schema_version : int
        :data:`SCHEMA_VERSION` when written; 1 for a file without the key.
    experiment_name, hparams_file, overrides, overrides_dict, command, data_folder
        The yaml's experiment name, the yaml's absolute path, the overrides (yaml text and
        dict), the command line (``train.py …``) and the data folder.
    folds : dict or None
        ``{"train": [...], "valid": [...], "test": [...]}``; None (no key) for corpora without
        folds.
    attention : dict
        ``domain``, ``max_activation``, ``alpha``, ``tag`` (and the model's own description,
        e.g. the Transformer's).
    seed, number_of_epochs, epochs_completed, stopped_early, augment, mixup_alpha,
    average_epochs, tested_epoch, best_epoch, n_parameters, train_seconds_this_process,
    train_epoch_seconds, class_names
        The training (see :func:`audioattn_sb.recipe.build_results`).
    figures : dict
        The Brain's entries (:meth:`~audioattn_sb.brains.base.ClipBrain.results`): what was
        tested and its figures (``test_accuracy`` … or ``test_mAP`` …), clips per split,
        ``items_per_process``; keys a newer writer adds land here too.
    noisy_test : dict
        ``noisy_test_folder``, ``test_noisy_accuracy``, ``test_noisy_loss``,
        ``test_noisy_per_class_accuracy``, ``test_noisy_confusion_matrix``; {} without a noisy
        test.
    without_weight_average : dict or None
        The checkpoint's own weights tested too (``average_epochs`` > 0): ``test_<k>`` for the
        Brain's summary statistics, ``test_noisy_accuracy`` / ``test_noisy_loss`` with a noisy
        test; None (no key) otherwise.
    versions, machine, code_commit
        Package versions, :func:`~audioattn_sb.utils.machine_info`, the git commit at the start.

    Not in the file: ``path`` (where :meth:`load` read it) and ``localisation`` (filled by
    :func:`audioattn_sb.folds.collect_results` from the run's saved attentions).
    """

    schema_version: int = SCHEMA_VERSION
    experiment_name: str = None
    hparams_file: str = None
    overrides: str = None
    overrides_dict: dict = None
    command: str = None
    data_folder: str = None
    folds: dict = None
    attention: dict = None
    seed: int = None
    number_of_epochs: int = None
    epochs_completed: int = None
    stopped_early: bool = None
    augment: bool = None
    mixup_alpha: float = None
    average_epochs: float = None
    tested_epoch: int = None
    best_epoch: int = None
    n_parameters: int = None
    train_seconds_this_process: float = None
    train_epoch_seconds: list = None
    class_names: list = None
    figures: dict = field(default_factory=dict)
    noisy_test: dict = field(default_factory=dict)
    without_weight_average: dict = None
    versions: dict = None
    machine: dict = None
    code_commit: str = None
    path: str = field(default=None, compare=False, repr=False)
    localisation: dict = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ file <-> dataclass
    def to_dict(self):
        """The flat ``results.json`` object (schema 1's keys and order, ``schema_version``
        first)."""
        out = {}
        for f in dataclasses.fields(self):
            name = f.name
            if name in _NOT_IN_FILE:
                continue
            value = getattr(self, name)
            if name in ("figures", "noisy_test"):
                out.update(value or {})
            elif name in ("folds", "without_weight_average"):
                if value is not None:
                    out[name] = value
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data):
        """A :class:`RunResults` of a ``results.json`` object, any schema up to
        :data:`SCHEMA_VERSION` (a file without ``schema_version`` is schema 1; keys it lacks
        stay None)."""
        data = dict(data)
        version = int(data.pop("schema_version", 1))
        if version > SCHEMA_VERSION:
            raise ValueError(f"results.json schema {version} is newer than this code's "
                             f"({SCHEMA_VERSION}); update audioattn-sb to read it")
        names = {f.name for f in dataclasses.fields(cls)} - _NOT_IN_FILE - {
            "figures", "noisy_test", "schema_version"}
        kwargs = {k: data.pop(k) for k in list(data) if k in names}
        noisy = {k: data.pop(k) for k in list(data) if _is_noisy_key(k)}
        return cls(schema_version=version, figures=data, noisy_test=noisy, **kwargs)

    @classmethod
    def load(cls, path):
        """Read a ``results.json`` (a file, or a run folder holding one); ``path`` is kept.
        ``OSError`` / ``json.JSONDecodeError`` for an unreadable file."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, RESULTS_JSON)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a results.json object")
        run = cls.from_dict(data)
        run.path = path
        return run

    def to_json(self):
        """The file's text (indented, newline-terminated)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, path):
        """Write the file atomically at ``path`` (a file, or a run folder); returns the path."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, RESULTS_JSON)
        atomic_write_text(path, self.to_json())
        return path

    # ------------------------------------------------------------------ readers
    def get(self, key, default=None):
        """The value of ``key`` in the flat file (``default`` when absent or null).

        Example:
            >>> r = RunResults(figures={"test_mAP": 0.4}, noisy_test={})
            >>> r.get("test_mAP"), r.get("test_accuracy", "-"), r.get("folds", "-")
            (0.4, '-', '-')
        """
        value = self.to_dict().get(key)
        return default if value is None else value

    def has(self, key):
        """Whether the file has a non-null ``key``."""
        return self.get(key) is not None

    def own(self, key):
        """A test figure of the tested checkpoint's own weights: the ``without_weight_average``
        entry when the run averaged its weights (``average_epochs`` > 0), else the file's value.

        Example:
            >>> r = RunResults(figures={"test_accuracy": 0.8},
            ...                without_weight_average={"test_accuracy": 0.75})
            >>> r.own("test_accuracy"), RunResults(figures={"test_mAP": 0.4}).own("test_mAP")
            (0.75, 0.4)
        """
        return (self.without_weight_average or {}).get(key, self.get(key))

    @property
    def metric(self):
        """The headline test figure's name: ``accuracy`` (single-label), ``mAP`` (multi-label),
        None when the file has neither."""
        if "test_accuracy" in self.figures:
            return "accuracy"
        if "test_mAP" in self.figures:
            return "mAP"
        return None

    @property
    def test_score(self):
        """The headline test figure (``test_accuracy`` or ``test_mAP``)."""
        return None if self.metric is None else self.figures[f"test_{self.metric}"]

    @property
    def test_accuracy(self):
        return self.figures.get("test_accuracy")

    @property
    def test_error(self):
        return self.figures.get("test_error")

    @property
    def test_noisy_accuracy(self):
        """The noisy test's accuracy (None without a noisy test)."""
        return self.noisy_test.get("test_noisy_accuracy")

    @property
    def attention_tag(self):
        return (self.attention or {}).get("tag")

    @property
    def test_folds(self):
        return list((self.folds or {}).get("test") or [])

    @property
    def checkpoint_selected_by(self):
        """How the tested checkpoint was chosen (``min valid error`` for files without it)."""
        return self.figures.get("checkpoint_selected_by") or "min valid error"

    @property
    def tested(self):
        """What was tested: the checkpoint rule, and the weight average when one was used
        (runs that differ in it are not averaged together in the fold table).

        Example:
            >>> RunResults(average_epochs=2.0).tested
            'min valid error, weights averaged over 2 epochs'
        """
        tested = self.checkpoint_selected_by
        if float(self.average_epochs or 0) > 0:
            tested += f", weights averaged over {float(self.average_epochs):g} epochs"
        return tested

    @property
    def machine_cpu(self):
        """The CPU that ran it (None when not recorded)."""
        return (self.machine or {}).get("cpu")


def as_run_results(run):
    """``run`` as a :class:`RunResults` (a results.json dict is converted; a RunResults is
    returned as is)."""
    return run if isinstance(run, RunResults) else RunResults.from_dict(run)


__all__ = ["RESULTS_JSON", "RunResults", "SCHEMA_VERSION", "as_run_results"]
