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


def _guided_labels(model: PixelSNAIL, labels: torch.Tensor, guidance: float) -> torch.Tensor:
    """labels [B] -> [B] without guidance, else [2B]: the labels, then as many "no class" labels."""
    if not guidance:
        return labels
    if model.config.label_dropout <= 0:
        raise ValueError("classifier-free guidance needs a prior trained with label_dropout > 0")
    return torch.cat([labels, torch.full_like(labels, model.config.n_classes)])


def guide(logits: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: logits [2B, ...] (conditional, then unconditional) -> [B, ...], the
    conditional ones moved ``guidance`` times their difference further from the unconditional ones:
    c + guidance * (c - u). Without guidance (0) the logits [B, ...] are returned as they are."""
    if not guidance:
        return logits
    conditional, unconditional = logits.chunk(2)
    return conditional + guidance * (conditional - unconditional)


def sample_naive(model: PixelSNAIL, labels: torch.Tensor, generator: torch.Generator | None = None,
                 temperature: float = 1.0, guidance: float = 0.0) -> torch.Tensor:
    """The DCASE baseline's loop: for each of the H * W positions, a forward pass over the rows so far.

    Args:
        model: the prior (run in eval mode; its mode is restored afterwards).
        labels: [B] long class ids.
        generator: random source of the draws (on the model's device).
        temperature: softmax temperature.
        guidance: classifier-free guidance scale (`guide`; 0: none; needs a prior with label dropout).
    Returns:
        codes [B, H, W] long.
    """
    rows, cols = model.config.raster_shape
    both = _guided_labels(model, labels, guidance)
    codes = torch.zeros(both.shape[0], rows, cols, dtype=torch.long, device=labels.device)
    with _evaluating(model):
        for i in range(rows):
            for j in range(cols):
                logits = guide(model.raster_forward(codes[:, : i + 1], both)[:, :, i, j], guidance)
                codes[:, i, j] = _draw(logits, temperature, generator).repeat(len(both) // len(labels))
    return model.from_raster(codes[: len(labels)])


def sample_incremental(model: PixelSNAIL, labels: torch.Tensor, generator: torch.Generator | None = None,
                       temperature: float = 1.0, guidance: float = 0.0) -> torch.Tensor:
    """Same draws as :func:`sample_naive`, computing only the new position at each step (with guidance, of
    the conditional and the unconditional maps, which share their codes).

    Every convolution keeps its input so far in a buffer and reads one k x k window per step; every
    attention layer keeps the keys and values of the positions so far and runs one query per step.

    Args and result: as :func:`sample_naive`.
    """
    rows, cols = model.config.raster_shape
    both = _guided_labels(model, labels, guidance)
    codes = torch.zeros(labels.shape[0], rows, cols, dtype=torch.long, device=labels.device)
    with _evaluating(model):
        cache = model.start(both)
        for i in range(rows):
            for j in range(cols):
                code = _draw(guide(model.step(cache, i, j), guidance), temperature, generator)
                codes[:, i, j] = code
                model.feed(cache, code.repeat(len(both) // len(labels)), i, j)
    return model.from_raster(codes)


def incremental_logits(model: PixelSNAIL, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits of given codes computed position by position with the incremental path (teacher forcing).

    Equal to ``model(codes, labels)`` in eval mode up to float rounding; a check of the cached path.

    Args:
        codes: [B, H, W] long.
        labels: [B] long.
    Returns:
        [B, n_codes, H, W].
    """
    rows, cols = model.config.raster_shape
    codes = model.to_raster(codes)
    out = []
    with _evaluating(model):
        cache = model.start(labels)
        for i in range(rows):
            for j in range(cols):
                out.append(model.step(cache, i, j))
                model.feed(cache, codes[:, i, j], i, j)
    return model.from_raster(torch.stack(out, -1).unflatten(-1, (rows, cols)))
