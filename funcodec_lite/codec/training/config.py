"""``codec train``'s YAML: the codec, discriminators, loss weights, and its optim/data/schedule sections.

The three training sections keep the codec's own layout and are mapped onto the engine's one loop config
by `TrainConfig.loop` (``schedule.max_steps`` -> ``steps``, ``optim.scheduler`` -> ``lr_schedule``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.data.augment import AugmentConfig
from funcodec_lite.discriminators import DiscriminatorConfig
from funcodec_lite.losses import LossWeights
from funcodec_lite.train.engine_config import LoopConfig, parse_precision
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml


@dataclass
class OptimConfig:
    """Adam for the generator and the discriminators (FunCodec: lr 3e-4, betas 0.5/0.9).

    ``scheduler``: ``none`` (constant), ``exponential`` (lr · gamma^step, per step) or ``cosine`` (from lr
    down to lr · ``min_lr_ratio`` over ``schedule.max_steps``); each after a linear warmup over the first
    ``warmup_steps`` (lr · (step + 1) / warmup_steps). Applied to the generator and the discriminators;
    the closed form is `funcodec_lite.train.engine_config.LoopConfig.lr_factor`.
    ``grad_clip``: max global gradient norm (≤ 0 disables clipping). The tiny codecs' generator
    norms are 8-40, so FunCodec's 1.0 clipped every step (a smaller effective step size, not a guard
    against spikes); the default 100 only catches spikes (DAC clips at 1000).
    """

    lr: float = LoopConfig.lr
    disc_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = LoopConfig.weight_decay
    grad_clip: float = 100.0
    scheduler: str = "none"
    gamma: float = 0.999996
    warmup_steps: int = LoopConfig.warmup_steps
    min_lr_ratio: float = LoopConfig.min_lr_ratio

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.scheduler not in ("none", "exponential", "cosine"):
            raise ConfigError(f"optim.scheduler must be none, exponential or cosine, got {self.scheduler!r}")


@dataclass
class LoaderConfig:
    """Batches: crop length, batch size, workers, validation utterances, augmentation.

    ``gain_db``, ``dither`` and ``augment``: see `funcodec_lite.data.DataConfig` (training crops only).
    """

    segment_seconds: float = 1.0
    batch_size: int = 16
    num_workers: int = LoopConfig.num_workers
    valid_max_seconds: float = 10.0
    valid_utterances: int = 8
    gain_db: list[float] | None = None
    dither: float = 0.0
    augment: AugmentConfig | None = None


@dataclass
class ScheduleConfig:
    """Steps, intervals, precision, and the generator's weight EMA (`TrainConfig.loop` maps them).

    The codec's own defaults: 100,000 steps, validation every 1,000; the others are the loop config's.

    ``ema_decay`` (0 = off, e.g. 0.999): an exponential moving average of the generator's parameters,
    updated after every generator step and kept in checkpoints; validation and the exported model use it.
    """

    max_steps: int = 100_000
    max_minutes: float = LoopConfig.max_minutes  # wall-clock budget of one run (0 = none)
    disc_start_step: int = 0
    disc_every: int = 1  # update the discriminators every k-th step from disc_start_step (G: every step)
    log_every: int = LoopConfig.log_every
    valid_every: int = 1000
    checkpoint_every: int = LoopConfig.checkpoint_every
    keep_last: int = LoopConfig.keep_last
    seed: int = LoopConfig.seed
    mixed_precision: str = LoopConfig.mixed_precision  # no | bf16 | fp16 (GPU)
    valid_n_q: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    valid_clips: int = 2
    ema_decay: float = LoopConfig.ema_decay

    def __post_init__(self) -> None:
        if self.disc_every < 1:
            raise ValueError(f"schedule.disc_every must be >= 1, got {self.disc_every}")
        self.mixed_precision = parse_precision(self.mixed_precision, "schedule.mixed_precision")


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
        config.loop()  # the engine's checks of the training sections, at load time
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

    def loop(self, valid_at_start: bool = False) -> LoopConfig:
        """The engine's loop config of the ``schedule``, ``optim`` and ``data`` sections.

        ``optim.scheduler``: ``cosine`` -> ``lr_schedule: cosine``; ``exponential`` -> ``step`` with
        ``lr_decay: optim.gamma`` every step; ``none`` -> ``step`` with no decay. ``valid_at_start``: a
        fine-tuning run validates at step 0 too.
        """
        schedule, optim, data = self.schedule, self.optim, self.data
        try:
            return LoopConfig(
                steps=schedule.max_steps, max_minutes=schedule.max_minutes, batch_size=data.batch_size,
                num_workers=data.num_workers, seed=schedule.seed, optimizer="adam", lr=optim.lr,
                betas=optim.betas, weight_decay=optim.weight_decay, grad_clip=optim.grad_clip,
                lr_schedule="cosine" if optim.scheduler == "cosine" else "step",
                lr_decay=optim.gamma if optim.scheduler == "exponential" else 1.0, lr_decay_every=1,
                warmup_steps=optim.warmup_steps, min_lr_ratio=optim.min_lr_ratio,
                ema_decay=schedule.ema_decay,
                mixed_precision=schedule.mixed_precision, checkpoint_every=schedule.checkpoint_every,
                keep_last=schedule.keep_last, valid_every=schedule.valid_every, valid_at_start=valid_at_start,
                log_every=schedule.log_every)
        except ConfigError as error:
            raise ConfigError(f"schedule/optim/data: {error}") from error


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
