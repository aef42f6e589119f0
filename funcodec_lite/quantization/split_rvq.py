"""Split residual vector quantizer (Mimi's): a semantic and an acoustic RVQ, each with its own projections.

Both groups quantize the same latent: the first ``n_q_semantic`` codebooks (distilled from a speech model
in Mimi) and the acoustic rest are two independent residual stacks whose decoded latents are summed.
Each group projects the latent [B, C, T] to the codebook space with a 1x1 convolution (no bias), runs
plain residual VQ there, and projects the sum of its codewords back.

These codebooks are for inference with released weights (no EMA training state).  The nearest codeword is
found with ``torch.cdist`` and the first minimum, as Mimi's reference implementations do, so codes are
identical to theirs bit for bit; ``search.nearest_codes`` (EnCodec's expanded distance) rounds
differently and could break near-ties the other way.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ProjectedRVQ(nn.Module):
    """Residual VQ in a projected space: ``input_proj`` → n_q codebooks → sum → ``output_proj``.

    Args:
        dimension: latent channels C (input and output).
        codebook_dim: codebook vector size D.
        n_q: codebooks.
        bins: entries per codebook K.

    Buffers:
        codebooks: [n_q, K, D] codewords.
    """

    def __init__(self, dimension: int, codebook_dim: int, n_q: int, bins: int) -> None:
        super().__init__()
        self.n_q = n_q
        self.input_proj = nn.Conv1d(dimension, codebook_dim, 1, bias=False)
        self.output_proj = nn.Conv1d(codebook_dim, dimension, 1, bias=False)
        self.register_buffer("codebooks", torch.randn(n_q, bins, codebook_dim))

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Latent [B, C, T] → codes long [B, n_q, T] (default all codebooks)."""
        n_q = self.n_q if n_q is None else n_q
        batch, _, length = x.shape
        residual = self.input_proj(x)
        codes = []
        for codebook in self.codebooks[:n_q]:
            flat = residual.transpose(1, 2).reshape(batch * length, -1)
            index = torch.cdist(flat[None], codebook[None], p=2)[0].argmin(dim=-1).view(batch, length)
            residual = residual - F.embedding(index, codebook).transpose(1, 2)
            codes.append(index)
        if not codes:
            return x.new_zeros(batch, 0, length, dtype=torch.long)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, k, T] (k ≤ n_q) → latent [B, C, T]: the projected sum of the codewords."""
        quantized = torch.zeros((), device=codes.device, dtype=self.codebooks.dtype)
        for index, codebook in enumerate(self.codebooks[: codes.shape[1]]):
            quantized = quantized + F.embedding(codes[:, index], codebook).transpose(1, 2)
        return self.output_proj(quantized)


class SplitResidualVQ(nn.Module):
    """Semantic RVQ (first ``n_q_semantic`` codebooks) beside an acoustic RVQ (the rest), summed on decode.

    Args:
        dimension: latent channels C.
        codebook_dim: codebook vector size D (both groups).
        n_q: codebooks in all (> n_q_semantic).
        n_q_semantic: codebooks of the semantic group.
        bins: entries per codebook.

    Shapes: encode [B, C, T] → codes long [B, k, T]; decode codes [B, k, T] → [B, C, T], with
    n_q_semantic ≤ k ≤ n_q.
    """

    def __init__(self, dimension: int, codebook_dim: int, n_q: int, n_q_semantic: int, bins: int) -> None:
        super().__init__()
        if not 1 <= n_q_semantic < n_q:
            raise ValueError(f"n_q_semantic must be in 1..n_q - 1 = {n_q - 1}, got {n_q_semantic}")
        self.n_q, self.n_q_semantic, self.bins = n_q, n_q_semantic, bins
        self.semantic = ProjectedRVQ(dimension, codebook_dim, n_q_semantic, bins)
        self.acoustic = ProjectedRVQ(dimension, codebook_dim, n_q - n_q_semantic, bins)

    def _check(self, k: int) -> None:
        if not self.n_q_semantic <= k <= self.n_q:
            raise ValueError(f"number of codebooks must be in {self.n_q_semantic}..{self.n_q}, got {k}")

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Latent [B, C, T] → codes long [B, n_q, T] (default all)."""
        n_q = self.n_q if n_q is None else n_q
        self._check(n_q)
        codes = self.semantic.encode(x)
        if n_q > self.n_q_semantic:
            codes = torch.cat([codes, self.acoustic.encode(x, n_q - self.n_q_semantic)], dim=1)
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, k, T] → latent [B, C, T]."""
        self._check(codes.shape[1])
        latent = self.semantic.decode(codes[:, : self.n_q_semantic])
        if codes.shape[1] > self.n_q_semantic:
            latent = latent + self.acoustic.decode(codes[:, self.n_q_semantic:])
        return latent
