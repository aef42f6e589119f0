"""Residual finite scalar quantization (FSQ, Mentzer et al. 2023) with the residual VQ's interface."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .rvq import QuantizerOutput, RVQConfig, _code_stats, check_dropout, draw_dropout_n_q, step_generator

_DROPOUT_STREAM = 0
BOUND_EPS = 1e-3  # the paper's margin: tanh never quite reaches the outer levels' rounding edge


def fsq_bound(z: torch.Tensor, levels: torch.Tensor, eps: float = BOUND_EPS) -> torch.Tensor:
    """Bounds each channel to the range that rounds onto its L levels (the paper's Appendix A.1).

    Odd L: tanh(z) * (L - 1) / 2 rounds to -(L-1)/2 .. (L-1)/2. Even L: the tanh is shifted by
    atanh(0.5 / half) and the result by -0.5, so it rounds to -L/2 .. L/2 - 1 (L levels, not L + 1),
    and z = 0 still maps to 0.

    Args:
        z (torch.Tensor): [..., d] projected latent.
        levels (torch.Tensor): integer levels [d].

    Returns:
        torch.Tensor: bounded values [..., d] in the input's dtype.
    """
    half = (levels - 1).to(z.dtype) * (1 + eps) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0).to(z.dtype)
    shift = torch.atanh(offset / half)
    return torch.tanh(z + shift) * half - offset


class ResidualFSQ(nn.Module):
    """Residual FSQ: project D → d = len(levels), bound, quantize residually on fixed grids, project back.

    Per channel with L levels and h = L // 2: the projected latent z is bounded once,
    b = fsq_bound(z) (range of the L levels), and t = b / h is the value the layers approximate.
    Layer 0 is the paper's FSQ: digits k_0 = round(b), q_0 = k_0 / h. Layer i >= 1 refines what is
    left, r_i = t - sum_{j<i} q_j, on the same grid scaled by s_i = (L - 1)^-i:
    k_i = round(clamp(h · r_i / s_i, -h, L - 1 - h)), q_i = s_i · k_i / h. So each layer shrinks the
    error by about L - 1, whatever the range of z. The output is ``project_out(sum_i q_i)``; its
    gradient is that of ``project_out(t)`` (one straight-through estimate over all layers, as the
    residual VQ's), so it does not grow with the number of layers. A layer's code is the mixed-radix
    index sum_j (k_j + h_j) · prod_{l<j} L_l (channel 0 least significant): prod(levels) codes.
    No codebook is learned: the projections are ordinary parameters, and the commitment loss is zero.

    Buffers: ``step`` (training forward count, seeds quantizer dropout exactly as in
    `ResidualVectorQuantizer`); ``levels``, ``basis`` and ``half_width`` are derived from the config
    and not saved.

    Args:
        config (RVQConfig): settings with ``kind: fsq`` (uses dim, n_q, levels and the dropout fields).
    """

    def __init__(self, config: RVQConfig):
        super().__init__()
        if config.kind != "fsq" or config.levels is None:
            raise ValueError(f"ResidualFSQ needs kind fsq with levels, got kind {config.kind!r}")
        check_dropout(config)
        self.config = config
        levels = torch.tensor(config.levels, dtype=torch.long)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), levels[:-1]]), 0)
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("half_width", levels // 2, persistent=False)
        self.project_in = nn.Linear(config.dim, len(config.levels))
        self.project_out = nn.Linear(len(config.levels), config.dim)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def n_q(self) -> int:
        return self.config.n_q

    @property
    def codebook_size(self) -> int:
        """Codes per layer: prod(levels)."""
        return math.prod(self.config.levels or [])

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    def n_q_for_bandwidth(self, kbps: float, frame_rate: float) -> int:
        """Layers that fit a bitrate: floor(kbps * 1000 / (log2(K) * frame_rate)), clamped to 1..n_q."""
        n = math.floor(kbps * 1000.0 / (self.bits_per_code * frame_rate) + 1e-9)
        return max(1, min(self.n_q, n))

    def scale(self, layer: int, dtype: torch.dtype) -> torch.Tensor:
        """Per-channel scale (L - 1)^-layer of a layer, shape [d]."""
        return (self.levels - 1).to(dtype) ** -layer

    def _check_n_q(self, n_q: int | None) -> int:
        if n_q is None:
            return self.n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    def _linear(self, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        """A projection computed in x's dtype (float32/float64) whatever the weights' dtype."""
        return F.linear(x, layer.weight.to(x.dtype), layer.bias.to(x.dtype))

    def _quantize(
        self, x: torch.Tensor, item_n_q: torch.Tensor, used: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized latent [B, D, N] and codes long [B, used, N] (-1 where an item has fewer layers).

        Args:
            x (torch.Tensor): latent [B, D, N], float32 or float64.
            item_n_q (torch.Tensor): layers per item, long [B] on x's device.
            used (int): layers to run (item_n_q.max()).
        """
        batch, _, frames = x.shape
        bounded = fsq_bound(self._linear(x.transpose(1, 2), self.project_in), self.levels)  # [B, N, d]
        half_width = self.half_width.to(x.dtype)
        top = (self.levels - 1 - self.half_width).to(x.dtype)  # highest centred digit: L - 1 - h
        target = bounded / half_width
        residual = target.detach()
        total = torch.zeros_like(residual)
        codes = torch.full((batch, used, frames), -1, dtype=torch.long, device=x.device)
        for i in range(used):
            scale = self.scale(i, x.dtype)
            if i == 0:
                centered = bounded.detach().round()
            else:
                centered = torch.clamp(residual / scale * half_width, -half_width, top).round()
            keep = (item_n_q > i).view(batch, 1, 1)
            value = centered / half_width * scale * keep.to(x.dtype)
            index = ((centered.long() + self.half_width) * self.basis).sum(-1)
            codes[:, i] = index.masked_fill(~keep.view(batch, 1), -1)
            residual = residual - value
            total = total + value
        if target.requires_grad:  # value: exactly the sum of the layers; gradient: that of the target
            total = total + (target - target.detach())
        return self._linear(total, self.project_out).transpose(1, 2), codes

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes of a latent, computed in float32 (or float64) whatever the model's dtype.

        Args:
            x (torch.Tensor): latent of shape [B, D, N].
            n_q (int, optional): layers to use (default all).

        Returns:
            torch.Tensor: long codes of shape [B, n_q, N], each in 0..prod(levels) - 1.
        """
        used = self._check_n_q(n_q)
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        with torch.autocast(device_type=x.device.type, enabled=False):
            item_n_q = torch.full((x.shape[0],), used, dtype=torch.long, device=x.device)
            return self._quantize(x, item_n_q, used)[1]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized latent from codes; negative codes (dropped layers) add nothing.

        In evaluation, ``decode(encode(x, n))`` equals ``forward(x, n).quantized`` exactly.

        Args:
            codes (torch.Tensor): long codes of shape [B, n, N], n <= n_q.

        Returns:
            torch.Tensor: quantized latent of shape [B, D, N] in float32 (or float64).
        """
        batch, n, frames = codes.shape
        if n > self.n_q:
            raise ValueError(f"got {n} code layers, the quantizer has {self.n_q}")
        if codes.numel() and int(codes.max()) >= self.codebook_size:
            raise ValueError(f"codes must be < {self.codebook_size} (prod(levels)), got {int(codes.max())}")
        dtype = torch.promote_types(self.project_out.weight.dtype, torch.float32)
        half_width = self.half_width.to(dtype)
        total = torch.zeros(batch, frames, len(self.basis), dtype=dtype, device=codes.device)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            for i in range(n):
                layer = codes[:, i].unsqueeze(-1)  # [B, N, 1]
                digits = layer.clamp(min=0) // self.basis % self.levels
                centered = (digits - self.half_width).to(dtype)
                total = total + centered / half_width * self.scale(i, dtype) * (layer >= 0).to(dtype)
            return self._linear(total, self.project_out).transpose(1, 2)

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize a latent; the gradient reaches x through the straight-through rounding.

        ``n_q`` given by the caller is honoured in training and evaluation alike; quantizer dropout
        (``quantizer_dropout``, ``dropout_choices``, ``dropout_per_item``, drawn as in
        `ResidualVectorQuantizer`) applies only in training when ``n_q`` is None.

        Args:
            x (torch.Tensor): latent of shape [B, D, N].
            n_q (int, optional): layers to use.

        Returns:
            QuantizerOutput: quantized [B, D, N] (float32 or float64), codes [B, n_q, N], a zero
            commit_loss, metrics ``layer{i}/entropy`` (bits), ``layer{i}/perplexity`` and
            ``layer{i}/usage`` (fraction of the prod(levels) codes the batch used), and n_q.
        """
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        batch = x.shape[0]
        used = self._check_n_q(n_q)
        item_n_q = torch.full((batch,), used, dtype=torch.long)
        if self.training and n_q is None and self.config.quantizer_dropout:
            item_n_q, used = draw_dropout_n_q(self.config, batch, step_generator(self.step, _DROPOUT_STREAM),
                                              x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            quantized, codes = self._quantize(x, item_n_q.to(x.device), used)
        metrics: dict[str, torch.Tensor] = {}
        for i in range(used):
            layer = codes[:, i]
            counts = torch.bincount(layer[layer >= 0], minlength=self.codebook_size).float()
            metrics[f"layer{i}/entropy"], metrics[f"layer{i}/perplexity"] = _code_stats(counts)
            metrics[f"layer{i}/usage"] = (counts > 0).float().mean()
        if self.training:
            self.step.add_(1)
        return QuantizerOutput(quantized, codes, x.new_zeros(()), metrics, used)
