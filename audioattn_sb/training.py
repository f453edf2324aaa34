"""Training schedule pieces the yamls use: warm-up + cosine LR in epochs, an epoch counter
with optional early stopping on the validation statistic, and a moving average of the weights.

All are checkpointed (SpeechBrain recoverables), so a resumed run continues the same schedule.
"""

import copy
import math

import torch
import torch.nn.functional as F
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.epoch_loop import EpochCounterWithStopper


@register_checkpoint_hooks
class WarmupCosineLR:
    """Linear warm-up to ``lr`` over ``warmup_epochs``, then a half cosine down to ``min_lr`` at
    the end of ``number_of_epochs``; set per batch.

    ``lr(s) = lr · s / W`` for step ``s = 1 … W`` (``W`` = warm-up steps), then
    ``min_lr + (lr − min_lr) · (1 + cos(π (s − W) / (S − W))) / 2`` up to ``S`` = all steps.
    The recipe tells it the number of optimiser steps per epoch
    (:meth:`set_steps_per_epoch`, from the training set size and batch size) before training.
    The Brain calls :meth:`on_batch_start` before every optimiser step.

    Example:
        >>> sched = WarmupCosineLR(lr=1.0, warmup_epochs=1, number_of_epochs=3, min_lr=0.0)
        >>> sched.set_steps_per_epoch(2)
        >>> [round(sched.lr_at(s), 3) for s in range(1, 7)]
        [0.5, 1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(self, lr, warmup_epochs, number_of_epochs, min_lr=0.0):
        if not (lr > 0 and min_lr >= 0 and warmup_epochs >= 0 and number_of_epochs > 0):
            raise ValueError(
                f"WarmupCosineLR needs lr > 0, min_lr ≥ 0, warmup_epochs ≥ 0, number_of_epochs > 0; "
                f"got lr={lr}, min_lr={min_lr}, warmup_epochs={warmup_epochs}, "
                f"number_of_epochs={number_of_epochs}")
        if warmup_epochs >= number_of_epochs:
            raise ValueError(f"warmup_epochs ({warmup_epochs}) must be < number_of_epochs "
                             f"({number_of_epochs})")
        self.lr, self.min_lr = float(lr), float(min_lr)
        self.warmup_epochs, self.number_of_epochs = float(warmup_epochs), int(number_of_epochs)
        self.steps_per_epoch = None
        self.step = 0

    def set_steps_per_epoch(self, steps):
        self.steps_per_epoch = max(1, int(steps))

    def lr_at(self, step):
        """The learning rate of optimiser step ``step`` (1-based)."""
        if self.steps_per_epoch is None:
            raise RuntimeError("WarmupCosineLR: call set_steps_per_epoch(n) before training")
        warm = int(round(self.warmup_epochs * self.steps_per_epoch))
        total = self.number_of_epochs * self.steps_per_epoch
        if step <= warm:
            return self.lr * step / warm
        frac = min(1.0, (step - warm) / max(1, total - warm))
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def on_batch_start(self, optimizer):
        """Set the learning rate of the coming optimiser step."""
        self.step += 1
        lr = self.lr_at(self.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    @mark_as_saver
    def save(self, path):
        torch.save({"step": self.step}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False, device=None):
        del end_of_epoch, device
        self.step = int(torch.load(path, weights_only=True)["step"])


class WeightAverage(torch.nn.Module):
    """Exponential moving average of a model's end-of-epoch weights (parameters and buffers,
    e.g. BatchNorm statistics), with a time constant of ``epochs`` epochs.

    After the ``n``-th update (one per training epoch), with ``d = exp(−1/epochs)``:
    ``θ̄ₙ = θ̄ₙ₋₁ + wₙ (θₙ − θ̄ₙ₋₁)``, ``wₙ = (1 − d) / (1 − dⁿ)``, i.e. ``θ̄ₙ`` is the mean of
    ``θ₁ … θₙ`` weighted by ``dⁿ⁻ᵏ`` (the bias correction of Adam: ``θ̄₁ = θ₁``). Integer buffers
    (BatchNorm's batch counter) are copied. ``epochs = 0`` turns it off: nothing is stored and
    :meth:`apply` does nothing.

    The Brain calls :meth:`update` after each training epoch, :meth:`apply` before validation and
    test (the model then holds the averaged weights) and :meth:`restore` after them (the model's
    own weights back, before the checkpoint is saved). The average is a recoverable of the
    checkpointer (``weight_average.ckpt``); the model is not one of its submodules.

    Example:
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> avg = WeightAverage(model, epochs=1.0)
        >>> for w in (1.0, 2.0, 4.0):
        ...     _ = model.weight.data.fill_(w)
        ...     avg.update()
        >>> d = math.exp(-1.0)
        >>> expected = (d * d * 1.0 + d * 2.0 + 4.0) / (d * d + d + 1)
        >>> avg.apply(); round(model.weight.item(), 6) == round(expected, 6)
        True
        >>> avg.restore(); model.weight.item()
        4.0
    """

    def __init__(self, model, epochs=0.0):
        super().__init__()
        epochs = float(epochs or 0.0)
        if not (epochs >= 0 and math.isfinite(epochs)):
            raise ValueError(f"average_epochs must be a finite number ≥ 0 (0: off), got {epochs}")
        self.epochs = epochs
        self.__dict__["_model"] = model  # a reference, not a submodule (not saved twice)
        self.average = copy.deepcopy(model) if epochs > 0 else None
        if self.average is not None:
            self.average.requires_grad_(False)
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))
        self._saved = None

    @property
    def active(self):
        """Whether there is an average to use (on, and at least one update)."""
        return self.average is not None and int(self.n_updates) > 0

    @torch.no_grad()
    def update(self):
        """Fold the model's current weights into the average (after a training epoch)."""
        if self.average is None:
            return
        if self._saved is not None:
            raise RuntimeError("WeightAverage.update while the averaged weights are applied")
        self.n_updates += 1
        d = math.exp(-1.0 / self.epochs)
        w = (1.0 - d) / (1.0 - d ** int(self.n_updates))
        own = self._model.state_dict()
        for name, avg in self.average.state_dict().items():
            value = own[name].detach().to(avg.device)
            if avg.is_floating_point():
                avg.lerp_(value.to(avg.dtype), w)
            else:
                avg.copy_(value)

    @torch.no_grad()
    def apply(self, keep_own=True):
        """Put the averaged weights into the model, keeping its own for :meth:`restore` (no-op
        when not :attr:`active` or already applied). ``keep_own=False``: for good (inspection
        of a trained run; :meth:`restore` then has nothing to give back)."""
        if not self.active or self._saved is not None:
            return
        if keep_own:
            self._saved = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
        self._model.load_state_dict(self.average.state_dict())

    @torch.no_grad()
    def restore(self):
        """Give the model its own weights back (no-op when :meth:`apply` did not replace them)."""
        if self._saved is None:
            return
        self._model.load_state_dict(self._saved)
        self._saved = None


class EpochCounter(EpochCounterWithStopper):
    """SpeechBrain's epoch counter with optional early stopping.

    ``patience: null`` (or 0) never stops early; ``patience: N`` stops when the validation
    statistic (``direction`` min for error, max for mAP) has not improved for N epochs after
    ``warmup`` epochs. The Brain reports the statistic with :meth:`update_metric` after each
    validation.

    Example:
        >>> counter = EpochCounter(10, patience=2)
        >>> for epoch in counter:
        ...     counter.update_metric([0.5, 0.4, 0.45, 0.41, 0.3][epoch - 1])
        >>> counter.current
        4
    """

    def __init__(self, limit, patience=None, warmup=0, direction="min"):
        self.patience = int(patience) if patience else None
        super().__init__(limit, limit_to_stop=self.patience or 0, limit_warmup=int(warmup),
                         direction=direction)

    def update_metric(self, current_metric):
        if self.patience is None:
            return
        super().update_metric(current_metric)


def distillation_loss(student_logp, teacher_predictions, temperature=1.0):
    """``T² · KL(p_teacher^T ‖ p_student^T)``, mean over the batch (module docstring); both
    arguments are log-probabilities (or logits) ``[B, C]``.

    Example:
        >>> s = torch.log(torch.tensor([[0.5, 0.5]]))
        >>> t = torch.log(torch.tensor([[0.9, 0.1]]))
        >>> round(float(distillation_loss(s, t)), 4)      # 0.9 ln 1.8 + 0.1 ln 0.2
        0.3681
    """
    if not temperature > 0:
        raise ValueError(f"distill_temperature must be > 0, got {temperature}")
    t = float(temperature)
    log_s = F.log_softmax(student_logp.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_predictions.float() / t, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    return t * t * kl.mean()


def hard_distillation_loss(student_logp, teacher_predictions):
    """DeiT's hard distillation (Touvron et al. 2021): the student's NLL of the teacher's
    decision ``argmax_c t_c`` (no temperature), mean over the batch; ``student_logp`` are
    log-probabilities (or logits) ``[B, C]``.

    Example:
        >>> s = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
        >>> t = torch.log(torch.tensor([[0.1, 0.6, 0.3]]))
        >>> round(float(hard_distillation_loss(s, t)), 4)  # −ln 0.3: the teacher picks class 1
        1.204
    """
    return F.nll_loss(F.log_softmax(student_logp.float(), dim=-1),
                      teacher_predictions.argmax(dim=-1))


def multilabel_hard_distillation_loss(student_logits, teacher_logits):
    """Hard distillation for multi-label runs: the BCE of the student's logits against the
    teacher's decisions ``σ(t_c) > 0.5`` (i.e. ``t_c > 0``), mean over chunks and classes.

    Example:
        >>> s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, -1.0]])
        >>> round(float(multilabel_hard_distillation_loss(s, t)), 4)  # ln 2 for either class
        0.6931
    """
    target = (teacher_logits > 0).float()
    return F.binary_cross_entropy_with_logits(student_logits.float(), target)


def multilabel_distillation_loss(student_logits, teacher_logits, temperature=1.0):
    """The multi-label distillation term: ``T² ·`` the mean over chunks and classes of the
    Bernoulli ``KL(σ(t / T) ‖ σ(s / T))`` (each class a yes/no distribution, as the multi-label
    Brain scores it with a sigmoid); both arguments are logits ``[B, C]``.

    Example:
        >>> s, t = torch.tensor([[0.0]]), torch.tensor([[2.0]])   # p_s = 0.5, p_t = σ(2)
        >>> p = torch.sigmoid(t).item()
        >>> want = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
        >>> round(float(multilabel_distillation_loss(s, t)), 6) == round(want, 6)
        True
    """
    if not temperature > 0:
        raise ValueError(f"distill_temperature must be > 0, got {temperature}")
    t = float(temperature)
    s, q = student_logits.float() / t, teacher_logits.float() / t
    p = torch.sigmoid(q)
    # BCE(s, p) − BCE(q, p) = cross-entropy − entropy = KL, computed from logits (stable)
    kl = (F.binary_cross_entropy_with_logits(s, p, reduction="none")
          - F.binary_cross_entropy_with_logits(q, p, reduction="none"))
    return t * t * kl.mean()
