"""The steps of a training experiment, in the order ``recipes/train.py`` runs them.

    python recipes/train.py hparams/urbansound8k_acrnn.yaml \\
        --data_folder=data/UrbanSound8K \\
        --train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10] --valid_fold_nums=[2] --test_fold_nums=[1] \\
        --attn_domain discrete --attn_max_activation entmax1333 --number_of_epochs=2

1. :func:`parse_command_line`: SpeechBrain's arguments (the hparams file, run options such as
   ``--device``, ``--precision``, ``--ckpt_interval_minutes`` and ``--key=value`` overrides),
   unknown overrides refused with the closest keys, the corpus's checks (folds, class count)
   before any work, ``output_folder: auto`` resolved.
2. :func:`run_folder`: the output folder, created and locked for the whole run (a second
   process on it stops at once, naming the holder); its ``removed_if_setup_fails`` around the
   set-up: :func:`load_hparams` (with SpeechBrain's experiment folder), the corpus's manifests
   (:func:`audioattn_sb.data.corpora.prepare_manifests`, on the main process first) and
   :func:`build_datasets`; a set-up that fails removes the folders this run created, and only
   those (:mod:`audioattn_sb.run_folder`).
3. :func:`make_brain`: the corpus's Brain (or the yaml's ``brain_class``).
4. ``brain.fit``, then :func:`run_tests`: explicit evaluations of the checkpoint the Brain
   selects, each returning its statistics (the test folds; ``noisy_test_folder``: their noisy
   copy; ``average_epochs`` > 0: the checkpoint's own weights on both too).
5. :func:`build_results` (one :class:`~audioattn_sb.results.RunResults`) and
   :func:`write_results`: ``<output_folder>/results.json``, written once.

``output_folder: auto`` (the shipped yamls) becomes
``results/<experiment_name>/<attention tag>/test<k>_valid<j>/seed<s>`` so that runs of different
folds and attention variants never share a folder. Corpora (``dataset:``): see
:mod:`audioattn_sb.data.corpora`.
"""

import json
import logging
import math
import os
import platform
from dataclasses import dataclass

import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from audioattn_sb.attention import attention_tag
from audioattn_sb.brains.base import checkpoint_rule_key
from audioattn_sb.data.corpora import get_corpus, packed_audio, prepare_manifests
from audioattn_sb.features import FeatureCache
from audioattn_sb.hparams import (PeekLoader, check_override_keys, last_override_wins,
                                  command_line_checkpoint_interval, default_output_folder,
                                  peek_hparams, resolved_values)
from audioattn_sb.results import RESULTS_JSON, RunResults
from audioattn_sb.run_folder import RunFolder
from audioattn_sb.utils import (atomic_write_text, code_commit, cpu_has_native_bf16,
                                 machine_info)

logger = logging.getLogger(__name__)


def _add_overrides(overrides, extra):
    lines = [f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in extra.items()]
    return "\n".join(([overrides] if overrides else []) + lines)


# --------------------------------------------------------------------------- 1. command line
def parse_command_line(argv):
    """``(hparams_file, run_opts, overrides, corpus)`` of a train.py command line, checked before
    any work: unknown overrides, the corpus's checks (fold protocol; ``n_classes: auto`` read from
    the data), and ``output_folder: auto`` resolved (:func:`default_output_folder`)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(list(argv))
    overrides = last_override_wins(overrides)
    check_override_keys(hparams_file, overrides)
    run_opts = command_line_checkpoint_interval(run_opts)
    values = peek_hparams(hparams_file, overrides)
    corpus = get_corpus(values)
    checkpoint_rule_key(values.get("test_checkpoint", "best_valid"), {})
    extra = corpus.check(values)
    if values.get("teacher") is not None:  # before any work: a teacher that saw a test fold,
        # an empty list or an empty path is refused (null is "no teacher")
        from audioattn_sb.distill import check_run_teacher

        check_run_teacher(values)
    if str(values.get("output_folder", "auto")) == "auto":
        extra["output_folder"] = default_output_folder({**values, **extra})
    overrides = _add_overrides(overrides, extra)
    return hparams_file, run_opts, overrides, corpus


# --------------------------------------------------------------------------- 2. set-up
def run_folder(hparams_file, overrides):
    """The run's output folder as a :class:`~audioattn_sb.run_folder.RunFolder`: ``with
    run_folder(...) as run:`` creates and locks it for the whole run (a second process on it
    stops with an error naming the holder), and ``with run.removed_if_setup_fails():`` around
    the set-up removes only the folders this run created when the set-up raises (a sibling run
    under the same new parent keeps its folder). Loading the yaml already creates folders (the
    checkpointer makes its save folder), so the output folder is read without building
    anything."""
    return RunFolder(resolved_values(hparams_file, overrides)["output_folder"])


def load_hparams(hparams_file, overrides):
    """The experiment's objects (HyperPyYAML), and its folder with the hparams and overrides
    saved in it (``sb.create_experiment_directory``). ``hparams["code_commit"]``: the code's git
    commit now, at the start (what ``results.json`` records: a commit made while the run trains
    is not the code that ran)."""
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    hparams["code_commit"] = code_commit()
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides,
                                   save_env_desc=False)
    if sb.utils.distributed.if_main_process():
        write_environment(hparams["output_folder"])
    return hparams


def environment_description():
    """What SpeechBrain's ``env.log`` says (Python, packages, git revision, CUDA), read in this
    process: the packages of *this* interpreter (``importlib.metadata``) instead of SpeechBrain's
    ``pip freeze`` of whichever ``pip`` is first on PATH (another environment's list, and ~1.2 s
    of every run's start-up: bench/bench_startup.py), and the git revision of this package's
    checkout."""
    import importlib.metadata
    import subprocess
    import sys

    packages = sorted({f"{d.metadata['Name']}=={d.version}"
                       for d in importlib.metadata.distributions() if d.metadata["Name"]},
                      key=str.lower)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    cuda = (f"CUDA version:\n{torch.version.cuda}" if torch.cuda.is_available()
            else "CUDA not available")
    bar = "=============================="
    return "\n".join([
        "SpeechBrain system description (audioattn_sb.recipe.environment_description)", bar,
        "Python version:", sys.version, f"executable: {sys.executable}", bar,
        "Installed Python packages:", *packages, bar,
        "Git revision:", rev or "(not a git checkout)", bar, cuda]) + "\n"


def write_environment(folder):
    """``<folder>/env.log``: :func:`environment_description`."""
    atomic_write_text(os.path.join(folder, "env.log"), environment_description())


def build_datasets(hparams, manifests, corpus):
    """The splits' datasets, with the feature cache wherever it stays valid.

    ``feature_cache: True`` computes each clip's features once. Feature-domain augmentation
    (``fea_augment``, ``time_roll``) and mixup work on cached features; time-domain augmentation
    (``wav_augment`` with ``augment: True``) needs the waveform, so the training split then
    computes its features per batch while validation and test keep the cache. The log says which.
    """
    from audioattn_sb.augment import describe_augmenter, has_augmentations

    augment = bool(hparams.get("augment", False))
    wav_aug = augment and has_augmentations(hparams.get("wav_augment"))
    cache = _feature_cache(hparams)
    if augment:
        logger.info(
            "augmentation (training only): waveform [%s], features [%s], mixup alpha %s",
            describe_augmenter(hparams.get("wav_augment")) if wav_aug else "none",
            describe_augmenter(hparams.get("fea_augment")), hparams.get("mixup_alpha", 0))
    elif float(hparams.get("mixup_alpha", 0) or 0) > 0:
        logger.info("augmentation off; mixup alpha %s", hparams.get("mixup_alpha"))
    if cache is not None:
        logger.info("feature cache: %s", "valid/test features cached; train features computed "
                    "per batch (time-domain augmentation)" if wav_aug else "every split cached")
    audio = packed_audio(hparams, manifests)
    if audio is not None:
        logger.info("packed audio: %d clips read from %s", len(audio), audio.folder)
    datasets = {}
    for split, path in manifests.items():
        split_cache = None if (split == "train" and wav_aug) else cache
        datasets.update(corpus.datasets({split: path}, hparams, split_cache, audio))
    return datasets


def _feature_cache(hparams):
    """A :class:`FeatureCache` of the yaml's ``compute_features`` when ``feature_cache: True``."""
    return FeatureCache.for_hparams(hparams)


def set_lr_schedule(hparams, n_train):
    """Tell the LR schedule how many optimiser steps an epoch has: the warm-up + cosine schedule
    (``set_steps_per_epoch``), or the cyclic LR's half cycle in epochs (``lr_step_epochs``)."""
    sched = hparams.get("lr_annealing")
    batch_size = hparams["dataloader_options"]["batch_size"]
    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun: each process sees 1/world
    steps = max(1, math.ceil(n_train / (batch_size * world)))
    if hasattr(sched, "set_steps_per_epoch"):
        sched.set_steps_per_epoch(steps)
        logger.info("LR schedule: %d steps per epoch", steps)
        return
    step_epochs = hparams.get("lr_step_epochs")
    if sched is None or step_epochs is None or not hasattr(sched, "step_size"):
        return
    sched.step_size = max(1, int(round(step_epochs * steps)))
    logger.info("cyclic LR: half cycle = %s epochs = %d steps", step_epochs, sched.step_size)


# --------------------------------------------------------------------------- 3. Brain
def make_brain(hparams, run_opts, corpus):
    """The Brain: the yaml's ``brain_class`` or the corpus's (single- or multi-label), with the
    ``teacher`` run of distillation when the yaml names one (:func:`attach_teacher`)."""
    brain_cls = hparams.get("brain_class") or corpus.brain_class()
    warn_if_bf16_is_emulated(run_opts)
    brain = brain_cls(modules=hparams["modules"], opt_class=hparams["opt_class"],
                      hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    attach_teacher(brain, hparams)
    return brain


def attach_teacher(brain, hparams):
    """Load the ``teacher`` hparam's run (:mod:`audioattn_sb.distill`) onto ``brain`` after
    checking it: a Brain that distils (single- or multi-label), a waveform student (the teacher
    scores the same augmented, mixed audio), a teacher that saw none of the test folds and has the same
    classes. Returns the teacher or None."""
    path = hparams.get("teacher")
    if path is None:
        return None
    from audioattn_sb.distill import check_run_teacher, load_teacher
    from audioattn_sb.models.transformer import WaveformFeatures

    if not getattr(brain, "supports_distillation", False):
        raise ValueError(f"--teacher: {type(brain).__name__} does not distil (its loss takes no "
                         "teacher); drop --teacher, or train with a yaml whose Brain distils "
                         "(ClassificationBrain or MultiLabelBrain, e.g. "
                         "hparams/urbansound8k_transformer_compact.yaml)")
    if not isinstance(hparams["modules"]["compute_features"], WaveformFeatures):
        raise ValueError("--teacher needs a waveform student (its features the waveform itself, "
                         "e.g. hparams/urbansound8k_transformer_compact.yaml): the teacher scores "
                         "the same augmented, mixed audio")
    check_run_teacher(hparams, hparams.get("class_names"))
    brain.teacher = load_teacher(path, device=brain.device)
    logger.info("distillation from %s (weight %s, %s)", path, hparams.get("distill_weight", 0.5),
                "hard labels" if hparams.get("distill_hard") else
                f"temperature {hparams.get('distill_temperature', 1.0)}")
    return brain.teacher


def warn_if_bf16_is_emulated(run_opts):
    """Log a warning when ``--precision=bf16`` runs on a CPU that emulates bf16
    (:func:`audioattn_sb.utils.cpu_has_native_bf16`): several times slower than fp32 there.
    Returns whether it warned."""
    device = str(run_opts.get("device") or "cpu")
    if run_opts.get("precision") != "bf16" or not device.startswith("cpu"):
        return False
    if cpu_has_native_bf16() is not False:
        return False
    logger.warning("--precision=bf16 on a CPU without avx512_bf16/amx_bf16: PyTorch emulates "
                   "bf16 here, several times slower than fp32 (measured 7x for the compact "
                   "ACRNN); leave --precision at fp32 on this machine")
    return True


def loader_options(hparams):
    """(train, valid/test) DataLoader options of the yaml."""
    train = hparams["dataloader_options"]
    return train, hparams.get("test_dataloader_options", train)


# --------------------------------------------------------------------------- 4. tests
@dataclass
class Evaluations:
    """The statistics of the run's test evaluations (each the Brain's statistics dict of one
    :meth:`~audioattn_sb.brains.base.ClipBrain.evaluate_split`).

    ``clean``: the test folds (the run's test); ``noisy``: the same folds read from
    ``noisy_folder`` (``noisy_test_folder``); ``own`` / ``own_noisy``: both again with the
    checkpoint's own weights when a weight average is in use (``average_epochs`` > 0). None
    where not run."""

    clean: dict
    noisy: dict = None
    noisy_folder: str = None
    own: dict = None
    own_noisy: dict = None


def run_tests(hparams, brain, test_set, corpus):
    """The tests of the checkpoint the Brain selects (``test_checkpoint``), each an explicit
    evaluation that returns its statistics: the test folds (the run's test, kept as
    ``brain.test_stats``), the noisy copy of them (:func:`noisy_test_set`), and with a weight
    average in use the checkpoint's own weights on both (paired: what the averaging changes).
    Returns a :class:`Evaluations`."""
    opts = loader_options(hparams)[1]
    clean = brain.evaluate_split(test_set, opts, as_test=True)
    tests = Evaluations(clean=clean)
    noisy_set = noisy_test_set(hparams, corpus)
    if noisy_set is not None:
        tests.noisy_folder = os.path.abspath(hparams["noisy_test_folder"])
        tests.noisy = evaluate_noisy_test(hparams, brain, noisy_set, clean)
    average = brain.weight_average
    if average is not None and average.active:
        tests.own = brain.evaluate_split(test_set, opts, use_weight_average=False)
        if noisy_set is not None:
            tests.own_noisy = evaluate_noisy_test(hparams, brain, noisy_set, tests.own,
                                                  use_weight_average=False)
        logger.info("without the weight average: %s",
                    without_weight_average_entries(brain, tests)["without_weight_average"])
    return tests


def noisy_test_set(hparams, corpus):
    """The test folds read from ``noisy_test_folder``: a noisy copy of the corpus
    (``recipes/make_noisy_folds.py``: the events of the clips in white/pink noise, same file
    names and labels), its manifests in ``<output_folder>/noisy_test``; None when not set."""
    folder = hparams.get("noisy_test_folder")
    if not folder:
        return None
    if corpus.multilabel or not corpus.uses_folds:
        raise ValueError("noisy_test_folder is for single-label UrbanSound8K-layout corpora; "
                         f"remove it for {corpus.name} runs")
    manifests, _ = prepare_manifests(hparams, corpus, data_folder=folder,
                                     save_folder=os.path.join(hparams["output_folder"],
                                                              "noisy_test"))
    return corpus.datasets({"test": manifests["test"]}, hparams, _feature_cache(hparams),
                           packed_audio(hparams, {"test": manifests["test"]}))["test"]


def evaluate_noisy_test(hparams, brain, noisy_set, clean, use_weight_average=True):
    """Test the selected checkpoint on ``noisy_set`` (:func:`noisy_test_set`) and return the
    statistics; the log line compares them with ``clean`` (the same weights' test). The Brain's
    test statistics are not changed."""
    noisy = brain.evaluate_split(noisy_set, loader_options(hparams)[1],
                                 use_weight_average=use_weight_average)
    logger.info("noisy test (%s): accuracy %.4f (clean %.4f)", hparams["noisy_test_folder"],
                noisy["accuracy"], clean["accuracy"])
    return noisy


# --------------------------------------------------------------------------- 5. results
def noisy_test_entries(tests):
    """The results.json entries of the noisy test (``test_noisy_accuracy`` …), {} without."""
    if tests.noisy is None:
        return {}
    noisy = tests.noisy
    return {"noisy_test_folder": tests.noisy_folder,
            "test_noisy_accuracy": noisy["accuracy"],
            "test_noisy_loss": noisy["loss"],
            "test_noisy_per_class_accuracy": noisy["per_class_accuracy"],
            "test_noisy_confusion_matrix": noisy["confusion_matrix"]}


def without_weight_average_entries(brain, tests):
    """The results.json entry ``without_weight_average`` (``{"test_accuracy": …,
    "test_noisy_accuracy": …}``: the Brain's summary statistics of the own weights' tests), {}
    when no weight average was used."""
    if tests.own is None:
        return {}
    own = {f"test_{k}": tests.own[k] for k in brain.summary_keys}
    if tests.own_noisy is not None:
        own.update(test_noisy_accuracy=tests.own_noisy["accuracy"],
                   test_noisy_loss=tests.own_noisy["loss"])
    return {"without_weight_average": own}


def _versions():
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "speechbrain": sb.__version__,
        "numpy": numpy.__version__,
        "audioattn_sb": __import__("audioattn_sb").__version__,
    }


def build_results(hparams, brain, corpus, manifests, tests, *, hparams_file, overrides, argv,
                  epochs_completed, train_seconds):
    """The run's :class:`~audioattn_sb.results.RunResults`, built once: the command, the data
    and folds, the attention, the training (epochs, early stop, augmentation, time per epoch),
    the Brain's figures of the test (:meth:`~audioattn_sb.brains.base.ClipBrain.results` of
    ``tests.clean``), the noisy test and the own weights' tests (``tests``:
    :class:`Evaluations`), versions, the machine (:func:`~audioattn_sb.utils.machine_info`)
    and the code's git commit when the run started (:func:`load_hparams`). Class names:
    ``hparams["class_names"]``. ``epochs_completed``: the epoch counter after ``fit`` (the test
    stage then loads the tested checkpoint, which sets it back to that epoch:
    ``tested_epoch``; ``best_epoch`` is the epoch of the best valid checkpoint, the same unless
    ``test_checkpoint: last``)."""
    tested_epoch = int(hparams["epoch_counter"].current)
    best = brain.best_valid_epoch()
    attention = {
        "domain": hparams["attn_domain"],
        "max_activation": hparams["attn_max_activation"],
        "alpha": float(getattr(hparams["model"].pooling, "alpha", float("nan"))),
        "tag": attention_tag(hparams["attn_domain"], hparams["attn_max_activation"],
                             hparams.get("attn_alpha")),
    }
    # models whose attention is more than the final pooling (the Transformer) describe it
    describe = getattr(hparams["model"], "attention_info", None)
    if callable(describe):
        attention.update(describe())
    return RunResults(
        experiment_name=hparams.get("experiment_name"),
        hparams_file=os.path.abspath(hparams_file),
        overrides=overrides,
        overrides_dict=yaml.load(overrides, Loader=PeekLoader) if overrides else {},
        command=" ".join(["train.py", *argv]),
        data_folder=str(hparams["data_folder"]),
        folds={"train": list(hparams["train_fold_nums"]),
               "valid": list(hparams["valid_fold_nums"]),
               "test": list(hparams["test_fold_nums"])} if corpus.uses_folds else None,
        attention=attention,
        seed=hparams["seed"],
        number_of_epochs=hparams["number_of_epochs"],
        epochs_completed=epochs_completed,
        stopped_early=epochs_completed < int(hparams["number_of_epochs"]),
        augment=bool(hparams.get("augment", False)),
        mixup_alpha=float(hparams.get("mixup_alpha", 0) or 0),
        # time constant (epochs) of the tested weights' moving average; 0: the weights themselves
        average_epochs=float(getattr(hparams.get("weight_average"), "epochs", 0.0)),
        tested_epoch=tested_epoch,  # the checkpoint the test loaded (test_checkpoint)
        best_epoch=best if best is not None else tested_epoch,  # lowest valid error / …
        n_parameters=int(sum(p.numel() for p in hparams["model"].parameters())),
        train_seconds_this_process=round(train_seconds, 3),
        train_epoch_seconds=[round(t, 3) for t in getattr(brain, "epoch_seconds", [])],
        class_names=hparams.get("class_names"),
        figures=brain.results(manifests, tests.clean),
        noisy_test=noisy_test_entries(tests),
        without_weight_average=without_weight_average_entries(brain, tests).get(
            "without_weight_average"),
        versions=_versions(),
        # fold accuracies differ by a few points between CPU models for the same code and seed
        machine=machine_info(),
        code_commit=hparams.get("code_commit"),  # taken by load_hparams at the start
    )


def write_results(results, hparams, brain):
    """Write ``results`` (:func:`build_results`) once, atomically, as
    ``<output_folder>/results.json`` (on the main process), and print the test's line. Returns
    ``results``."""
    path = os.path.join(hparams["output_folder"], RESULTS_JSON)
    if sb.utils.distributed.if_main_process():
        results.write(path)
        line = brain.line_summary()
        logger.info("results written to %s (%s)", path, line)
        print(f"{line}  -> {path}")
    return results


__all__ = ["Evaluations", "attach_teacher", "build_datasets", "build_results",
           "evaluate_noisy_test", "load_hparams", "loader_options", "make_brain",
           "noisy_test_entries", "noisy_test_set", "parse_command_line", "run_folder",
           "run_tests", "set_lr_schedule", "warn_if_bf16_is_emulated",
           "without_weight_average_entries", "write_results"]
