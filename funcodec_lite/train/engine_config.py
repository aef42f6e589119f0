"""The engine's settings (`EngineConfig`) and a recipe's training section mapped onto them (`LoopConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from funcodec_lite.utils.config import ConfigError, build_dataclass

PRECISIONS = ("no", "bf16", "fp16")
LR_SCHEDULES = ("step", "cosine")


@dataclass
class EngineConfig:
    """What the engine needs to know about a run.

    Args:
        max_steps: optimisation steps (each may update several optimizers).
        batch_size: examples per step and process.
        seed: initialisation, data order and the random state of the steps.
        num_workers: DataLoader worker processes.
        mixed_precision: ``no``, ``bf16`` (autocast) or ``fp16`` (autocast + one GradScaler per optimizer).
        grad_clip: global gradient-norm limit per optimizer (<= 0: no clipping; the norm is still logged).
        lr_schedule: ``step`` or ``cosine``; the rate of step s (0-based) is ``lr * lr_factor(s)``, with a
            linear warmup over the first ``warmup_steps`` ((s + 1) / warmup_steps), then for ``step``
            ``lr_decay ** ((s - warmup_steps) // lr_decay_every)``, for ``cosine``
            ``m + (1 - m) * (1 + cos(pi * min(1, (s - warmup_steps) / (max_steps - warmup_steps)))) / 2``
            with m = ``min_lr_ratio``.
        lr_decay, lr_decay_every, warmup_steps, min_lr_ratio: see ``lr_schedule``.
        log_every: steps between log lines (means over the interval).
        valid_every: steps between validations (0: never).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_last: checkpoints kept.
        max_minutes: wall-clock budget of one run (0: none); every rank stops at the same step and saves.
        best_metric: a validation result (lower is better, e.g. ``nll``) whose best value so far keeps its
            model directory in ``exp_dir/best`` (early stopping for small data); empty: none.
        valid_at_start: validate once before the first step of a fresh run (step 0: where a fine-tuning
            run starts from).
        ema_decay: weight EMA of the task's ``ema_modules`` (0: off). After each update of the optimizer of
            that name, average ← d · average + (1 − d) · weights for every parameter (buffers are copied);
            the averages are kept in checkpoints, and the task validates and exports them.
    """

    max_steps: int = 1000
    batch_size: int = 16
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "no"
    grad_clip: float = 0.0
    lr_schedule: str = "step"
    lr_decay: float = 1.0
    lr_decay_every: int = 1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    log_every: int = 50
    valid_every: int = 0
    checkpoint_every: int = 1000
    keep_last: int = 3
    max_minutes: float = 0.0
    best_metric: str = ""
    valid_at_start: bool = False
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.max_steps < 0 or self.batch_size < 1 or self.lr_decay_every < 1 or self.log_every < 1:
            raise ConfigError("need max_steps >= 0, batch_size >= 1, lr_decay_every >= 1 and log_every >= 1")
        if self.keep_last < 1 or self.checkpoint_every < 0 or self.valid_every < 0:
            raise ConfigError("need keep_last >= 1 and non-negative checkpoint_every / valid_every")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("need warmup_steps >= 0 and min_lr_ratio in [0, 1]")

    def lr_factor(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based) relative to the initial one (see ``lr_schedule``)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        done = step - self.warmup_steps
        if self.lr_schedule == "cosine":
            progress = min(1.0, done / max(1, self.max_steps - self.warmup_steps))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr_decay ** (done // self.lr_decay_every)

    @classmethod
    def from_dict(cls, data: dict) -> EngineConfig:
        return build_dataclass(cls, data, "train")


@dataclass
class LoopConfig:
    """A model's training section in a recipe's YAML: its Adam settings and the engine's.

    Args:
        steps: optimisation steps.
        batch_size: examples per step and process.
        lr, betas: Adam's settings.
        grad_clip: gradient-norm limit (<= 0: none).
        log_every, checkpoint_every, keep_last, max_minutes, seed, mixed_precision, num_workers,
            best_metric: see `EngineConfig`.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    log_every: int = 50
    seed: int = 0
    mixed_precision: str = "no"
    checkpoint_every: int = 1000
    keep_last: int = 2
    max_minutes: float = 0.0
    num_workers: int = 0
    best_metric: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> LoopConfig:
        return build_dataclass(cls, dict(data or {}), cls.__name__)

    def engine(self, **overrides: Any) -> EngineConfig:
        """The engine's settings of this section."""
        return EngineConfig(**{
            "max_steps": self.steps, "batch_size": self.batch_size, "seed": self.seed,
            "num_workers": self.num_workers, "mixed_precision": self.mixed_precision,
            "grad_clip": self.grad_clip, "log_every": self.log_every,
            "checkpoint_every": self.checkpoint_every, "keep_last": self.keep_last,
            "max_minutes": self.max_minutes, "best_metric": self.best_metric, **overrides})


__all__ = ["LR_SCHEDULES", "PRECISIONS", "EngineConfig", "LoopConfig"]
