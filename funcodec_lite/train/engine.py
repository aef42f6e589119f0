"""The one training engine: every model of the toolkit trains here, on one CPU, one GPU or many (accelerate).

A model plugs in as a `TrainTask` (its modules, optimizers, dataset and one training step). The engine owns
everything else: the data order (a seeded permutation per epoch, dealt out by rank, resumable mid-epoch),
mixed precision (bf16 autocast, or fp16 with one gradient scaler per optimizer), gradient clipping, the
learning-rate schedule, weight EMA, checkpoints every N steps (atomic, keep the last K, safetensors +
JSON), ``resume`` that continues bit-exactly, a wall-clock budget, tqdm with ETA, tensorboard and a JSONL log.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from funcodec_lite.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from funcodec_lite.train.engine_config import PRECISIONS, LoopConfig
from funcodec_lite.train.logging import TrainLog


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, rank: int,
                  world: int) -> list[list[int]]:
    """This process's batches of one epoch: a permutation fixed by (seed, epoch), dealt out by rank.

    Every process draws the same permutation, takes every ``world``-th item starting at ``rank`` and cuts
    its share into full batches (a last partial batch is dropped so all processes step together).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_items, generator=generator)[rank::world].tolist()
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


class TrainTask:
    """A model's part of training. Subclasses implement `build`, `dataset` and `step`.

    ``name`` labels the progress bar; ``broadcast_buffers`` is DDP's option (False for models that
    all-reduce their own buffers, such as the EMA codebooks); ``ema_modules`` names the modules (each
    updated by the optimizer of the same name) whose weight EMA the engine keeps when
    ``LoopConfig.ema_decay`` > 0 (`Engine.averaged`).
    """

    name: str = "train"
    broadcast_buffers: bool = True
    ema_modules: tuple[str, ...] = ()

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        """Named modules and optimizers, built after the engine has seeded torch."""
        raise NotImplementedError

    def dataset(self) -> Dataset:
        """A map-style dataset; a ``collate`` method and a ``set_epoch(epoch)`` method are used if present."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int:
        """Usable examples in a collated batch (0: skip the batch on every rank)."""
        return len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        if isinstance(batch, (list, tuple)):
            return [t.to(device) if torch.is_tensor(t) else t for t in batch]
        return batch.to(device)

    def step(self, batch: Any, engine: Engine) -> dict[str, float | torch.Tensor]:
        """One training step; updates through ``engine.update``; returns the terms to log."""
        raise NotImplementedError

    def validate(self, engine: Engine) -> dict[str, float]:
        """Held-out metrics (main process only); empty when the task has none."""
        return {}

    def export(self, engine: Engine, directory: Path) -> None:
        """Writes the model directory of the current weights (main process only)."""

    def state(self) -> dict:
        """JSON-serialisable task state kept in checkpoints."""
        return {}

    def load_state(self, state: dict) -> None:
        pass


class Engine:
    """Trains a `TrainTask`.

    Args:
        task: the model's part.
        config: the run's settings.
        exp_dir: checkpoints, ``train.jsonl``, ``valid.jsonl``, tensorboard and the exported model go here;
            None keeps everything in memory (no checkpoints, no logs).
        accelerator: an ``Accelerator`` to use (one is made when None). Mixed precision is the engine's
            own business, so the accelerator must have ``mixed_precision="no"``.
    """

    def __init__(self, task: TrainTask, config: LoopConfig, exp_dir: str | Path | None,
                 accelerator: Accelerator | None = None) -> None:
        self.task, self.config = task, config
        self.exp_dir = Path(exp_dir) if exp_dir is not None else None
        if accelerator is None:
            ddp = DistributedDataParallelKwargs(broadcast_buffers=task.broadcast_buffers)
            accelerator = Accelerator(mixed_precision="no", kwargs_handlers=[ddp],
                                      cpu=not torch.cuda.is_available())
        self.accelerator = accelerator
        torch.manual_seed(config.seed)
        modules, optimizers = task.build()
        prepared = accelerator.prepare(*modules.values(), *optimizers.values())
        self.modules: dict[str, nn.Module] = dict(zip(modules, prepared[: len(modules)]))
        self.optimizers: dict[str, torch.optim.Optimizer] = dict(zip(optimizers, prepared[len(modules):]))
        device_type = accelerator.device.type
        self.scalers = {name: torch.amp.GradScaler(device_type, enabled=config.mixed_precision == "fp16")
                        for name in optimizers}
        # weight averages: plain copies (no DDP wrapper, no gradients), updated in `update`
        self.ema: dict[str, nn.Module] = {
            name: copy.deepcopy(self.unwrap(name)).requires_grad_(False)
            for name in (task.ema_modules if config.ema_decay > 0 else ())}
        self.dataset = task.dataset()
        self.step, self.epoch, self.position = 0, 0, 0
        self.skipped_batches = 0
        self.best: float | None = None  # best value of config.best_metric so far
        self.train_seconds = 0.0  # seconds in training steps (validation and checkpoints excluded), all runs
        self.log = TrainLog(self.exp_dir if accelerator.is_main_process else None, task.name)

    # --------------------------------------------------------------------------------------------
    def unwrap(self, name: str) -> nn.Module:
        """The named module without its DDP wrapper."""
        return self.accelerator.unwrap_model(self.modules[name])

    def averaged(self, name: str) -> nn.Module:
        """The named module's weight EMA when the engine keeps one, else the module itself (unwrapped)."""
        return self.ema[name] if name in self.ema else self.unwrap(name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for the configured precision (a no-op for ``no``)."""
        precision = self.config.mixed_precision
        if precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.accelerator.device.type, dtype=dtype)

    def update(self, name: str, loss: torch.Tensor) -> float:
        """Backward of ``loss`` and one step of optimizer ``name``; returns the gradient norm before clipping.

        Gradients are zeroed first, scaled by this optimizer's own GradScaler under fp16 (so an overflow
        in one network never changes another's scale), clipped to ``grad_clip`` when it is > 0.
        """
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(scaler.scale(loss))
        inner = getattr(optimizer, "optimizer", optimizer)
        if scaler.is_enabled():
            scaler.unscale_(inner)
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        limit = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        norm = float(self.accelerator.clip_grad_norm_(parameters, limit))
        scaler.step(optimizer)
        scaler.update()
        if name in self.ema:
            ema_update(self.ema[name], self.unwrap(name), self.config.ema_decay)
        return norm

    def lr_factor(self) -> float:
        """The current step's learning rate relative to the initial one (`LoopConfig.lr_factor`)."""
        return self.config.lr_factor(self.step)

    # --------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[Any]:
        """Training batches on the device forever, continuing from (epoch, position).

        A batch with no usable example on any rank (all its files failed) is skipped on every rank,
        so that the ranks keep stepping on the same batch index.
        """
        acc, config = self.accelerator, self.config
        collate = getattr(self.dataset, "collate", None)
        while True:
            plan = epoch_batches(len(self.dataset), config.batch_size, config.seed, self.epoch,
                                 acc.process_index, acc.num_processes)
            if not plan:
                raise ValueError(f"{len(self.dataset)} training examples cannot fill one batch of "
                                 f"{config.batch_size} per process")
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            # the loader's own generator: its iterator draws a worker seed, which must not come from (and
            # advance) the global RNG, or a resumed run's dropout would differ from the straight run's
            workers = torch.Generator().manual_seed(config.seed * 100_003 + self.epoch)
            loader = DataLoader(self.dataset, batch_sampler=plan[self.position:], generator=workers,
                                num_workers=config.num_workers, collate_fn=collate)
            for batch in loader:
                self.position += 1
                size = self.task.batch_size(batch)
                if acc.num_processes > 1:
                    size = _min_over_ranks(acc, size)
                if size == 0:
                    self.skipped_batches += 1
                    continue
                yield self.task.to_device(batch, acc.device)
            self.epoch, self.position = self.epoch + 1, 0

    # --------------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        """A checkpoint of everything resume needs, and the exported model directory (main process)."""
        if self.exp_dir is None:
            return None
        extra = {"epoch": self.epoch, "position": self.position, "skipped_batches": self.skipped_batches,
                 "train_seconds": self.train_seconds, "engine": asdict(self.config),
                 "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
                 "task": self.task.state(), "best": self.best}
        path = None
        if self.accelerator.is_main_process:
            modules = {name: self.unwrap(name) for name in self.modules}
            modules.update({f"ema-{name}": module for name, module in self.ema.items()})
            optimizers = {name: getattr(opt, "optimizer", opt) for name, opt in self.optimizers.items()}
            path = save_checkpoint(self.exp_dir, self.step, modules, optimizers, extra,
                                   keep_last=self.config.keep_last)
            self.task.export(self, self.exp_dir / "model")
        self.accelerator.wait_for_everyone()
        return path

    def resume(self) -> bool:
        """Loads the newest checkpoint of ``exp_dir``; False when there is none."""
        directory = latest_checkpoint(self.exp_dir) if self.exp_dir is not None else None
        if directory is None:
            return False
        modules = {name: self.unwrap(name) for name in self.modules}
        # averages saved with the checkpoint; one begun after it (EMA switched on) starts from its weights
        saved = {name for name in self.ema if (directory / f"ema-{name}.safetensors").is_file()}
        modules.update({f"ema-{name}": self.ema[name] for name in saved})
        optimizers = {name: getattr(opt, "optimizer", opt) for name, opt in self.optimizers.items()}
        state = load_checkpoint(directory, modules, optimizers)
        for name in set(self.ema) - saved:
            self.ema[name].load_state_dict(self.unwrap(name).state_dict())
        extra = state["extra"]
        self.step, self.epoch, self.position = state["step"], extra["epoch"], extra["position"]
        self.skipped_batches = extra.get("skipped_batches", 0)
        self.train_seconds = extra.get("train_seconds", 0.0)
        for name, scaler_state in extra.get("scalers", {}).items():
            if name in self.scalers and scaler_state:
                self.scalers[name].load_state_dict(scaler_state)
        self.task.load_state(extra.get("task", {}))
        self.best = extra.get("best")
        self.accelerator.print(f"resumed from {directory} at step {self.step}")
        return True

    def _validate(self) -> None:
        if self.accelerator.is_main_process:
            results = self.task.validate(self)
            if results:
                self.log.validation(self.step, self.train_seconds, results)
                self._keep_best(results)
        self.accelerator.wait_for_everyone()

    def _keep_best(self, results: dict[str, float]) -> None:
        """Exports the model to ``exp_dir/best`` when ``best_metric`` improves (main process)."""
        name = self.config.best_metric
        if not name or self.exp_dir is None:
            return
        if name not in results:
            raise ValueError(f"best_metric {name!r} is not a validation result; known: {sorted(results)}")
        if self.best is None or results[name] < self.best:
            self.best = float(results[name])
            self.task.export(self, self.exp_dir / "best")
            record = {"step": self.step, name: self.best, "train_minutes": round(self.train_seconds / 60, 3)}
            (self.exp_dir / "best" / "best.json").write_text(json.dumps(record) + "\n", encoding="utf-8")

    def _out_of_time(self, deadline: float) -> bool:
        """True once the budget is spent on any rank, so that every rank stops at the same step."""
        if deadline == math.inf:
            return False
        flag = torch.tensor([float(time.monotonic() >= deadline)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def set_lr(self) -> None:
        """Every optimizer's rate for the current step: its initial rate times `lr_factor`."""
        factor = self.lr_factor()
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor

    def fit(self, max_steps: int | None = None, resume: bool = False) -> None:
        """Trains until ``max_steps`` (default: the config's), checkpointing on the way and at the end."""
        config = self.config
        max_steps = config.steps if max_steps is None else max_steps
        if not (resume and self.resume()) and self.step == 0:
            self.log.reset()  # a fresh run: logs of an earlier run in this directory are replaced
            if self.exp_dir is not None and self.accelerator.is_main_process:
                shutil.rmtree(self.exp_dir / "best", ignore_errors=True)  # and so is its best model
            if config.valid_at_start:
                self._validate()
        batches = self.batches()
        main = self.accelerator.is_main_process
        bar = tqdm(total=max_steps, initial=self.step, disable=not main, desc=self.task.name,
                   dynamic_ncols=True)
        deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes > 0 else math.inf
        for module in self.modules.values():
            module.train()
        while self.step < max_steps:
            if self._out_of_time(deadline):
                self.accelerator.print(f"stopping at step {self.step}: max_minutes={config.max_minutes:g} "
                                       "reached")
                break
            start = time.perf_counter()
            self.set_lr()
            terms = self.task.step(next(batches), self)
            self.train_seconds += time.perf_counter() - start
            self.step += 1
            bar.update(1)
            self.log.accumulate(terms)
            if self.step % config.log_every == 0 or self.step == max_steps:
                self.log.flush(self.step, self.epoch, self.train_seconds,
                               {"skipped_batches": self.skipped_batches})
            if config.valid_every and self.step % config.valid_every == 0:
                self._validate()
            if config.checkpoint_every and self.step % config.checkpoint_every == 0 and self.step < max_steps:
                self.save()
        bar.close()
        self.save()
        self.log.close()


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """One EMA step: each parameter of ``average`` ← decay · itself + (1 − decay) · ``model``'s; buffers
    (running statistics, codebooks) are copied from ``model``. Both modules have the same structure."""
    for mean, param in zip(average.parameters(), model.parameters(), strict=True):
        mean.mul_(decay).add_(param.detach(), alpha=1.0 - decay)
    for mean, buffer in zip(average.buffers(), model.buffers(), strict=True):
        mean.copy_(buffer)


def _min_over_ranks(accelerator: Accelerator, value: int) -> int:
    """The smallest ``value`` over all processes (an all-gather: reduce has no min)."""
    gathered = accelerator.gather(torch.tensor([value], device=accelerator.device))
    return int(gathered.min().item())


__all__ = ["PRECISIONS", "Engine", "LoopConfig", "TrainTask", "ema_update", "epoch_batches"]
