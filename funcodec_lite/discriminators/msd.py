"""Multi-scale waveform discriminator (MelGAN / HiFi-GAN MSD)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations

from funcodec_lite.modules.conv import apply_norm


@dataclass
class MSDConfig:
    """Settings of the multi-scale discriminator; defaults are HiFi-GAN V1's.

    Args:
        scales: number of sub-discriminators; scale s sees the signal average-pooled s times
            (kernel 4, stride 2, padding 2), i.e. at rates 1, 1/2, 1/4.
        channels: output channels of each conv layer.
        kernel_sizes: kernel size of each conv layer (odd).
        strides: stride of each conv layer.
        groups: groups of each conv layer (must divide its input and output channels).
        negative_slope: LeakyReLU slope.
    """

    scales: int = 3
    channels: list[int] = field(default_factory=lambda: [128, 128, 256, 512, 1024, 1024, 1024])
    kernel_sizes: list[int] = field(default_factory=lambda: [15, 41, 41, 41, 41, 41, 5])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 4, 4, 1, 1])
    groups: list[int] = field(default_factory=lambda: [1, 4, 16, 16, 16, 16, 1])
    negative_slope: float = 0.1

    def __post_init__(self) -> None:
        n = len(self.channels)
        if not n or not len(self.kernel_sizes) == len(self.strides) == len(self.groups) == n:
            raise ValueError("channels, kernel_sizes, strides and groups need one entry per layer")
        if self.scales < 1:
            raise ValueError(f"need at least one scale, got {self.scales}")
        for in_ch, out_ch, group in zip([1, *self.channels], self.channels, self.groups):
            if in_ch % group or out_ch % group:
                raise ValueError(f"groups={group} must divide the channels {in_ch} -> {out_ch}")


class ScaleDiscriminator(nn.Module):
    """One MSD sub-discriminator: a stack of grouped strided Conv1d layers and a 1-channel output conv.

    Args:
        config: layer settings.
        norm: "weight_norm" or "spectral_norm".
    """

    def __init__(self, config: MSDConfig, norm: str = "weight_norm"):
        super().__init__()
        if norm not in ("weight_norm", "spectral_norm"):
            raise ValueError(f"norm must be weight_norm or spectral_norm, got {norm!r}")
        self.negative_slope = config.negative_slope
        self.convs = nn.ModuleList()
        in_ch = 1
        for out_ch, kernel, stride, groups in zip(config.channels, config.kernel_sizes, config.strides,
                                                  config.groups):
            conv = nn.Conv1d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups)
            self.convs.append(_normed(conv, norm))
            in_ch = out_ch
        self.post = _normed(nn.Conv1d(in_ch, 1, 3, padding=1), norm)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            tuple: logits [B, 1, T'] and the activation of every conv layer but the last
            ([B, C_l, T_l], len(config.channels) maps).
        """
        features = []
        x = wav
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            features.append(x)
        return self.post(x), features


class MultiScaleDiscriminator(nn.Module):
    """MSD: the same architecture applied to the raw, 2x and 4x average-pooled signal.

    The first scale uses spectral norm, the others weight norm (HiFi-GAN). With the default config
    it has 29,618,821 parameters (3 x 9,870,209 conv weights and biases, plus 2 x 4,097 weight-norm
    gains; spectral norm adds buffers only).

    Args:
        config: settings; None means HiFi-GAN V1's.
    """

    def __init__(self, config: MSDConfig | None = None):
        super().__init__()
        self.config = config or MSDConfig()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(self.config, "spectral_norm" if s == 0 else "weight_norm")
            for s in range(self.config.scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            list: per scale, (logits [B, 1, T'], feature maps).
        """
        outputs = []
        x = wav
        for s, disc in enumerate(self.discriminators):
            if s:
                x = self.pool(x)
            outputs.append(disc(x))
        return outputs


def _normed(conv: nn.Module, norm: str) -> nn.Module:
    if norm == "spectral_norm":
        return parametrizations.spectral_norm(conv)
    return apply_norm(conv, norm)
