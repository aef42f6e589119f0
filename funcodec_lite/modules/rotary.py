"""Rotary position embeddings (RoPE): the one rotation every attention layer of the toolkit uses.

Channel pairs of a query or key are turned, as complex numbers, by angles ``position x frequency``. Two
pairings are in use: split halves, channel i with channel i + D/2 (GPT-NeoX, SNAC, the token models), and
interleaved neighbours, channel 2i with channel 2i + 1 (Moshi / Mimi). Converted weights fix which one a
model uses, so both are kept; the rotation itself is written once, here.
"""

from __future__ import annotations

import math

import torch


def rope_frequencies(dim: int, max_period: float = 10000.0,
                     device: torch.device | None = None) -> torch.Tensor:
    """[D/2] angular frequencies ``max_period^(-2i/D)`` (float32) of a head of width D (even)."""
    if dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {dim}")
    index = torch.arange(dim // 2, device=device, dtype=torch.float32)
    return torch.exp(index * (-math.log(max_period) * 2 / dim))


def apply_rotary(x: torch.Tensor, angles: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Rotates the channel pairs of ``x`` by ``angles``.

    Args:
        x: [..., S, D] queries or keys.
        angles: [..., S, D/2] angle of each pair (position x frequency), broadcastable against x's leading
            dimensions.
        interleaved: pairs are channels (2i, 2i + 1) when True, (i, i + D/2) when False.
    Returns:
        x rotated, same shape and dtype (computed in float32).
    """
    cos, sin = angles.float().cos(), angles.float().sin()
    half = x.shape[-1] // 2
    if interleaved:
        pairs = x.float().unflatten(-1, (half, 2))
        real, imag = pairs[..., 0], pairs[..., 1]
        out = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1).flatten(-2)
    else:
        first, second = x.float()[..., :half], x.float()[..., half:]
        out = torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
    return out.to(x.dtype)
