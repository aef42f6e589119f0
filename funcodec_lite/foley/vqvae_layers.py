"""Encoder and decoder of the DCASE Foley mel VQ-VAE: multi-kernel strided conv branches, residual blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _axis_kernel(kernel_at_stride2: int, stride: int) -> int:
    kernel = kernel_at_stride2 * stride // 2
    if stride < 2 or stride % 2 or (kernel - stride) % 2:
        raise ValueError(f"stride {stride} with stride-2 kernel {kernel_at_stride2} cannot divide sizes "
                         "exactly")
    return kernel


def branch_conv(in_channels: int, out_channels: int, kernel_at_stride2: int, stride: int,
                time_stride: int | None = None) -> nn.Conv2d:
    """A strided conv that divides H by ``stride`` and W by ``time_stride`` (default ``stride``) exactly.

    On each axis the kernel is the branch's stride-2 kernel scaled by stride / 2 and the padding
    (kernel - stride) / 2, so a stride-2 conv is the baseline's (k 4/2/6/8 with padding 1/0/2/3) and a
    stride-4 conv keeps the same kernel-to-stride ratio (k 8/4/12/16 with padding 2/0/4/6).
    """
    strides = (stride, stride if time_stride is None else time_stride)
    kernels = tuple(_axis_kernel(kernel_at_stride2, s) for s in strides)
    padding = tuple((k - s) // 2 for k, s in zip(kernels, strides))
    return nn.Conv2d(in_channels, out_channels, kernels, strides, padding=padding)


def upsample_conv(in_channels: int, out_channels: int, stride: int,
                  time_stride: int | None = None) -> nn.ConvTranspose2d:
    """A transposed conv that multiplies H by ``stride`` and W by ``time_stride`` (default ``stride``);
    kernel 2·stride and padding stride / 2 on each axis."""
    strides = (stride, stride if time_stride is None else time_stride)
    return nn.ConvTranspose2d(in_channels, out_channels, tuple(2 * s for s in strides), strides,
                              padding=tuple(s // 2 for s in strides))


class ResBlock2d(nn.Module):
    """``h = relu(x); h + conv1x1(relu(conv3x3(h)))``.

    The baseline (rosinality's VQ-VAE-2) starts its block with an in-place ReLU, which also rectifies
    the tensor its skip connection adds back: the effective block is the one written here.

    Args:
        channels: input/output channels C.
        hidden: channels R of the 3x3 conv.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x (torch.Tensor): [B, C, H, W].

        Returns:
            torch.Tensor: [B, C, H, W].
        """
        h = F.relu(x)
        return h + self.conv2(F.relu(self.conv1(h)))


def _widths(channel: int, n_strided: int) -> list[int]:
    """Output channels of the strided convs of a branch: C/2 for the first, C for the others."""
    return [channel // 2 if i == 0 else channel for i in range(n_strided)]


class EncoderBranch(nn.Sequential):
    """One branch: strided convs with ReLUs between them, a 3x3 conv, residual blocks, a final ReLU.

    Args:
        in_channels: input channels (1 for a mel image).
        channel: output channels C.
        kernel_at_stride2: this branch's kernel for a stride-2 conv (4, 2, 6 or 8 in the baseline).
        strides: stride of each strided conv, in order.
        n_res_block, n_res_channel: residual blocks and their hidden width.
        time_strides: each strided conv's stride along time (W), if it differs from ``strides`` (along H).
    """

    def __init__(self, in_channels: int, channel: int, kernel_at_stride2: int, strides: Sequence[int],
                 n_res_block: int, n_res_channel: int, time_strides: Sequence[int] | None = None):
        layers: list[nn.Module] = []
        width_in = in_channels
        time_strides = strides if time_strides is None else time_strides
        for i, (stride, time_stride, width) in enumerate(zip(strides, time_strides,
                                                             _widths(channel, len(strides)))):
            if i:
                layers.append(nn.ReLU())
            layers.append(branch_conv(width_in, width, kernel_at_stride2, stride, time_stride))
            width_in = width
        layers += [nn.ReLU(), nn.Conv2d(width_in, channel, 3, padding=1)]
        layers += [ResBlock2d(channel, n_res_channel) for _ in range(n_res_block)]
        layers.append(nn.ReLU())
        super().__init__(*layers)


class MultiBranchEncoder(nn.Module):
    """Sum of parallel `EncoderBranch`es that differ only in kernel size.

    Args:
        in_channels, channel, strides, n_res_block, n_res_channel: as `EncoderBranch`.
        branch_kernels: stride-2 kernel of each branch.

    Shapes: [B, in_channels, H, W] -> [B, C, H / S, W / S_t] with S the product of ``strides`` and S_t
    that of ``time_strides`` (default: ``strides``).
    """

    def __init__(self, in_channels: int, channel: int, branch_kernels: Sequence[int], strides: Sequence[int],
                 n_res_block: int, n_res_channel: int, time_strides: Sequence[int] | None = None):
        super().__init__()
        self.branches = nn.ModuleList(
            EncoderBranch(in_channels, channel, k, strides, n_res_block, n_res_channel, time_strides)
            for k in branch_kernels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class MelDecoder(nn.Sequential):
    """3x3 conv, residual blocks, ReLU, then transposed convs that undo the encoder's strides in reverse.

    Channels mirror the encoder: C -> ... -> C/2 -> out_channels, ReLU between transposed convs and no
    output activation.

    Args:
        in_channels: latent channels D.
        out_channels: output channels (1 for a mel image).
        channel, strides, n_res_block, n_res_channel, time_strides: as the encoder's.

    Shapes: [B, D, h, w] -> [B, out_channels, h·S, w·S_t].
    """

    def __init__(self, in_channels: int, out_channels: int, channel: int, strides: Sequence[int],
                 n_res_block: int, n_res_channel: int, time_strides: Sequence[int] | None = None):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channel, 3, padding=1)]
        layers += [ResBlock2d(channel, n_res_channel) for _ in range(n_res_block)]
        layers.append(nn.ReLU())
        widths = [channel, *reversed(_widths(channel, len(strides))[:-1]), out_channels]
        time_strides = strides if time_strides is None else time_strides
        for i, (stride, time_stride) in enumerate(zip(reversed(strides), reversed(time_strides))):
            if i:
                layers.append(nn.ReLU())
            layers.append(upsample_conv(widths[i], widths[i + 1], stride, time_stride))
        super().__init__(*layers)
