"""The codec's training task: GAN training of a Codec on the engine (alternating D and G updates)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from funcodec_lite.codec.model import Codec
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.finetune import load_init_weights
from funcodec_lite.codec.training.validate import validate
from funcodec_lite.data import AudioBatch, AudioDataset, DataConfig
from funcodec_lite.discriminators import MultiDiscriminator
from funcodec_lite.losses import CodecLoss
from funcodec_lite.train.engine import Engine, TrainTask
from funcodec_lite.utils.profile import PhaseTimer


class CodecGANTask(TrainTask):
    """The codec's part of training: a ``Codec`` generator, a ``MultiDiscriminator``, their losses.

    Args:
        config: the training configuration.
        train_dir, valid_dir: Kaldi data directories (``valid_dir`` may be None: no validation).
        init_from: a codec model directory whose weights and codebooks the generator starts from
            (`funcodec_lite.codec.training.finetune`); None: a fresh initialisation.
    """

    name = "codec"
    broadcast_buffers = False  # the RVQ all-reduces its own statistics
    ema_modules = ("generator",)  # with schedule.ema_decay > 0, validation and export use the average

    def __init__(self, config: TrainConfig, train_dir: str | Path, valid_dir: str | Path | None,
                 init_from: str | Path | None = None) -> None:
        self.config, self.train_dir, self.init_from = config, train_dir, init_from
        codec_config = config.codec
        data_config = DataConfig(sample_rate=codec_config.sample_rate, channels=codec_config.channels,
                                 segment_seconds=config.data.segment_seconds,
                                 max_seconds=config.data.valid_max_seconds, seed=config.schedule.seed,
                                 gain_db=config.data.gain_db, dither=config.data.dither,
                                 augment=config.data.augment)
        self.train_set = AudioDataset(train_dir, data_config, train=True)
        self.valid_set = AudioDataset(valid_dir, data_config, train=False) if valid_dir else None
        self.loss = CodecLoss(codec_config.sample_rate, config.loss, gan=config.gan)
        self.skipped_files = 0

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        generator, discriminator = Codec(self.config.codec), MultiDiscriminator(self.config.discriminator)
        if self.init_from is not None:
            load_init_weights(generator, self.init_from)
        optim, loop = self.config.optim, self.config.loop()
        optimizers = {"generator": loop.make_optimizer(generator.parameters()),
                      "discriminator": loop.make_optimizer(discriminator.parameters(),
                                                           optim.disc_lr or optim.lr)}
        return {"generator": generator, "discriminator": discriminator}, optimizers

    def dataset(self) -> AudioDataset:
        return self.train_set

    def batch_size(self, batch: AudioBatch) -> int:
        self.skipped_files += len(batch.skipped)
        return len(batch)

    def to_device(self, batch: AudioBatch, device: torch.device) -> torch.Tensor:
        return batch.wav.to(device)

    def state(self) -> dict:
        return {"skipped_files": self.skipped_files}

    def load_state(self, state: dict) -> None:
        self.skipped_files = state.get("skipped_files", 0)

    def step(self, wav: torch.Tensor, engine: Engine, timer: PhaseTimer | None = None) -> dict[str, float]:
        """One discriminator update (once started, every ``disc_every`` steps) and one generator update.

        ``timer`` (optional) receives the seconds spent in each phase: generator forward,
        discriminator forward + loss, discriminator backward + update, generator losses (adversarial
        and feature matching included), generator backward + update.
        """
        schedule = self.config.schedule
        phase = timer or (lambda name: contextlib.nullcontext())
        generator, discriminator = engine.modules["generator"], engine.modules["discriminator"]
        self.loss = self.loss.to(wav.device)
        generator.train()
        with phase("generator_forward"), engine.autocast():
            out = generator(wav)
        terms: dict[str, float] = {}
        use_disc = engine.step >= schedule.disc_start_step and len(self.config.discriminator.kinds) > 0
        update_disc = use_disc and (engine.step - schedule.disc_start_step) % schedule.disc_every == 0
        real = fake = None
        if use_disc:
            prepare = engine.unwrap("discriminator").prepare
            with phase("discriminator_forward"), engine.autocast():
                real_in, fake_in = prepare(wav), prepare(out.wav)
        if update_disc:
            # STFTs of the real and decoded signal are taken once and shared by both updates
            with phase("discriminator_forward"), engine.autocast():
                real, fake = discriminator(real_in), discriminator(fake_in.detach())
                d_loss = self.loss.discriminator_loss(real, fake)
            with phase("discriminator_backward"):
                terms["grad_norm_d"] = engine.update("discriminator", d_loss.total)
            terms.update(d_loss.terms)
        with phase("generator_losses"), engine.autocast():
            if use_disc:
                # feature matching detaches the real features: no graph needed for them
                with torch.no_grad():
                    real = discriminator(real_in)
                fake = discriminator(fake_in)
            g_loss = self.loss(wav, out.wav, out.commit_loss, real, fake)
        with phase("generator_backward"):
            terms["grad_norm_g"] = engine.update("generator", g_loss.total)
        terms.update({f"g_{k}": v for k, v in g_loss.terms.items()})
        for key, value in out.metrics.items():
            if key.endswith("/perplexity") or key.endswith("/revived"):
                terms[f"rvq/{key}"] = float(value)
        return terms

    def validate(self, engine: Engine) -> dict[str, float]:
        if self.valid_set is None:
            return {}
        out_dir = engine.exp_dir / "valid" / f"step-{engine.step:08d}"
        return validate(engine.averaged("generator"), self.valid_set, self.config, out_dir)

    def export(self, engine: Engine, directory: Path) -> None:
        engine.averaged("generator").save_pretrained(directory, {
            "steps": engine.step, "train_minutes": round(engine.train_seconds / 60, 3),
            "data": {"train": str(self.train_dir), "utterances": len(self.train_set)},
            **({"init_from": str(self.init_from)} if self.init_from is not None else {})})


class Trainer:
    """Codec GAN training: `CodecGANTask` on the `Engine`, with the codec config's schedule.

    Args:
        config: the training configuration.
        train_dir, valid_dir: Kaldi data directories.
        exp_dir: where checkpoints, logs, tensorboard events and validation outputs go.
        accelerator: an ``Accelerator`` (one is made when None).
        init_from: a codec model directory to start from (fine-tuning); a checkpoint that ``fit(resume=True)``
            finds in ``exp_dir`` wins over it.
    """

    def __init__(self, config: TrainConfig, train_dir: str | Path, valid_dir: str | Path | None,
                 exp_dir: str | Path, accelerator: Accelerator | None = None,
                 init_from: str | Path | None = None) -> None:
        self.config = config
        self.task = CodecGANTask(config, train_dir, valid_dir, init_from)
        loop = config.loop(valid_at_start=init_from is not None)  # a fine-tuning run validates at step 0
        self.engine = Engine(self.task, loop, exp_dir, accelerator)
        self.accelerator = self.engine.accelerator
        self.generator = self.engine.modules["generator"]
        self.discriminator = self.engine.modules["discriminator"]
        self.opt_g = self.engine.optimizers["generator"]
        self.opt_d = self.engine.optimizers["discriminator"]
        self.loss = self.task.loss.to(self.accelerator.device)
        self.train_set, self.valid_set = self.task.train_set, self.task.valid_set

    @property
    def step(self) -> int:
        return self.engine.step

    @step.setter
    def step(self, value: int) -> None:
        self.engine.step = value

    @property
    def train_seconds(self) -> float:
        return self.engine.train_seconds

    def batches(self):
        """Training batches [B, C, T] on the device, continuing from the engine's position."""
        return self.engine.batches()

    def train_step(self, wav: torch.Tensor, timer: PhaseTimer | None = None) -> dict[str, float]:
        """One step outside `fit` (benchmarks): the engine's learning rate, then the task's step."""
        self.engine.set_lr()
        return self.task.step(wav, self.engine, timer)

    def save(self) -> Path | None:
        return self.engine.save()

    def resume(self) -> bool:
        return self.engine.resume()

    def fit(self, max_steps: int | None = None, resume: bool = False) -> None:
        self.engine.fit(max_steps, resume)


__all__ = ["CodecGANTask", "Trainer"]
