"""Training of the Foley recipe's mel VQ-VAE and PixelSNAIL prior on the engine (`funcodec_lite.train`).

Both models train on in-memory tensors (the whole DCASE dev set's mels are 4,850 x 80 x 344 floats,
530 MB; code maps are far smaller): a TensorDataset in the engine's seeded, rank-sharded order. The EMA
codebooks all-reduce their statistics across processes themselves.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.lm import PixelSNAIL, PixelSNAILConfig
from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask
from funcodec_lite.utils.weights import save_model_dir


def _as_image(mel: torch.Tensor) -> torch.Tensor:
    return mel[:, None] if mel.dim() == 3 else mel


class SingleModelTask(TrainTask):
    """One module, one optimizer (``loop.make_optimizer``), a TensorDataset: every non-GAN Foley model.

    Subclasses set ``name`` and implement `make_model` and `loss`.
    """

    def __init__(self, tensors: tuple[torch.Tensor, ...], loop: LoopConfig,
                 provenance: dict | None = None) -> None:
        self.tensors, self.loop, self.provenance = tensors, loop, provenance or {}

    def make_model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, module: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": scalar to minimise, ...terms to log}`` (the forward goes through ``module``)."""
        raise NotImplementedError

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        model = self.make_model()
        return {"model": model}, {"model": self.loop.make_optimizer(model.parameters())}

    def dataset(self) -> TensorDataset:
        return TensorDataset(*self.tensors)

    def step(self, batch: list[torch.Tensor], engine: Engine) -> dict[str, torch.Tensor]:
        with engine.autocast():
            terms = self.loss(engine.modules["model"], batch)
        engine.update("model", terms["loss"])
        return {key: value.detach() for key, value in terms.items()}

    def export(self, engine: Engine, directory: Path) -> None:
        save_model_dir(directory, engine.averaged("model"),
                       {**self.provenance, "steps": engine.step,
                        "train_minutes": round(engine.train_seconds / 60, 3)})


class VQVAETask(SingleModelTask):
    """The mel VQ-VAE / RVQ-VAE: mse(mel_hat, mel) + commitment on log-mels [N, n_mels, frames]."""

    name = "vqvae"
    broadcast_buffers = False  # the EMA codebooks all-reduce their own statistics

    def __init__(self, config: MelVQVAEConfig, mels: torch.Tensor, loop: LoopConfig,
                 provenance: dict | None = None) -> None:
        super().__init__((mels,), loop, provenance)
        self.config = config

    def make_model(self) -> MelVQVAE:
        return MelVQVAE(self.config)

    def loss(self, module: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        mel = _as_image(batch[0])
        terms = _unwrapped(module).objective(module(mel), mel)
        return {"loss": terms.total, "mse": terms.recon, "commit": terms.commit}


class PriorTask(SingleModelTask):
    """The class-conditional PixelSNAIL: cross-entropy of code maps [N, H, W] given labels [N]; with
    ``ema_decay`` > 0 its weight average is what is exported."""

    name = "prior"
    ema_modules = ("model",)

    def __init__(self, config: PixelSNAILConfig, code_maps: torch.Tensor, labels: torch.Tensor,
                 loop: LoopConfig, provenance: dict | None = None) -> None:
        super().__init__((code_maps, labels), loop, provenance)
        self.config = config

    def make_model(self) -> PixelSNAIL:
        return PixelSNAIL(self.config)

    def loss(self, module: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        codes, classes = batch
        terms = PixelSNAIL.objective(module(codes, classes), codes)
        return {"loss": terms.loss, "nll": terms.loss, "accuracy": terms.accuracy}


def _unwrapped(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


def train_vqvae(config: MelVQVAEConfig, mels: torch.Tensor, loop: LoopConfig, exp_dir: str | Path,
                resume: bool = False, provenance: dict | None = None) -> MelVQVAE:
    """Trains the mel VQ-VAE / RVQ-VAE on log-mels [N, n_mels, frames]; the model directory is
    ``exp_dir/model`` (checkpoints in ``exp_dir/checkpoints``; ``resume`` continues from the newest)."""
    engine = Engine(VQVAETask(config, mels, loop, provenance), loop, exp_dir)
    engine.fit(resume=resume)
    return engine.unwrap("model").eval()


@torch.no_grad()
def vqvae_error(model: MelVQVAE, mels: torch.Tensor, batch_size: int = 32) -> dict:
    """Reconstruction MSE of mels [N, n_mels, frames] through the codes, and each codebook's usage.

    Returns:
        dict: ``mse`` (float, all levels together), ``codes_used`` and ``perplexity`` (lists, one entry
        per RVQ level: the codes of level i are rows i·h .. (i+1)·h - 1 of the stacked code map, and
        each level has its own codebook, so their histograms are not pooled).
    """
    model.eval()
    errors, codes = [], []
    device = next(model.parameters()).device
    for start in range(0, len(mels), batch_size):
        mel = _as_image(mels[start : start + batch_size].to(device))
        code_map = model.encode(mel)
        errors.append(((model.decode_codes(code_map).reshape(mel.shape) - mel) ** 2).mean(dim=(1, 2, 3)))
        codes.append(model.unstack_codes(code_map).transpose(0, 1).flatten(1))  # [n_q, B·h·w]
    per_level = torch.cat(codes, dim=1)
    used, perplexity = [], []
    for level in per_level:
        counts = torch.bincount(level, minlength=model.config.codebook_size).float()
        probs = counts[counts > 0] / counts.sum()
        used.append(int((counts > 0).sum()))
        perplexity.append(float(torch.exp(-(probs * probs.log()).sum())))
    return {"mse": float(torch.cat(errors).mean()), "codes_used": used, "perplexity": perplexity}


@torch.no_grad()
def extract_code_maps(model: MelVQVAE, mels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Code maps [N, H, W] (int64) of mels [N, n_mels, frames]."""
    model.eval()
    device = next(model.parameters()).device
    maps = [
        model.encode(_as_image(mels[s : s + batch_size].to(device))).cpu()
        for s in range(0, len(mels), batch_size)
    ]
    return torch.cat(maps).long()


def train_prior(config: PixelSNAILConfig, code_maps: torch.Tensor, labels: torch.Tensor, loop: LoopConfig,
                exp_dir: str | Path, resume: bool = False, provenance: dict | None = None) -> PixelSNAIL:
    """Trains the class-conditional PixelSNAIL on code maps [N, H, W], labels [N]; saves ``exp_dir/model``."""
    engine = Engine(PriorTask(config, code_maps, labels, loop, provenance), loop, exp_dir)
    engine.fit(resume=resume)
    return engine.averaged("model").eval()


@torch.no_grad()
def prior_nll(
    model: PixelSNAIL, code_maps: torch.Tensor, labels: torch.Tensor, batch_size: int = 32
) -> dict[str, float]:
    """Mean negative log-likelihood (nats per code) and top-1 accuracy of held-out code maps."""
    model.eval()
    device = next(model.parameters()).device
    nll, correct, count = 0.0, 0.0, 0
    for start in range(0, len(code_maps), batch_size):
        codes = code_maps[start : start + batch_size].to(device)
        terms = model.objective(model(codes, labels[start : start + batch_size].to(device)), codes, "sum")
        nll, correct, count = nll + float(terms.loss), correct + float(terms.accuracy), count + codes.numel()
    return {"nll": nll / count, "accuracy": correct / count, "perplexity": math.exp(nll / count)}
