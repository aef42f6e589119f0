"""VampNet-style masked acoustic token model: a bidirectional transformer that fills masked codec tokens.

Two models share this class. The coarse model predicts the first ``n_q`` codebooks; the coarse-to-fine
model sees all ``n_q`` codebooks but its first ``n_conditioning`` (the coarse ones) are never masked or
predicted. Training masks are drawn per example with the cosine schedule: r ~ U(0, 1), then every predicted
token is masked with probability γ(r) = cos(πr/2); the loss is the cross-entropy (with label smoothing) of
the masked tokens only. A class label can condition the model, dropped in training for classifier-free
guidance. Inputs are the sum of per-codebook embeddings, each table with one extra row for MASK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.lm.codec_lm import LMBatch, LMLoss, init_embeddings
from funcodec_lite.lm.conditioning import Conditioner
from funcodec_lite.lm.transformer import Transformer, TransformerConfig
from funcodec_lite.utils.config import build_dataclass


@dataclass
class MaskedLMConfig:
    """Settings of a `MaskedLM` (``transformer.causal`` must be False).

    Args:
        n_q: codebooks the model sees (K).
        n_conditioning: leading codebooks given, never masked or predicted (the coarse-to-fine model's
            coarse codebooks; 0 for the coarse model).
        card: codebook size; id ``card`` is MASK.
        transformer: the bidirectional stack.
        n_classes: class labels for conditioning (0: none).
        cond_dropout: probability of dropping an example's class in training (classifier-free guidance).
        label_smoothing: of the cross-entropy (VampNet: 0.1).
    """

    n_q: int = 4
    n_conditioning: int = 0
    card: int = 1024
    transformer: TransformerConfig = field(default_factory=lambda: TransformerConfig(causal=False))
    n_classes: int = 0
    cond_dropout: float = 0.0
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.n_conditioning < self.n_q:
            raise ValueError(f"need 0 <= n_conditioning < n_q, got {self.n_conditioning} and {self.n_q}")
        if self.transformer.causal:
            raise ValueError("the masked model is bidirectional: set transformer.causal false")

    @classmethod
    def from_dict(cls, data: dict) -> MaskedLMConfig:
        return build_dataclass(cls, dict(data), "masked")

    @property
    def mask_id(self) -> int:
        return self.card


def gamma(r: torch.Tensor | float) -> torch.Tensor:
    """The cosine masking schedule γ(r) = cos(πr/2): the fraction of tokens masked at progress r."""
    return torch.cos(torch.as_tensor(r, dtype=torch.float32) * math.pi / 2)


class MaskedLM(nn.Module):
    """Predicts masked tokens of codebooks ``n_conditioning .. n_q-1`` from everything unmasked."""

    model_kind = "masked_lm"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = MaskedLMConfig

    def __init__(self, config: MaskedLMConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.transformer.dim
        self.embeddings = nn.ModuleList(nn.Embedding(config.card + 1, dim) for _ in range(config.n_q))
        self.heads = nn.ModuleList(nn.Linear(dim, config.card)
                                   for _ in range(config.n_q - config.n_conditioning))
        self.conditioner = Conditioner(dim, config.n_classes)
        self.transformer = Transformer(config.transformer)

    @property
    def n_q(self) -> int:
        return self.config.n_q

    def init_from_codebooks(self, codebooks: torch.Tensor) -> None:
        """Sets the code rows of the embedding tables from the codec's codebooks [K', card, D'] (K' >= K)."""
        init_embeddings(self.embeddings, codebooks, self.config.card)

    def forward(self, codes: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, K - n_conditioning, T, card] of the predicted codebooks.

        Args:
            codes: [B, K, T], MASK (``card``) where a token is to be predicted.
            prefix: the `Conditioner`'s (embeddings, key mask, positions).
            frames: [B] real frames (the rest is padding), or None.
        """
        b, _, t = codes.shape
        x = sum(table(codes[:, q]) for q, table in enumerate(self.embeddings))
        embedded, mask, positions = prefix
        index = torch.arange(t, device=codes.device)[None].expand(b, t)
        real = index < frames[:, None] if frames is not None else torch.ones_like(index, dtype=torch.bool)
        hidden = self.transformer(torch.cat([embedded, x], dim=1), torch.cat([mask, real], dim=1),
                                  torch.cat([positions, mask.sum(dim=1, keepdim=True) + index], dim=1))
        hidden = hidden[:, embedded.shape[1]:]
        return torch.stack([head(hidden) for head in self.heads], dim=1)

    def training_mask(self, b: int, t: int, frames: torch.Tensor,
                      r: torch.Tensor | None = None) -> torch.Tensor:
        """Bool [B, K, T]: each predicted token masked with probability γ(r_b), r_b ~ U(0, 1) per example;
        conditioning codebooks and padding never; at least one token per example."""
        device = frames.device
        k, nc = self.config.n_q, self.config.n_conditioning
        r = torch.rand(b, device=device) if r is None else r
        mask = torch.rand(b, k, t, device=device) < gamma(r).to(device)[:, None, None]
        mask[:, :nc] = False
        real = torch.arange(t, device=device)[None] < frames[:, None]
        mask &= real[:, None]
        empty = ~mask.flatten(1).any(dim=1)
        if empty.any():  # mask one real predicted token of examples that drew none
            pick = (torch.rand(b, device=device) * frames.clamp_min(1)).long()
            mask[empty, nc, pick[empty]] = True
        return mask

    def loss(self, batch: LMBatch, mask: torch.Tensor | None = None, drop: torch.Tensor | None = None,
             r: torch.Tensor | None = None) -> LMLoss:
        """Cross-entropy of the masked tokens (``mask`` [B, K, T]; default: `training_mask`)."""
        codes, frames = batch.codes, batch.frames
        b, k, t = codes.shape
        device = codes.device
        nc = self.config.n_conditioning
        if mask is None:
            mask = self.training_mask(b, t, frames, r)
        if drop is None and self.training and self.config.cond_dropout > 0:
            drop = torch.rand(b, device=device) < self.config.cond_dropout
        prefix = self.conditioner(b, device, batch.labels, drop=drop)
        inputs = torch.where(mask, torch.full_like(codes, self.config.mask_id), codes)
        logits = self(inputs, prefix, frames)  # [B, K - nc, T, card]
        targets, weight = codes[:, nc:], mask[:, nc:]
        w = weight.float()
        flat = logits.flatten(0, 2).float()
        nll = F.cross_entropy(flat, targets.flatten(), reduction="none",
                              label_smoothing=self.config.label_smoothing).view_as(targets)
        plain = F.cross_entropy(flat, targets.flatten(), reduction="none").view_as(targets)
        per_codebook = torch.zeros(k, device=device)
        per_codebook[nc:] = (plain * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp_min(1)
        correct = ((logits.argmax(-1) == targets) & weight).sum()
        return LMLoss((nll * w).sum() / w.sum().clamp_min(1), per_codebook.detach(),
                      correct.float() / w.sum().clamp_min(1), w.sum())
