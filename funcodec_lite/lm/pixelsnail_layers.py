"""PixelSNAIL building blocks: shifted causal convolutions, gated residual blocks and causal attention.

Each block computes one function two ways: ``forward`` on whole code maps [B, C, H, W] (training and the
naive sampler), and ``step`` at one raster position (i, j), reading what earlier positions left in a
:class:`StepCache` (the incremental sampler). Raster order is row-major: position p = i * W + j.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class StepCache:
    """What the incremental sampler keeps between raster positions, for one batch of B maps of H x W.

    Attributes:
        buffers: per convolution, its zero-padded input so far, [B, H + top, W + left + right, C_in]
            (channels last, so a k x k window is k contiguous runs of k * C_in values).
        keys, values: per attention layer, [B, n_head, H * W, head_dim]; entries < p are filled.
        memo: per (module, name), values computed once per sampling run (step weights, class biases).
    """

    def __init__(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> None:
        self.batch, self.height, self.width = batch, height, width
        self.device, self.dtype = device, dtype
        self.buffers: dict[nn.Module, torch.Tensor] = {}
        self.keys: dict[nn.Module, torch.Tensor] = {}
        self.values: dict[nn.Module, torch.Tensor] = {}
        self.memo: dict[tuple[nn.Module, str], Any] = {}

    def remember(self, module: nn.Module, name: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed on the first call for (module, name) and reused afterwards."""
        key = (module, name)
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [B, K] @ weight [K, N] + bias ([N] or [B, N]) -> [B, N]."""
    return torch.mm(x, weight) if bias is None else torch.addmm(bias, x, weight)


class CausalConv2d(nn.Module):
    """Weight-normalised 2-D convolution whose output at (i, j) reads a window above and around (i, j).

    The window covers input rows ``i - top .. i - top + kh - 1`` and columns ``j - left .. j - left + kw - 1``
    (zeros outside the map). With ``mask_current_row`` the kernel's last row (row ``i`` when
    ``top == kh - 1``) keeps only the columns strictly left of ``j``. The weight is
    ``g * v / ||v||`` per output channel, with ``v`` masked before its norm is taken.

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel: (kh, kw).
        top, left: how far the window reaches above and left of (i, j).
        mask_current_row: hide the current position and those right of it in the last kernel row.
        bias: add a learned bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int] = (1, 1), top: int = 0,
                 left: int = 0, mask_current_row: bool = False, bias: bool = True) -> None:
        super().__init__()
        kh, kw = kernel
        self.kernel, self.top, self.left = (kh, kw), top, left
        self.right = max(0, kw - 1 - left)
        self.pointwise = (kh, kw) == (1, 1) and top == 0 and left == 0
        mask = None
        if mask_current_row:
            mask = torch.ones(1, 1, kh, kw)
            mask[..., -1, left:] = 0.0
        self.register_buffer("mask", mask, persistent=False)
        init = nn.Conv2d(in_channels, out_channels, kernel, bias=bias)
        v = init.weight.detach() if mask is None else init.weight.detach() * mask
        self.weight_v = nn.Parameter(v.clone())
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).clone())
        self.bias = nn.Parameter(init.bias.detach().clone()) if bias else None

    def weight(self) -> torch.Tensor:
        """The effective kernel [C_out, C_in, kh, kw]: masked, weight-normalised."""
        v = self.weight_v if self.mask is None else self.weight_v * self.mask
        scale = self.weight_g / v.flatten(1).norm(dim=1)
        return v * scale[:, None, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, H, W] -> [B, C_out, H, W]."""
        if self.pointwise:
            return F.conv2d(x, self.weight(), self.bias)
        height, width = x.shape[-2:]
        y = F.conv2d(F.pad(x, (self.left, self.right, self.top, 0)), self.weight(), self.bias)
        return y[..., :height, :width]

    # --- one position at a time -------------------------------------------------------------------------

    def step_weights(self, cache: StepCache) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel for one output position, transposed: ([K_rows, C_out], [K_last, C_out]).

        The first matches a flattened channels-last window over the kernel's rows (all of them, or all
        but the last when masked), the second the unmasked start of a masked last row (empty otherwise),
        so masked taps cost nothing.
        """

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            w = self.weight().permute(2, 3, 1, 0)  # [kh, kw, C_in, C_out]
            if self.mask is None:
                return w.flatten(0, 2).contiguous(), w[:0].flatten(0, 2)
            return w[:-1].flatten(0, 2).contiguous(), w[-1, : self.left].flatten(0, 1).contiguous()

        return cache.remember(self, "step_weights", make)

    def buffer(self, cache: StepCache) -> torch.Tensor:
        """The padded input so far, [B, H + top, W + left + right, C_in] (zeros when first asked for)."""
        buffer = cache.buffers.get(self)
        if buffer is None:
            shape = (cache.batch, cache.height + self.top, cache.width + self.left + self.right,
                     self.weight_v.shape[1])
            buffer = cache.buffers[self] = torch.zeros(shape, device=cache.device, dtype=cache.dtype)
        return buffer

    def read(self, cache: StepCache, i: int, j: int, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The output at (i, j), [B, C_out], from the stored inputs; ``bias`` [B, C_out] replaces its own."""
        kh, kw = self.kernel
        weight, weight_last = self.step_weights(cache)
        buffer = self.buffer(cache)
        rows = kh if self.mask is None else kh - 1
        window = buffer[:, i : i + rows, j : j + kw].reshape(cache.batch, -1)
        out = _affine(window, weight, self.bias if bias is None else bias)
        if self.mask is None:
            return out
        last = buffer[:, i + rows, j : j + self.left].reshape(cache.batch, -1)
        return torch.addmm(out, last, weight_last)

    def step(self, cache: StepCache, x: torch.Tensor, i: int, j: int,
             bias: torch.Tensor | None = None) -> torch.Tensor:
        """Stores x = the input at (i, j) [B, C_in] and returns the output at (i, j) [B, C_out].

        A 1 x 1 convolution reads only (i, j) and keeps no buffer. ``bias`` [B, C_out] replaces its own.
        """
        if self.pointwise:
            return _affine(x, self.step_weights(cache)[0], self.bias if bias is None else bias)
        self.buffer(cache)[:, i + self.top, j + self.left] = x
        return self.read(cache, i, j, bias)

    def push_codes(self, cache: StepCache, out: torch.Tensor, codes: torch.Tensor, i: int, j: int,
                   col_offset: int) -> None:
        """For a convolution over one-hot codes: adds what codes [B] at (i, j) give each output reading them.

        The kernel's taps, looked up by code, are added to the kh x kw outputs whose windows cover (i, j);
        once the codes of all positions before p are pushed, the output at p is complete.

        Args:
            out: accumulated outputs [B, H + kh, W + 2 * col_offset, C_out], output (i', j') at
                [i', j' + col_offset]. Needs top >= kh - 1 (windows end at or above their own row) and
                col_offset >= kw.
        """
        kh, kw = self.kernel
        taps = cache.remember(self, "taps", lambda: self.weight().permute(1, 2, 3, 0).flip(1, 2))
        row, col = i + self.top - kh + 1, j + self.left - kw + 1 + col_offset
        out[:, row : row + kh, col : col + kw] += taps[codes]


def causal_conv(in_channels: int, out_channels: int, kernel_size: int) -> CausalConv2d:
    """k x k convolution over rows i - k + 1 .. i, columns j - k // 2 .. j + k // 2, left of j in row i.

    For k = 1 it is a plain 1 x 1 convolution (which reads (i, j) itself).
    """
    if kernel_size == 1:
        return CausalConv2d(in_channels, out_channels)
    return CausalConv2d(in_channels, out_channels, (kernel_size, kernel_size), top=kernel_size - 1,
                        left=kernel_size // 2, mask_current_row=True)


class GatedResBlock(nn.Module):
    """``x + GLU(conv2(dropout(elu(conv1(elu(x)) + aux_conv(elu(aux))))) + condition)``.

    With ``kernel_size > 1`` both convolutions are causal (see :func:`causal_conv`). The condition is a
    class embedding projected to 2 * C_in channels, plus optionally a per-class map [B, 1, H, W] through
    a 1 x 1 convolution (the DCASE baseline's conditioning); it is added before the gate.

    Args:
        in_channels: C_in, also the output width.
        channel: hidden width.
        kernel_size: k.
        aux_channels: width of an auxiliary input (0: none).
        class_dim: width of the class embedding (0: unconditioned).
        class_map: also take a one-channel per-class map.
        dropout: dropout probability before conv2.
    """

    def __init__(self, in_channels: int, channel: int, kernel_size: int, aux_channels: int = 0,
                 class_dim: int = 0, class_map: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = causal_conv(in_channels, channel, kernel_size)
        self.conv2 = causal_conv(channel, 2 * in_channels, kernel_size)
        self.aux_conv = CausalConv2d(aux_channels, channel) if aux_channels else None
        self.class_proj = nn.Linear(class_dim, 2 * in_channels) if class_dim else None
        self.map_proj = CausalConv2d(1, 2 * in_channels, bias=False) if class_map else None
        self.dropout = dropout

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None, class_vec: torch.Tensor | None = None,
                class_map: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C_in, H, W], aux [B, C_aux, H, W], class_vec [B, class_dim], class_map [B, 1, H, W]
        -> [B, C_in, H, W]."""
        h = self.conv1(F.elu(x))
        if self.aux_conv is not None:
            h = h + self.aux_conv(F.elu(aux))
        h = F.dropout(F.elu(h), self.dropout, self.training)
        h = self.conv2(h)
        if self.class_proj is not None:
            h = h + self.class_proj(class_vec)[:, :, None, None]
        if self.map_proj is not None:
            h = h + self.map_proj(class_map)
        return x + F.glu(h, dim=1)

    def step(self, cache: StepCache, x: torch.Tensor, i: int, j: int, aux: torch.Tensor | None = None,
             class_vec: torch.Tensor | None = None, class_map: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` at (i, j): x [B, C_in], aux [B, C_aux], class_vec [B, class_dim], class_map [B, 1]
        -> [B, C_in]. Dropout is off (evaluation)."""
        h = self.conv1.step(cache, F.elu(x), i, j)
        if self.aux_conv is not None:
            h = h + self.aux_conv.step(cache, F.elu(aux), i, j)
        bias = self.conv2.bias
        if self.class_proj is not None:  # the same at every position: folded into conv2's bias once
            bias = cache.remember(self, "bias", lambda: self.conv2.bias + self.class_proj(class_vec))
        h = self.conv2.step(cache, F.elu(h), i, j, bias)
        if self.map_proj is not None:
            h = torch.addcmul(h, class_map, self.map_proj.step_weights(cache)[0].flatten())
        return x + F.glu(h, dim=-1)


class CausalAttention(nn.Module):
    """Multi-head attention over the raster order in which position p attends to positions < p only.

    Queries come from ``query`` features and keys and values from ``key`` features, each through a
    weight-normalised 1 x 1 projection to ``channel`` = n_head * head_dim. Position 0 attends to
    nothing and outputs zeros.

    Args:
        query_channels, key_channels: C_q, C_k.
        channel: output width.
        n_head: heads.
        dropout: dropout on the attention weights.
    """

    def __init__(self, query_channels: int, key_channels: int, channel: int, n_head: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if channel % n_head:
            raise ValueError(f"attention width {channel} is not a multiple of n_head={n_head}")
        self.n_head, self.head_dim = n_head, channel // n_head
        self.query = CausalConv2d(query_channels, channel)
        self.key = CausalConv2d(key_channels, channel)
        self.value = CausalConv2d(key_channels, channel)
        self.dropout = dropout

    def _heads(self, projection: CausalConv2d, x: torch.Tensor) -> torch.Tensor:
        """1 x 1 projection of x [B, C, H, W] -> [B, n_head, H * W, head_dim] (head_dim contiguous)."""
        y = F.linear(x.flatten(2).transpose(1, 2), projection.weight().flatten(1), projection.bias)
        return y.unflatten(2, (self.n_head, self.head_dim)).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """query [B, C_q, H, W], key [B, C_k, H, W] -> [B, channel, H, W].

        Queries 1 .. N - 1 against keys 0 .. N - 2 with an ordinary (inclusive) causal mask is exactly
        "p attends to < p", so the fused causal kernel applies and no N x N mask is built.
        """
        batch, _, height, width = query.shape
        q, k, v = self._heads(self.query, query), self._heads(self.key, key), self._heads(self.value, key)
        if height * width == 1:
            return torch.zeros_like(v).view(batch, -1, height, width)
        out = F.scaled_dot_product_attention(q[:, :, 1:], k[:, :, :-1], v[:, :, :-1], is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = torch.cat([out.new_zeros(batch, self.n_head, 1, self.head_dim), out], 2)  # position 0: zeros
        return out.transpose(2, 3).reshape(batch, -1, height, width)

    def step(self, cache: StepCache, query: torch.Tensor, key: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """``forward`` at p = i * W + j: query [B, C_q], key [B, C_k] -> [B, channel].

        The key and value of p are appended to the cache after p's query has used those of 0 .. p - 1.
        """
        p = i * cache.width + j
        shape = (cache.batch, self.n_head, cache.height * cache.width, self.head_dim)
        if self not in cache.keys:
            cache.keys[self] = torch.zeros(shape, device=cache.device, dtype=cache.dtype)
            cache.values[self] = torch.zeros(shape, device=cache.device, dtype=cache.dtype)
        keys, values = cache.keys[self], cache.values[self]
        if p == 0:
            out = query.new_zeros(cache.batch, self.n_head * self.head_dim)
        else:
            q = self.query.step(cache, query, i, j).view(cache.batch, self.n_head, 1, self.head_dim)
            out = F.scaled_dot_product_attention(q, keys[:, :, :p], values[:, :, :p]).flatten(1)
        keys[:, :, p] = self.key.step(cache, key, i, j).view(cache.batch, self.n_head, self.head_dim)
        values[:, :, p] = self.value.step(cache, key, i, j).view(cache.batch, self.n_head, self.head_dim)
        return out
