"""LAC's decoder (github.com/hugofloresgarcia/lac, the codec of VampNet's release): DAC's decoder with
HiFi-GAN's multi-receptive-field (MRF) blocks in place of DAC's residual units.

Each stage is Snake, a transposed conv of stride r (kernel 2r, padding ⌊r/2⌋, so n frames become r·n
samples for an even r and r·n + 1 for an odd one), then an MRF block: the mean of three stacks of residual
layers with kernels 3, 7 and 11, each stack dilating 1, 3, 5. The channels halve at every stage, from
``dim`` after the first conv. Convs come from `funcodec_lite.modules.dac_blocks.dac_conv` (centred,
optionally weight-normalised), activations from `funcodec_lite.modules.snake`; the operations and their
order are LAC's, so a converted model gives its audio to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from funcodec_lite.modules.dac_blocks import dac_conv
from funcodec_lite.modules.snake import Snake1d

MRF_KERNELS = (3, 7, 11)
MRF_DILATIONS = (1, 3, 5)


class LACResidualLayer(nn.Module):
    """``x + conv_k(snake(conv_k,dilated(snake(x))))``; the length is kept.

    Args:
        channels: C.
        kernel_size: k of both convs (odd).
        dilation: dilation of the first conv (the second has none).
        weight_norm: weight-normalised convs.

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.act1 = Snake1d(channels)
        self.conv1 = dac_conv(channels, channels, kernel_size, weight_norm, dilation=dilation,
                              padding=(kernel_size - 1) * dilation // 2)
        self.act2 = Snake1d(channels)
        self.conv2 = dac_conv(channels, channels, kernel_size, weight_norm, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class LACMRF(nn.Module):
    """The mean of one stack of residual layers per kernel size (dilations ``MRF_DILATIONS`` in each).

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, channels: int, weight_norm: bool = True, kernels: Sequence[int] = MRF_KERNELS,
                 dilations: Sequence[int] = MRF_DILATIONS) -> None:
        super().__init__()
        self.stacks = nn.ModuleList(nn.Sequential(*(LACResidualLayer(channels, k, d, weight_norm)
                                                    for d in dilations)) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.stacks[0](x)
        for stack in self.stacks[1:]:
            total = total + stack(x)
        return total / len(self.stacks)


class LACDecoderBlock(nn.Module):
    """Snake, a transposed conv of stride ``stride`` (kernel 2·stride, padding ⌊stride/2⌋) to
    ``out_channels``, then an MRF block.

    Shapes: input [B, in_channels, n], output [B, out_channels, stride·n + stride mod 2].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, weight_norm: bool = True) -> None:
        super().__init__()
        self.act = Snake1d(in_channels)
        self.up = dac_conv(in_channels, out_channels, 2 * stride, weight_norm, stride=stride,
                           padding=stride // 2, transpose=True)
        self.mrf = LACMRF(out_channels, weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mrf(self.up(self.act(x)))


class LACDecoder(nn.Module):
    """Latent frames → waveform: conv7 to ``dim``, one block per rate (channels halving), Snake, conv7, tanh.

    Args:
        latent_dim: channels of the input.
        dim: channels after the first conv (LAC's ``decoder_dim``; divisible by 2^len(rates)).
        rates: the stride of each block (LAC's ``decoder_rates``).
        weight_norm: weight-normalised convs.

    Shapes: input [B, latent_dim, N], output [B, 1, N · prod(rates)] when every rate is even (an odd rate
    r adds one sample at its stage).
    """

    def __init__(self, latent_dim: int, dim: int, rates: Sequence[int], weight_norm: bool = True) -> None:
        super().__init__()
        self.conv_in = dac_conv(latent_dim, dim, 7, weight_norm, padding=3)
        widths = [dim // 2 ** i for i in range(len(rates) + 1)]
        self.blocks = nn.Sequential(*(LACDecoderBlock(widths[i], widths[i + 1], rate, weight_norm)
                                      for i, rate in enumerate(rates)))
        self.act = Snake1d(widths[-1])
        self.conv_out = dac_conv(widths[-1], 1, 7, weight_norm, padding=3)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv_out(self.act(self.blocks(self.conv_in(latent)))))
