"""1-D convolutions with causal or centred padding, weight/group normalisation and streaming."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations, parametrize

from funcodec_lite.modules.streaming import StreamingModule, empty_like_time

CONV_NORMS = ("none", "weight_norm", "time_group_norm")


def extra_padding_for_conv1d(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that makes the last window of a strided convolution complete.

    Without it a transposed convolution cannot rebuild ``length`` samples from the frames.
    """
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return max(0, ideal_length - length)


def pad1d(x: torch.Tensor, left: int, right: int, mode: str = "reflect") -> torch.Tensor:
    """``F.pad`` on the last axis that also reflect-pads inputs shorter than the padding.

    Returns ``x`` itself when there is nothing to pad.  The edges are built from slices and joined
    with one ``torch.cat``: the same values as ``F.pad``, about four times faster on long signals.

    Args:
        x: [..., T].
        left, right: samples to add on each side.
        mode: ``reflect``, ``replicate`` or ``constant`` (zeros).
    """
    if left == 0 and right == 0:
        return x
    length = x.shape[-1]
    if mode == "reflect" and length <= max(left, right):
        # Reflection needs more samples than the padding: extend with zeros first, reflect, then cut the
        # zeros back off (EnCodec's convention, kept for weight compatibility).
        zeros = max(left, right) - length + 1
        padded = pad1d(pad1d(x, 0, zeros, "constant"), left, right, "reflect")
        return padded[..., : padded.shape[-1] - zeros]
    if mode == "reflect":
        head, tail = x[..., 1 : left + 1].flip(-1), x[..., length - right - 1 : length - 1].flip(-1)
    elif mode == "replicate":
        head, tail = x[..., :1].expand(*x.shape[:-1], left), x[..., -1:].expand(*x.shape[:-1], right)
    elif mode == "constant":
        head, tail = x.new_zeros(*x.shape[:-1], left), x.new_zeros(*x.shape[:-1], right)
    else:
        return F.pad(x, (left, right), mode=mode)
    return torch.cat([head, x, tail], dim=-1)


# Transposed convolutions with at least this many input channels run in oneDNN: on an AVX-512 CPU its
# kernel was 2x faster for EnCodec's 512- and 256-channel layers (few frames, many channels), and the
# blocked GEMM below 2x faster for the 64-channel one at the full sample rate (docs/benchmarks.md).
ONEDNN_TRANSPOSED_MIN_CHANNELS = 256


def _plain_cpu_float32(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True for float32 CPU inputs with no gradient to track (where the hand-written kernels apply)."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return not needs_grad and x.device.type == "cpu" and x.dtype == torch.float32


def conv_transpose1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                     block: int = 2048, groups: int = 1) -> torch.Tensor:
    """``F.conv_transpose1d`` (no padding, dilation or groups) as blocked matrix products plus overlap-add.

    For float32 on CPU without autograd, and fewer than ``ONEDNN_TRANSPOSED_MIN_CHANNELS`` input
    channels, this is faster than oneDNN's transposed convolution on the long signals of an audio
    decoder (2x for EnCodec's 64-channel layer at 24 kHz): one GEMM per block of ``block`` input frames
    gives each frame's ``K`` output taps, which are added into the output while still in cache.
    Results equal ``F.conv_transpose1d`` up to float rounding (the sums are grouped differently).
    Otherwise (wide layers, GPU, other dtypes, grouped weights, or when a gradient is needed) it calls
    ``F.conv_transpose1d``.

    Args:
        x: input [B, C_in, T].
        weight: [C_in, C_out / groups, K].
        bias: [C_out] or None.
        stride: upsampling factor s.
        block: input frames per matrix product.
        groups: channel groups (as ``nn.ConvTranspose1d``).
    Returns:
        [B, C_out, (T - 1) * s + K].
    """
    if (not _plain_cpu_float32(x, weight) or groups != 1
            or weight.shape[0] >= ONEDNN_TRANSPOSED_MIN_CHANNELS):
        return F.conv_transpose1d(x, weight, bias, stride, groups=groups)
    batch, in_channels, length = x.shape
    out_channels, kernel = weight.shape[1], weight.shape[2]
    taps = -(-kernel // stride)  # input frames that overlap one output sample
    if taps * stride != kernel:
        weight = F.pad(weight, (0, taps * stride - kernel))
    cols_weight = weight.reshape(in_channels, out_channels * taps * stride).t().expand(batch, -1, -1)
    # y[b, c, t, j] is output sample t * s + j; frame t adds its tap m * s + j to row t + m.  Rows are
    # set to the bias just before the first frame that reaches them, so they are still in cache.
    y = x.new_empty(batch, out_channels, length + taps - 1, stride)
    _fill_bias(y[:, :, : taps - 1], bias)
    for start in range(0, length, block):
        end = min(length, start + block)
        _fill_bias(y[:, :, start + taps - 1 : end + taps - 1], bias)
        cols = torch.bmm(cols_weight, x[..., start:end]).view(batch, out_channels, taps, stride, end - start)
        for m in range(taps):
            y[:, :, start + m : end + m].add_(cols[:, :, m].transpose(-1, -2))
    return y.view(batch, out_channels, -1)[..., : (length - 1) * stride + kernel]


def _fill_bias(rows: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Sets output rows [B, C, n, s] to the bias [C] (zeros without one)."""
    if bias is None:
        rows.zero_()
    else:
        rows.copy_(bias[:, None, None].expand_as(rows))


def apply_norm(conv: nn.Module, norm: str) -> nn.Module:
    """Wraps ``conv``'s weight in a weight-norm parametrisation when ``norm == 'weight_norm'``."""
    if norm not in CONV_NORMS:
        raise ValueError(f"unknown conv norm {norm!r}; choose one of {CONV_NORMS}")
    if norm == "weight_norm":
        return parametrizations.weight_norm(conv)
    return conv


def output_norm(norm: str, channels: int, causal: bool) -> nn.Module:
    """The normalisation applied to a conv's output: GroupNorm(1, C) for ``time_group_norm``, else none."""
    if norm != "time_group_norm":
        return nn.Identity()
    if causal:
        raise ValueError("time_group_norm normalises over the whole signal and cannot be causal")
    return nn.GroupNorm(1, channels)


def fold_weight_norm(module: nn.Module) -> int:
    """Replaces every weight-norm parametrisation under ``module`` by the plain weight it computes.

    After folding, a forward pass no longer recomputes ``g * v / ||v||``.  Returns how many weights
    were folded.
    """
    folded = 0
    # under no_grad, remove_parametrizations would leave a plain tensor instead of an nn.Parameter
    with torch.enable_grad():
        for sub in module.modules():
            if parametrize.is_parametrized(sub, "weight"):
                parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
                folded += 1
    return folded


class StreamableConv1d(StreamingModule):
    """Conv1d that pads itself: causal (all padding on the left) or centred, output length ceil(T / stride).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias: as ``nn.Conv1d``.
        causal: pad only on the left, so output frame t sees input up to its window end.
        norm: ``none``, ``weight_norm`` or ``time_group_norm`` (GroupNorm(1, C), non-causal only).
        pad_mode: padding mode for the signal edges (``reflect``, ``constant``, ``replicate``).

    Shapes: input [B, C_in, T], output [B, C_out, ceil(T / stride)].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "none",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups,
                         bias=bias)
        self.conv = apply_norm(conv, norm)
        self.norm = output_norm(norm, out_channels, causal)
        self.causal = causal
        self.pad_mode = pad_mode
        self.stride = stride
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        self.padding_total = self.effective_kernel - stride

    def _paddings(self, length: int) -> tuple[int, int]:
        extra = extra_padding_for_conv1d(length, self.effective_kernel, self.stride, self.padding_total)
        if self.causal:
            return self.padding_total, extra
        right = self.padding_total // 2
        return self.padding_total - right, right + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._state is not None:
            return self._stream_step(x)
        left, right = self._paddings(x.shape[-1])
        return self.norm(self.conv(pad1d(x, left, right, self.pad_mode)))

    # Streaming: the input is kept in a buffer until a whole window is present.  The left edge is padded
    # once enough samples have arrived to reflect (exactly as the whole-signal path pads it), and the
    # right edge is padded at flush time from the total length seen, so the stream reproduces ``forward``.
    def _new_state(self) -> dict:
        if not self.causal:
            raise RuntimeError("only causal convolutions can stream")
        return {"buffer": None, "pending": None, "length": 0}

    def _run_full_windows(self, buffer: torch.Tensor) -> torch.Tensor:
        usable = buffer.shape[-1] - self.effective_kernel
        if usable < 0:
            self._state["buffer"] = buffer
            return empty_like_time(buffer, self.conv.out_channels)
        n_frames = usable // self.stride + 1
        end = (n_frames - 1) * self.stride + self.effective_kernel
        self._state["buffer"] = buffer[..., n_frames * self.stride:]
        return self.conv(buffer[..., :end])

    def _stream_step(self, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        state["length"] += x.shape[-1]
        if state["buffer"] is None:
            pending = x if state["pending"] is None else torch.cat([state["pending"], x], dim=-1)
            if pending.shape[-1] <= self.padding_total and self.pad_mode == "reflect":
                state["pending"] = pending
                return empty_like_time(x, self.conv.out_channels)
            state["pending"] = None
            return self._run_full_windows(pad1d(pending, self.padding_total, 0, self.pad_mode))
        return self._run_full_windows(torch.cat([state["buffer"], x], dim=-1))

    def flush(self) -> torch.Tensor:
        state = self._state
        if state["buffer"] is None:  # the whole stream was shorter than the padding
            pending = state["pending"]
            self._state = None
            out = self.forward(pending) if pending is not None else None
            self._state = self._new_state()
            if out is None:
                raise RuntimeError("flush() on a stream that received no samples")
            return out
        _, extra = self._paddings(state["length"])
        out = self._run_full_windows(pad1d(state["buffer"], 0, extra, self.pad_mode))
        self._state = self._new_state()
        return out


class StreamableConvTranspose1d(StreamingModule):
    """ConvTranspose1d that trims its padding: output length T * stride.

    Args:
        in_channels, out_channels, kernel_size, stride, bias, groups: as ``nn.ConvTranspose1d``.
        causal: trim all padding on the right (streamable) instead of centring.
        norm: ``none``, ``weight_norm`` or ``time_group_norm``.

    Shapes: input [B, C_in, T], output [B, C_out, T * stride].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "none",
        groups: int = 1,
    ) -> None:
        super().__init__()
        convtr = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, bias=bias, groups=groups)
        self.convtr = apply_norm(convtr, norm)
        self.norm = output_norm(norm, out_channels, causal)
        self.causal = causal
        self.stride = stride
        self.padding_total = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._state is not None:
            return self._stream_step(x)
        y = self.norm(conv_transpose1d(x, self.convtr.weight, self.convtr.bias, self.stride,
                                       groups=self.convtr.groups))
        right = self.padding_total if self.causal else self.padding_total // 2
        left = self.padding_total - right
        return y[..., left : y.shape[-1] - right]

    # Streaming: each chunk's transposed convolution overlaps the next one by ``padding_total`` samples.
    # That tail is held back (without bias) and added to the next chunk's head; at the end it is the
    # part a causal layer trims, so it is dropped.
    def _new_state(self) -> dict:
        if not self.causal:
            raise RuntimeError("only causal transposed convolutions can stream")
        return {"tail": None}

    def _stream_step(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 0:
            return empty_like_time(x, self.convtr.out_channels)
        y = conv_transpose1d(x, self.convtr.weight, None, self.stride, groups=self.convtr.groups)
        tail = self._state["tail"]
        if tail is not None:
            y[..., : tail.shape[-1]] += tail
        emit = x.shape[-1] * self.stride
        self._state["tail"] = y[..., emit:]
        out = y[..., :emit]
        if self.convtr.bias is not None:
            out = out + self.convtr.bias[:, None]
        return out

    def flush(self) -> None:
        self._state = self._new_state()  # a causal layer trims the held-back tail: nothing to emit
        return None
