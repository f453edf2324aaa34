"""Training schedule pieces the yamls use: warm-up + cosine LR in epochs, and an epoch counter
with optional early stopping on the validation statistic.

Both are checkpointed (SpeechBrain recoverables), so a resumed run continues the same schedule.
"""

import math

import torch
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
