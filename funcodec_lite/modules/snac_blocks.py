"""SNAC's encoder and decoder (Siuzdak et al. 2024): DAC-style Snake blocks, optionally depthwise, with
local windowed attention at the latent rate and noise injection after each decoder upsampling.

Every conv pads itself symmetrically (not causal). With T = hop · N samples the encoder gives N frames
and the decoder gives N · hop samples back (kernel 2r, stride r, padding ⌈r/2⌉, output padding r mod 2).

Noise: each ``NoiseBlock`` adds ``n · W x`` with n ~ N(0, 1) of shape [B, 1, T], drawn with
``torch.randn`` in the order of the decoder's blocks, so that under the same torch RNG state the decoder
draws exactly the noise of the ``snac`` package's decoder.  Pass a ``torch.Generator`` to draw from it
instead of the global RNG (a seeded generator makes decoding a pure function of the codes), or
``noise=False`` to leave the noise out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from funcodec_lite.modules.conv import apply_norm
from funcodec_lite.modules.local_attention import LocalMHA
from funcodec_lite.modules.snake import Snake1d

RESIDUAL_DILATIONS = (1, 3, 9)


def wn_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
            padding: int = 0, groups: int = 1, bias: bool = True, transpose: bool = False,
            output_padding: int = 0) -> nn.Module:
    """A weight-normalised (transposed) Conv1d with zero ``padding`` on both sides."""
    if transpose:
        conv: nn.Module = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride,
                                             padding=padding, output_padding=output_padding, bias=bias)
    else:
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
                         padding=padding, groups=groups, bias=bias)
    return apply_norm(conv, "weight_norm")


class NoiseBlock(nn.Module):
    """``x + n · conv1x1(x)``, n ~ N(0, 1) [B, 1, T] shared by all channels.

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = wn_conv(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                noise: bool = True) -> torch.Tensor:
        if not noise:
            return x
        batch, _, length = x.shape
        n = torch.randn((batch, 1, length), generator=generator, device=x.device, dtype=x.dtype)
        return x + n * self.linear(x)


class SNACResidualUnit(nn.Module):
    """``x + conv1x1(snake(conv7_dilated(snake(x))))``, the dilated conv optionally grouped (depthwise).

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, channels: int, dilation: int, groups: int = 1) -> None:
        super().__init__()
        self.act1 = Snake1d(channels)
        self.conv1 = wn_conv(channels, channels, 7, dilation=dilation, padding=3 * dilation, groups=groups)
        self.act2 = Snake1d(channels)
        self.conv2 = wn_conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


def _units(channels: int, groups: int) -> nn.Sequential:
    return nn.Sequential(*(SNACResidualUnit(channels, d, groups) for d in RESIDUAL_DILATIONS))


class SNACEncoderBlock(nn.Module):
    """Three residual units at ``in_channels``, Snake, a conv of stride r (kernel 2r) to ``out_channels``.

    Shapes: input [B, in_channels, T], output [B, out_channels, T / r] (T a multiple of r).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.units = _units(in_channels, groups)
        self.act = Snake1d(in_channels)
        self.down = wn_conv(in_channels, out_channels, 2 * stride, stride=stride,
                            padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.units(x)))


class SNACDecoderBlock(nn.Module):
    """Snake, a transposed conv of stride r (kernel 2r) to ``out_channels``, a ``NoiseBlock`` (optional),
    three residual units.

    Shapes: input [B, in_channels, n], output [B, out_channels, r · n].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, noise: bool,
                 groups: int = 1) -> None:
        super().__init__()
        self.act = Snake1d(in_channels)
        self.up = wn_conv(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                          transpose=True, output_padding=stride % 2)
        self.noise = NoiseBlock(out_channels) if noise else None
        self.units = _units(out_channels, groups)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                noise: bool = True) -> torch.Tensor:
        x = self.up(self.act(x))
        if self.noise is not None:
            x = self.noise(x, generator, noise)
        return self.units(x)


class SNACEncoder(nn.Module):
    """Waveform → latent: conv7, one block per rate (channels doubling), local attention, conv7.

    Args:
        dim: channels after the first conv (SNAC's ``encoder_dim``); the latent has dim · 2^len(rates).
        rates: the stride of each block; hop = their product.
        depthwise: grouped residual convs and a depthwise last conv.
        attn_window: window of the local attention (None: no attention).

    Shapes: input [B, 1, T] (T a multiple of hop, and of hop · attn_window), output [B, D, T / hop].
    """

    def __init__(self, dim: int, rates: Sequence[int], depthwise: bool, attn_window: int | None) -> None:
        super().__init__()
        self.conv_in = wn_conv(1, dim, 7, padding=3)
        widths = [dim * 2 ** i for i in range(len(rates) + 1)]
        self.blocks = nn.Sequential(*(
            SNACEncoderBlock(widths[i], widths[i + 1], rate, groups=widths[i] if depthwise else 1)
            for i, rate in enumerate(rates)))
        self.attention = LocalMHA(widths[-1], attn_window) if attn_window else None
        self.conv_out = wn_conv(widths[-1], widths[-1], 7, padding=3, groups=widths[-1] if depthwise else 1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv_in(wav))
        if self.attention is not None:
            x = self.attention(x)
        return self.conv_out(x)


class SNACDecoder(nn.Module):
    """Latent → waveform: conv7 (depthwise conv7 + conv1x1 when ``depthwise``), local attention, one block
    per rate (channels halving, noise injected), Snake, conv7, tanh.

    Args:
        latent_dim: channels of the input.
        dim: channels after the first conv (SNAC's ``decoder_dim``).
        rates: the stride of each block.
        noise: a ``NoiseBlock`` after each upsampling.
        depthwise: depthwise input conv and grouped residual convs.
        attn_window: window of the local attention (None: no attention).

    Shapes: input [B, latent_dim, N], output [B, 1, N · prod(rates)].
    """

    def __init__(self, latent_dim: int, dim: int, rates: Sequence[int], noise: bool, depthwise: bool,
                 attn_window: int | None) -> None:
        super().__init__()
        if depthwise:
            self.conv_in = nn.Sequential(wn_conv(latent_dim, latent_dim, 7, padding=3, groups=latent_dim),
                                         wn_conv(latent_dim, dim, 1))
        else:
            self.conv_in = nn.Sequential(wn_conv(latent_dim, dim, 7, padding=3))
        self.attention = LocalMHA(dim, attn_window) if attn_window else None
        widths = [dim // 2 ** i for i in range(len(rates) + 1)]
        self.blocks = nn.ModuleList(
            SNACDecoderBlock(widths[i], widths[i + 1], rate, noise, groups=widths[i + 1] if depthwise else 1)
            for i, rate in enumerate(rates))
        self.act = Snake1d(widths[-1])
        self.conv_out = wn_conv(widths[-1], 1, 7, padding=3)

    def forward(self, latent: torch.Tensor, generator: torch.Generator | None = None,
                noise: bool = True) -> torch.Tensor:
        x = self.conv_in(latent)
        if self.attention is not None:
            x = self.attention(x)
        for block in self.blocks:
            x = block(x, generator, noise)
        return torch.tanh(self.conv_out(self.act(x)))
