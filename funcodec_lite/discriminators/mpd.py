"""Multi-period waveform discriminator (HiFi-GAN MPD)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.conv import apply_norm, pad1d


@dataclass
class MPDConfig:
    """Settings of the multi-period discriminator; defaults are HiFi-GAN V1's.

    Args:
        periods: one sub-discriminator per period p.
        channels: output channels of the Conv2d layers; all but the last stride `stride` over time.
        kernel_size: kernel length over the folded time axis (kernels are (kernel_size, 1)).
        stride: stride over the folded time axis.
        negative_slope: LeakyReLU slope.
    """

    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    channels: list[int] = field(default_factory=lambda: [32, 128, 512, 1024, 1024])
    kernel_size: int = 5
    stride: int = 3
    negative_slope: float = 0.1

    def __post_init__(self) -> None:
        if not self.periods or min(self.periods) < 1:
            raise ValueError(f"periods must be positive, got {self.periods}")
        if not self.channels:
            raise ValueError("need at least one conv layer")


class PeriodDiscriminator(nn.Module):
    """One MPD sub-discriminator: folds [B, 1, T] into [B, 1, T/p, p] and applies (k, 1) Conv2d layers.

    Args:
        period: the folding period p.
        config: layer settings.
    """

    def __init__(self, period: int, config: MPDConfig):
        super().__init__()
        self.period = period
        self.negative_slope = config.negative_slope
        k, pad = config.kernel_size, config.kernel_size // 2
        self.convs = nn.ModuleList()
        in_ch = 1
        for i, out_ch in enumerate(config.channels):
            stride = 1 if i == len(config.channels) - 1 else config.stride
            conv = nn.Conv2d(in_ch, out_ch, (k, 1), (stride, 1), padding=(pad, 0))
            self.convs.append(apply_norm(conv, "weight_norm"))
            in_ch = out_ch
        self.post = apply_norm(nn.Conv2d(in_ch, 1, (3, 1), padding=(1, 0)), "weight_norm")

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T]; reflect-padded on the right to a multiple of p.

        Returns:
            tuple: logits [B, 1, T'', p] and the activation of every conv layer but the last
            ([B, C_l, T_l, p], len(config.channels) maps).
        """
        batch, channels, length = wav.shape
        extra = -length % self.period
        x = pad1d(wav, 0, extra, "reflect") if extra else wav
        x = x.reshape(batch, channels, (length + extra) // self.period, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            features.append(x)
        return self.post(x), features


class MultiPeriodDiscriminator(nn.Module):
    """MPD: one `PeriodDiscriminator` per period, all with weight norm.

    With the default config it has 41,105,770 parameters (5 x 8,218,433 conv weights and biases,
    plus 5 x 2,721 weight-norm gains).

    Args:
        config: settings; None means HiFi-GAN V1's.
    """

    def __init__(self, config: MPDConfig | None = None):
        super().__init__()
        self.config = config or MPDConfig()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, self.config) for p in self.config.periods)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            list: per period, (logits [B, 1, T'', p], feature maps).
        """
        return [disc(wav) for disc in self.discriminators]
