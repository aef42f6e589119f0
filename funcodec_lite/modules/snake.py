"""Snake activation (Ziyin et al. 2020): ``x + sin²(αx) / α``, one learnt α per channel, as in DAC."""

from __future__ import annotations

import torch
from torch import nn


class Snake1d(nn.Module):
    """Periodic activation ``x + (α + 1e-9)⁻¹ · sin²(α · x)``, α learnt per channel (initialised to 1).

    The ``1e-9`` keeps α = 0 finite; the operations and their order are DAC's, so a converted model gives
    its activations bit for bit.

    Args:
        channels: C, the number of channels (one α each).

    Shapes: input [B, C, ...] (any trailing dims), output the same shape.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(shape[0], shape[1], -1)
        out = flat + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * flat).pow(2)
        return out.reshape(shape)
