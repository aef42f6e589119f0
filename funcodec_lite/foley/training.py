"""Training loops of the Foley recipe (mel VQ-VAE, PixelSNAIL prior) on one CPU, one GPU or many (accelerate).

Both models train on in-memory tensors (the whole DCASE dev set's mels are 4,850 x 80 x 344 floats,
530 MB; code maps are far smaller), so the loop is a seeded shuffle over a TensorDataset sharded by
accelerate. The EMA codebooks all-reduce their statistics across processes themselves.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.lm import PixelSNAIL, PixelSNAILConfig
from funcodec_lite.utils.weights import save_model_dir


@dataclass
class LoopConfig:
    """Optimisation settings shared by the recipe's models.

    Args:
        steps: optimizer updates.
        batch_size: examples per update and process.
        lr: Adam learning rate (3e-4 for the baseline's VQ-VAE and PixelSNAIL).
        betas: Adam betas.
        grad_clip: gradient-norm limit (0: none).
        log_every: steps between log lines (also written to ``train.jsonl``).
        seed: data order and initialisation.
        mixed_precision: "no", "bf16" or "fp16" (accelerate; GPU).
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    log_every: int = 50
    seed: int = 0
    mixed_precision: str = "no"

    @classmethod
    def from_dict(cls, data: dict) -> LoopConfig:
        return loop_config_from_dict(cls, data)


def loop_config_from_dict(cls: type, data: dict):
    """``cls(**data)`` for the loop-config dataclasses, rejecting unknown keys; ``betas`` becomes a tuple."""
    unknown = set(data) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {sorted(unknown)}")
    return cls(**{**data, **({"betas": tuple(data["betas"])} if "betas" in data else {})})


def endless_batches(
    tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, accelerator: Accelerator
) -> Iterator[list[torch.Tensor]]:
    """Reshuffled epochs of ``tensors`` (first dimension = examples), sharded across processes."""
    if len(tensors[0]) < batch_size * accelerator.num_processes:
        raise ValueError(f"{len(tensors[0])} examples cannot fill a batch of {batch_size} per process")
    epoch = 0
    while True:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loader = DataLoader(
            TensorDataset(*tensors), batch_size=batch_size, shuffle=True, drop_last=True, generator=generator
        )
        yield from accelerator.prepare_data_loader(loader)
        epoch += 1


def run_loop(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, list[torch.Tensor]], dict[str, torch.Tensor]],
    tensors: tuple[torch.Tensor, ...],
    loop: LoopConfig,
    exp_dir: Path,
    desc: str,
) -> nn.Module:
    """Minimises ``loss_fn(model, batch)["loss"]`` for ``loop.steps`` updates; returns the unwrapped model.

    Every other entry of the returned dict is logged (averaged over the log interval) to the console
    and to ``exp_dir/train.jsonl``.
    """
    accelerator = Accelerator(mixed_precision=loop.mixed_precision)
    torch.manual_seed(loop.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=loop.lr, betas=loop.betas)
    model, optimizer = accelerator.prepare(model, optimizer)
    batches = endless_batches(tensors, loop.batch_size, loop.seed, accelerator)
    exp_dir.mkdir(parents=True, exist_ok=True)
    log_path = exp_dir / "train.jsonl"
    if accelerator.is_main_process:
        log_path.write_text("")
    sums: dict[str, float] = {}
    start = time.perf_counter()
    model.train()
    for step in tqdm(
        range(1, loop.steps + 1), desc=desc, disable=not accelerator.is_main_process, dynamic_ncols=True
    ):
        with accelerator.autocast():
            terms = loss_fn(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(terms["loss"])
        if loop.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), loop.grad_clip)
        optimizer.step()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
        if step % loop.log_every == 0 or step == loop.steps:
            count = loop.log_every if step % loop.log_every == 0 else step % loop.log_every
            means = {k: v / count for k, v in sums.items()}
            record = {"step": step, "seconds": round(time.perf_counter() - start, 2), **means}
            if accelerator.is_main_process:
                tqdm.write(f"{desc} step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            sums = {}
    accelerator.wait_for_everyone()
    return accelerator.unwrap_model(model).eval()


def _as_image(mel: torch.Tensor) -> torch.Tensor:
    return mel[:, None] if mel.dim() == 3 else mel


def train_vqvae(
    config: MelVQVAEConfig, mels: torch.Tensor, loop: LoopConfig, exp_dir: str | Path
) -> MelVQVAE:
    """Trains the mel VQ-VAE / RVQ-VAE on log-mels [N, n_mels, frames]; saves it to ``exp_dir/model``."""
    exp_dir = Path(exp_dir)
    torch.manual_seed(loop.seed)
    model = MelVQVAE(config)

    def loss_fn(module: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        # the forward pass goes through `module` (a DistributedDataParallel wrapper when distributed)
        mel = _as_image(batch[0])
        terms = model.objective(module(mel), mel)
        return {"loss": terms.total, "mse": terms.recon.detach(), "commit": terms.commit.detach()}

    model = run_loop(model, loss_fn, (mels,), loop, exp_dir, "vqvae")
    if PartialState().is_main_process:
        model.save_pretrained(exp_dir / "model")
    return model


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


def train_prior(
    config: PixelSNAILConfig,
    code_maps: torch.Tensor,
    labels: torch.Tensor,
    loop: LoopConfig,
    exp_dir: str | Path,
) -> PixelSNAIL:
    """Trains the class-conditional PixelSNAIL on code maps [N, H, W], labels [N]; saves ``exp_dir/model``."""
    exp_dir = Path(exp_dir)
    torch.manual_seed(loop.seed)
    model = PixelSNAIL(config)

    def loss_fn(module: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        codes, classes = batch
        terms = PixelSNAIL.objective(module(codes, classes), codes)
        return {"loss": terms.loss, "nll": terms.loss.detach(), "accuracy": terms.accuracy}

    model = run_loop(model, loss_fn, (code_maps, labels), loop, exp_dir, "prior")
    if PartialState().is_main_process:
        save_model_dir(exp_dir / "model", model, asdict(config))
    return model


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
