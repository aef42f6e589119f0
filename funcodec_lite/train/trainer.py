"""GAN training of a Codec with accelerate: one CPU, one GPU, or many processes."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch.utils.data import DataLoader
from tqdm import tqdm

from funcodec_lite.codec.model import Codec
from funcodec_lite.data import AudioDataset, DataConfig
from funcodec_lite.discriminators import MultiDiscriminator
from funcodec_lite.losses import CodecLoss
from funcodec_lite.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from funcodec_lite.train.config import TrainConfig
from funcodec_lite.train.validate import validate
from funcodec_lite.utils.profile import PhaseTimer

logger = logging.getLogger(__name__)


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, rank: int,
                  world: int) -> list[list[int]]:
    """This process's batches of one epoch: a permutation fixed by (seed, epoch), dealt out by rank.

    Every process draws the same permutation, takes every ``world``-th item starting at ``rank`` and cuts
    its share into full batches (a last partial batch is dropped so all processes step together).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_items, generator=generator)[rank::world].tolist()
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


class Trainer:
    """Alternating discriminator/generator updates of a ``Codec``.

    Args:
        config: the training configuration.
        train_dir, valid_dir: Kaldi data directories.
        exp_dir: where checkpoints, logs, tensorboard events and validation outputs go.
        accelerator: an ``Accelerator`` (one is made from the config when None).
    """

    def __init__(self, config: TrainConfig, train_dir: str | Path, valid_dir: str | Path | None,
                 exp_dir: str | Path, accelerator: Accelerator | None = None) -> None:
        self.config = config
        self.exp_dir = Path(exp_dir)
        schedule = config.schedule
        if accelerator is None:
            ddp = DistributedDataParallelKwargs(broadcast_buffers=False)  # the RVQ all-reduces its own
            accelerator = Accelerator(mixed_precision=schedule.mixed_precision, kwargs_handlers=[ddp],
                                      cpu=not torch.cuda.is_available())
        self.accelerator = accelerator
        torch.manual_seed(schedule.seed)
        codec_config = config.codec
        data_config = DataConfig(sample_rate=codec_config.sample_rate, channels=codec_config.channels,
                                 segment_seconds=config.data.segment_seconds,
                                 max_seconds=config.data.valid_max_seconds, seed=schedule.seed,
                                 gain_db=config.data.gain_db, dither=config.data.dither)
        self.train_set = AudioDataset(train_dir, data_config, train=True)
        self.valid_set = AudioDataset(valid_dir, data_config, train=False) if valid_dir else None
        self.generator = Codec(codec_config)
        self.discriminator = MultiDiscriminator(config.discriminator)
        self.loss = CodecLoss(codec_config.sample_rate, config.loss, gan=config.gan)
        optim = config.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=optim.lr, betas=optim.betas,
                                      weight_decay=optim.weight_decay)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.disc_lr or optim.lr,
                                      betas=optim.betas, weight_decay=optim.weight_decay)
        self.generator, self.discriminator, self.opt_g, self.opt_d = accelerator.prepare(
            self.generator, self.discriminator, self.opt_g, self.opt_d)
        self.loss = self.loss.to(accelerator.device)
        self.step, self.epoch, self.position = 0, 0, 0
        self.skipped = 0
        self.train_seconds = 0.0  # wall-clock seconds in training steps (validation excluded), all runs
        self._writer = None

    # ----------------------------------------------------------------------------------------------
    def _modules(self) -> dict:
        unwrap = self.accelerator.unwrap_model
        return {"generator": unwrap(self.generator), "discriminator": unwrap(self.discriminator)}

    def _optimizers(self) -> dict:
        return {"generator": self.opt_g.optimizer if hasattr(self.opt_g, "optimizer") else self.opt_g,
                "discriminator": self.opt_d.optimizer if hasattr(self.opt_d, "optimizer") else self.opt_d}

    def _lr_factor(self) -> float:
        optim = self.config.optim
        return optim.gamma ** self.step if optim.scheduler == "exponential" else 1.0

    def save(self) -> Path:
        extra = {"epoch": self.epoch, "position": self.position, "skipped": self.skipped,
                 "train_seconds": self.train_seconds, "config": self.config.to_dict()}
        path = None
        if self.accelerator.is_main_process:
            path = save_checkpoint(self.exp_dir, self.step, self._modules(), self._optimizers(), extra,
                                   keep_last=self.config.schedule.keep_last)
            self._modules()["generator"].save_pretrained(self.exp_dir / "model")
        self.accelerator.wait_for_everyone()
        return path

    def resume(self) -> bool:
        """Loads the newest checkpoint of ``exp_dir``; returns False when there is none."""
        directory = latest_checkpoint(self.exp_dir)
        if directory is None:
            return False
        state = load_checkpoint(directory, self._modules(), self._optimizers())
        self.step = state["step"]
        self.epoch, self.position = state["extra"]["epoch"], state["extra"]["position"]
        self.skipped = state["extra"].get("skipped", 0)
        self.train_seconds = state["extra"].get("train_seconds", 0.0)
        self.accelerator.print(f"resumed from {directory} at step {self.step}")
        return True

    # ----------------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[torch.Tensor]:
        """Training batches [B, C, T] forever, continuing from (epoch, position)."""
        acc = self.accelerator
        while True:
            plan = epoch_batches(len(self.train_set), self.config.data.batch_size, self.config.schedule.seed,
                                 self.epoch, acc.process_index, acc.num_processes)
            if not plan:
                raise ValueError(f"{len(self.train_set)} training utterances cannot fill one batch of "
                                 f"{self.config.data.batch_size} per process")
            self.train_set.set_epoch(self.epoch)
            loader = DataLoader(self.train_set, batch_sampler=plan[self.position:],
                                num_workers=self.config.data.num_workers, collate_fn=self.train_set.collate)
            for batch in loader:
                self.position += 1
                self.skipped += len(batch.skipped)
                if len(batch) == 0:
                    continue
                yield batch.wav.to(acc.device)
            self.epoch, self.position = self.epoch + 1, 0

    def _clip(self, module: torch.nn.Module) -> float:
        limit = self.config.optim.grad_clip
        if limit <= 0:
            return float("nan")
        return float(self.accelerator.clip_grad_norm_(module.parameters(), limit))

    def train_step(self, wav: torch.Tensor, timer: PhaseTimer | None = None) -> dict[str, float]:
        """One discriminator update (once started, every ``disc_every`` steps) and one generator update.

        Returns the logged terms.

        ``timer`` (optional) receives the seconds spent in each phase: generator forward,
        discriminator forward + loss, discriminator backward + update, generator losses (adversarial
        and feature matching included), generator backward + update.
        """
        acc, schedule = self.accelerator, self.config.schedule
        phase = timer or (lambda name: contextlib.nullcontext())
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * self._lr_factor()
        self.generator.train()
        with phase("generator_forward"), acc.autocast():
            out = self.generator(wav)
        terms: dict[str, float] = {}
        use_disc = self.step >= schedule.disc_start_step and len(self.config.discriminator.kinds) > 0
        update_disc = use_disc and (self.step - schedule.disc_start_step) % schedule.disc_every == 0
        real = fake = None
        if use_disc:
            prepare = acc.unwrap_model(self.discriminator).prepare
            with phase("discriminator_forward"), acc.autocast():
                real_in, fake_in = prepare(wav), prepare(out.wav)
        if update_disc:
            # STFTs of the real and decoded signal are taken once and shared by both updates
            with phase("discriminator_forward"), acc.autocast():
                real, fake = self.discriminator(real_in), self.discriminator(fake_in.detach())
                d_loss = self.loss.discriminator_loss(real, fake)
            with phase("discriminator_backward"):
                self.opt_d.zero_grad(set_to_none=True)
                acc.backward(d_loss.total)
                terms["grad_norm_d"] = self._clip(self.discriminator)
                self.opt_d.step()
            terms.update(d_loss.terms)
        with phase("generator_losses"), acc.autocast():
            if use_disc:
                # feature matching detaches the real features: no graph needed for them
                with torch.no_grad():
                    real = self.discriminator(real_in)
                fake = self.discriminator(fake_in)
            g_loss = self.loss(wav, out.wav, out.commit_loss, real, fake)
        with phase("generator_backward"):
            self.opt_g.zero_grad(set_to_none=True)
            acc.backward(g_loss.total)
            terms["grad_norm_g"] = self._clip(self.generator)
            self.opt_g.step()
        terms.update({f"g_{k}": v for k, v in g_loss.terms.items()})
        for key, value in out.metrics.items():
            if key.endswith("/perplexity") or key.endswith("/revived"):
                terms[f"rvq/{key}"] = float(value)
        return terms

    # ----------------------------------------------------------------------------------------------
    def _log(self, terms: dict[str, float], seconds: float) -> None:
        if not self.accelerator.is_main_process:
            return
        head = ", ".join(f"{k}={v:.4g}" for k, v in terms.items() if not k.startswith("rvq/"))
        tqdm.write(f"step {self.step} epoch {self.epoch} ({seconds:.2f} s/step, "
                   f"skipped files {self.skipped}): {head}")
        writer = self._tensorboard()
        if writer is not None:
            for key, value in terms.items():
                if math.isfinite(value):
                    writer.add_scalar(f"train/{key}", value, self.step)

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: console and JSON logs still work
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        return self._writer or None

    def _validate(self) -> None:
        if self.valid_set is None or not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return
        generator = self._modules()["generator"]
        out_dir = self.exp_dir / "valid" / f"step-{self.step:08d}"
        results = validate(generator, self.valid_set, self.config, out_dir)
        with open(self.exp_dir / "valid.jsonl", "a", encoding="utf-8") as handle:
            record = {"step": self.step, "train_minutes": round(self.train_seconds / 60, 3), **results}
            handle.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        for key, value in results.items():
            if writer is not None and math.isfinite(value):
                writer.add_scalar(f"valid/{key}", value, self.step)
        tqdm.write(f"valid step {self.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        self.accelerator.wait_for_everyone()

    def _out_of_time(self, deadline: float) -> bool:
        """True once the wall-clock budget is spent on any rank, so that every rank stops at the same step."""
        if deadline == math.inf:
            return False
        flag = torch.tensor([float(time.monotonic() >= deadline)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="max").item())

    def fit(self, max_steps: int | None = None, resume: bool = False) -> None:
        """Trains until ``max_steps`` (default: the config's), checkpointing on the way and at the end."""
        schedule = self.config.schedule
        max_steps = schedule.max_steps if max_steps is None else max_steps
        if resume:
            self.resume()
        batches = self._batches()
        bar = tqdm(total=max_steps, initial=self.step, disable=not self.accelerator.is_main_process,
                   desc="train", dynamic_ncols=True)
        deadline = time.monotonic() + 60 * schedule.max_minutes if schedule.max_minutes > 0 else math.inf
        while self.step < max_steps:
            if self._out_of_time(deadline):
                self.accelerator.print(f"stopping at step {self.step}: max_minutes={schedule.max_minutes:g} "
                                       "reached")
                break
            start = time.perf_counter()
            terms = self.train_step(next(batches))
            self.train_seconds += time.perf_counter() - start
            self.step += 1
            bar.update(1)
            if self.step % schedule.log_every == 0 or self.step == max_steps:
                self._log(terms, time.perf_counter() - start)
            if self.step % schedule.valid_every == 0:
                self._validate()
            if self.step % schedule.checkpoint_every == 0 and self.step < max_steps:
                self.save()
        bar.close()
        self.save()
        if self._writer:
            self._writer.close()
