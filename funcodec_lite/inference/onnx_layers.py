"""Exportable stand-ins for the codec layers whose forward depends on the signal length.

``exportable_codec(codec)`` copies a ``Codec`` and swaps, in the copy, every layer that reads a length into
Python arithmetic, calls an FFT or crops with a shape read after a transposed convolution, for a layer
computing the same thing from the traced length with the operations of `onnx_ops` (the exporter freezes a
shape read from an intermediate tensor at its traced value, so crops are negative slices and padding
amounts come from arithmetic on traced sizes).  The copy's ``encode_latent`` / ``decode_latent`` equal the
original's up to float rounding; the original is not changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.audio.transforms import DomainTransform, IdentityTransform
from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.onnx_ops import ConvOverlapAdd, ConvSTFT, constant_pad, reflect_pad
from funcodec_lite.modules.conv import StreamableConv1d, StreamableConvTranspose1d
from funcodec_lite.modules.frame_codec import STFTFeatures
from funcodec_lite.modules.freq_blocks import Downsample2d, Upsample2d
from funcodec_lite.modules.istft_head import ISTFTHead


class _PaddedConv1d(nn.Module):
    """``StreamableConv1d`` (whole-signal path) with its edge padding computed from the traced length."""

    def __init__(self, layer: StreamableConv1d) -> None:
        super().__init__()
        self.conv, self.norm, self.pad_mode = layer.conv, layer.norm, layer.pad_mode
        self.kernel, self.stride, total = layer.effective_kernel, layer.stride, layer.padding_total
        self.left, self.right = (total, 0) if layer.causal else (total - total // 2, total // 2)
        self.padding_total = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # extra_padding_for_conv1d: (ceil(a / s) - 1)·s + k - p - T = (-a) mod s with a = T - k + p
        extra = (self.kernel - self.padding_total - x.shape[-1]) % self.stride
        max_right = self.right + self.stride - 1
        if self.pad_mode == "reflect":
            x = reflect_pad(x, self.left, self.right + extra, max_right)
        else:
            x = constant_pad(x, self.left, self.right + extra, max_right, self.pad_mode)
        return self.norm(self.conv(x))


class _TrimmedConvTranspose1d(nn.Module):
    """``StreamableConvTranspose1d`` as a plain transposed convolution (no blocked CPU kernel), trimmed."""

    def __init__(self, layer: StreamableConvTranspose1d) -> None:
        super().__init__()
        self.convtr, self.norm = layer.convtr, layer.norm
        self.right = layer.padding_total if layer.causal else layer.padding_total // 2
        self.left = layer.padding_total - self.right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.convtr(x))
        return y[..., self.left : -self.right] if self.right else y[..., self.left :]


class _PaddedDownsample2d(nn.Module):
    """``Downsample2d`` with the frames that complete its last window computed from the traced length."""

    def __init__(self, layer: Downsample2d) -> None:
        super().__init__()
        self.conv, self.time_stride = layer.conv, layer.stride[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = self.conv.time_pad
        t = self.time_stride
        x = constant_pad(x, left, right + (-x.shape[3]) % t, right + t - 1)
        return self.conv.conv(F.pad(x, (0, 0, *self.conv.freq_pad)))


class _TrimmedUpsample2d(nn.Module):
    """``Upsample2d`` with its trims as negative slice ends (a shape read after the transposed conv would
    be frozen at the traced size)."""

    def __init__(self, layer: Upsample2d) -> None:
        super().__init__()
        self.conv, self.freq_trim, self.time_trim = layer.conv, layer.freq_trim, layer.time_trim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        (f_lo, f_hi), (t_lo, t_hi) = self.freq_trim, self.time_trim
        y = y[:, :, f_lo : -f_hi] if f_hi else y[:, :, f_lo:]
        return y[..., t_lo : -t_hi] if t_hi else y[..., t_lo:]


class _ConvSTFTFeatures(nn.Module):
    """``STFTFeatures`` (frame-rate codec front end) with the STFT as a convolution."""

    def __init__(self, features: STFTFeatures) -> None:
        super().__init__()
        self.features = features
        cfg = features.config
        self.stft = ConvSTFT(cfg.enc_n_fft, cfg.stft_hop, features.window)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        hop, edge = self.features.config.hop_length, self.features.edge
        batch, length = wav.shape[0], wav.shape[-1]
        n_frames = (length + hop - 1) // hop  # ceil; the exported division truncates, so no negatives
        x = constant_pad(wav.flatten(0, 1).float(), edge, edge + n_frames * hop - length, edge + hop - 1)
        real, imag = self.stft(x)
        return self.features.stack(real, imag, batch, n_frames).to(wav.dtype)


class _ConvISTFTHead(nn.Module):
    """``ISTFTHead`` with the inverse STFT as a transposed convolution over the predicted spectrum."""

    def __init__(self, head: ISTFTHead) -> None:
        super().__init__()
        self.head = head
        self.overlap_add = ConvOverlapAdd(head.istft.n_fft, head.istft.hop_length, head.istft.window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wav = self.overlap_add(*self.head.real_imag(x))
        pad = self.head.istft.pad
        return wav[:, pad:-pad].unflatten(0, (-1, self.head.channels)).to(x.dtype)  # pad >= 1


class _ConvSpectralTransform(DomainTransform):
    """A spectral ``DomainTransform`` (FreqCodec's features) with its STFT and inverse as convolutions."""

    def __init__(self, transform: DomainTransform) -> None:
        super().__init__()
        self.transform = transform
        self.feature_channels = transform.feature_channels
        cfg = transform.config
        self.center, self.pad_mode, self.n_fft = cfg.center, cfg.pad_mode, cfg.n_fft
        window = transform.stft.window
        self.stft = ConvSTFT(cfg.n_fft, cfg.hop_length, window)
        self.overlap_add = ConvOverlapAdd(cfg.n_fft, cfg.hop_length, window)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.flatten(0, 1)
        if self.center:
            half = self.n_fft // 2
            x = (reflect_pad(x, half, half, half) if self.pad_mode == "reflect"
                 else constant_pad(x, half, half, half, self.pad_mode))
        real, imag = self.stft(x)
        feats = torch.stack(self.transform.features(real, imag), dim=1)  # [B·C, k, F, N]
        return feats.unflatten(0, (-1, wav.shape[1])).flatten(1, 2)  # batch left dynamic (-1)

    def inverse(self, features: torch.Tensor, length: int | torch.Tensor) -> torch.Tensor:
        feats = features.unflatten(1, (-1, self.feature_channels))  # [B, C, k, F, N]
        real, imag = self.transform.real_imag(feats)  # [B, C, F, N]
        wav = self.overlap_add(real.flatten(0, 1), imag.flatten(0, 1))
        start = self.n_fft // 2 if self.center else 0
        return wav[:, start : start + length].unflatten(0, (-1, real.shape[1]))


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, StreamableConv1d):
        return _PaddedConv1d(module)
    if isinstance(module, StreamableConvTranspose1d):
        return _TrimmedConvTranspose1d(module)
    if isinstance(module, Downsample2d):
        return _PaddedDownsample2d(module)
    if isinstance(module, Upsample2d):
        return _TrimmedUpsample2d(module)
    if isinstance(module, STFTFeatures):
        return _ConvSTFTFeatures(module)
    if isinstance(module, ISTFTHead):
        return _ConvISTFTHead(module)
    if isinstance(module, DomainTransform) and not isinstance(module, IdentityTransform):
        return _ConvSpectralTransform(module)
    return None


def _swap_layers(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        replacement = _replacement(child)
        if replacement is None:
            _swap_layers(child)
        else:
            setattr(module, name, replacement)


def exportable_codec(codec: Codec) -> Codec:
    """A float32 copy of ``codec`` (eval mode) whose length-dependent layers are the exportable forms; its
    ``encode_latent`` / ``decode_latent`` equal the original's up to float rounding.

    Weight norm is left as it is: the exporter folds ``g · v / ||v||`` into a constant weight (folding the
    copy here would also unfold the original, whose parametrised class the copy shares)."""
    copied = copy.deepcopy(codec).float().eval()
    _swap_layers(copied)
    return copied
