"""The shared training entry point behind ``recipes/train.py``.

    python recipes/train.py hparams/urbansound8k_acrnn.yaml \\
        --data_folder=data/UrbanSound8K \\
        --train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10] --valid_fold_nums=[2] --test_fold_nums=[1] \\
        --attn_domain discrete --attn_max_activation entmax1333 --number_of_epochs=2

Arguments are SpeechBrain's (``speechbrain.parse_arguments``): the hparams file, run options
(``--device``, ``--precision``, ``--debug``, ``--ckpt_interval_minutes`` …) and any ``--key=value``
or ``--key value`` override of the yaml. One run: prepare the folds' manifests in the run's own
output folder, train, keep the checkpoint with the lowest valid error, test on it, and write
``<output_folder>/results.json``.

``output_folder: auto`` (the shipped yamls) becomes
``results/<experiment_name>/<attention tag>/test<k>_valid<j>/seed<s>`` so that runs of different
folds and attention variants never share a folder.

``dataset: fsd50k`` (``hparams/fsd50k_acrnn.yaml``) is multi-label: no folds (output folder
``results/<experiment_name>/<attention tag>/seed<s>``), ``n_classes: auto`` taken from
``vocabulary.csv``, chunked manifests (:mod:`audioattn_sb.data.fsd50k`), the
:class:`~audioattn_sb.brains.multilabel.MultiLabelBrain` (checkpoint = highest valid mAP) and
``test_mAP`` / ``test_dprime`` / ``test_loss`` in ``results.json``.
"""

import contextlib
import json
import logging
import math
import os
import platform
import shutil
import sys
import time

import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from audioattn_sb.attention import attention_tag
from audioattn_sb.utils import atomic_write_text, run_cli

logger = logging.getLogger(__name__)


class _PeekLoader(yaml.SafeLoader):
    """A YAML loader that reads plain values and ignores HyperPyYAML tags (``!new:`` …)."""


_PeekLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def peek_hparams(hparams_file, overrides=""):
    """Plain (untagged) values of an hparams file after overrides, without building anything.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        >>> _ = f.write("seed: 0\\nmodel: !new:torch.nn.Linear [2, 2]\\n"); f.close()
        >>> peek_hparams(f.name, "seed: 3")
        {'seed': 3, 'model': None}
    """
    with open(hparams_file, encoding="utf-8") as fin:
        values = yaml.load(fin, Loader=_PeekLoader) or {}
    if overrides:
        extra = yaml.load(overrides, Loader=_PeekLoader) if isinstance(overrides, str) else overrides
        values.update(extra or {})
    return values


def resolved_values(hparams_file, overrides=""):
    """Plain values of an hparams file after overrides, with ``!ref`` references resolved
    (``attn_pool_max_activation: !ref <attn_max_activation>`` gives the mapping's name, not None)
    and nothing built (other tags give None, as :func:`peek_hparams`)."""
    from hyperpyyaml import resolve_references

    with open(hparams_file, encoding="utf-8") as fin:
        text = resolve_references(fin, overrides or None).getvalue()
    return yaml.load(text, Loader=_PeekLoader) or {}


def check_override_keys(hparams_file, overrides):
    """Raise ``ValueError`` naming the first override that is not a key of ``hparams_file``,
    with the closest valid keys (difflib), instead of HyperPyYAML's traceback listing every key.
    Keys inside a mapping (``--dataloader_options={num_workers: 2}``) may be new, as in
    HyperPyYAML; the modules that take them check their names (e.g. ``attn_continuous``).

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        >>> _ = f.write("number_of_epochs: 2\\nseed: 0\\nopts: {lr: 1}\\n"); f.close()
        >>> check_override_keys(f.name, "seed: 3\\nopts: {lr: 2}")
        >>> check_override_keys(f.name, "number_of_epoch: 5")
        Traceback (most recent call last):
        ...
        ValueError: unknown override --number_of_epoch: not a key of ...; did you mean --number_of_epochs?
    """
    import difflib

    if not overrides:
        return
    given = yaml.load(overrides, Loader=_PeekLoader) if isinstance(overrides, str) else overrides
    with open(hparams_file, encoding="utf-8") as fin:
        known = yaml.load(fin, Loader=_PeekLoader) or {}

    def check(given, known, prefix):
        for key, value in (given or {}).items():
            if key not in known:
                name = f"{prefix}{key}"
                close = difflib.get_close_matches(str(key), [str(k) for k in known], n=3,
                                                  cutoff=0.6)
                hint = (f"did you mean {', '.join(f'--{prefix}{k}' for k in close)}?" if close
                        else f"the file's keys are listed in {hparams_file}")
                raise ValueError(f"unknown override --{name}: not a key of {hparams_file}; "
                                 f"{hint}")

    check(given, known, "")


@contextlib.contextmanager
def _removed_if_setup_fails(folder):
    """Run the set-up (experiment folder, preparation, datasets); when it raises, remove the
    folders it created (the highest new one), so that a failed run leaves nothing behind, and
    re-raise. Folders that existed before (e.g. a run being resumed) are kept."""
    root = None
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        root, path = path, os.path.dirname(path)
    try:
        yield
    except BaseException:
        if root is not None and os.path.isdir(root) and sb.utils.distributed.if_main_process():
            shutil.rmtree(root, ignore_errors=True)
        raise


def command_line_checkpoint_interval(run_opts):
    """A ``--ckpt_interval_steps`` or ``--ckpt_interval_minutes`` given on the command line
    replaces the yaml's interval of the other kind (SpeechBrain would stop with "mutually
    exclusive" because the yamls set ``ckpt_interval_minutes``). Both given: SpeechBrain's error.
    Returns the (new) run options.

    Example:
        >>> import speechbrain as sb
        >>> opts = sb.parse_arguments(["h.yaml", "--ckpt_interval_steps=3"])[1]
        >>> opts = command_line_checkpoint_interval(opts)
        >>> opts.ckpt_interval_steps, opts.ckpt_interval_minutes, "ckpt_interval_minutes" in opts.overridden_args
        (3, 0, True)
    """
    import dataclasses

    given = getattr(run_opts, "overridden_args", None)
    if given is None:
        return run_opts
    for chosen, other in (("ckpt_interval_steps", "ckpt_interval_minutes"),
                          ("ckpt_interval_minutes", "ckpt_interval_steps")):
        if chosen in given and other not in given and float(getattr(run_opts, chosen)) > 0:
            logger.info("--%s on the command line: the yaml's %s is not used", chosen, other)
            return dataclasses.replace(run_opts, **{other: 0, "overridden_args": given | {other}})
    return run_opts


def _fold_str(folds):
    return "-".join(str(int(f)) for f in folds)


def default_output_folder(values):
    """``results/<experiment>/<attention>/test<k>_valid<j>/seed<s>`` from hparams values.

    Example:
        >>> default_output_folder({"experiment_name": "us8k_acrnn", "attn_domain": "discrete",
        ...     "attn_max_activation": "softmax", "test_fold_nums": [1], "valid_fold_nums": [2],
        ...     "seed": 0})
        'results/us8k_acrnn/discrete-softmax/test1_valid2/seed0'
    """
    tag = attention_tag(values["attn_domain"], values["attn_max_activation"],
                        values.get("attn_alpha"))
    folds = ""
    if values.get("test_fold_nums") is not None:
        folds = f"test{_fold_str(values['test_fold_nums'])}"
        if values.get("valid_fold_nums") is not None:
            folds += f"_valid{_fold_str(values['valid_fold_nums'])}"
        folds += "/"
    root = values.get("results_root", "results")
    return f"{root}/{values['experiment_name']}/{tag}/{folds}seed{values['seed']}"


def _prepare(hparams):
    """Run the dataset's prepare function (on the main process first, then every process reads
    the manifests it wrote); returns (manifest paths, class names)."""
    dataset = hparams.get("dataset", "urbansound8k")
    kwargs = dict(
        data_folder=hparams["data_folder"],
        save_folder=hparams["output_folder"],
        cache_folder=hparams.get("cache_folder"),
        sample_rate=hparams["sample_rate"],
        skip_bad_files=hparams.get("skip_bad_files", False),
    )
    if dataset == "urbansound8k":
        from audioattn_sb.data.urbansound8k import load_class_names
        from audioattn_sb.data.urbansound8k import prepare_urbansound8k as prepare

        kwargs.update(
            train_fold_nums=hparams["train_fold_nums"],
            valid_fold_nums=hparams["valid_fold_nums"],
            test_fold_nums=hparams["test_fold_nums"],
            allow_valid_test_overlap=hparams.get("allow_valid_test_overlap", False),
        )
    elif dataset == "fsd50k":
        from audioattn_sb.data.fsd50k import load_class_names
        from audioattn_sb.data.fsd50k import prepare_fsd50k as prepare

        kwargs.update(chunk_seconds=hparams.get("chunk_seconds", 1.0),
                      chunk_overlap=hparams.get("chunk_overlap", 0.5))
    else:
        raise ValueError(f"unknown dataset {dataset!r} in the hparams file; valid: "
                         f"{', '.join(DATASETS)}")
    sb.utils.distributed.run_on_main(prepare, kwargs=kwargs)
    manifests = prepare(**{**kwargs, "progress": False})
    return manifests, load_class_names(hparams["data_folder"])


#: dataset → multi-label (chunked manifests, MultiLabelBrain) or not
DATASETS = {"urbansound8k": False, "fsd50k": True}


def _multilabel_results(hparams, brain, manifests):
    """results.json entries of a multi-label (chunked) run: splits, counts, test figures."""
    test, valid = brain.test_stats, getattr(brain, "valid_stats", {})
    clips, chunks = {}, {}
    for split, path in manifests.items():
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
        clips[split] = len({e["clip"] for e in entries.values()})
        chunks[split] = len(entries)
    return {
        "splits": {"train": "dev.csv split=train", "valid": "dev.csv split=val",
                   "test": "eval.csv"},
        "chunking": {"chunk_seconds": hparams.get("chunk_seconds", 1.0),
                     "chunk_overlap": hparams.get("chunk_overlap", 0.5),
                     "short_clips": "tiled to one chunk",
                     "clip_score": "mean of the chunks' sigmoid probabilities"},
        "checkpoint_selected_by": "max valid mAP",
        "n_clips": clips,
        "n_chunks": chunks,
        "loss": getattr(brain, "loss_name", hparams.get("loss", "bce")),
        "test_mAP": test["mAP"],
        "test_dprime": test["dprime"],
        "test_auc": test["auc"],
        "test_loss": test["loss"],
        "test_mAP_chance": test.get("mAP_chance"),
        "test_n_classes_scored": test["n_classes_scored"],
        "test_per_class_ap": test["per_class_ap"],
        "test_per_class_auc": test["per_class_auc"],
        "test_per_class_ap_csv": getattr(brain, "per_class_csv", None),
        "valid_mAP_last_epoch": valid.get("mAP"),
        "valid_dprime_last_epoch": valid.get("dprime"),
    }


class FeatureCache:
    """Features computed once per clip, on the CPU, then kept in memory for every later epoch.

    The features of the seed models (Fbank, no augmentation) do not change between epochs, so
    recomputing them (and re-reading the audio) each epoch is wasted work. Memory: 80 mel bands ×
    100 frames/s × 4 bytes = 32 kB per second of audio (UrbanSound8K: ~1.1 GB). Set
    ``feature_cache: False`` to compute them per batch instead; with waveform augmentation the
    training split computes them per batch anyway (:func:`build_datasets`).

    Example:
        >>> import torch
        >>> cache = FeatureCache(lambda w: w.unsqueeze(-1) * 2)
        >>> cache("a", lambda: torch.ones(1, 3)).tolist(), cache("a", None).shape
        ([[2.0], [2.0], [2.0]], torch.Size([3, 1]))
    """

    def __init__(self, compute_features):
        self.compute_features = compute_features
        self.store = {}

    def __call__(self, key, load_audio):
        feats = self.store.get(key)
        if feats is None:
            with torch.no_grad():
                feats = self.compute_features(load_audio()).squeeze(0).contiguous()
            self.store[key] = feats
        return feats

    @property
    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.store.values())


def build_single_label_datasets(manifests, feature_cache=None):
    """SpeechBrain datasets yielding ``label`` (class index) and either ``feats`` (cached features,
    when ``feature_cache`` is given) or ``sig`` (16 kHz float32 audio)."""
    import soundfile as sf

    def read(wav):
        data, _ = sf.read(wav, dtype="float32", always_2d=False)
        return torch.from_numpy(data)

    if feature_cache is None:
        @sb.utils.data_pipeline.takes("wav")
        @sb.utils.data_pipeline.provides("sig")
        def audio_pipeline(wav):
            return read(wav)
        signal_key = "sig"
    else:
        @sb.utils.data_pipeline.takes("wav")
        @sb.utils.data_pipeline.provides("feats")
        def audio_pipeline(wav):
            return feature_cache(wav, lambda: read(wav).unsqueeze(0))
        signal_key = "feats"

    @sb.utils.data_pipeline.takes("classID")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(class_id):
        return torch.tensor([int(class_id)], dtype=torch.long)

    datasets = {}
    for split, path in manifests.items():
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_json(
            path, dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", signal_key, "label"],
        )
    return datasets


def build_datasets(hparams, manifests):
    """The splits' datasets, with the feature cache wherever it stays valid.

    ``feature_cache: True`` computes each clip's features once. Feature-domain augmentation
    (``fea_augment``) and mixup work on cached features; time-domain augmentation
    (``wav_augment`` with ``augment: True``) needs the waveform, so the training split then
    computes its features per batch while validation and test keep the cache. The log says which.
    """
    from audioattn_sb.augment import describe_augmenter, has_augmentations

    multilabel = DATASETS.get(hparams.get("dataset", "urbansound8k"), False)
    augment = bool(hparams.get("augment", False))
    wav_aug = augment and has_augmentations(hparams.get("wav_augment"))
    cache = FeatureCache(hparams["compute_features"]) if hparams.get("feature_cache") else None
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
    datasets = {}
    for split, path in manifests.items():
        split_cache = None if (split == "train" and wav_aug) else cache
        if multilabel:
            from audioattn_sb.data.fsd50k import build_chunk_datasets

            datasets.update(build_chunk_datasets({split: path}, hparams["n_classes"], split_cache))
        else:
            datasets.update(build_single_label_datasets({split: path}, split_cache))
    return datasets


def evaluate_noisy_test(hparams, brain, test_loader_opts):
    """Test the selected checkpoint again on ``noisy_test_folder``: the same test folds read
    from a noisy copy of the corpus (``recipes/make_noisy_folds.py``: the events of the clips in
    white/pink noise, same file names and labels). Manifests go to ``<output_folder>/noisy_test``;
    returns the results.json entries (``test_noisy_accuracy`` …), or {} when not set."""
    folder = hparams.get("noisy_test_folder")
    if not folder:
        return {}
    if DATASETS.get(hparams.get("dataset", "urbansound8k"), False):
        raise ValueError("noisy_test_folder is for single-label UrbanSound8K-layout corpora; "
                         "remove it for multi-label (FSD50K) runs")
    from audioattn_sb.data.urbansound8k import prepare_urbansound8k

    kwargs = dict(data_folder=folder, save_folder=os.path.join(hparams["output_folder"],
                                                              "noisy_test"),
                  train_fold_nums=hparams["train_fold_nums"],
                  valid_fold_nums=hparams["valid_fold_nums"],
                  test_fold_nums=hparams["test_fold_nums"],
                  allow_valid_test_overlap=hparams.get("allow_valid_test_overlap", False),
                  sample_rate=hparams["sample_rate"],
                  skip_bad_files=hparams.get("skip_bad_files", False))
    sb.utils.distributed.run_on_main(prepare_urbansound8k, kwargs=kwargs)
    manifests = prepare_urbansound8k(**{**kwargs, "progress": False})
    cache = FeatureCache(hparams["compute_features"]) if hparams.get("feature_cache") else None
    test_set = build_single_label_datasets({"test": manifests["test"]}, cache)["test"]
    clean = brain.test_stats
    brain.evaluate(test_set, test_loader_kwargs=test_loader_opts,
                   **getattr(brain, "checkpoint_key", {"min_key": "error"}))
    noisy, brain.test_stats = brain.test_stats, clean
    logger.info("noisy test (%s): accuracy %.4f (clean %.4f)", folder, noisy["accuracy"],
                clean["accuracy"])
    return {"noisy_test_folder": os.path.abspath(folder),
            "test_noisy_accuracy": noisy["accuracy"],
            "test_noisy_loss": noisy["loss"],
            "test_noisy_per_class_accuracy": noisy["per_class_accuracy"],
            "test_noisy_confusion_matrix": noisy["confusion_matrix"]}


def _set_lr_schedule(hparams, n_train):
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


def _versions():
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "speechbrain": sb.__version__,
        "numpy": numpy.__version__,
        "audioattn_sb": __import__("audioattn_sb").__version__,
    }


def run(argv=None):
    """Train and test one configuration; returns the results dict written to results.json."""
    argv = sys.argv[1:] if argv is None else list(argv)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    check_override_keys(hparams_file, overrides)
    run_opts = command_line_checkpoint_interval(run_opts)
    sb.utils.distributed.ddp_init_group(run_opts)  # no-op unless started by torchrun
    values = peek_hparams(hparams_file, overrides)

    # fail before any work on a bad fold protocol or attention name
    if values.get("dataset", "urbansound8k") == "urbansound8k":
        from audioattn_sb.data.urbansound8k import check_folds

        check_folds(values["train_fold_nums"], values["valid_fold_nums"],
                    values["test_fold_nums"], values.get("allow_valid_test_overlap", False))
    if DATASETS.get(values.get("dataset")):  # multi-label: vocabulary.csv gives n_classes
        from audioattn_sb.data.fsd50k import load_class_names

        n = len(load_class_names(values["data_folder"]))
        if str(values.get("n_classes", "auto")) == "auto":
            overrides = (overrides + "\n" if overrides else "") + f"n_classes: {n}"
        elif values["n_classes"] != n:
            raise ValueError(
                f"{values['data_folder']} has {n} classes (vocabulary.csv) but the hparams say "
                f"n_classes: {values['n_classes']}; pass --n_classes={n} or --n_classes=auto")
    if str(values.get("output_folder", "auto")) == "auto":
        out = default_output_folder(values)
        overrides = (overrides + "\n" if overrides else "") + f"output_folder: {out}"

    # the set-up creates folders (loading the yaml builds the checkpointer, which makes its
    # save folder); when it fails, they are removed again
    with _removed_if_setup_fails(resolved_values(hparams_file, overrides)["output_folder"]):
        with open(hparams_file, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        sb.create_experiment_directory(
            experiment_directory=hparams["output_folder"],
            hyperparams_to_save=hparams_file,
            overrides=overrides,
        )
        manifests, class_names = _prepare(hparams)
        if len(class_names) != hparams["n_classes"]:
            raise ValueError(
                f"{hparams['data_folder']} has {len(class_names)} classes but the hparams say "
                f"n_classes: {hparams['n_classes']}; pass --n_classes={len(class_names)}"
            )
        hparams["class_names"] = class_names
        datasets = build_datasets(hparams, manifests)
    multilabel = DATASETS.get(hparams.get("dataset", "urbansound8k"), False)
    _set_lr_schedule(hparams, len(datasets["train"]))

    brain_cls = hparams.get("brain_class")
    if brain_cls is None and multilabel:
        from audioattn_sb.brains.multilabel import MultiLabelBrain as brain_cls
    elif brain_cls is None:
        from audioattn_sb.brains.classification import ClassificationBrain as brain_cls
    brain = brain_cls(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    t_start = time.time()
    train_loader_opts = hparams["dataloader_options"]
    test_loader_opts = hparams.get("test_dataloader_options", train_loader_opts)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_opts,
        valid_loader_kwargs=test_loader_opts,
    )
    train_seconds = time.time() - t_start
    epochs_completed = int(hparams["epoch_counter"].current)
    brain.evaluate(datasets["test"], test_loader_kwargs=test_loader_opts,
                   **getattr(brain, "checkpoint_key", {"min_key": "error"}))
    test = brain.test_stats
    noisy = evaluate_noisy_test(hparams, brain, test_loader_opts)
    n_params = sum(p.numel() for p in hparams["model"].parameters())
    results = {
        "experiment_name": hparams.get("experiment_name"),
        "hparams_file": os.path.abspath(hparams_file),
        "overrides": overrides,
        "overrides_dict": yaml.load(overrides, Loader=_PeekLoader) if overrides else {},
        "command": " ".join([os.path.basename(sys.argv[0]) if argv is None else "train.py"]
                            + argv),
        "data_folder": str(hparams["data_folder"]),
        **({} if multilabel else {"folds": {
            "train": list(hparams["train_fold_nums"]),
            "valid": list(hparams["valid_fold_nums"]),
            "test": list(hparams["test_fold_nums"]),
        }}),
        "attention": {
            "domain": hparams["attn_domain"],
            "max_activation": hparams["attn_max_activation"],
            "alpha": float(getattr(hparams["model"].pooling, "alpha", float("nan"))),
            "tag": attention_tag(hparams["attn_domain"], hparams["attn_max_activation"],
                                 hparams.get("attn_alpha")),
        },
        "seed": hparams["seed"],
        "number_of_epochs": hparams["number_of_epochs"],
        "epochs_completed": epochs_completed,
        "stopped_early": epochs_completed < int(hparams["number_of_epochs"]),
        "augment": bool(hparams.get("augment", False)),
        "mixup_alpha": float(hparams.get("mixup_alpha", 0) or 0),
        "checkpoint_selected_by": "min valid error",
        "best_epoch": int(hparams["epoch_counter"].current),
        "n_parameters": int(n_params),
        "n_clips": {k: len(v) for k, v in datasets.items()},
        "train_seconds_this_process": round(train_seconds, 3),
        "train_epoch_seconds": [round(t, 3) for t in getattr(brain, "epoch_seconds", [])],
        "class_names": class_names,
        # multi-label: also replaces checkpoint_selected_by and n_clips (in place) above
        **(_multilabel_results(hparams, brain, manifests) if multilabel else {
            "test_accuracy": test["accuracy"],
            "test_error": test["error"],
            "test_loss": test["loss"],
            "test_per_class_accuracy": test["per_class_accuracy"],
            "test_confusion_matrix": test["confusion_matrix"],
            "valid_error_last_epoch": getattr(brain, "valid_stats", {}).get("error"),
            **noisy,
        }),
        "versions": _versions(),
    }
    # models whose attention is more than the final pooling (the Transformer) describe it
    describe = getattr(hparams["model"], "attention_info", None)
    if callable(describe):
        results["attention"].update(describe())
    path = os.path.join(hparams["output_folder"], "results.json")
    if sb.utils.distributed.if_main_process():
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
        if multilabel:
            line = f"test mAP {test['mAP']:.4f}  d' {test['dprime']:.3f}"
        else:
            line = f"test accuracy {test['accuracy']:.4f}  error {test['error']:.4f}"
        logger.info("results written to %s (%s)", path, line)
        print(f"{line}  -> {path}")
    return results


def main(argv=None):
    """Command-line entry point: errors a user can fix are printed without a traceback."""
    run_cli(run, argv)
