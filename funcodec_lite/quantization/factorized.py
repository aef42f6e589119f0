"""Factorized, L2-normalised residual vector quantisation (DAC; Yu et al. 2021, "Improved VQGAN").

Each stage projects its residual [B, D, T] to a small code space (``in_proj``, a 1x1 conv to d ≪ D
dimensions), finds the nearest codebook entry by cosine similarity (both sides L2-normalised), and
projects the *unnormalised* entry back (``out_proj``, 1x1 conv to D). The residual passed on is the input
minus that back-projection.

Numerics follow DAC so that converted models give its codes bit for bit: the distance is
``|e|² − 2 e·c + |c|²`` on normalised vectors (argmax of its negation), and during encoding the
back-projection is applied to ``z_e + (z_q − z_e)`` (DAC's straight-through sum, which in floating point is
not always exactly ``z_q``); decoding from codes applies it to ``z_q`` itself, as DAC does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.conv import apply_norm


class FactorizedVQ(nn.Module):
    """One factorized codebook: D → d (in_proj), nearest of ``codebook_size`` L2-normalised entries,
    d → D (out_proj).

    Args:
        input_dim: D, channels of the latent.
        codebook_size: entries of the codebook.
        codebook_dim: d, dimensions of the code space.
        weight_norm: weight-normalised projections (as DAC releases them) or plain ones.
    """

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int, weight_norm: bool = True):
        super().__init__()
        norm = "weight_norm" if weight_norm else "none"
        self.in_proj = apply_norm(nn.Conv1d(input_dim, codebook_dim, 1), norm)
        self.out_proj = apply_norm(nn.Conv1d(codebook_dim, input_dim, 1), norm)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Indices long [B, T] of the entries nearest (in cosine) to the projected latent z_e [B, d, T]."""
        batch = z_e.shape[0]
        flat = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))  # [B·T, d]
        entries = F.normalize(self.codebook.weight)  # [K, d]
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ entries.t()
                + entries.pow(2).sum(1, keepdim=True).t())
        return (-dist).max(1)[1].reshape(batch, -1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices long [B, T] → the raw (unnormalised) codebook entries [B, d, T]."""
        return self.codebook(indices).transpose(1, 2)

    def quantize(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual [B, D, T] → (indices long [B, T], back-projected quantised latent [B, D, T])."""
        z_e = self.in_proj(residual)
        indices = self.nearest(z_e)
        z_q = self.lookup(indices)
        return indices, self.out_proj(z_e + (z_q - z_e))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices long [B, T] → back-projected latent [B, D, T]."""
        return self.out_proj(self.lookup(indices))


class FactorizedRVQ(nn.Module):
    """A residual stack of `FactorizedVQ` stages.

    Args:
        input_dim: D, channels of the latent.
        n_codebooks: stages.
        codebook_size: entries of each codebook.
        codebook_dim: d of every stage, or one d per stage.
        weight_norm: weight-normalised projections.
    """

    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int,
                 codebook_dim: int | Sequence[int] = 8, weight_norm: bool = True):
        super().__init__()
        dims = [codebook_dim] * n_codebooks if isinstance(codebook_dim, int) else list(codebook_dim)
        if len(dims) != n_codebooks:
            raise ValueError(f"codebook_dim has {len(dims)} entries for {n_codebooks} codebooks")
        self.quantizers = nn.ModuleList(FactorizedVQ(input_dim, codebook_size, d, weight_norm) for d in dims)

    @property
    def n_codebooks(self) -> int:
        return len(self.quantizers)

    def encode(self, z: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent [B, D, T] → (codes long [B, n_q, T], quantised latent [B, D, T]) with the first ``n_q``
        stages (default all)."""
        n_q = self.n_codebooks if n_q is None else n_q
        residual, quantized, codes = z, torch.zeros_like(z), []
        for stage in self.quantizers[:n_q]:
            indices, z_q = stage.quantize(residual)
            quantized = quantized + z_q
            residual = residual - z_q
            codes.append(indices)
        return torch.stack(codes, dim=1), quantized

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes long [B, K, T] (K ≤ n_codebooks) → the sum of the first K stages' latents [B, D, T]."""
        quantized = self.quantizers[0].decode(codes[:, 0])
        for k in range(1, codes.shape[1]):
            quantized = quantized + self.quantizers[k].decode(codes[:, k])
        return quantized
