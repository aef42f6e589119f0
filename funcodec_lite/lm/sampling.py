"""The sampling core that every autoregressive token sampler shares (`generate.py`, `multiscale.py`).

A sampler decides the order in which it visits (codebook, frame) positions and how it calls its model; this
module does the rest: the settings, top-k/top-p filtering, classifier-free guidance (conditional and
unconditional rows in one batch), the rule that only codebook 0 ends a sequence (EOS = class ``card``, at the
frame after the last, not before ``min_frames``), and each item's end frame and stop reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.nn import functional as F


@dataclass
class SamplingConfig:
    """Args:
        temperature: softmax temperature (> 0).
        top_k: keep the k most likely codes (0: all).
        top_p: keep the smallest set of codes with probability >= top_p (0 or 1: all).
        cfg_coef: classifier-free guidance, ``uncond + cfg_coef * (cond - uncond)`` (1: no guidance).
        min_frames: frames before EOS may be sampled.
        use_cache: incremental decoding with a KV cache.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    cfg_coef: float = 1.0
    min_frames: int = 0
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.top_k < 0 or not 0 <= self.top_p <= 1 or self.min_frames < 0:
            raise ValueError("need temperature > 0, top_k >= 0, 0 <= top_p <= 1 and min_frames >= 0")


class Generation(NamedTuple):
    """codes [B, K, T] (frames after the prompt; padded with 0 past each item's length), frames [B],
    stop reasons per item (``"eos"`` or ``"max_length"``), and the number of model calls."""

    codes: torch.Tensor
    frames: torch.Tensor
    reasons: list[str]
    steps: int


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Sets to -inf every logit of [N, V] outside the top-k and outside the top-p nucleus."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        mass = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = mass - ordered.softmax(dim=-1) >= top_p  # keep the first code that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of logits [N, V] (float32) -> [N] long."""
    probs = F.softmax(filter_logits(logits.float() / config.temperature, config.top_k, config.top_p), -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class SamplingRun:
    """One sampling run's shared state: guidance rows, the condition prefix, each item's end and stop reason.

    Args:
        model: an LM with ``config`` (``n_q``, ``card``, ``special``, ``eos``), ``conditioner`` and
            ``condition(labels, phonemes, phoneme_lengths, rows, device, drop)``; eval mode is set here.
        batch_size: B.
        max_frames: frames to generate at most, one number or one per item [B] (>= 0).
        config: sampling settings.
        prompt: [B, K, Tp] codes the generated frames continue, or None.
        labels, phonemes, phoneme_lengths: the conditions, as in training.
        generator: the random source (CPU) of every draw.

    Attributes: ``prompt_frames`` (Tp), ``total`` (Tp + the largest limit), ``end`` [B] (each item's first
    frame not generated; EOS moves it earlier), ``reasons``, ``prefix`` (the condition prefix of ``rows`` =
    B or 2B rows: conditional first, then unconditional), ``calls`` (model calls, counted by the sampler).
    """

    def __init__(self, model: torch.nn.Module, batch_size: int, max_frames: int | torch.Tensor,
                 config: SamplingConfig | None, prompt: torch.Tensor | None, labels: torch.Tensor | None,
                 phonemes: torch.Tensor | None, phoneme_lengths: torch.Tensor | None,
                 generator: torch.Generator | None) -> None:
        model.eval()
        self.config = config or SamplingConfig()
        self.lm = model.config
        self.device = next(model.parameters()).device
        self.generator = generator
        self.batch = batch_size
        limit = torch.as_tensor(max_frames, device=self.device).expand(batch_size).clone()
        if int(limit.min()) < 0:
            raise ValueError("max_frames must be >= 0")
        if prompt is not None and prompt.shape[1] != self.lm.n_q:
            raise ValueError(f"the prompt has {prompt.shape[1]} codebooks, the model {self.lm.n_q}")
        self.prompt_frames = 0 if prompt is None else prompt.shape[-1]
        self.total = self.prompt_frames + int(limit.max())
        self.end = self.prompt_frames + limit
        self.reasons = ["max_length"] * batch_size
        self.guided = self.config.cfg_coef != 1.0 and model.conditioner.active
        self.rows = 2 * batch_size if self.guided else batch_size
        drop = None  # under guidance: the conditions of the second half of the rows are dropped
        if self.guided:
            drop = torch.arange(self.rows, device=self.device) >= batch_size
        self.prefix = model.condition(self.expand(labels), self.expand(phonemes),
                                      self.expand(phoneme_lengths), self.rows, self.device, drop)
        self.calls = 0

    def expand(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """[B, ...] -> [rows, ...]: the batch twice under guidance (conditional, then unconditional rows)."""
        return None if x is None else (torch.cat([x, x]) if self.guided else x)

    def guide(self, logits: torch.Tensor) -> torch.Tensor:
        """Model output [rows, ..., V] -> guided float32 logits [B, ..., V]."""
        if self.guided:
            cond, uncond = logits[: self.batch], logits[self.batch :]
            logits = uncond + self.config.cfg_coef * (cond - uncond)
        return logits.float()

    def draw(self, logits: torch.Tensor, codebooks: list[int], frames: list[int]) -> torch.Tensor:
        """One code per item and column: guided logits [B, A, card + 1] of ``codebooks[a]`` at ``frames[a]``
        -> [B, A] long, in one draw of B·A rows. EOS (class ``card``) is open only to codebook 0, from frame
        Tp + ``min_frames`` on."""
        logits = logits.clone()
        first = self.prompt_frames + self.config.min_frames
        closed = [a for a, (q, f) in enumerate(zip(codebooks, frames)) if q or f < first]
        logits[:, closed, self.lm.card] = float("-inf")  # only codebook 0 ends a sequence
        drawn = sample(logits.reshape(-1, logits.shape[-1]).cpu(), self.config, self.generator)
        return drawn.to(self.device).view(self.batch, len(codebooks))

    def accept(self, codebook: int, frame: int, value: torch.Tensor) -> torch.Tensor:
        """The tokens [B] to write at (``codebook``, ``frame``) for drawn codes ``value`` [B]: EOS (id
        ``eos``) where codebook 0 drew it, which ends the item there; the special token past an item's end."""
        live = frame < self.end
        if codebook == 0:
            stop = live & (value == self.lm.card)
            for item in torch.nonzero(stop).flatten().tolist():
                self.reasons[item] = "eos"
            self.end = torch.where(stop, torch.full_like(self.end, frame), self.end)
            live = (frame < self.end) | stop
            value = torch.where(stop, torch.full_like(value, self.lm.eos), value)
        return torch.where(live, value, torch.full_like(value, self.lm.special))

    def result(self, codes: torch.Tensor) -> Generation:
        """The run's `Generation` from the sequence's codes [B, K, total - Tp] after the prompt: tokens that
        are not codes and frames past each item's end become 0."""
        frames = (self.end - self.prompt_frames).clamp_min(0)
        keep = torch.arange(codes.shape[-1], device=codes.device)[None, None] < frames[:, None, None]
        codes = torch.where(keep & (codes < self.lm.card), codes, torch.zeros_like(codes))
        return Generation(codes, frames, self.reasons, self.calls)
