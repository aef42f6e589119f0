"""Conditions of the token models as a prefix of embeddings: a class label, a phoneme sequence, or both.

The last id of each table is the "no condition" token: classifier-free guidance trains on examples whose
conditions were dropped (replaced by these tokens) and samples with ``uncond + w * (cond - uncond)``.
"""

from __future__ import annotations

import torch
from torch import nn


class Conditioner(nn.Module):
    """Embeds the conditions of a batch as a prefix [B, P, D] with its key mask and rotary positions.

    Args:
        dim: embedding width D.
        n_classes: class labels (0: no class condition).
        n_phonemes: phoneme vocabulary size (0: no phoneme condition).
    """

    def __init__(self, dim: int, n_classes: int = 0, n_phonemes: int = 0) -> None:
        super().__init__()
        self.dim, self.n_classes, self.n_phonemes = dim, n_classes, n_phonemes
        self.class_embedding = nn.Embedding(n_classes + 1, dim) if n_classes else None
        self.phoneme_embedding = nn.Embedding(n_phonemes + 1, dim) if n_phonemes else None

    @property
    def active(self) -> bool:
        """Whether there is any condition (guidance is possible)."""
        return self.class_embedding is not None or self.phoneme_embedding is not None

    def forward(self, batch: int, device: torch.device, labels: torch.Tensor | None = None,
                phonemes: torch.Tensor | None = None, phoneme_lengths: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prefix: (embeddings [B, P, D], key mask [B, P] (True = real), rotary positions [B, P]).

        Args:
            batch, device: B and where the tensors go.
            labels: [B] class ids (None: the "no class" token).
            phonemes: [B, P] phoneme ids, padded; ``phoneme_lengths`` [B] their lengths.
            drop: [B] bool, examples whose conditions are replaced by the "no condition" tokens.
        """
        parts, masks = [], []
        drop = torch.zeros(batch, dtype=torch.bool, device=device) if drop is None else drop
        if self.class_embedding is not None:
            ids = labels if labels is not None else torch.full((batch,), self.n_classes, device=device)
            ids = torch.where(drop, torch.full_like(ids, self.n_classes), ids)
            parts.append(self.class_embedding(ids)[:, None])
            masks.append(torch.ones(batch, 1, dtype=torch.bool, device=device))
        if self.phoneme_embedding is not None:
            null = torch.full((batch, 1), self.n_phonemes, device=device)
            if phonemes is None:
                phonemes, phoneme_lengths = null, torch.zeros(batch, dtype=torch.long, device=device)
                drop = torch.ones_like(drop)
            mask = torch.arange(phonemes.shape[1], device=device)[None] < phoneme_lengths[:, None]
            parts.append(self.phoneme_embedding(phonemes.clamp(0, self.n_phonemes)))
            masks.append(mask & ~drop[:, None])
            # a dropped example sees one "no condition" token in place of its phonemes
            parts.append(self.phoneme_embedding(null))
            masks.append(drop[:, None].clone())
        if not parts:
            return (torch.zeros(batch, 0, self.dim, device=device),
                    torch.zeros(batch, 0, dtype=torch.bool, device=device),
                    torch.zeros(batch, 0, dtype=torch.long, device=device))
        mask = torch.cat(masks, dim=1)
        positions = (mask.long().cumsum(dim=1) - 1).clamp_min(0)  # real tokens numbered 0, 1, ...
        return torch.cat(parts, dim=1), mask, positions
