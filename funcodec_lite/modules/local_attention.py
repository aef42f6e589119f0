"""Local (windowed) multi-head self-attention with rotary positions inside each window, as SNAC uses it."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.rotary import apply_rotary


class WindowRotary(nn.Module):
    """Rotary position angles for positions 0..n−1 of a window (no xPos scaling).

    ``inv_freq`` (``1 / 10000^(2i/D)``) is a saved buffer so converted weights keep the released values.

    Args:
        head_dim: D, the channels of one attention head (even).
    """

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)))

    def angles(self, n: int) -> torch.Tensor:
        """[n, D/2] angles: position × frequency."""
        positions = torch.arange(n, device=self.inv_freq.device).type_as(self.inv_freq)
        return positions[:, None] * self.inv_freq[None, :]

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotates queries and keys [..., n, D] by their position in the window (split-half pairs)."""
        angles = self.angles(k.shape[-2])
        return apply_rotary(q, angles[-q.shape[-2]:]), apply_rotary(k, angles)


class LocalMHA(nn.Module):
    """Pre-norm residual self-attention inside non-overlapping windows of ``window`` frames.

    ``x + W_out · attention(W_qkv · LayerNorm(x))`` where each window attends only to itself (no mask inside
    the window, so not causal), with rotary positions restarting at every window.

    Args:
        dim: C, channels (a multiple of ``head_dim``).
        window: frames per window; T must be a multiple of it.
        head_dim: channels per head (heads = C / head_dim).

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, dim: int, window: int, head_dim: int = 64) -> None:
        super().__init__()
        if dim < head_dim or dim % head_dim:
            raise ValueError(f"LocalMHA needs dim a multiple of head_dim {head_dim}, got {dim}")
        self.window = window
        self.heads = dim // head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.rotary = WindowRotary(head_dim)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        if length % self.window:
            raise ValueError(f"LocalMHA: {length} frames is not a multiple of the window {self.window}")
        windows = length // self.window
        h = self.norm(x.transpose(1, 2))

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, H, W, n, D]
            t = t.reshape(batch, windows, self.window, self.heads, channels // self.heads)
            return t.permute(0, 3, 1, 2, 4)

        q, k, v = (heads(t) for t in self.to_qkv(h).chunk(3, dim=-1))
        q, k = self.rotary(q, k)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.permute(0, 2, 3, 1, 4).reshape(batch, length, channels)
        return self.to_out(out).transpose(1, 2) + x
