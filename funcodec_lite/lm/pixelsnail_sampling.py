"""Ancestral sampling from a PixelSNAIL prior: the baseline's full-forward loop and a cached incremental one.

Both draw one token per raster position with ``torch.multinomial(softmax(logits / temperature))`` on the
same generator, in the same order and with the same tensor shapes, so for equal seeds and labels they
return the same codes (up to the float rounding of the logits, which differs by ~1e-6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .pixelsnail import PixelSNAIL


@contextmanager
def _evaluating(model: PixelSNAIL) -> Iterator[None]:
    """Eval mode (dropout off) and no autograd inside; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of logits [B, n_codes] -> [B]."""
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def sample_naive(model: PixelSNAIL, labels: torch.Tensor, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
    """The DCASE baseline's loop: for each of the H * W positions, a forward pass over the rows so far.

    Args:
        model: the prior (run in eval mode; its mode is restored afterwards).
        labels: [B] long class ids.
        generator: random source of the draws (on the model's device).
        temperature: softmax temperature.
    Returns:
        codes [B, H, W] long.
    """
    cfg = model.config
    codes = torch.zeros(labels.shape[0], cfg.height, cfg.width, dtype=torch.long, device=labels.device)
    with _evaluating(model):
        for i in range(cfg.height):
            for j in range(cfg.width):
                logits = model(codes[:, : i + 1], labels)[:, :, i, j]
                codes[:, i, j] = _draw(logits, temperature, generator)
    return codes


def sample_incremental(model: PixelSNAIL, labels: torch.Tensor, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
    """Same draws as :func:`sample_naive`, computing only the new position at each step.

    Every convolution keeps its input so far in a buffer and reads one k x k window per step; every
    attention layer keeps the keys and values of the positions so far and runs one query per step.

    Args and result: as :func:`sample_naive`.
    """
    cfg = model.config
    codes = torch.zeros(labels.shape[0], cfg.height, cfg.width, dtype=torch.long, device=labels.device)
    with _evaluating(model):
        cache = model.start(labels)
        for i in range(cfg.height):
            for j in range(cfg.width):
                code = _draw(model.step(cache, i, j), temperature, generator)
                codes[:, i, j] = code
                model.feed(cache, code, i, j)
    return codes


def incremental_logits(model: PixelSNAIL, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits of given codes computed position by position with the incremental path (teacher forcing).

    Equal to ``model(codes, labels)`` in eval mode up to float rounding; a check of the cached path.

    Args:
        codes: [B, H, W] long.
        labels: [B] long.
    Returns:
        [B, n_codes, H, W].
    """
    cfg = model.config
    out = []
    with _evaluating(model):
        cache = model.start(labels)
        for i in range(cfg.height):
            for j in range(cfg.width):
                out.append(model.step(cache, i, j))
                model.feed(cache, codes[:, i, j], i, j)
    return torch.stack(out, -1).unflatten(-1, (cfg.height, cfg.width)).clone()
