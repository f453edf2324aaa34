"""What every clip-level Brain shares: features → normalisation → model, per-batch LR schedule,
epoch timing, and how the checkpoint is selected.

Training-stage augmentation (hparams ``augment``, ``wav_augment``, ``random_crop``,
``time_roll``, ``fea_augment``, ``mixup_alpha``; :mod:`audioattn_sb.augment`): waveform
augmentation before the features (only when the batch carries waveforms), a random window of each
clip, a circular time shift of each clip and feature augmentation after the normalisation, then
mixup.
Validation and test never augment. With a ``weight_average`` hparam
(:class:`audioattn_sb.training.WeightAverage`, ``average_epochs`` > 0) the average is updated
after every training epoch, and validation and test score the averaged weights (the model's own
are put back at the end of the stage, before the checkpoint is saved).

Evaluation in DDP (``torchrun``): each process scores its own share of the validation/test
split (:class:`ShardSampler`: items ``rank, rank + W, …``, none repeated, none padded), and at
the stage's end every process gathers all shares, so the statistics, the checkpoint choice and
early stopping are those of the whole split, with each item scored once overall. The stage loss
is the mean over items (not over batches), the same in one process and in several.
:meth:`ClipBrain.items_per_process` records how many items each process handled in the last
training epoch, the last validation and the test (results.json: ``items_per_process``).

Module contract (every recipe's yaml): ``modules.compute_features`` (waveforms [B, N] → features
[B, T, F], e.g. Fbank, or an identity for waveform models), ``modules.mean_var_norm(feats, lens)``
and ``modules.model(feats, lens)`` → ``(outputs [B, C], attention)`` (an
:class:`~audioattn_sb.attention.output.Attention`). Subclasses define the loss
(``compute_objectives``), the statistics (``on_stage_end``) and :attr:`ClipBrain.checkpoint_key`.

The forward pass keeps nothing on the Brain: ``compute_forward`` returns a :class:`ForwardOutput`
(predictions, attention, the mixup draw, the teacher's log-probabilities, the model's and the
normaliser's inputs), which SpeechBrain hands unchanged to ``compute_objectives``.
:meth:`ClipBrain.forward_with_attention` is the same pass in evaluation mode for inspection
(with the self-attention of Transformer models when asked).
"""

import inspect
import json
import time
from dataclasses import dataclass

import speechbrain as sb
import torch

from audioattn_sb.attention.output import Attention
from audioattn_sb.lengths import frame_counts
from audioattn_sb.augment import augment_features, augment_waveforms, mixup
from audioattn_sb.features import frame_lengths
from audioattn_sb.sb_api import CpuDistributedBrain


class ShardSampler(torch.utils.data.Sampler):
    """Items ``rank, rank + world, rank + 2·world, …`` of ``n``: every item in exactly one
    process (``DistributedSampler`` pads the split by repeating items, which would score them
    twice).

    Example:
        >>> [list(ShardSampler(5, r, 2)) for r in (0, 1)], len(ShardSampler(5, 1, 2))
        ([[0, 2, 4], [1, 3]], 2)
    """

    def __init__(self, n, rank, world):
        if not 0 <= int(rank) < int(world):
            raise ValueError(f"rank {rank} outside a world of {world} processes")
        self.indices = range(int(rank), int(n), int(world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def gather_lists(parts):
    """``{name: list}`` of this process → the lists of every process concatenated in rank order
    (every process gets the same); unchanged without an initialised process group."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return parts
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, parts)
    return {k: [x for p in everyone for x in p[k]] for k in parts}


@dataclass
class ForwardOutput:
    """What :meth:`ClipBrain.compute_forward` returns for a batch of B clips (SpeechBrain passes
    it unchanged to ``compute_objectives``).

    Fields
    ------
    predictions : Tensor [B, C]
        The model's outputs: log-probabilities (``output: log_softmax``) or logits.
    attention : Attention
        The model's :class:`~audioattn_sb.attention.output.Attention` (fields, units and shapes
        documented there).
    model_input : Tensor
        The model's input: features [B, T, F] after normalisation (and, in training,
        augmentation and mixup), or the waveform [B, N] of waveform models.
    lengths : Tensor [B]
        The model input's relative lengths along its time axis (frames, or samples).
    raw_features : Tensor
        The normaliser's input: ``compute_features``' output (e.g. the log-mel Fbank [B, T, F]).
    raw_lengths : Tensor [B]
        The normaliser's relative lengths (exact frame counts / T, float64).
    mix : tuple or None
        Training with mixup: the ``(perm, lam)`` draw of :func:`audioattn_sb.augment.mixup`.
    teacher_predictions : Tensor [B, C] or None
        Training with a ``teacher`` (:mod:`audioattn_sb.distill`): its predictions for the same
        (augmented, mixed) model input, as its Brain makes them (log-probabilities for a
        single-label run, logits for a multi-label one).
    """

    predictions: torch.Tensor
    attention: Attention
    model_input: torch.Tensor = None
    lengths: torch.Tensor = None
    raw_features: torch.Tensor = None
    raw_lengths: torch.Tensor = None
    mix: tuple = None
    teacher_predictions: torch.Tensor = None


#: values of the ``test_checkpoint`` hparam: which checkpoint the test stage (and inspection) loads
TEST_CHECKPOINT_RULES = ("best_valid", "last")


def checkpoint_rule_key(rule, checkpoint_key):
    """Keyword for ``Brain.evaluate`` / ``Checkpointer.find_checkpoint`` that picks the checkpoint
    the test stage loads: ``best_valid`` → the Brain's ``checkpoint_key`` (lowest valid error,
    highest valid mAP); ``last`` → the newest end-of-epoch checkpoint (highest ``epoch``, a meta
    key only end-of-epoch checkpoints carry; the checkpointer always keeps the newest one).
    ``ValueError`` for another rule.

    Example:
        >>> checkpoint_rule_key("best_valid", {"min_key": "error"})
        {'min_key': 'error'}
        >>> checkpoint_rule_key("last", {"max_key": "mAP"})
        {'max_key': 'epoch'}
        >>> checkpoint_rule_key("best", {"min_key": "error"})
        Traceback (most recent call last):
        ...
        ValueError: test_checkpoint: 'best' is not one of best_valid, last
    """
    if rule not in TEST_CHECKPOINT_RULES:
        raise ValueError(f"test_checkpoint: {rule!r} is not one of "
                         f"{', '.join(TEST_CHECKPOINT_RULES)}")
    return dict(checkpoint_key) if rule == "best_valid" else {"max_key": "epoch"}


class ClipBrain(CpuDistributedBrain):
    """Base of :class:`~audioattn_sb.brains.classification.ClassificationBrain` and
    :class:`~audioattn_sb.brains.multilabel.MultiLabelBrain`.

    Hparams read here: ``feature_cache`` (batches carry ``feats`` instead of ``sig``),
    ``hop_samples`` (frame lengths of Fbank-like features), ``lr_annealing`` (optional per-batch
    scheduler with ``on_batch_end(optimizer)``).
    """

    #: keyword for ``Brain.evaluate`` / the checkpointer: which valid statistic selects the
    #: checkpoint (``{"min_key": "error"}`` or ``{"max_key": "mAP"}``)
    checkpoint_key = {"min_key": "error"}

    #: the (soft, hard) distillation terms of this Brain's loss, ``soft(student, teacher, T)``
    #: and ``hard(student, teacher)`` (:mod:`audioattn_sb.training`); None: the Brain's loss
    #: takes no ``teacher`` run (:mod:`audioattn_sb.distill`)
    distillation_terms = None
    #: the :class:`~audioattn_sb.distill.Teacher` of the ``teacher`` hparam (set by
    #: :func:`audioattn_sb.recipe.make_brain`); it scores each training batch's input
    #: (:attr:`ForwardOutput.teacher_predictions`)
    teacher = None

    @property
    def supports_distillation(self):
        """Whether the Brain's loss takes a ``teacher`` run (:attr:`distillation_terms`)."""
        return self.distillation_terms is not None

    def mix_distillation(self, loss, forward, stage):
        """``(1 − w) · loss + w · term`` in training when ``forward`` carries the teacher's
        predictions (:mod:`audioattn_sb.distill`), ``loss`` otherwise: ``term`` is the soft
        distillation term at temperature ``distill_temperature`` or, with ``distill_hard:
        True``, the hard one (:attr:`distillation_terms`); ``w = distill_weight``."""
        teacher = forward.teacher_predictions if stage == sb.Stage.TRAIN else None
        if teacher is None or not self.supports_distillation:
            return loss
        soft, hard = self.distillation_terms
        w = float(getattr(self.hparams, "distill_weight", 0.5))
        if getattr(self.hparams, "distill_hard", False):
            term = hard(forward.predictions, teacher)
        else:
            term = soft(forward.predictions, teacher,
                        float(getattr(self.hparams, "distill_temperature", 1.0)))
        return (1 - w) * loss + w * term

    @property
    def test_checkpoint_key(self):
        """Keyword for ``Brain.evaluate``: the checkpoint the test stage loads, by the hparam
        ``test_checkpoint`` (``best_valid``, the default, or ``last``;
        :func:`checkpoint_rule_key`)."""
        return checkpoint_rule_key(getattr(self.hparams, "test_checkpoint", "best_valid"),
                                   self.checkpoint_key)

    def best_valid_epoch(self):
        """The epoch of the checkpoint that :attr:`checkpoint_key` selects (None if unknown)."""
        if self.checkpointer is None:
            return None
        ckpt = self.checkpointer.find_checkpoint(**self.checkpoint_key)
        return None if ckpt is None else ckpt.meta.get("epoch")

    def augmenting(self, stage):
        """Whether this stage augments: training only, and only with ``augment: True``."""
        return stage == sb.Stage.TRAIN and bool(getattr(self.hparams, "augment", False))

    def compute_forward(self, batch, stage):
        """The batch through features, normalisation, augmentation and the model: a
        :class:`ForwardOutput` (nothing is kept on the Brain)."""
        return self.forward_batch(batch, stage)

    def forward_batch(self, batch, stage, self_attention=False):
        """:meth:`compute_forward`, with the model's self-attention when ``self_attention``
        (the model is then called with ``return_attention=True``)."""
        batch = batch.to(self.device)
        raw, raw_lens = self.compute_features(batch, stage)
        # SpeechBrain's padding mask counts frames as len_rel * T - 1e-6 in the lengths' dtype:
        # in float32 that miscounts some lengths by one frame (a padded zero enters a clip's
        # mean), so the normaliser gets exact frame counts / T in float64
        n_frames = raw.shape[1]
        norm_lens = frame_counts(raw_lens, n_frames).double() / n_frames
        feats, lens = self.modules.mean_var_norm(raw, norm_lens), raw_lens
        mix = None
        if self.augmenting(stage):
            random_crop = getattr(self.hparams, "random_crop", None)
            if random_crop is not None:
                feats, lens = random_crop(feats, lens)
            time_roll = getattr(self.hparams, "time_roll", None)
            if time_roll is not None:
                feats = time_roll(feats, lens)
            fea_augment = getattr(self.hparams, "fea_augment", None)
            if fea_augment is not None:
                feats = augment_features(fea_augment, feats, lens)
        alpha = float(getattr(self.hparams, "mixup_alpha", 0) or 0)
        if stage == sb.Stage.TRAIN and alpha > 0:
            feats, lens, mix = mixup(feats, lens, alpha)
        if self_attention:
            outputs, attention = self.modules.model(feats, lens, return_attention=True)
        else:
            outputs, attention = self.modules.model(feats, lens)
        # the teacher scores the same augmented, mixed input (a waveform student's audio)
        teacher_predictions = (self.teacher(feats, lens)
                               if stage == sb.Stage.TRAIN and self.teacher is not None else None)
        return ForwardOutput(predictions=outputs, attention=attention, model_input=feats,
                             lengths=lens, raw_features=raw, raw_lengths=norm_lens, mix=mix,
                             teacher_predictions=teacher_predictions)

    def has_self_attention(self):
        """True when the model can return its self-attention (its ``forward`` takes
        ``return_attention``, e.g. :class:`~audioattn_sb.models.transformer.AudioTransformer`)."""
        model = self.modules["model"]
        model = getattr(model, "module", model)  # DDP
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            return False
        return "return_attention" in params

    def forward_with_attention(self, batch, self_attention=False):
        """The evaluation forward pass of ``batch`` (eval mode, no gradients, the test stage's
        features and normalisation, no augmentation): a :class:`ForwardOutput`, with the model's
        per-layer self-attention in ``attention.self_attention`` when ``self_attention``
        (``ValueError`` for a model without one). The modules' train/eval modes are restored."""
        if self_attention and not self.has_self_attention():
            model = self.modules["model"]
            raise ValueError(
                f"the model ({type(getattr(model, 'module', model)).__name__}) has no "
                "self-attention to return: only Transformer runs (e.g. "
                "hparams/urbansound8k_transformer.yaml, hparams/fsd50k_transformer.yaml) have one")
        modes = [(m, m.training) for m in self.modules.modules()]
        self.modules.eval()
        try:
            with torch.no_grad():
                return self.forward_batch(batch, sb.Stage.TEST, self_attention=self_attention)
        finally:
            for m, mode in modes:
                m.training = mode

    def compute_features(self, batch, stage=None):
        """(features [B, T, F], relative frame lengths [B]) of a batch.

        Batches carry either ``feats`` (computed once per clip by the recipe's feature cache) or
        ``sig`` (waveforms; features computed here, lengths counted exactly per clip). A
        ``compute_features`` module with its own ``frame_lengths(wav_lens, n_samples, n_frames)``
        method (e.g. the waveform models' identity features) counts the lengths itself.
        """
        if hasattr(batch, "feats"):
            return batch.feats
        wavs, lens = batch.sig
        wav_augment = getattr(self.hparams, "wav_augment", None)
        if wav_augment is not None and self.augmenting(stage):
            wavs, lens = augment_waveforms(wav_augment, wavs, lens)
        feats = self.modules.compute_features(wavs)
        own_lengths = getattr(self.modules.compute_features, "frame_lengths", None)
        if callable(own_lengths):
            return feats, own_lengths(lens, wavs.shape[1], feats.shape[1])
        return feats, frame_lengths(lens, wavs.shape[1], feats.shape[1], self.hparams.hop_samples)

    def on_fit_batch_start(self, batch, should_step):
        sched = getattr(self.hparams, "lr_annealing", None)
        if should_step and hasattr(sched, "on_batch_start"):
            sched.on_batch_start(self.optimizer)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        sched = getattr(self.hparams, "lr_annealing", None)
        if should_step and hasattr(sched, "on_batch_end"):
            sched.on_batch_end(self.optimizer)

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """SpeechBrain's, plus the :class:`ShardSampler` of validation and test in DDP."""
        if (stage != sb.Stage.TRAIN and self.distributed_launch
                and loader_kwargs.get("sampler") is None
                and loader_kwargs.get("batch_sampler") is None):
            world = torch.distributed.get_world_size()
            loader_kwargs = {**loader_kwargs, "shuffle": False,
                             "sampler": ShardSampler(len(dataset), self.rank, world)}
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    #: the evaluation :meth:`evaluate_split` is running (None: a plain ``evaluate``, the run's
    #: test); its options and, at the stage's end, its statistics
    _evaluation = None

    @property
    def weight_average(self):
        """The ``weight_average`` hparam (:class:`audioattn_sb.training.WeightAverage`) or None."""
        return getattr(self.hparams, "weight_average", None)

    def on_stage_start(self, stage, epoch=None):
        self._stage_t0 = time.perf_counter()
        if stage != sb.Stage.TRAIN and self.weight_average is not None and (
                stage == sb.Stage.VALID or self._evaluation is None
                or self._evaluation["use_weight_average"]):
            self.weight_average.apply()
        #: per stage, lists the subclasses fill (``loss`` = [(item-mean loss, items), ...])
        self._eval_parts = {"loss": []}
        self._n_items = 0

    def _count_items(self, n_items):
        """Count a batch of ``n_items`` (every stage: :meth:`items_per_process`)."""
        self._n_items += int(n_items)

    def _keep(self, loss, n_items, **parts):
        """Keep a validation/test batch's loss and the subclass's ``parts`` (anything
        picklable) for the stage's statistics; training batches keep nothing (no copies to the
        CPU in the training loop)."""
        self._eval_parts["loss"].append((float(loss), int(n_items)))
        for name, value in parts.items():
            self._eval_parts.setdefault(name, []).append(value)

    def _gather_stage(self, stage):
        """``(mean loss over the items of every process, items per process)`` of this stage;
        outside training the parts of every process (the whole split) become this one's."""
        counts = gather_lists({"n": [self._n_items]})["n"]
        if stage == sb.Stage.TRAIN:
            return None, counts
        self._eval_parts = gather_lists(self._eval_parts)
        total = sum(n for _, n in self._eval_parts["loss"])
        loss = sum(value * n for value, n in self._eval_parts["loss"]) / total if total else \
            float("nan")
        return loss, counts

    def items_per_process(self):
        """Items each process handled in the last train/valid stage and in the test stage
        (``{"train": [n₀, n₁, …], "valid": …, "test": …}``; one entry per process)."""
        return {"train": getattr(self, "train_items_per_process", None),
                "valid": getattr(self, "valid_stats", {}).get("items_per_process"),
                "test": getattr(self, "test_stats", {}).get("items_per_process")}

    def eval_part(self, name):
        """The gathered list ``name`` of the finished VALID/TEST stage (subclasses' statistics)."""
        return self._eval_parts.get(name, [])

    def _end_train_stage(self, stage_loss):
        """Record the epoch's wall time (``epoch_seconds``) and ``train_stats``."""
        seconds = time.perf_counter() - self._stage_t0
        if not hasattr(self, "epoch_seconds"):
            self.epoch_seconds = []
        self.epoch_seconds.append(seconds)
        self.train_stats = {"loss": float(stage_loss), "epoch_seconds": round(seconds, 3)}

    #: the statistics logged per epoch in train_log.txt
    summary_keys = ("loss", "error", "accuracy")

    def _stats(self, stage_loss):
        """Statistics of a VALID/TEST stage (a dict holding at least :attr:`summary_keys`)."""
        raise NotImplementedError

    def _checkpoint_meta(self, stats):
        """Checkpoint meta values of the selection statistic (must be a finite number)."""
        name = next(iter(self.checkpoint_key.values()))
        return {name: stats[name]}

    def _after_valid(self, stats):
        """Extra logging after a validation stage (subclasses)."""

    def _after_test(self, stats):
        """Extra logging / files after the test stage (subclasses)."""

    def evaluate_split(self, dataset, loader_kwargs=None, *, use_weight_average=True,
                       as_test=False, checkpoint_key=None):
        """Evaluate ``dataset`` on a checkpoint (SpeechBrain's ``evaluate``: the checkpoint
        ``checkpoint_key`` selects, default :attr:`test_checkpoint_key`; the test stage) and
        return its statistics (the dict of :meth:`_stats`: :attr:`summary_keys` and the
        Brain's other figures). The stage logs as every test stage does.

        ``use_weight_average=False``: the checkpoint's own weights even when a
        ``weight_average`` is in use. ``as_test``: this is the run's test (its statistics
        become :attr:`test_stats`, which ``results.json`` and :meth:`items_per_process`
        report, and the subclass writes its test files); otherwise (a noisy copy of the test
        folds, the own weights) the Brain's ``test_stats`` and files are left as they were."""
        self._evaluation = {"use_weight_average": bool(use_weight_average),
                            "as_test": bool(as_test), "stats": None}
        try:
            self.evaluate(dataset, test_loader_kwargs=dict(loader_kwargs or {}),
                          **(checkpoint_key or self.test_checkpoint_key))
            stats = self._evaluation["stats"]
        finally:
            self._evaluation = None
        if stats is None:
            raise RuntimeError("the test stage ended without statistics")
        return stats

    def is_run_test(self):
        """Whether the test stage running now is the run's test (a plain ``evaluate``, or
        :meth:`evaluate_split` with ``as_test``), whose statistics become :attr:`test_stats`."""
        return self._evaluation is None or self._evaluation["as_test"]

    def results(self, manifests, test_stats=None):
        """The results.json entries of this kind of Brain: what was tested and its figures
        (subclasses; ``manifests``: ``{split: path}``; ``test_stats``: the test's statistics,
        default :attr:`test_stats`)."""
        raise NotImplementedError

    @property
    def selected_by(self):
        """How the test stage's checkpoint was chosen, from :attr:`test_checkpoint_key`
        (``min valid error``, ``max valid mAP``, ``last epoch``), for results.json."""
        (direction, name), = self.test_checkpoint_key.items()
        if name == "epoch":
            return "last epoch"
        return f"{direction.split('_')[0]} valid {name}"

    @staticmethod
    def manifest_entries(manifests):
        """``{split: manifest entries}`` of the prepared manifests (``{split: path}``)."""
        out = {}
        for split, path in manifests.items():
            with open(path, encoding="utf-8") as f:
                out[split] = json.load(f)
        return out

    def line_summary(self):
        """One line of the test figures for the console."""
        raise NotImplementedError

    def on_stage_end(self, stage, stage_loss, epoch=None):
        item_loss, counts = self._gather_stage(stage)
        if self.weight_average is not None:
            # the model's own weights back before anything is saved; a new epoch is averaged in
            self.weight_average.restore()
            if stage == sb.Stage.TRAIN:
                self.weight_average.update()
        if stage == sb.Stage.TRAIN:
            self.train_items_per_process = counts
            self._end_train_stage(stage_loss)
            return
        stats = self._stats(item_loss)
        stats["items_per_process"] = counts
        short = {k: stats[k] for k in self.summary_keys}
        if stage == sb.Stage.VALID:
            self.valid_stats = stats
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
                train_stats=getattr(self, "train_stats", None),
                valid_stats=short,
            )
            self._after_valid(stats)
            (direction, name), = self.checkpoint_key.items()
            counter = self.hparams.epoch_counter
            if hasattr(counter, "update_metric"):  # early stopping (audioattn_sb.training)
                counter.update_metric(self._checkpoint_meta(stats)[name])
            if self.checkpointer is not None:
                keys = {"min_keys" if direction == "min_key" else "max_keys": [name]}
                self.checkpointer.save_and_keep_only(
                    meta={**self._checkpoint_meta(stats), "epoch": epoch}, **keys)
        elif stage == sb.Stage.TEST:
            if self.is_run_test():
                self.test_stats = stats
            if self._evaluation is not None:
                self._evaluation["stats"] = stats
            self._after_test(stats)
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=short,
            )

    def wrap_distributed_cpu(self):
        """DDP on CPU (gloo) as on GPUs, but without SpeechBrain's SyncBatchNorm conversion,
        which only works for CUDA modules: on CPU each process keeps its own BatchNorm
        statistics (as plain DDP does); GPU runs keep SpeechBrain's behaviour
        (:class:`audioattn_sb.sb_api.CpuDistributedBrain`)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DDP(module, device_ids=None,
                                         find_unused_parameters=self.find_unused_parameters)
