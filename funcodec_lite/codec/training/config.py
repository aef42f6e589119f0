"""Training configuration: the codec, discriminators, loss weights, optimiser, data and schedule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.data.augment import AugmentConfig
from funcodec_lite.discriminators import DiscriminatorConfig
from funcodec_lite.losses import LossWeights
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml


@dataclass
class OptimConfig:
    """Adam for the generator and the discriminators (FunCodec: lr 3e-4, betas 0.5/0.9).

    ``scheduler``: ``none`` (constant), ``exponential`` (lr · gamma^step, per step) or ``cosine`` (from lr
    down to lr · ``min_lr_ratio`` over ``schedule.max_steps``); each after a linear warmup over the first
    ``warmup_steps`` (lr · (step + 1) / warmup_steps). Applied to the generator and the discriminators;
    the closed form is `funcodec_lite.train.engine_config.EngineConfig.lr_factor`.
    ``grad_clip``: max global gradient norm (≤ 0 disables clipping). The tiny codecs' generator
    norms are 8-40, so FunCodec's 1.0 clipped every step (a smaller effective step size, not a guard
    against spikes); the default 100 only catches spikes (DAC clips at 1000).
    """

    lr: float = 3e-4
    disc_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    grad_clip: float = 100.0
    scheduler: str = "none"
    gamma: float = 0.999996
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.scheduler not in ("none", "exponential", "cosine"):
            raise ConfigError(f"optim.scheduler must be none, exponential or cosine, got {self.scheduler!r}")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"need optim.warmup_steps >= 0 (got {self.warmup_steps}) and "
                              f"optim.min_lr_ratio in [0, 1] (got {self.min_lr_ratio})")


@dataclass
class LoaderConfig:
    """Batches: crop length, batch size, workers, validation utterances, augmentation.

    ``gain_db``, ``dither`` and ``augment``: see `funcodec_lite.data.DataConfig` (training crops only).
    """

    segment_seconds: float = 1.0
    batch_size: int = 16
    num_workers: int = 0
    valid_max_seconds: float = 10.0
    valid_utterances: int = 8
    gain_db: list[float] | None = None
    dither: float = 0.0
    augment: AugmentConfig | None = None


@dataclass
class ScheduleConfig:
    """Steps, intervals, precision, and the generator's weight EMA.

    ``ema_decay`` (0 = off, e.g. 0.999): an exponential moving average of the generator's parameters,
    updated after every generator step and kept in checkpoints; validation and the exported model use it.
    """

    max_steps: int = 100_000
    max_minutes: float = 0.0  # wall-clock budget of one run (0 = none): stops and checkpoints
    disc_start_step: int = 0
    disc_every: int = 1  # update the discriminators every k-th step from disc_start_step (G: every step)
    log_every: int = 50
    valid_every: int = 1000
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 (GPU)
    valid_n_q: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    valid_clips: int = 2
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"schedule.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.disc_every < 1:
            raise ValueError(f"schedule.disc_every must be >= 1, got {self.disc_every}")
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"schedule.mixed_precision must be no, bf16 or fp16, "
                             f"got {self.mixed_precision!r}")


@dataclass
class TrainConfig:
    """Everything ``codec train`` needs besides the data directories."""

    codec: CodecConfig = field(default_factory=CodecConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    gan: str = "hinge"
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: LoaderConfig = field(default_factory=LoaderConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        codec = data.pop("codec", None)
        if isinstance(codec, str):
            codec_config = CodecConfig.from_yaml(codec)  # a preset name or a path
        else:
            codec_config = CodecConfig.from_dict(codec or {})
        config = build_dataclass(cls, data, "")
        config.codec = codec_config
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        with open(path, encoding="utf-8") as handle:
            data = load_yaml(handle) or {}
        for item in overrides or []:
            apply_override(data, item)
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def apply_override(data: dict, item: str) -> None:
    """Applies one ``--set a.b.c=value`` to nested config data (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = load_yaml(raw)
