"""Multi-scale residual VQ (SNAC): factorized codebooks that each quantise the residual at their own stride.

Stage k average-pools the residual [B, D, T] by ``stride_k`` (T / stride_k steps), quantises it with a
`FactorizedVQ` (projection to a small L2-normalised code space) and repeats each back-projected step
``stride_k`` times, so coarse stages hold fewer tokens, each spanning ``stride_k`` latent frames.  The
residual passed on is the input minus that repeated back-projection.  T must be a multiple of every stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.quantization.factorized import FactorizedVQ


class MultiScaleRVQ(nn.Module):
    """A residual stack of factorized VQ stages, stage k running at 1 / ``strides[k]`` of the latent rate.

    Args:
        input_dim: D, channels of the latent.
        codebook_size: entries of each codebook.
        codebook_dim: d, dimensions of each stage's code space.
        strides: latent frames per token of each stage (SNAC's ``vq_strides``, coarse first).
    """

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int, strides: Sequence[int]) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        self.quantizers = nn.ModuleList(FactorizedVQ(input_dim, codebook_size, codebook_dim)
                                        for _ in self.strides)

    def encode(self, z: torch.Tensor, n_q: int | None = None) -> list[torch.Tensor]:
        """Latent [B, D, T] → the first ``n_q`` stages' codes (default all): stage k long [B, T / s_k]."""
        n_q = len(self.strides) if n_q is None else n_q
        residual, levels = z, []
        for stage, stride in zip(self.quantizers[:n_q], self.strides):
            pooled = F.avg_pool1d(residual, stride, stride) if stride > 1 else residual
            indices, z_q = stage.quantize(pooled)
            levels.append(indices)
            if len(levels) < n_q:
                residual = residual - (z_q.repeat_interleave(stride, dim=-1) if stride > 1 else z_q)
        return levels

    def decode(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """The first K stages' codes (stage k long [B, T / stride_k]) → the summed latent [B, D, T]."""
        quantized = None
        for stage, stride, indices in zip(self.quantizers, self.strides, levels):
            z_q = stage.decode(indices)
            z_q = z_q.repeat_interleave(stride, dim=-1) if stride > 1 else z_q
            quantized = z_q if quantized is None else quantized + z_q
        if quantized is None:
            raise ValueError("MultiScaleRVQ.decode needs at least one stage's codes")
        return quantized
