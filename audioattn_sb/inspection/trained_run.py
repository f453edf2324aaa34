"""Load a trained run (hparams + best checkpoint) and run its Brain's forward pass on clips.

One loader for every "look inside" script and for :mod:`audioattn_sb.inference`:

* :func:`load_trained_run` ``(hparams_file=…, overrides=…)``: the hparams file and the overrides of
  the training command (``--output_folder=<run>`` among them), as the scripts get them from
  ``speechbrain.parse_arguments``;
* :func:`load_trained_run` ``(run_folder=…)``: only the run folder; the hparams are the resolved
  ``<run>/hyperparams.yaml`` that training saved, with the folder paths pointed at ``run_folder``
  (so a run folder can be moved or copied elsewhere) and without re-seeding the global RNGs.

Both pick the checkpoint the test stage of training used (the run's ``test_checkpoint``: the
Brain's ``checkpoint_key``, e.g. the lowest valid ``error`` for single-label classification, or the
last epoch), read every checkpointed module (``model``, the
normaliser, …) with ``torch.load(..., weights_only=True)`` (no pickled code is ever executed) and
never touch the network. Training state (optimizer, LR scheduler, epoch counter) is not loaded.

The forward pass is the training Brain's own
:meth:`~audioattn_sb.brains.base.ClipBrain.forward_with_attention` (``brain_class`` of the
hparams, default :class:`~audioattn_sb.brains.classification.ClassificationBrain`): its
``compute_forward`` in eval mode, so features, normalisation and padding are exactly those of
evaluation. It returns the model's input (after normalisation), the normaliser's input (the raw
features) and the model's :class:`~audioattn_sb.attention.output.Attention`.

Errors a user can fix (missing run folder, no checkpoint, a checkpoint that does not match the
model built from the given hparams/overrides) are ``FileNotFoundError`` / ``ValueError`` with a
message that says what to do.
"""

import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from audioattn_sb.lengths import frame_counts

logger = logging.getLogger(__name__)

#: keys of a trained run's hyperparams.yaml pointed at the run folder when it is loaded by folder
_FOLDER_KEYS = {"output_folder": "", "save_folder": "save", "train_log": "train_log.txt"}


class RunLoadError(ValueError):
    """A trained run cannot be loaded as asked (the message says what to do)."""


# --------------------------------------------------------------------------- locating a run
def check_run_folder(run_folder):
    """The run folder as an absolute ``Path``; ``FileNotFoundError`` if it is not a trained run.

    Example:
        >>> check_run_folder("/no/such/run")
        Traceback (most recent call last):
        ...
        FileNotFoundError: /no/such/run: no such run folder; train first (python recipes/train.py HPARAMS.yaml ... --output_folder=/no/such/run) or give the --output_folder of a finished run
    """
    if run_folder is None or str(run_folder) in ("", "auto"):
        raise FileNotFoundError("no run folder given: pass --output_folder=<folder of a trained "
                                "run> (the --output_folder of the training command)")
    path = Path(os.fspath(run_folder)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{run_folder}: no such run folder; train first (python recipes/train.py "
            f"HPARAMS.yaml ... --output_folder={run_folder}) or give the --output_folder of a "
            "finished run")
    return path.resolve()


_CKPT_HINT = ("training has not finished an epoch there, or the checkpoints were deleted; "
              "train (or resume) with the same command first")


def find_best_checkpoint(save_folder, min_key=None, max_key=None):
    """``(checkpoint folder, meta dict)`` of the best checkpoint in ``save_folder``.

    Best = lowest ``min_key`` (default ``"error"``) or highest ``max_key`` (e.g. ``"mAP"``), as the
    Brain's ``checkpoint_key`` says. Uses the training run's checkpoint listing
    (``CKPT+*/CKPT.yaml``; incomplete ones skipped, :mod:`audioattn_sb.checkpoints`). Raises
    ``FileNotFoundError`` when there is no such checkpoint.
    """
    from audioattn_sb.checkpoints import AtomicCheckpointer

    save_folder = Path(save_folder)
    if not save_folder.is_dir():  # checked first: a Checkpointer would create the folder
        raise FileNotFoundError(f"{save_folder}: no checkpoint folder; {_CKPT_HINT}")
    if min_key is None and max_key is None:
        min_key = "error"
    ckpt = AtomicCheckpointer(save_folder).find_checkpoint(min_key=min_key, max_key=max_key)
    if ckpt is None:
        from audioattn_sb.checkpoints import checkpoint_problem

        problems = {d.name: checkpoint_problem(d) for d in sorted(save_folder.glob("CKPT+*"))
                    if d.is_dir()}
        broken = [f"{name}: {why}" for name, why in problems.items() if why]
        why = (f"; incomplete checkpoint folders (a save that did not finish, or a file changed "
               f"after it was saved): {'; '.join(broken)}" if broken else "")
        raise FileNotFoundError(f"{save_folder}: no checkpoint with a valid "
                                f"{min_key or max_key!r} (CKPT+*/CKPT.yaml){why}; {_CKPT_HINT}")
    return Path(ckpt.path), dict(ckpt.meta)


#: keys of a retyped training command that choose what an inspection reads (which data, which
#: run, which of its checkpoints), not how the model was built: they may differ from the run's
#: recorded values
INSPECTION_KEYS = ("data_folder", "cache_folder", "output_folder", "test_checkpoint")


def other_data_overrides(run_folder, data_folder):
    """Overrides that make a run read ``data_folder`` (e.g. a ``make_noisy_folds.py`` copy):
    the folder, and for a copy other than the training data its own default cache folder, so
    that its clips never replace the training data's cached ones.

    Example:
        >>> import tempfile; run = Path(tempfile.mkdtemp())
        >>> _ = (run / "hyperparams.yaml").write_text("data_folder: /d\\nsample_rate: 16000\\n")
        >>> other_data_overrides(run, "/d")
        {'data_folder': '/d'}
        >>> other_data_overrides(run, "/noisy")
        {'data_folder': '/noisy', 'cache_folder': '/noisy/audioattn_cache_16k'}
    """
    from audioattn_sb.data.preparation import default_cache_folder
    from audioattn_sb.hparams import peek_hparams

    saved = peek_hparams(Path(run_folder) / "hyperparams.yaml")
    data = os.path.abspath(str(data_folder))
    trained = saved.get("data_folder")
    if trained is not None and os.path.realpath(data) == os.path.realpath(str(trained)):
        return {"data_folder": data}
    return {"data_folder": data,
            "cache_folder": default_cache_folder(data, int(saved.get("sample_rate", 16000)))}


def _typed_overrides(overrides):
    """A retyped command's overrides (a yaml string or a dict) as a dict."""
    if isinstance(overrides, str):
        return yaml.safe_load(overrides) or {}
    return dict(overrides or {})


def check_same_training(run_folder, hparams_file, overrides=""):
    """Raise :class:`RunLoadError` when a retyped training command does not describe the run:
    another hparams file than the one its ``results.json`` records, or a typed override whose
    value differs from the run's saved ``hyperparams.yaml`` (``--attn_domain=continuous`` for
    a discrete run, another seed, other folds …).

    Only what was typed is compared, value by value: the model is rebuilt from the run's own
    ``hyperparams.yaml``, so a yaml that gained a key since the run was trained still loads it.
    :data:`INSPECTION_KEYS` (which data, run and checkpoint to read) may differ; ``auto`` (resolved at
    training) matches the resolved value.
    """
    from audioattn_sb.hparams import peek_hparams
    from audioattn_sb.results import RESULTS_JSON, RunResults

    run_folder = Path(run_folder)
    saved_file = run_folder / "hyperparams.yaml"
    if not saved_file.is_file():
        return
    results = run_folder / RESULTS_JSON
    recorded = RunResults.load(results).hparams_file if results.is_file() else None
    if recorded and Path(str(recorded)).name != Path(str(hparams_file)).name:
        raise RunLoadError(f"{run_folder} was trained with {Path(str(recorded)).name}, not "
                           f"{Path(str(hparams_file)).name}: pass its training command's hparams "
                           "file, or just the run folder")
    typed = _typed_overrides(overrides)
    saved = peek_hparams(saved_file)  # saved with the references resolved
    lines = []
    for key, value in typed.items():
        if key in INSPECTION_KEYS or key.startswith("__") or str(value) == "auto":
            continue
        if key not in saved:
            lines.append(f"  {key}: not a setting of this run (given {value!r}; trained before "
                         "the key existed?)")
        elif saved[key] != value:
            lines.append(f"  {key}: trained with {saved[key]!r}, given {value!r}")
    if lines:
        raise RunLoadError(
            f"{run_folder} was trained with other settings than these overrides:\n"
            + "\n".join(lines) + "\nPass the same hparams file and overrides as the training "
            "(the run's results.json lists them under 'overrides'), plus --output_folder; or "
            "just the run folder")


def run_folder_of(hparams_file, overrides=""):
    """The run folder a training command with these hparams/overrides wrote to.

    ``output_folder: auto`` resolves like ``recipes/train.py`` does
    (:func:`audioattn_sb.hparams.default_output_folder`).
    """
    from audioattn_sb.hparams import default_output_folder, peek_hparams

    values = peek_hparams(hparams_file, overrides)
    out = values.get("output_folder")
    if out is None or str(out) == "auto":
        out = default_output_folder(values)
    return out


# --------------------------------------------------------------------------- loading weights
def load_checkpoint_weights(recoverables, ckpt_dir, device="cpu"):
    """Load every module of ``recoverables`` (name → object) from ``<ckpt_dir>/<name>.ckpt``.

    Files are read with ``torch.load(..., weights_only=True)``. ``nn.Module`` objects get a strict
    ``load_state_dict``; objects with SpeechBrain's ``_load_statistics_dict`` (the feature
    normaliser, :func:`audioattn_sb.sb_api.has_statistics`) get their statistics. Other recoverables (LR scheduler, epoch counter) are
    training state and skipped. A :class:`~audioattn_sb.training.WeightAverage` with an average
    (the run validated and tested averaged weights, ``average_epochs`` > 0) is loaded and then
    put into its model, so the model holds the weights the run's test scored. Returns the names
    loaded.
    """
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    from audioattn_sb.sb_api import has_statistics, load_statistics

    loaded = []
    for name, obj in recoverables.items():
        stats = has_statistics(obj)
        if not (stats or isinstance(obj, torch.nn.Module)):
            continue
        path = Path(ckpt_dir) / f"{name}.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the checkpoint (the run's checkpointer "
                                    f"saves {name!r}); the checkpoint is incomplete")
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as err:
            raise RunLoadError(
                f"{path} is not a plain weights file: torch.load(weights_only=True) refused it "
                f"({str(err).splitlines()[0]}); only load checkpoints you trust, and rebuild "
                "this one by training again") from err
        if stats:
            load_statistics(obj, state)
        else:
            state = hook_on_loading_state_dict_checkpoint(state)
            try:
                obj.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise RunLoadError(
                    f"{path} does not fit the {name!r} built from the hparams: {err}\nBuild it "
                    "with the same hparams file and overrides as the training (e.g. "
                    "--attn_domain/--attn_max_activation); the run's results.json lists them "
                    "under 'overrides'") from err
        loaded.append(name)
    for name in list(loaded):
        average = recoverables[name]
        if callable(getattr(average, "apply", None)) and getattr(average, "active", False):
            average.apply(keep_own=False)
            loaded.append(f"{name} applied")
    return loaded


# --------------------------------------------------------------------------- the run
@dataclass
class BatchOutput:
    """What one forward pass over a batch returns (everything on the CPU).

    ``scores`` [B, C] are class probabilities (softmax of a ``log_softmax`` model, sigmoid of a
    ``logits`` model); ``info`` is the model's
    :class:`~audioattn_sb.attention.output.Attention` of the batch (detached, on the CPU; one
    clip's: ``info.clip(i)``); ``model_input`` / ``raw_features`` hold each clip's valid frames
    [T_i, F] of the model's input and of the normaliser's input (None when not captured;
    ``model_input`` is None for waveform models too); ``input_lengths`` each clip's valid length
    along the model input's time axis (frames, or samples for waveform models).  With
    ``self_attention=True`` (:meth:`TrainedRun.run_batch`), ``info.self_attention`` holds the
    model's per-layer ``[B, heads, Q, K]`` weights.
    """

    ids: list
    scores: np.ndarray
    info: "Attention"  # audioattn_sb.attention.output.Attention (not imported: start-up time)
    model_input: list = None
    raw_features: list = None
    input_lengths: list = None


@dataclass
class TrainedRun:
    """A trained run ready for evaluation-mode forward passes (see the module docstring)."""

    run_folder: Path
    hparams: dict
    checkpoint: Path
    checkpoint_meta: dict
    class_names: list
    brain: object
    loaded: list = field(default_factory=list)

    # ---- description
    @property
    def model(self):
        return self.brain.modules["model"]

    @property
    def sample_rate(self):
        return int(self.hparams.get("sample_rate", 16000))

    @property
    def device(self):
        return self.brain.device

    def attention_config(self):
        """``{"attn_domain", "max_activation", "alpha_value", "tag"}`` of the model's pooling.

        ``max_activation`` is the discrete mapping (softmax, entmax1333 …), the continuous density
        (gaussian, biweight …) or ``mean``; ``alpha_value`` is α (NaN for ``mean``).
        """
        from audioattn_sb.attention import attention_tag

        pooling = getattr(self.model, "pooling", None)
        domain = getattr(pooling, "domain", self.hparams.get("attn_domain", "unknown"))
        name = getattr(pooling, "max_activation", domain)
        alpha = float(getattr(pooling, "alpha", float("nan")))
        tag = attention_tag(self.hparams.get("attn_domain", domain),
                            self.hparams.get("attn_max_activation", name),
                            self.hparams.get("attn_alpha"))
        return {"attn_domain": domain, "max_activation": name, "alpha_value": alpha, "tag": tag}

    def fbank(self):
        """The ``speechbrain.lobes.features.Fbank`` computing the model's features, or None."""
        from speechbrain.lobes.features import Fbank

        feats = self.brain.modules["compute_features"] if "compute_features" in \
            self.brain.modules else None
        return feats if isinstance(feats, Fbank) else None

    # ---- forward
    def read_audio(self, path):
        """Any audio file → 1-D float32 tensor, mono, at the run's sample rate (the dataset
        preparation's own reader, downmix and resampler)."""
        from audioattn_sb.data.audio import read_mono

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such audio file")
        return torch.from_numpy(np.ascontiguousarray(read_mono(path, self.sample_rate)))

    def class_label(self, index):
        """The name of class ``index`` (its number when the run has no name for it)."""
        index = int(index)
        return self.class_names[index] if index < len(self.class_names) else str(index)

    def forward_waveform(self, wave, name="waveform", item_id=None, capture_features=True,
                         self_attention=False):
        """One waveform (1-D tensor at the run's rate) through the model: a
        :class:`BatchOutput` of one item (id ``item_id``, default the base name of ``name``);
        ``ValueError`` naming ``name`` when it has no sample."""
        if wave.numel() == 0:
            raise ValueError(f"{name}: no audio samples")
        batch = self.make_batch([wave], ids=[item_id or os.path.basename(str(name))])
        return self.run_batch(batch, capture_features=capture_features,
                              self_attention=self_attention)

    def make_batch(self, waves, ids=None):
        """A ``PaddedBatch`` like the recipe's datasets give: ``feats`` computed once per clip
        (``feature_cache: True``, the recipe's :class:`~audioattn_sb.features.FeatureCache`) or
        ``sig``. ``waves``: 1-D float tensors at the run's sample rate."""
        from speechbrain.dataio.batch import PaddedBatch

        from audioattn_sb.features import FeatureCache

        ids = list(ids) if ids is not None else [str(i) for i in range(len(waves))]
        waves = [torch.as_tensor(w, dtype=torch.float32).reshape(-1) for w in waves]
        cache = FeatureCache.for_hparams(self.hparams, self.brain.modules["compute_features"],
                                         self.device)
        if cache is not None:
            items = [{"id": i, "feats": cache(i, lambda w=w: w.unsqueeze(0))}
                     for i, w in zip(ids, waves)]
        else:
            items = [{"id": i, "sig": w} for i, w in zip(ids, waves)]
        return PaddedBatch(items)

    @property
    def multilabel(self):
        """True for multi-label runs (``dataset: fsd50k``: chunked data, sigmoid scores)."""
        from audioattn_sb.data.corpora import get_corpus

        return get_corpus(self.hparams).multilabel

    def has_self_attention(self):
        """True when the model can return its self-attention (``forward(...,
        return_attention=True)``, e.g. :class:`~audioattn_sb.models.transformer.AudioTransformer`;
        :meth:`~audioattn_sb.brains.base.ClipBrain.has_self_attention`)."""
        return self.brain.has_self_attention()

    def check_self_attention(self):
        """``ValueError`` (saying which runs have one) unless :meth:`has_self_attention`."""
        if not self.has_self_attention():
            raise ValueError(
                f"the model of {self.run_folder} ({type(self.model).__name__}) has no "
                "self-attention to export: only Transformer runs (e.g. "
                "hparams/urbansound8k_transformer.yaml, hparams/fsd50k_transformer.yaml) have one")

    def run_batch(self, batch, capture_features=True, self_attention=False):
        """The Brain's evaluation forward pass on ``batch``: a :class:`BatchOutput`.

        ``self_attention=True`` asks the model for its self-attention (``ValueError`` for models
        without); ``capture_features`` keeps each clip's model input and raw features.
        """
        if self_attention:
            self.check_self_attention()
        fwd = self.brain.forward_with_attention(batch, self_attention=self_attention)
        out = fwd.predictions.detach().float().cpu()
        if getattr(self.model, "output", "log_softmax") == "logits":
            scores = torch.sigmoid(out)
        else:
            scores = out.exp()
        result = BatchOutput(ids=list(batch.id), scores=scores.numpy(), info=fwd.attention.cpu(),
                             input_lengths=_valid_lengths(fwd.model_input, fwd.lengths))
        if capture_features:
            result.model_input = _valid_frames(fwd.model_input, fwd.lengths)
            if fwd.raw_features is not None:
                result.raw_features = _valid_frames(fwd.raw_features, fwd.raw_lengths)
        return result


def _valid_lengths(x, lengths):
    """Each clip's valid length along axis 1 of a padded batch ``x`` (relative ``lengths``)."""
    n = x.shape[1]
    if lengths is None:
        return [int(n)] * x.shape[0]
    return frame_counts(lengths.detach().cpu(), n).tolist()


def _valid_frames(x, lengths):
    """[B, T, F] (+ relative lengths) → list of each clip's valid frames as numpy arrays."""
    x = x.float().cpu()
    if x.dim() != 3:
        return None
    n = x.shape[1]
    if lengths is None:
        counts = [n] * x.shape[0]
    else:
        counts = frame_counts(lengths.detach().cpu(), n).tolist()
    return [x[i, :c].numpy() for i, c in enumerate(counts)]


def _class_names(run_folder, hparams):
    """Class names from the run's results.json, else the data's csv, else "0", "1", …."""
    try:
        from audioattn_sb.results import RunResults

        names = RunResults.load(Path(run_folder) / "results.json").class_names
        if names:
            return list(names)
    except (OSError, ValueError):
        pass
    try:
        from audioattn_sb.data.corpora import get_corpus

        names = get_corpus(hparams).class_names(hparams["data_folder"])
        if len(names) == int(hparams.get("n_classes", len(names))):
            return names
    except Exception:  # noqa: BLE001 - no usable data folder: fall back to indices
        pass
    return [str(i) for i in range(int(hparams.get("n_classes", 0)))]


def run_test_checkpoint(run_folder, overrides=None):
    """The ``test_checkpoint`` rule to inspect ``run_folder`` with: the one given in
    ``overrides`` (yaml string or dict), else the one the run was trained with (its
    ``hyperparams.yaml``; ``best_valid`` when it has none: trained before the option existed), so
    a yaml whose default changed later still inspects its older runs on the checkpoint their test
    used.

    Example:
        >>> import tempfile, pathlib
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "hyperparams.yaml").write_text("seed: 0\\n")
        >>> run_test_checkpoint(run), run_test_checkpoint(run, "test_checkpoint: last")
        ('best_valid', 'last')
        >>> _ = (run / "hyperparams.yaml").write_text("test_checkpoint: last\\n")
        >>> run_test_checkpoint(run, {"seed": 1})
        'last'
    """
    from audioattn_sb.hparams import PeekLoader, peek_hparams

    if isinstance(overrides, str) and overrides.strip():
        overrides = yaml.load(overrides, Loader=PeekLoader)
    if isinstance(overrides, dict) and "test_checkpoint" in overrides:
        return str(overrides["test_checkpoint"])
    own = Path(run_folder) / "hyperparams.yaml"
    if own.is_file():
        return str(peek_hparams(own).get("test_checkpoint", "best_valid"))
    return "best_valid"


def run_folder_overrides(run_folder, keep_seed=False):
    """Overrides that rebuild a run from its own ``hyperparams.yaml``: its folders (output,
    save, train log) pointed at ``run_folder`` wherever it now lies, and the seeding turned off
    (loading a model must not re-seed the caller's RNGs) unless ``keep_seed`` (the yaml then
    seeds before building, as when the run started: its initial weights)."""
    from audioattn_sb.hparams import peek_hparams

    run_folder = Path(run_folder)
    values = peek_hparams(run_folder / "hyperparams.yaml")
    overrides = {k: str(run_folder / sub) if sub else str(run_folder)
                 for k, sub in _FOLDER_KEYS.items() if k in values}
    if "checkpointer" in values:
        overrides["checkpointer"] = {"checkpoints_dir": str(run_folder / "save")}
    if "__set_seed" in values and not keep_seed:
        overrides["__set_seed"] = None
    return overrides


def load_trained_run(run_folder=None, hparams_file=None, overrides=None, run_opts=None,
                     device=None, class_names=None):
    """Build the run's modules from its hparams, load its best checkpoint, make an eval Brain.

    Arguments
    ---------
    run_folder : str or Path or None
        A trained run's output folder. Alone: the hparams are ``<run>/hyperparams.yaml``
        (``overrides``, a dict, may then change what does not rebuild the model, e.g.
        ``data_folder``).
    hparams_file, overrides :
        The training command's hparams file and overrides, retyped (a yaml string or dict,
        including ``output_folder``): the run folder is its output folder, what was typed is
        checked against the run (:func:`check_same_training`), and then the run is loaded as
        above from its own ``hyperparams.yaml``, reading the typed ``data_folder`` /
        ``cache_folder`` and under the typed ``test_checkpoint`` rule.
    run_opts : dict or None
        SpeechBrain run options (``--device`` …) for the Brain.
    device : str or None
        Shortcut for ``run_opts={"device": device}`` (default: SpeechBrain's choice, i.e. CUDA
        when available; :func:`audioattn_sb.inference.load_model` passes ``"cpu"``).
    class_names : list or None
        Class names (default: results.json, else the data folder's csv).

    Returns
    -------
    TrainedRun
    """
    from hyperpyyaml import load_hyperpyyaml

    if hparams_file is None:
        run_folder = check_run_folder(run_folder)
        hparams_file = run_folder / "hyperparams.yaml"
        if not hparams_file.is_file():
            raise FileNotFoundError(
                f"{hparams_file}: missing, so {run_folder} is not a finished training run "
                "(recipes/train.py writes hyperparams.yaml at start-up)")
        overrides = {**run_folder_overrides(run_folder), **dict(overrides or {})}
        save_folder = run_folder / "save"
    else:  # a retyped training command: checked against the run, which then rebuilds itself
        overrides = overrides or ""
        if run_folder is None:
            run_folder = run_folder_of(hparams_file, overrides)
        run_folder = check_run_folder(run_folder)
        check_same_training(run_folder, hparams_file, overrides)
        typed = _typed_overrides(overrides)
        data = other_data_overrides(run_folder, typed["data_folder"]) \
            if "data_folder" in typed else {}
        for key in ("cache_folder", "test_checkpoint"):
            if key in typed:
                data[key] = typed[key]
        return load_trained_run(run_folder=run_folder, overrides=data, run_opts=run_opts,
                                device=device, class_names=class_names)
    if not Path(save_folder).is_dir():  # before building anything (nothing gets created)
        raise FileNotFoundError(f"{save_folder}: no checkpoint folder; {_CKPT_HINT}")

    rule = run_test_checkpoint(run_folder, overrides)
    # the rule chooses a checkpoint; it builds nothing (and a run trained before the option
    # existed has no such key for HyperPyYAML to override)
    overrides = {k: v for k, v in overrides.items() if k != "test_checkpoint"}
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    brain_cls = hparams.get("brain_class")
    if brain_cls is None:
        from audioattn_sb.brains.classification import ClassificationBrain as brain_cls
    # the checkpoint the run's test stage used (min valid error, max valid mAP or the last epoch)
    from audioattn_sb.brains.base import checkpoint_rule_key

    ckpt_dir, meta = find_best_checkpoint(save_folder, **checkpoint_rule_key(
        rule,
        getattr(brain_cls, "checkpoint_key", {"min_key": "error"})))
    checkpointer = hparams.get("checkpointer")
    if checkpointer is not None and getattr(checkpointer, "recoverables", None):
        recoverables = dict(checkpointer.recoverables)
    else:
        recoverables = {"model": hparams["model"]}
        if "mean_var_norm" in hparams:
            recoverables["normalizer"] = hparams["mean_var_norm"]
    loaded = load_checkpoint_weights(recoverables, ckpt_dir, device="cpu")
    if class_names is None:
        class_names = _class_names(run_folder, hparams)
    hparams["class_names"] = list(class_names)

    opts = dict(run_opts or {})
    if device is not None:
        opts["device"] = device
    brain = brain_cls(modules=hparams["modules"], hparams=hparams, run_opts=opts or None,
                      checkpointer=None)
    brain.modules.eval()
    logger.info("loaded %s (%s) from %s", ", ".join(loaded), meta, ckpt_dir)
    return TrainedRun(run_folder=run_folder, hparams=hparams, checkpoint=ckpt_dir,
                      checkpoint_meta=meta, class_names=list(class_names), brain=brain,
                      loaded=loaded)


__all__ = ["BatchOutput", "INSPECTION_KEYS", "RunLoadError", "TrainedRun", "check_run_folder",
           "check_same_training", "find_best_checkpoint", "load_checkpoint_weights",
           "load_trained_run", "other_data_overrides", "run_folder_of", "run_folder_overrides"]
