"""The engine's logs: interval means on the console, in ``train.jsonl`` and in tensorboard; validations in
``valid.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm import tqdm


class TrainLog:
    """Accumulates step terms and writes their means every ``flush``.

    Args:
        exp_dir: where ``train.jsonl``, ``valid.jsonl`` and ``tensorboard/`` go; None: console only
            (non-main processes, in-memory runs).
        name: the prefix of console lines.
    """

    def __init__(self, exp_dir: Path | None, name: str) -> None:
        self.exp_dir, self.name = exp_dir, name
        self.sums: dict[str, float] = {}
        self.count = 0
        self._writer = None
        self.enabled = exp_dir is not None

    def reset(self) -> None:
        """Empties ``train.jsonl`` and ``valid.jsonl`` (a run starting from step 0)."""
        if self.enabled:
            for name in ("train.jsonl", "valid.jsonl"):
                (self.exp_dir / name).unlink(missing_ok=True)

    def accumulate(self, terms: dict[str, float | torch.Tensor]) -> None:
        for key, value in terms.items():
            value = float(value.detach()) if torch.is_tensor(value) else float(value)
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def flush(self, step: int, epoch: int, train_seconds: float, extra: dict[str, float]) -> dict[str, float]:
        """Writes and clears the means since the last flush; returns them."""
        means = {key: value / max(1, self.count) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        if not self.enabled:
            return means
        shown = ", ".join(f"{k}={v:.4g}" for k, v in means.items() if "/" not in k)
        tqdm.write(f"{self.name} step {step} epoch {epoch}: {shown}")
        record = {"step": step, "epoch": epoch, "train_minutes": round(train_seconds / 60, 3), **extra,
                  **means}
        self._append("train.jsonl", record)
        writer = self.tensorboard()
        if writer is not None:
            for key, value in means.items():
                if math.isfinite(value):
                    writer.add_scalar(f"train/{key}", value, step)
        return means

    def validation(self, step: int, train_seconds: float, results: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._append("valid.jsonl", {"step": step, "train_minutes": round(train_seconds / 60, 3), **results})
        writer = self.tensorboard()
        if writer is not None:
            for key, value in results.items():
                if math.isfinite(value):
                    writer.add_scalar(f"valid/{key}", value, step)
        tqdm.write(f"valid step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))

    def _append(self, name: str, record: dict) -> None:
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        with open(self.exp_dir / name, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def tensorboard(self):
        """The SummaryWriter (None when tensorboard is not installed or logging is off)."""
        if self._writer is None and self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: console and JSON logs still work
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        return self._writer or None

    def close(self) -> None:
        if self._writer:
            self._writer.close()
            self._writer = None
