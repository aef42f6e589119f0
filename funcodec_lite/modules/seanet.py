"""SEANet time-domain encoder and decoder (the SoundStream / EnCodec family)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from funcodec_lite.modules.conv import StreamableConv1d, StreamableConvTranspose1d
from funcodec_lite.modules.lstm import StreamableLSTM
from funcodec_lite.modules.streaming import StreamingAdd, StreamingModule, StreamingSequential

DECODER_HEADS = ("conv", "istft")


@dataclass
class SEANetConfig:
    """Architecture of a SEANet encoder/decoder pair.

    ``ratios`` are the decoder's upsampling ratios; the encoder downsamples by them in reverse order.
    Their product is the hop length (samples per latent frame): [8, 5, 4, 2] → 320.

    ``decoder_head`` picks the decoder: ``conv`` (transposed convolutions, EnCodec's layout and
    weights) or ``istft`` (``ISTFTDecoder``: no upsampling layers; ``istft_blocks`` ConvNeXt blocks of
    ``istft_width`` channels at the frame rate, then log-magnitude and phase for an inverse STFT of
    ``istft_n_fft`` points with hop = ``hop_length``).  The iSTFT decoder is non-causal and uses plain
    convolutions: ``lstm``, ``n_residual_layers``, ``norm`` and ``pad_mode`` shape the encoder only.
    """

    n_filters: int = 32
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    dimension: int = 128
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm: int = 2
    causal: bool = False
    norm: str = "weight_norm"
    pad_mode: str = "reflect"
    true_skip: bool = False
    elu_alpha: float = 1.0
    final_activation: str | None = None  # e.g. "Tanh" on the decoder output
    decoder_head: str = "conv"  # conv | istft
    istft_blocks: int = 4
    istft_width: int | None = None  # None: n_filters * 2 ** len(ratios), the conv decoder's widest layer
    istft_n_fft: int | None = None  # None: 4 * hop_length

    def __post_init__(self) -> None:
        if self.decoder_head not in DECODER_HEADS:
            raise ValueError(f"unknown decoder_head {self.decoder_head!r}; choose one of {DECODER_HEADS}")
        if self.decoder_head == "istft":
            if self.causal:
                raise ValueError("decoder_head istft is non-causal only (its inverse STFT and ConvNeXt "
                                 "blocks look ahead, so it cannot stream): use decoder_head conv with "
                                 "causal: true")
            if self.istft_blocks < 1 or self.istft_channels < 1:
                raise ValueError("istft_blocks and istft_width must be >= 1")
            n_fft, hop = self.istft_fft_size, self.hop_length
            if n_fft <= hop or (n_fft - hop) % 2:
                raise ValueError(f"istft_n_fft must exceed hop_length ({hop}) by an even number, got {n_fft}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def istft_channels(self) -> int:
        """Channels of the iSTFT decoder's blocks."""
        return self.n_filters * 2 ** len(self.ratios) if self.istft_width is None else self.istft_width

    @property
    def istft_fft_size(self) -> int:
        """FFT size of the iSTFT decoder."""
        return 4 * self.hop_length if self.istft_n_fft is None else self.istft_n_fft


class SEANetResnetBlock(StreamingModule):
    """Residual unit: ``shortcut(x) + conv1x1(elu(conv_k(elu(x))))`` with a dilated first conv.

    Args:
        dim: channels C.
        dilation: dilation of the first conv.
        config: kernel size, compression, norm, causality and padding.

    Shapes: input [B, C, T], output [B, C, T].
    """

    def __init__(self, dim: int, dilation: int, config: SEANetConfig) -> None:
        super().__init__()
        hidden = dim // config.compress
        conv = _conv_factory(config)
        self.block = StreamingSequential([
            nn.ELU(config.elu_alpha),
            conv(dim, hidden, config.residual_kernel_size, dilation=dilation),
            nn.ELU(config.elu_alpha),
            conv(hidden, dim, 1),
        ])
        self.shortcut: nn.Module = nn.Identity() if config.true_skip else conv(dim, dim, 1)
        self.add = StreamingAdd()

    def _new_state(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.shortcut(x), self.block(x))

    def flush(self) -> torch.Tensor | None:
        skip = self.shortcut.flush() if isinstance(self.shortcut, StreamingModule) else None
        main = self.block.flush()
        if skip is not None or main is not None:
            reference = skip if skip is not None else main
            skip = skip if skip is not None else reference[..., :0]
            main = main if main is not None else reference[..., :0]
            head = self.add(skip, main)
            rest = self.add.flush()
            return head if rest is None else torch.cat([head, rest], dim=-1)
        return self.add.flush()


def _conv_factory(config: SEANetConfig):
    def make(in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1) -> StreamableConv1d:
        return StreamableConv1d(in_ch, out_ch, kernel, stride, dilation=dilation, causal=config.causal,
                                norm=config.norm, pad_mode=config.pad_mode)
    return make


class SEANetEncoder(StreamingSequential):
    """Waveform → latent frames.

    Args:
        channels: audio channels C.
        config: the architecture.

    Shapes: input [B, C, T], output [B, dimension, ceil(T / hop_length)].
    """

    def __init__(self, channels: int, config: SEANetConfig) -> None:
        conv = _conv_factory(config)
        width = config.n_filters
        layers: list[nn.Module] = [conv(channels, width, config.kernel_size)]
        for ratio in reversed(config.ratios):
            for j in range(config.n_residual_layers):
                layers.append(SEANetResnetBlock(width, config.dilation_base**j, config))
            layers += [nn.ELU(config.elu_alpha), conv(width, width * 2, ratio * 2, stride=ratio)]
            width *= 2
        if config.lstm:
            layers.append(StreamableLSTM(width, config.lstm))
        layers += [nn.ELU(config.elu_alpha), conv(width, config.dimension, config.last_kernel_size)]
        super().__init__(layers)
        self.config = config
        self.hop_length = config.hop_length


class SEANetDecoder(StreamingSequential):
    """Latent frames → waveform.

    Args:
        channels: audio channels C.
        config: the architecture (``dimension`` is the latent input size).
        input_dim: latent channels if they differ from ``config.dimension`` (semantic concatenation).

    Shapes: input [B, input_dim, N], output [B, C, N * hop_length].
    """

    def __init__(self, channels: int, config: SEANetConfig, input_dim: int | None = None) -> None:
        conv = _conv_factory(config)
        width = config.n_filters * 2 ** len(config.ratios)
        layers: list[nn.Module] = [conv(input_dim or config.dimension, width, config.kernel_size)]
        if config.lstm:
            layers.append(StreamableLSTM(width, config.lstm))
        for ratio in config.ratios:
            layers += [
                nn.ELU(config.elu_alpha),
                StreamableConvTranspose1d(width, width // 2, ratio * 2, ratio, causal=config.causal,
                                          norm=config.norm),
            ]
            width //= 2
            for j in range(config.n_residual_layers):
                layers.append(SEANetResnetBlock(width, config.dilation_base**j, config))
        layers += [nn.ELU(config.elu_alpha), conv(width, channels, config.last_kernel_size)]
        if config.final_activation:
            layers.append(getattr(nn, config.final_activation)())
        super().__init__(layers)
        self.config = config
        self.hop_length = config.hop_length
