"""Multi-scale complex-STFT discriminator (EnCodec MS-STFT)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.audio.spectral import STFT, STFTConfig
from funcodec_lite.modules.conv import apply_norm


@dataclass
class MSSTFTConfig:
    """Settings of the MS-STFT discriminator; defaults are EnCodec's code and FunCodec's configs.

    Args:
        filters: channels of the first conv layer (32 in EnCodec / FunCodec).
        windows: one sub-discriminator per STFT window (= n_fft); the EnCodec paper lists five,
            [2048, 1024, 512, 256, 128], its code and FunCodec use three.
        hop_divisor: hop = window // hop_divisor.
        kernel_size: (time, frequency) kernel of the inner layers; the last two use (k_t, k_t).
        stride: (time, frequency) stride of the dilated layers.
        dilations: time dilation of each strided layer.
        filters_scale: channel growth factor per layer (capped at `max_filters`).
        max_filters: channel cap.
        normalized: divide the spectrum by the window's L2 norm (torchaudio's "normalized").
        center: centred STFT frames; EnCodec uses uncentred frames, so T must be >= the largest window.
        negative_slope: LeakyReLU slope.
    """

    filters: int = 32
    windows: list[int] = field(default_factory=lambda: [1024, 2048, 512])
    hop_divisor: int = 4
    kernel_size: list[int] = field(default_factory=lambda: [3, 9])
    stride: list[int] = field(default_factory=lambda: [1, 2])
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])
    filters_scale: int = 1
    max_filters: int = 1024
    normalized: bool = True
    center: bool = False
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if not self.windows or min(self.windows) < 2 * self.hop_divisor:
            raise ValueError(f"windows must be >= 2 * hop_divisor, got {self.windows}")
        if len(self.kernel_size) != 2 or len(self.stride) != 2:
            raise ValueError("kernel_size and stride are (time, frequency) pairs")


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class STFTDiscriminator(nn.Module):
    """One MS-STFT sub-discriminator: Conv2d stack over the real and imaginary parts of one STFT.

    Layers: a (k_t, k_f) conv from 2 channels (no norm), len(dilations) strided convs dilated over
    time, a (k_t, k_t) conv and a (k_t, k_t) output conv to one channel; all but the first use
    weight norm.

    Args:
        window: STFT window length and n_fft.
        config: layer settings.
    """

    def __init__(self, window: int, config: MSSTFTConfig):
        super().__init__()
        self.config = config
        hop = window // config.hop_divisor
        self.stft = STFT(STFTConfig(n_fft=window, hop_length=hop, center=config.center))
        kernel, stride = tuple(config.kernel_size), tuple(config.stride)
        square = (kernel[0], kernel[0])

        def width(layer: int) -> int:
            return min(config.filters_scale**layer * config.filters, config.max_filters)

        self.convs = nn.ModuleList([nn.Conv2d(2, width(0), kernel, padding=_same_padding(kernel))])
        for i, dilation in enumerate(config.dilations):
            conv = nn.Conv2d(width(i), width(i + 1), kernel, stride, dilation=(dilation, 1),
                             padding=_same_padding(kernel, (dilation, 1)))
            self.convs.append(apply_norm(conv, "weight_norm"))
        depth = len(config.dilations)
        last = width(depth + 1)
        conv = nn.Conv2d(width(depth), last, square, padding=_same_padding(square))
        self.convs.append(apply_norm(conv, "weight_norm"))
        self.post = apply_norm(nn.Conv2d(last, 1, square, padding=_same_padding(square)), "weight_norm")

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            torch.Tensor: real and imaginary parts as channels, [B, 2, N, F] (time, then frequency).
        """
        n_fft = self.stft.config.n_fft
        if not self.config.center and wav.shape[-1] < n_fft:
            raise ValueError(f"signal of {wav.shape[-1]} samples is shorter than the STFT window {n_fft}")
        spec = self.stft(wav[:, 0])
        if self.config.normalized:
            spec = spec / self.stft.window.square().sum().sqrt()
        return torch.stack([spec.real, spec.imag], dim=1).transpose(-1, -2)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            tuple: logits [B, 1, N, F'] and the activation of every conv layer but the last
            (len(dilations) + 2 maps of shape [B, C_l, N, F_l]).
        """
        return self.classify(self.spectrogram(wav))

    def classify(self, spec: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The convolutional part, on a precomputed `spectrogram` [B, 2, N, F].

        Returns:
            tuple: as `forward`.
        """
        x = spec
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.config.negative_slope)
            features.append(x)
        return self.post(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """MS-STFT: one `STFTDiscriminator` per window.

    The parameter count does not depend on the windows: 94,466 per sub-discriminator with 32 filters,
    so 283,398 for the default three windows (FunCodec reports 0.283M) and 472,330 for the EnCodec
    paper's five.

    Args:
        config: settings; None means the defaults.
    """

    def __init__(self, config: MSSTFTConfig | None = None):
        super().__init__()
        self.config = config or MSSTFTConfig()
        self.discriminators = nn.ModuleList(STFTDiscriminator(w, self.config) for w in self.config.windows)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Args:
            wav (torch.Tensor): signal of shape [B, 1, T].

        Returns:
            list: per window, (logits [B, 1, N, F'], feature maps).
        """
        return self.classify(self.spectrograms(wav))

    def spectrograms(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """The weight-free front end: one [B, 2, N, F] spectrogram per window (see `classify`).

        A trainer computes these once per signal and step and reuses them for the discriminator and
        the generator updates, so no STFT is taken twice.
        """
        return [disc.spectrogram(wav) for disc in self.discriminators]

    def classify(self, spectrograms: list[torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Args:
            spectrograms: the output of `spectrograms`.

        Returns:
            list: per window, (logits [B, 1, N, F'], feature maps).
        """
        return [disc.classify(spec) for disc, spec in zip(self.discriminators, spectrograms)]
