"""DAC's encoder and decoder (Kumar et al. 2023): Snake activations, dilated residual units, strided convs.

Every conv pads itself symmetrically (``padding`` of ``nn.Conv1d``), so the network is not causal and does
not stream. With a signal of T = hop · N samples (hop = the product of the rates) the encoder gives exactly
N frames; the decoder gives N · hop samples when every rate is even, a few less otherwise (an odd rate r
drops one sample at its stage: a transposed conv of kernel 2r, stride r and padding ⌈r/2⌉ gives
r·n + r − 2⌈r/2⌉ samples for n frames).

Each conv may carry weight normalisation (``weight_norm=True``: parameters ``...parametrizations.weight
.original0/1``, as DAC trains and releases them) or plain weights (as ``transformers`` stores them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from funcodec_lite.modules.conv import apply_norm
from funcodec_lite.modules.snake import Snake1d

RESIDUAL_DILATIONS = (1, 3, 9)


def dac_conv(in_channels: int, out_channels: int, kernel_size: int, weight_norm: bool, stride: int = 1,
             dilation: int = 1, padding: int = 0, transpose: bool = False) -> nn.Module:
    """A (transposed) Conv1d with bias and zero ``padding`` on both sides, optionally weight-normalised."""
    cls = nn.ConvTranspose1d if transpose else nn.Conv1d
    conv = cls(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, padding=padding)
    return apply_norm(conv, "weight_norm" if weight_norm else "none")


class DACResidualUnit(nn.Module):
    """``x + conv1x1(snake(conv7_dilated(snake(x))))``; the length is kept.

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, channels: int, dilation: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.act1 = Snake1d(channels)
        self.conv1 = dac_conv(channels, channels, 7, weight_norm, dilation=dilation, padding=3 * dilation)
        self.act2 = Snake1d(channels)
        self.conv2 = dac_conv(channels, channels, 1, weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


def _residual_units(channels: int, weight_norm: bool) -> nn.Sequential:
    return nn.Sequential(*(DACResidualUnit(channels, d, weight_norm) for d in RESIDUAL_DILATIONS))


class DACEncoderBlock(nn.Module):
    """Three residual units at ``in_channels``, Snake, then a conv of stride ``stride`` (kernel 2·stride)
    to ``out_channels``.

    Shapes: input [B, in_channels, T], output [B, out_channels, T / stride] (T a multiple of stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.units = _residual_units(in_channels, weight_norm)
        self.act = Snake1d(in_channels)
        self.down = dac_conv(in_channels, out_channels, 2 * stride, weight_norm, stride=stride,
                             padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.units(x)))


class DACDecoderBlock(nn.Module):
    """Snake, a transposed conv of stride ``stride`` (kernel 2·stride) to ``out_channels``, then three
    residual units.

    Shapes: input [B, in_channels, n], output [B, out_channels, stride·n + stride − 2⌈stride/2⌉].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.act = Snake1d(in_channels)
        self.up = dac_conv(in_channels, out_channels, 2 * stride, weight_norm, stride=stride,
                           padding=math.ceil(stride / 2), transpose=True)
        self.units = _residual_units(out_channels, weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.up(self.act(x)))


class DACEncoder(nn.Module):
    """Waveform → latent frames: conv7 to ``dim``, one block per rate (channels doubling), Snake, conv3.

    Args:
        dim: channels after the first conv (DAC's ``encoder_dim``).
        rates: the stride of each block (DAC's ``encoder_rates``); hop = their product.
        latent_dim: channels of the output.
        weight_norm: weight-normalised convs.

    Shapes: input [B, 1, T] (T a multiple of hop), output [B, latent_dim, T / hop].
    """

    def __init__(self, dim: int, rates: Sequence[int], latent_dim: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.conv_in = dac_conv(1, dim, 7, weight_norm, padding=3)
        widths = [dim * 2 ** i for i in range(len(rates) + 1)]
        self.blocks = nn.Sequential(*(DACEncoderBlock(widths[i], widths[i + 1], rate, weight_norm)
                                      for i, rate in enumerate(rates)))
        self.act = Snake1d(widths[-1])
        self.conv_out = dac_conv(widths[-1], latent_dim, 3, weight_norm, padding=1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.act(self.blocks(self.conv_in(wav))))


class DACDecoder(nn.Module):
    """Latent frames → waveform: conv7 to ``dim``, one block per rate (channels halving), Snake, conv7, tanh.

    Args:
        latent_dim: channels of the input.
        dim: channels after the first conv (DAC's ``decoder_dim``).
        rates: the stride of each block (DAC's ``decoder_rates``).
        weight_norm: weight-normalised convs.

    Shapes: input [B, latent_dim, N], output [B, 1, T'] with T' = N · prod(rates) when every rate is even
    (see the module docstring otherwise).
    """

    def __init__(self, latent_dim: int, dim: int, rates: Sequence[int], weight_norm: bool = True) -> None:
        super().__init__()
        self.conv_in = dac_conv(latent_dim, dim, 7, weight_norm, padding=3)
        widths = [dim // 2 ** i for i in range(len(rates) + 1)]
        self.blocks = nn.Sequential(*(DACDecoderBlock(widths[i], widths[i + 1], rate, weight_norm)
                                      for i, rate in enumerate(rates)))
        self.act = Snake1d(widths[-1])
        self.conv_out = dac_conv(widths[-1], 1, 7, weight_norm, padding=3)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv_out(self.act(self.blocks(self.conv_in(latent)))))

