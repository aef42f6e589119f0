"""Training of the token models on the engine: one task for the AR, NAR, multi-scale and masked LMs.

``lm.yaml`` holds ``model`` (``kind: codec_lm | nar_lm | multiscale_lm | masked_lm`` and the model's
config fields), ``train`` (the engine's `LoopConfig`: steps, batch size, Adam, checkpoints, validation) and
``data`` (`LMDataConfig`). Held-out NLL per codebook is written to ``valid.jsonl`` every ``valid_every``
steps (a ``train`` key; ``data.valid_every``, where it was first, is read into it; default 500).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from funcodec_lite.lm.codec_lm import CodecLM, LMBatch
from funcodec_lite.lm.masked import MaskedLM
from funcodec_lite.lm.multiscale import MultiScaleLM
from funcodec_lite.lm.nar import NARCodecLM
from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml
from funcodec_lite.utils.weights import config_from_dict, save_model_dir

LM_CLASSES: dict[str, type] = {cls.model_kind: cls for cls in (CodecLM, NARCodecLM, MultiScaleLM, MaskedLM)}
LM_KINDS = tuple(LM_CLASSES)  # the model kinds this task trains
LM_LOOP = {"valid_every": 500}  # the loop config the ``train`` section starts from


@dataclass
class LMDataConfig:
    """Args:
        n_q: codebooks modelled (the first n_q of each token file).
        segment_frames: target frames per training example at most (random crops; 0: whole).
        prompt_frames: frames of an acoustic prompt cut from the same utterance's start when an example has
            no prompt of its own (0: none).
        valid_examples: held-out examples scored at each validation (every ``train.valid_every`` steps).
        init_from_codec: start the embedding tables from the codec's codebooks (AR and NAR models).
    """

    n_q: int = 4
    segment_frames: int = 250
    prompt_frames: int = 0
    valid_examples: int = 64
    init_from_codec: bool = False


@dataclass
class LMTrainConfig:
    """A token model's training run (``lm.yaml``)."""

    model: dict = field(default_factory=lambda: {"kind": "codec_lm"})
    train: LoopConfig = field(default_factory=lambda: LoopConfig.from_dict({}, LM_LOOP))
    data: LMDataConfig = field(default_factory=LMDataConfig)

    @property
    def kind(self) -> str:
        return self.model.get("kind", "codec_lm")

    def model_config(self, **fixed: Any) -> Any:
        """The model's config dataclass, with ``fixed`` fields (set by the data: card, n_q, vocabularies)."""
        if self.kind not in LM_KINDS:
            raise ConfigError(f"model.kind must be one of {LM_KINDS}, got {self.kind!r}")
        data = {k: v for k, v in self.model.items() if k != "kind"}
        clash = sorted(set(data) & set(fixed))
        if clash:
            raise ConfigError(f"model: {clash} are set by the data, not the config")
        return config_from_dict(LM_CLASSES[self.kind].config_class, {**data, **fixed})

    @classmethod
    def from_dict(cls, data: dict) -> LMTrainConfig:
        unknown = sorted(set(data) - {"model", "train", "data"})
        if unknown:
            raise ConfigError(f"unknown sections {unknown}; known: model, train, data")
        train, data_section = dict(data.get("train") or {}), dict(data.get("data") or {})
        if "valid_every" in data_section:  # the key's first place: read into the loop config
            if "valid_every" in train:
                raise ConfigError("valid_every: give it once, under train")
            train["valid_every"] = data_section.pop("valid_every")
        return cls(model=dict(data.get("model") or {"kind": "codec_lm"}),
                   train=LoopConfig.from_dict(train, LM_LOOP),
                   data=build_dataclass(LMDataConfig, data_section, "data"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> LMTrainConfig:
        data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data)


def batch_to(batch: LMBatch, device: torch.device) -> LMBatch:
    return LMBatch(*[t.to(device) if torch.is_tensor(t) else t for t in batch])


@torch.no_grad()
def heldout_nll(model: nn.Module, batches: list[LMBatch]) -> dict[str, float]:
    """Mean NLL (nats per code) per codebook and overall, and accuracy, on held-out batches.

    The NAR model is scored on every stage 1..K-1 of every example; codebooks a model does not predict
    (codebook 0 of the NAR model) are left out.
    """
    with torch.random.fork_rng():  # the masked model draws its masks: the same ones at every validation
        torch.manual_seed(0)
        return _heldout_nll(model, batches)


def _heldout_nll(model: nn.Module, batches: list[LMBatch]) -> dict[str, float]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    given = getattr(model.config, "n_conditioning", 0)  # codebooks a coarse-to-fine model only reads
    sums: dict[int, float] = {}
    counts: dict[int, float] = {}
    correct = total = 0.0
    for batch in batches:
        batch = batch_to(batch, device)
        k = batch.codes.shape[1]
        stages = range(1, k) if getattr(model, "model_kind", "") == "nar_lm" else [None]
        for stage in stages:
            if stage is None:
                loss = model.loss(batch, drop=None)
            else:
                loss = model.loss(batch, stage=torch.full((len(batch.codes),), stage, device=device))
            weights = _codebook_weights(loss, k, stage, given)
            for q in range(k):
                if weights[q] > 0:
                    sums[q] = sums.get(q, 0.0) + float(loss.nll_per_codebook[q]) * weights[q]
                    counts[q] = counts.get(q, 0.0) + weights[q]
            correct += float(loss.accuracy) * float(loss.tokens)
            total += float(loss.tokens)
    model.train(was_training)
    results = {f"nll/cb{q}": sums[q] / counts[q] for q in sorted(sums)}
    results["nll"] = sum(sums.values()) / max(1e-9, sum(counts.values()))
    results["accuracy"] = correct / max(1.0, total)
    results["perplexity"] = math.exp(min(50.0, results["nll"]))
    return results


def _codebook_weights(loss: Any, k: int, stage: int | None, given: int = 0) -> list[float]:
    if stage is not None:
        return [float(loss.tokens) if q == stage else 0.0 for q in range(k)]
    return [float(loss.tokens) / (k - given) if q >= given else 0.0 for q in range(k)]


class WithLoss(nn.Module):
    """The model with its loss as ``forward``, so that a DDP wrapper sees (and syncs) the training pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: LMBatch) -> Any:
        return self.model.loss(batch)


class LMTask(TrainTask):
    """A token model's part of training: Adam on ``model.loss(batch)``; held-out NLL per codebook.

    Args:
        config: the run's settings.
        fixed: model config fields fixed by the data (card, n_q, n_classes, n_phonemes, ...).
        train_set: a dataset whose ``collate`` makes `LMBatch` es.
        valid_batches: held-out batches (may be empty).
        provenance: recorded in the model directory.
    """

    name = "lm"

    def __init__(self, config: LMTrainConfig, fixed: dict, train_set: Dataset, valid_batches: list[LMBatch],
                 provenance: dict | None = None, codebooks: torch.Tensor | None = None) -> None:
        self.config, self.fixed, self.codebooks = config, fixed, codebooks
        self.model_config = config.model_config(**fixed)
        self.train_set, self.valid_batches = train_set, valid_batches
        self.provenance = provenance or {}

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        model = LM_CLASSES[self.config.kind](self.model_config)
        if self.codebooks is not None:
            if not hasattr(model, "init_from_codebooks"):
                raise ConfigError(f"{self.config.kind} cannot start from the codec's codebooks")
            model.init_from_codebooks(self.codebooks)
        model = WithLoss(model)
        loop = self.config.train
        return {"model": model}, {"model": loop.make_optimizer(model.parameters())}

    def dataset(self) -> Dataset:
        return self.train_set

    def batch_size(self, batch: LMBatch) -> int:
        return len(batch.codes)

    def to_device(self, batch: LMBatch, device: torch.device) -> LMBatch:
        return batch_to(batch, device)

    def step(self, batch: LMBatch, engine: Engine) -> dict[str, torch.Tensor]:
        with engine.autocast():
            loss = engine.modules["model"](batch)  # through DDP's forward when distributed
        engine.update("model", loss.loss)
        return {"loss": loss.loss.detach(), "accuracy": loss.accuracy.detach()}

    def validate(self, engine: Engine) -> dict[str, float]:
        return heldout_nll(engine.unwrap("model").model, self.valid_batches) if self.valid_batches else {}

    def export(self, engine: Engine, directory: Path) -> None:
        save_model_dir(directory, engine.unwrap("model").model,
                       {**self.provenance, "steps": engine.step,
                        "train_minutes": round(engine.train_seconds / 60, 3)})


def train_lm(config: LMTrainConfig, fixed: dict, train_set: Dataset, valid_batches: list[LMBatch],
             exp_dir: str | Path, resume: bool = False, provenance: dict | None = None,
             max_steps: int | None = None, codebooks: torch.Tensor | None = None) -> nn.Module:
    """Trains a token model on the engine; the model directory is ``exp_dir/model``. ``codebooks``
    [K, card, D] (the codec's) initialise the embedding tables."""
    task = LMTask(config, fixed, train_set, valid_batches, provenance, codebooks)
    engine = Engine(task, config.train, exp_dir)
    engine.fit(max_steps=max_steps, resume=resume)
    return engine.unwrap("model").model.eval()
