"""The one training-loop config (`LoopConfig`): every model on the engine reads its YAML section into it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from funcodec_lite.utils.config import ConfigError, build_dataclass

PRECISIONS = ("no", "bf16", "fp16")
LR_SCHEDULES = ("step", "cosine")
OPTIMIZERS = ("adam", "adamw")


def parse_precision(value: Any, key: str = "mixed_precision") -> str:
    """A mixed-precision setting checked against `PRECISIONS` (YAML 1.1 reads a bare ``no`` as false)."""
    value = "no" if value is False else value
    if value not in PRECISIONS:
        raise ConfigError(f"{key} must be one of {PRECISIONS}, got {value!r}")
    return value


@dataclass
class LoopConfig:
    """A model's training loop: what the engine runs and how the task's optimizers are made.

    Every task reads its YAML training section (``train``, ``vqvae_train``, ``prior_train``,
    ``vocoder_train``) into this one dataclass, with these defaults; a task may start from its model's
    published optimizer settings (`from_dict`'s ``preset``: HiFi-GAN's AdamW, the likelihood vocoders'
    clipping), which the section overrides. The codec keeps its own YAML layout (``schedule``, ``optim``,
    ``data``), mapped onto this config by `funcodec_lite.codec.training.config.TrainConfig.loop`.

    Args:
        steps: optimisation steps (each may update several optimizers).
        max_minutes: wall-clock budget of one run (0: none); every rank stops at the same step and saves.
        batch_size: examples per step and process.
        num_workers: DataLoader worker processes.
        seed: initialisation, data order and the random state of the steps.
        optimizer: ``adam`` or ``adamw`` (`make_optimizer`), with ``lr``, ``betas`` and ``weight_decay``.
        grad_clip: global gradient-norm limit per optimizer (<= 0: no clipping; the norm is still logged).
        lr_schedule: ``step`` or ``cosine``; the rate of step s (0-based) is ``lr * lr_factor(s)``, with a
            linear warmup over the first ``warmup_steps`` ((s + 1) / warmup_steps), then for ``step``
            ``lr_decay ** ((s - warmup_steps) // lr_decay_every)``, for ``cosine``
            ``m + (1 - m) * (1 + cos(pi * min(1, (s - warmup_steps) / (steps - warmup_steps)))) / 2``
            with m = ``min_lr_ratio``.
        lr_decay, lr_decay_every, warmup_steps, min_lr_ratio: see ``lr_schedule``.
        ema_decay: weight EMA of the task's ``ema_modules`` (0: off). After each update of the optimizer of
            that name, average ← d · average + (1 − d) · weights for every parameter (buffers are copied);
            the averages are kept in checkpoints (``ema-<name>.safetensors``), and the task validates and
            exports them.
        mixed_precision: ``no``, ``bf16`` (autocast) or ``fp16`` (autocast + one GradScaler per optimizer).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_last: checkpoints kept.
        valid_every: steps between validations (0: never).
        valid_at_start: validate once before the first step of a fresh run (step 0: where a fine-tuning
            run starts from).
        best_metric: a validation result (lower is better, e.g. ``nll``) whose best value so far keeps its
            model directory in ``exp_dir/best`` (early stopping for small data); empty: none.
        log_every: steps between log lines (means over the interval).
    """

    steps: int = 1000
    max_minutes: float = 0.0
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    lr_schedule: str = "step"
    lr_decay: float = 1.0
    lr_decay_every: int = 1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    ema_decay: float = 0.0
    mixed_precision: str = "no"
    checkpoint_every: int = 1000
    keep_last: int = 3
    valid_every: int = 0
    valid_at_start: bool = False
    best_metric: str = ""
    log_every: int = 50

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.mixed_precision = parse_precision(self.mixed_precision)
        if self.steps < 0 or self.batch_size < 1 or self.lr_decay_every < 1 or self.log_every < 1:
            raise ConfigError("need steps >= 0, batch_size >= 1, lr_decay_every >= 1 and log_every >= 1")
        if self.keep_last < 1 or self.checkpoint_every < 0 or self.valid_every < 0:
            raise ConfigError("need keep_last >= 1 and non-negative checkpoint_every / valid_every")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"need warmup_steps >= 0 (got {self.warmup_steps}) and min_lr_ratio in [0, 1] "
                              f"(got {self.min_lr_ratio})")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    def lr_factor(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based) relative to the initial one (see ``lr_schedule``)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        done = step - self.warmup_steps
        if self.lr_schedule == "cosine":
            progress = min(1.0, done / max(1, self.steps - self.warmup_steps))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr_decay ** (done // self.lr_decay_every)

    def make_optimizer(self, parameters: Iterable[torch.nn.Parameter],
                       lr: float | None = None) -> torch.optim.Optimizer:
        """``optimizer`` over ``parameters`` with ``lr`` (or the given rate), ``betas``, ``weight_decay``."""
        kind = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return kind(parameters, lr=self.lr if lr is None else lr, betas=self.betas,
                    weight_decay=self.weight_decay)

    @classmethod
    def from_dict(cls, data: dict | None, preset: dict | None = None, where: str = "train") -> LoopConfig:
        """A YAML section (``data``) over a task's ``preset`` (its model's settings) over the defaults."""
        return build_dataclass(cls, {**(preset or {}), **(data or {})}, where)


__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "PRECISIONS", "LoopConfig", "parse_precision"]
