"""WaveNet building blocks: the mel upsampler and the gated residual stack (causal or centered).

The stack follows WaveNet (van den Oord et al., 2016): per layer a dilated convolution, a gated
activation ``tanh(a) * sigmoid(b)`` with local conditioning added to both halves through a 1x1 conv,
then 1x1 residual and skip convolutions. ``causal=True`` pads on the left only (the autoregressive
WaveNet and the IAF student); ``causal=False`` pads both sides ("same"; the transforms inside flows).
A causal stack also runs one sample at a time with per-layer input queues (`WaveNetStack.step`,
Fast WaveNet, Paine et al., 2016).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

UPSAMPLE_SLOPE = 0.4  # leaky ReLU between the transposed convolutions (ClariNet's upsampler)


def pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``conv`` applied to one time step x [B, C_in, 1] as a matrix product (a conv1d call on one
    step costs several times more), giving [B, C_out, 1]."""
    return F.linear(x[..., 0], conv.weight[..., 0], conv.bias).unsqueeze(-1)


class MelUpsampler(nn.Module):
    """Mel frames to sample rate by transposed 1-d convolutions, one per factor.

    Each stage with factor s is ``ConvTranspose1d(num_mels, num_mels, kernel=s + 2*(s//2), stride=s,
    padding=s//2)``, whose output is exactly s times longer; a leaky ReLU (0.4) follows every stage but the
    last.

    Args:
        num_mels: mel bands (channels in and out).
        upsample_scales: time factor of each stage; their product is the hop.
        depthwise: one filter per band (``groups=num_mels``: 80x fewer weights; the layers that read the
            conditioning mix the bands) instead of a full band-mixing transposed conv.
    """

    def __init__(self, num_mels: int, upsample_scales: list[int], depthwise: bool = False) -> None:
        super().__init__()
        if not upsample_scales or any(s < 1 for s in upsample_scales):
            raise ValueError(f"upsample_scales must be positive factors, got {upsample_scales}")
        self.scales = list(upsample_scales)
        self.stages = nn.ModuleList(
            nn.ConvTranspose1d(num_mels, num_mels, s + 2 * (s // 2), stride=s, padding=s // 2,
                               groups=num_mels if depthwise else 1)
            for s in self.scales)

    @property
    def hop_length(self) -> int:
        return math.prod(self.scales)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Args:
            mel: [B, num_mels, F].

        Returns:
            [B, num_mels, F * hop].
        """
        x = mel
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.stages) - 1:
                x = F.leaky_relu(x, UPSAMPLE_SLOPE)
        return x


class GatedResidualLayer(nn.Module):
    """One WaveNet layer: dilated conv, conditioned gate, residual and skip 1x1 convs.

    Args:
        residual_channels, gate_channels, skip_channels, cond_channels: widths (the gate's output has
            ``gate_channels // 2`` channels).
        kernel_size: taps of the dilated conv.
        dilation: its dilation.
        causal: left padding only (True) or centered padding (False; needs an odd kernel).
        residual: with a residual 1x1 conv (the last layer of a stack has none: only its skip is used,
            and an unused weight would break DistributedDataParallel).
    """

    def __init__(self, residual_channels: int, gate_channels: int, skip_channels: int, cond_channels: int,
                 kernel_size: int, dilation: int, causal: bool, residual: bool = True) -> None:
        super().__init__()
        if gate_channels % 2:
            raise ValueError(f"gate_channels must be even, got {gate_channels}")
        if not causal and kernel_size % 2 == 0:
            raise ValueError("a non-causal stack needs an odd kernel_size")
        self.kernel_size, self.dilation, self.causal = kernel_size, dilation, causal
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cond_channels, gate_channels, 1, bias=False) if cond_channels else None
        self.res = nn.Conv1d(gate_channels // 2, residual_channels, 1) if residual else None
        self.skip = nn.Conv1d(gate_channels // 2, skip_channels, 1)

    @property
    def receptive_field(self) -> int:
        """Samples the dilated conv sees: (kernel_size - 1) * dilation + 1."""
        return (self.kernel_size - 1) * self.dilation + 1

    def cond_projection(self, cond: torch.Tensor | None) -> torch.Tensor | None:
        """The conditioning's gate contribution [B, gate_channels, T] (None without conditioning)."""
        if self.cond is None or cond is None:
            return None
        return self.cond(cond)

    def _gate(self, a: torch.Tensor, x: torch.Tensor, cond_proj: torch.Tensor | None,
              one_step: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if cond_proj is not None:
            a = a + cond_proj
        filt, gate = a.chunk(2, dim=1)
        z = torch.tanh(filt) * torch.sigmoid(gate)
        if self.res is None:
            return x, pointwise(self.skip, z) if one_step else self.skip(z)
        if one_step:
            return (x + pointwise(self.res, z)) * math.sqrt(0.5), pointwise(self.skip, z)
        return (x + self.res(z)) * math.sqrt(0.5), self.skip(z)

    def forward(self, x: torch.Tensor,
                cond_proj: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: [B, C_res, T].
            cond_proj: [B, C_gate, T] from `cond_projection`, or None.

        Returns:
            (residual output [B, C_res, T] (x itself without a residual conv), skip [B, C_skip, T]).
        """
        pad = (self.kernel_size - 1) * self.dilation
        padded = F.pad(x, (pad, 0) if self.causal else (pad // 2, pad - pad // 2))
        return self._gate(self.conv(padded), x, cond_proj)

    def step(self, x: torch.Tensor, queue: torch.Tensor,
             cond_proj: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new sample of a causal layer.

        Args:
            x: [B, C_res, 1], this layer's input at the new time step.
            queue: [B, C_res, receptive_field - 1], its inputs at the previous steps (zeros before t=0).
            cond_proj: [B, C_gate, 1] or None.

        Returns:
            (residual output [B, C_res, 1], skip [B, C_skip, 1], the updated queue).
        """
        window = torch.cat([queue, x], dim=2)
        taps = window[:, :, ::self.dilation]  # [B, C_res, kernel_size]: the inputs the kernel sees
        a = F.linear(taps.flatten(1), self.conv.weight.flatten(1), self.conv.bias).unsqueeze(-1)
        res, skip = self._gate(a, x, cond_proj, one_step=True)
        return res, skip, window[:, :, 1:]


class WaveNetStack(nn.Module):
    """Input 1x1 conv, gated residual layers, sum of their skips.

    Args:
        in_channels: channels of the input (1 for audio, the class count for one-hot μ-law).
        residual_channels, gate_channels, skip_channels: widths.
        cond_channels: channels of the local conditioning (0: none).
        kernel_size: taps of each dilated conv (2 in WaveNet; odd when ``causal`` is False).
        dilations: one dilation per layer, e.g. ``[1, 2, 4, 8] * 3`` for three cycles.
        causal: left padding only (output t sees inputs <= t) or centered "same" padding.
    """

    def __init__(self, in_channels: int, residual_channels: int, gate_channels: int, skip_channels: int,
                 cond_channels: int, kernel_size: int, dilations: list[int], causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.input = nn.Conv1d(in_channels, residual_channels, 1)
        self.layers = nn.ModuleList(
            GatedResidualLayer(residual_channels, gate_channels, skip_channels, cond_channels, kernel_size, d,
                               causal, residual=i < len(dilations) - 1) for i, d in enumerate(dilations))

    @property
    def receptive_field(self) -> int:
        """Input samples that one output depends on."""
        return 1 + sum(layer.receptive_field - 1 for layer in self.layers)

    def cond_projections(self, cond: torch.Tensor | None) -> list[torch.Tensor | None]:
        """Each layer's conditioning term [B, C_gate, T] (computed once for a whole synthesis)."""
        return [layer.cond_projection(cond) for layer in self.layers]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                cond_proj: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Args:
            x: [B, C_in, T].
            cond: [B, C_cond, T] local conditioning (e.g. the upsampled mel), or None.
            cond_proj: `cond_projections(cond)` already computed (then ``cond`` is ignored); entries may
                be longer than T (they are cropped).

        Returns:
            skip sum [B, C_skip, T].
        """
        projections = cond_proj if cond_proj is not None else self.cond_projections(cond)
        length = x.shape[-1]
        h = self.input(x)
        total = None
        for layer, proj in zip(self.layers, projections):
            h, skip = layer(h, None if proj is None else proj[..., :length])
            total = skip if total is None else total + skip
        assert total is not None, "a WaveNetStack needs at least one layer"
        return total

    def init_queues(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Zero queues for `step`, one per layer [B, C_res, receptive_field - 1], like ``x`` [B, *, *]."""
        if not self.causal:
            raise RuntimeError("only a causal stack runs sample by sample")
        channels = self.input.out_channels
        return [x.new_zeros(x.shape[0], channels, layer.receptive_field - 1) for layer in self.layers]

    def step(self, x: torch.Tensor, queues: list[torch.Tensor],
             cond_proj: list[torch.Tensor | None]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One time step in O(layers) (Fast WaveNet).

        Args:
            x: [B, C_in, 1], the input at the new step.
            queues: from `init_queues` or the previous step.
            cond_proj: each layer's conditioning at this step [B, C_gate, 1] (or None).

        Returns:
            (skip sum [B, C_skip, 1], the updated queues).
        """
        h = pointwise(self.input, x)
        total = None
        new_queues = []
        for layer, queue, proj in zip(self.layers, queues, cond_proj):
            h, skip, queue = layer.step(h, queue, proj)
            new_queues.append(queue)
            total = skip if total is None else total + skip
        assert total is not None, "a WaveNetStack needs at least one layer"
        return total, new_queues
