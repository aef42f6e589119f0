"""FunCodec's 2-D SEANet (``encodec_seanet_encoder_2d`` / ``decoder_2d``), as its FreqCodec models compute it.

The encoder runs 2-D convolutions over a spectrogram [B, k, F, M], halving nothing but striding the
frequency axis (and the time axis where a stage's time ratio is 2) until one frequency bin is left; an
LSTM and a 1-D conv then give the latent [B, D, N]. The decoder mirrors it with transposed 2-D convs.
What makes it FunCodec's and not our FreqCodec (`funcodec_lite.modules.freqcodec`):

- padding: a conv pads each axis by ``(k - 1) · d - (s - 1)`` split as EnCodec does (the larger half
  first), except that the time axis's extra padding (that completes the last strided window) goes on the
  *left*; the frequency axis gets none (257 bins → 64 → 16 → 4 → 1 with stride 4);
- normalisation: ``time_group_norm`` is GroupNorm(1, C) after every conv, over channels, frequency and
  the whole utterance (so the model does not stream); a transposed conv is normalised before its
  padding is cut off;
- grouped convs: ``conv_group_ratio`` r > 0 gives ``min(C_in, C_out) // 2 // r`` groups in the residual
  units and the down-sampling convs (``tr_conv_group_ratio`` for the transposed convs);
- the last transposed conv keeps one more frequency bin on the right (``last_out_padding``), so 256 bins
  become 257.

Module names follow FunCodec's layer indices (``layers.{i}``), so a checkpoint maps key by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from funcodec_lite.modules.conv import StreamableConv1d, apply_norm, extra_padding_for_conv1d, pad1d
from funcodec_lite.modules.lstm import StreamableLSTM

NORMS = ("none", "weight_norm", "time_group_norm")


@dataclass
class FunCodecFreqNetConfig:
    """The 2-D SEANet of a FunCodec FreqCodec (FunCodec's ``encoder_conf`` / ``decoder_conf`` names).

    Attributes:
        in_channels: spectral feature channels k (3 for mag_phase, 2 for mag_angle); the decoder gives
            as many.
        dimension: latent channels D.
        n_filters: channels after the first conv (doubled at every stage).
        ratios: (frequency, time) stride of each stage, in decoder order (the encoder reverses them).
        n_residual_layers, residual_kernel_size, dilation_base, compress, true_skip: residual units.
        kernel_size / last_kernel_size: first and last convs (square on the 2-D side).
        norm: ``time_group_norm`` (GroupNorm(1, C)), ``weight_norm`` or ``none``.
        pad_mode: padding of the convs (``reflect`` or ``constant``).
        seq_model / seq_layers / res_seq: ``lstm`` (with ``seq_layers`` layers, a skip when ``res_seq``)
            or ``none`` at the narrow end of encoder and decoder.
        elu_alpha: the ELU's alpha.
        encoder_group_ratio / decoder_group_ratio: ``conv_group_ratio`` of encoder and decoder (-1: off).
        transpose_group_ratio: the decoder's ``tr_conv_group_ratio`` (-1: off).
        last_out_padding: ((freq left, freq right), (time left, time right)) kept by the last
            transposed conv.
    """

    in_channels: int = 3
    dimension: int = 128
    n_filters: int = 32
    ratios: list[list[int]] = field(default_factory=lambda: [[4, 1], [4, 1], [4, 2], [4, 1]])
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    true_skip: bool = False
    norm: str = "time_group_norm"
    pad_mode: str = "reflect"
    seq_model: str = "lstm"
    seq_layers: int = 2
    res_seq: bool = True
    elu_alpha: float = 1.0
    encoder_group_ratio: int = -1
    decoder_group_ratio: int = -1
    transpose_group_ratio: int = -1
    last_out_padding: list[list[int]] = field(default_factory=lambda: [[0, 1], [0, 0]])

    def __post_init__(self) -> None:
        self.ratios = [[int(f), int(t)] for f, t in self.ratios]
        self.last_out_padding = [[int(a), int(b)] for a, b in self.last_out_padding]
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.seq_model not in ("lstm", "none"):
            raise ValueError(f"seq_model must be 'lstm' or 'none', got {self.seq_model!r}")
        if not self.ratios or min(min(r) for r in self.ratios) < 1:
            raise ValueError("ratios must be a non-empty list of positive (frequency, time) pairs")
        for ratio in (self.encoder_group_ratio, self.decoder_group_ratio, self.transpose_group_ratio):
            if ratio == 0:
                raise ValueError("a conv group ratio of 0 is undefined (-1 turns grouping off)")

    @property
    def hop(self) -> int:
        """STFT frames per latent frame: the product of the time ratios."""
        hop = 1
        for _, time in self.ratios:
            hop *= time
        return hop

    def encoded_bins(self, freq_bins: int) -> int:
        """Frequency bins left after the encoder's stages (must be 1)."""
        for freq, _ in self.ratios:
            freq_bins = (freq_bins - freq) // freq + 1 if freq_bins >= freq else 0
        return freq_bins

    def decoded_bins(self) -> int:
        """Frequency bins the decoder gives from one."""
        bins = 1
        for i, (freq, _) in enumerate(self.ratios):
            right = freq // 2
            left = freq - right
            if i == len(self.ratios) - 1:
                left = max(left - self.last_out_padding[0][0], 0)
                right = max(right - self.last_out_padding[0][1], 0)
            bins = (bins - 1) * freq + 2 * freq - left - right
        return bins


def groups_for(channels: int, ratio: int) -> int:
    """FunCodec's group count: ``channels // 2 // ratio`` for ratio > 0, else 1 (ungrouped)."""
    if ratio <= 0:
        return 1
    groups = channels // 2 // ratio
    if groups < 1:
        raise ValueError(f"conv group ratio {ratio} leaves no group for {channels} channels")
    return groups


def _output_norm(norm: str, channels: int) -> nn.Module:
    return nn.GroupNorm(1, channels) if norm == "time_group_norm" else nn.Identity()


class PaddedConv2d(nn.Module):
    """Conv2d over [B, C, F, M] padded as FunCodec's ``SConv2d`` (non-causal), then its output norm.

    Shapes: input [B, C_in, F, M] → [B, C_out, F', ceil(M / s_t)].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1), groups: int = 1,
                 norm: str = "none", pad_mode: str = "reflect") -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride, dilation=dilation, groups=groups)
        self.conv = apply_norm(conv, "weight_norm" if norm == "weight_norm" else "none")
        self.norm = _output_norm(norm, out_channels)
        self.kernel, self.stride, self.dilation = tuple(kernel), tuple(stride), tuple(dilation)
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kf, kt), (sf, st), (df, dt) = self.kernel, self.stride, self.dilation
        freq_total = (kf - 1) * df - (sf - 1)
        time_total = (kt - 1) * dt - (st - 1)
        extra = extra_padding_for_conv1d(x.shape[-1], kt, st, time_total)
        x = pad1d(x, time_total - time_total // 2 + extra, time_total // 2, self.pad_mode)
        x = pad1d(x.transpose(-1, -2), freq_total - freq_total // 2, freq_total // 2, self.pad_mode)
        return self.norm(self.conv(x.transpose(-1, -2)))


class PaddedConvTranspose2d(nn.Module):
    """ConvTranspose2d, its output norm, then FunCodec's ``SConvTranspose2d`` trim (non-causal).

    ``keep`` ((freq left, freq right), (time left, time right)) is padding left in place.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int],
                 groups: int = 1, norm: str = "none", keep: list[list[int]] | None = None) -> None:
        super().__init__()
        convtr = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, groups=groups)
        self.convtr = apply_norm(convtr, "weight_norm" if norm == "weight_norm" else "none")
        self.norm = _output_norm(norm, out_channels)
        keep = keep or [[0, 0], [0, 0]]
        self.trims = []
        for axis in range(2):
            total = kernel[axis] - stride[axis]
            right = total // 2
            left = total - right
            self.trims.append((max(left - keep[axis][0], 0), max(right - keep[axis][1], 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.convtr(x))
        (fl, fr), (tl, tr) = self.trims
        return y[..., fl: y.shape[-2] - fr, tl: y.shape[-1] - tr]


class ResBlock2d(nn.Module):
    """FunCodec's ``SEANetResnetBlock2d``: ELU, k×k conv to C / compress, ELU, 1×1 conv back, plus a 1×1
    shortcut conv (or the identity with ``true_skip``). Shapes: [B, C, F, M] → same."""

    def __init__(self, dim: int, config: FunCodecFreqNetConfig, dilation: int, group_ratio: int) -> None:
        super().__init__()
        hidden = dim // config.compress
        k, norm, pad = config.residual_kernel_size, config.norm, config.pad_mode
        self.block = nn.Sequential(
            nn.ELU(config.elu_alpha),
            PaddedConv2d(dim, hidden, (k, k), dilation=(1, dilation),
                         groups=groups_for(min(dim, hidden), group_ratio), norm=norm, pad_mode=pad),
            nn.ELU(config.elu_alpha),
            PaddedConv2d(hidden, dim, (1, 1), groups=groups_for(min(dim, hidden), group_ratio), norm=norm,
                         pad_mode=pad),
        )
        self.shortcut = (nn.Identity() if config.true_skip else
                         PaddedConv2d(dim, dim, (1, 1), groups=groups_for(dim, group_ratio), norm=norm,
                                      pad_mode=pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class _SqueezeFreq(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 1:
            raise ValueError(f"the encoder left {x.shape[2]} frequency bins, expected 1")
        return x[:, :, 0]


class _UnsqueezeFreq(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2)


def _seq(config: FunCodecFreqNetConfig, channels: int) -> list[nn.Module]:
    return [StreamableLSTM(channels, config.seq_layers, config.res_seq)] if config.seq_model == "lstm" else []


class FunCodecFreqEncoder(nn.Module):
    """Spectral features [B, k, F, M] → latent [B, D, ceil(M / hop)]."""

    def __init__(self, config: FunCodecFreqNetConfig) -> None:
        super().__init__()
        c = config
        k = c.kernel_size
        layers: list[nn.Module] = [PaddedConv2d(c.in_channels, c.n_filters, (k, k), norm=c.norm,
                                                pad_mode=c.pad_mode)]
        channels = c.n_filters
        for freq, time in reversed(c.ratios):
            layers += [ResBlock2d(channels, c, c.dilation_base ** j, c.encoder_group_ratio)
                       for j in range(c.n_residual_layers)]
            layers += [nn.ELU(c.elu_alpha),
                       PaddedConv2d(channels, channels * 2, (freq * 2, time * 2), (freq, time),
                                    groups=groups_for(channels, c.encoder_group_ratio), norm=c.norm,
                                    pad_mode=c.pad_mode)]
            channels *= 2
        layers += [_SqueezeFreq(), *_seq(c, channels), nn.ELU(c.elu_alpha),
                   StreamableConv1d(channels, c.dimension, c.last_kernel_size, norm=c.norm,
                                    pad_mode=c.pad_mode)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class FunCodecFreqDecoder(nn.Module):
    """Latent [B, D, N] → decoder output [B, k, F, N · hop] (F from ``decoded_bins``)."""

    def __init__(self, config: FunCodecFreqNetConfig) -> None:
        super().__init__()
        c = config
        channels = c.n_filters * 2 ** len(c.ratios)
        layers: list[nn.Module] = [StreamableConv1d(c.dimension, channels, c.kernel_size, norm=c.norm,
                                                    pad_mode=c.pad_mode),
                                   *_seq(c, channels), _UnsqueezeFreq()]
        for i, (freq, time) in enumerate(c.ratios):
            keep = c.last_out_padding if i == len(c.ratios) - 1 else None
            layers += [nn.ELU(c.elu_alpha),
                       PaddedConvTranspose2d(channels, channels // 2, (freq * 2, time * 2), (freq, time),
                                             groups_for(channels, c.transpose_group_ratio), c.norm, keep)]
            layers += [ResBlock2d(channels // 2, c, c.dilation_base ** j, c.decoder_group_ratio)
                       for j in range(c.n_residual_layers)]
            channels //= 2
        k = c.last_kernel_size
        layers += [nn.ELU(c.elu_alpha),
                   PaddedConv2d(c.n_filters, c.in_channels, (k, k), norm=c.norm, pad_mode=c.pad_mode)]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)
