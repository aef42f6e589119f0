"""2-D building blocks of the FreqCodec encoder/decoder: padded convs, residual units, resampling layers."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from funcodec_lite.modules.conv import apply_norm

FREQ_NORMS = ("none", "weight_norm")


def make_activation(name: str) -> nn.Module:
    """Builds ``torch.nn.<name>()`` (e.g. ``ELU``), the nonlinearity used between convolutions."""
    try:
        return getattr(nn, name)()
    except AttributeError as err:
        raise ValueError(f"unknown activation {name!r}: expected a class name from torch.nn") from err


def normed(module: nn.Module, norm: str) -> nn.Module:
    """Returns ``module`` with its weight under weight normalisation when ``norm == 'weight_norm'``."""
    if norm not in FREQ_NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {FREQ_NORMS}")
    return apply_norm(module, norm)


def group_count(in_channels: int, out_channels: int, group_size: int) -> int:
    """Number of groups of a grouped conv with ``group_size`` channels per group (0 = ungrouped).

    The narrower side sets the count: ``min(in, out) // group_size``; ``group_size == 1`` is the
    depthwise case of FunCodec's Table 4 (groups = C_in for a widening conv).
    """
    if group_size <= 0:
        return 1
    narrow = min(in_channels, out_channels)
    groups = max(1, narrow // group_size)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{groups} groups do not divide channels {in_channels} -> {out_channels}")
    return groups


def split_padding(total: int) -> tuple[int, int]:
    """Splits ``total`` padding into (before, after), the extra element going after."""
    return total // 2, total - total // 2


class PaddedConv2d(nn.Module):
    """Conv2d over (frequency, time) that zero-pads its input explicitly, possibly asymmetrically.

    Args:
        in_channels, out_channels, kernel, stride, groups: as ``nn.Conv2d`` (kernel/stride as (freq, time)).
        freq_pad: (low, high) bins of zero padding on the frequency axis.
        time_pad: (left, right) frames of zero padding on the time axis.
        norm: ``weight_norm`` or ``none``.

    Shapes: input [B, C_in, F, N]; output [B, C_out, (F + pad_f - k_f) // s_f + 1, (N' - k_t) // s_t + 1]
    where N' = N + pad_t + ``extra_right``, the extra right padding given to ``forward``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        freq_pad: tuple[int, int] = (0, 0),
        time_pad: tuple[int, int] = (0, 0),
        groups: int = 1,
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, groups=groups)
        self.conv = normed(conv, norm)
        self.freq_pad = freq_pad
        self.time_pad = time_pad

    def forward(self, x: Tensor, extra_right: int = 0) -> Tensor:
        """Args:
        x: [B, C_in, F, N].
        extra_right: additional zero frames on the right (to complete the last strided window).
        """
        left, right = self.time_pad
        x = F.pad(x, (left, right + extra_right, *self.freq_pad))
        return self.conv(x)


class ResUnit2d(nn.Module):
    """Residual unit: act -> k×k conv (C -> C/compress, grouped) -> act -> 1×1 conv (-> C), plus a shortcut.

    Args:
        channels: C, the input and output channels.
        kernel: odd kernel size of the first conv (3 in FreqCodec); it is 'same'-padded.
        compress: hidden channels are ``channels // compress``.
        group_size: channels per group of the k×k conv (0 = ungrouped).
        true_skip: identity shortcut instead of a 1×1 conv.
        activation, norm: see ``make_activation`` and ``normed``.

    Shapes: [B, C, F, N] -> [B, C, F, N].
    """

    def __init__(
        self,
        channels: int,
        kernel: int = 3,
        compress: int = 2,
        group_size: int = 0,
        true_skip: bool = False,
        activation: str = "ELU",
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"residual kernel must be odd, got {kernel}")
        hidden = max(1, channels // compress)
        pad = (kernel // 2, kernel // 2)
        self.block = nn.Sequential(
            make_activation(activation),
            PaddedConv2d(
                channels, hidden, (kernel, kernel), freq_pad=pad, time_pad=pad,
                groups=group_count(channels, hidden, group_size), norm=norm,
            ),
            make_activation(activation),
            PaddedConv2d(hidden, channels, (1, 1), norm=norm),
        )
        self.shortcut = nn.Identity() if true_skip else PaddedConv2d(channels, channels, (1, 1), norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: [B, C, F, N]. Returns [B, C, F, N]."""
        return self.shortcut(x) + self.block(x)


class Downsample2d(nn.Module):
    """Strided conv with kernel (2f, 2t) and stride (f, t): F -> F / f bins, N -> ceil(N / t) frames.

    Padding: frequency (f // 2, f - f // 2), so F must be a multiple of f; time (t // 2, t - t // 2)
    plus ``(-N) mod t`` zero frames on the right to complete the last window.

    Shapes: [B, C_in, F, N] -> [B, C_out, F / f, ceil(N / t)].
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: tuple[int, int], groups: int = 1,
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        f, t = stride
        self.stride = stride
        self.conv = PaddedConv2d(
            in_channels, out_channels, (2 * f, 2 * t), stride=stride,
            freq_pad=split_padding(f), time_pad=split_padding(t), groups=groups, norm=norm,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: [B, C_in, F, N]. Returns [B, C_out, F / f, ceil(N / t)]."""
        f, t = self.stride
        if x.shape[2] % f:
            raise ValueError(f"{x.shape[2]} frequency bins are not a multiple of the stride {f}")
        return self.conv(x, extra_right=(-x.shape[3]) % t)


class Upsample2d(nn.Module):
    """Transposed conv with kernel (2f, 2t) and stride (f, t), the mirror of ``Downsample2d``.

    The transposed conv gives (F + 1)·f bins and (N + 1)·t frames; trimming (f // 2, f - f // 2) bins and
    (t // 2, t - t // 2) frames leaves exactly F·f and N·t, aligned with the encoder's windows.

    Shapes: [B, C_in, F, N] -> [B, C_out, F·f, N·t].
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: tuple[int, int], groups: int = 1,
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        f, t = stride
        conv = nn.ConvTranspose2d(in_channels, out_channels, (2 * f, 2 * t), stride=stride, groups=groups)
        self.conv = normed(conv, norm)
        self.freq_trim = split_padding(f)
        self.time_trim = split_padding(t)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: [B, C_in, F, N]. Returns [B, C_out, F·f, N·t]."""
        y = self.conv(x)
        f_lo, f_hi = self.freq_trim
        t_lo, t_hi = self.time_trim
        return y[:, :, f_lo : y.shape[2] - f_hi, t_lo : y.shape[3] - t_hi]


class ResidualLSTM(nn.Module):
    """Multi-layer LSTM over time with a skip connection (output = LSTM(x) + x).

    Args:
        dim: D, the feature size (input and hidden).
        num_layers: stacked LSTM layers.

    Shapes: [B, D, N] -> [B, D, N].
    """

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: [B, D, N]. Returns [B, D, N]."""
        y, _ = self.lstm(x.transpose(1, 2))
        return y.transpose(1, 2) + x
