"""iSTFT decoder (Vocos / WavTokenizer style): ConvNeXt blocks at the frame rate, then an inverse STFT."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LOG_MAG_MAX = 10.0  # predicted log-magnitudes are clamped here before exp (exp(10) ≈ 2.2e4)


class InverseSTFT(nn.Module):
    """Inverse STFT with "same" padding: N frames → exactly N · hop samples.

    Frame n is centred on sample n · hop + hop / 2 (the middle of the n-th hop), i.e. it spans
    samples [n · hop - pad, n · hop - pad + n_fft) with pad = (n_fft - hop) / 2; the overlap-add is
    divided by the summed squared window.  This inverts ``torch.stft(x_padded, center=False)`` of the
    signal padded by ``pad`` on both sides.

    Written by hand because ``torch.istft`` cannot give this alignment: with ``center=False`` it
    refuses a Hann window (the squared-window envelope is 0 at the first and last sample, failing its
    NOLA check), and with ``center=True`` frame n is centred on sample n · hop, so N frames give
    (N - 1) · hop samples shifted by hop / 2 from the codec's frames.

    Args:
        n_fft: FFT size (window length); n_fft - hop must be even and > 0 (the periodic Hann window
            is 0 at its first sample, so windows must overlap).
        hop_length: samples per frame.

    Shapes: input complex [B, n_fft // 2 + 1, N], output [B, N * hop_length].
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        if n_fft <= hop_length or (n_fft - hop_length) % 2:
            raise ValueError(f"need n_fft > hop and n_fft - hop even, got n_fft {n_fft}, hop {hop_length}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.pad = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        n_frames = spec.shape[-1]
        window = self.window.to(spec.real.dtype)
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-2) * window[:, None]  # [B, n_fft, N]
        size = (n_frames - 1) * self.hop_length + self.n_fft
        wav = self._overlap_add(frames, size)
        envelope = self._overlap_add(window.square()[None, :, None].expand(1, -1, n_frames), size)
        end = size - self.pad
        # the envelope is > 0 everywhere inside [pad, size - pad): every sample there lies strictly
        # inside at least one window
        return wav[:, self.pad : end] / envelope[:, self.pad : end]

    def _overlap_add(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        """Sums frames [B, n_fft, N] placed hop apart into [B, size]."""
        out = F.fold(frames, output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        return out[:, 0, 0]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: x + γ · pw2(gelu(pw1(LayerNorm(dwconv7(x))))), with layer scale γ.

    Args:
        dim: channels C.
        expansion: hidden width of the pointwise MLP is ``expansion * dim``.
        layer_scale: initial value of γ.
        kernel_size: depthwise conv kernel (odd; zero "same" padding, non-causal).

    Shapes: input [B, C, N], output [B, C, N].
    """

    def __init__(self, dim: int, expansion: int = 3, layer_scale: float = 0.25, kernel_size: int = 7) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.pwconv2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).transpose(1, 2))  # channels last for LayerNorm and the MLP
        y = self.pwconv2(F.gelu(self.pwconv1(y))) * self.gamma
        return x + y.transpose(1, 2)


class ISTFTHead(nn.Module):
    """Features → log-magnitude and phase → waveform by inverse STFT.

    magnitude = exp(min(log_mag, LOG_MAG_MAX)); spectrum = magnitude · (cos φ + i sin φ).  The spectrum
    and inverse STFT are computed in float32 whatever the weights' dtype (there is no bfloat16 FFT);
    the waveform comes back in the input's dtype.

    Args:
        dim: input channels.
        channels: audio channels C.
        n_fft: FFT size.
        hop_length: samples per input frame.

    Shapes: input [B, dim, N], output [B, C, N * hop_length].
    """

    def __init__(self, dim: int, channels: int, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.channels, self.freq_bins = channels, n_fft // 2 + 1
        self.proj = nn.Conv1d(dim, channels * 2 * self.freq_bins, 1)
        self.istft = InverseSTFT(n_fft, hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.complex(*self.real_imag(x))
        return self.istft(spec).reshape(x.shape[0], self.channels, -1).to(x.dtype)

    def real_imag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The spectrum the head predicts from features [B, dim, N], as real and imaginary parts
        [B·C, F, N] (float32 or float64; real tensors, so an exported graph can use it too)."""
        batch, n_frames = x.shape[0], x.shape[-1]
        out = self.proj(x).reshape(batch * self.channels, 2, self.freq_bins, n_frames)
        dtype = out.dtype if out.dtype in (torch.float32, torch.float64) else torch.float32
        log_mag, phase = out[:, 0].to(dtype), out[:, 1].to(dtype)
        magnitude = log_mag.clamp(max=LOG_MAG_MAX).exp()
        return magnitude * torch.cos(phase), magnitude * torch.sin(phase)


class ISTFTDecoder(nn.Module):
    """Latent frames → waveform with no upsampling layers: conv, ConvNeXt blocks at the frame rate, iSTFT.

    Args:
        channels: audio channels C.
        input_dim: latent channels D.
        hop_length: samples per latent frame.
        width: channels of the blocks.
        n_blocks: ConvNeXt blocks (layer scale initialised to 1 / n_blocks).
        n_fft: FFT size of the inverse STFT.
        kernel_size: kernel of the input conv and of the depthwise convs.
        final_activation: optional ``torch.nn`` activation name applied to the waveform.
        upsample: 1, or an even factor: after the blocks a transposed conv raises the frame rate by it,
            ``up_blocks`` more ConvNeXt blocks run at that rate, and the inverse STFT's hop is
            hop_length / upsample (shorter frames: harmonics that glide stay coherent within a window).
        up_blocks: ConvNeXt blocks at the raised rate (with ``upsample`` > 1).

    Shapes: input [B, D, N], output [B, C, N * hop_length].
    """

    def __init__(self, channels: int, input_dim: int, hop_length: int, width: int, n_blocks: int, n_fft: int,
                 kernel_size: int = 7, final_activation: str | None = None, upsample: int = 1,
                 up_blocks: int = 0) -> None:
        super().__init__()
        if upsample < 1 or (upsample > 1 and (upsample % 2 or hop_length % upsample)):
            raise ValueError(f"upsample must be 1 or an even divisor of hop_length {hop_length}, "
                             f"got {upsample}")
        self.hop_length = hop_length
        self.embed = nn.Conv1d(input_dim, width, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(width, layer_scale=1 / n_blocks, kernel_size=kernel_size)
                                    for _ in range(n_blocks))
        # kernel 2u, stride u, padding u / 2: N frames -> exactly N * u (none, and no blocks, when u = 1)
        self.upsample = (nn.ConvTranspose1d(width, width, 2 * upsample, stride=upsample,
                                            padding=upsample // 2) if upsample > 1 else None)
        self.up_blocks = nn.ModuleList(
            ConvNeXtBlock(width, layer_scale=1 / max(up_blocks, 1), kernel_size=kernel_size)
            for _ in range(up_blocks if upsample > 1 else 0))
        self.final_norm = nn.LayerNorm(width, eps=1e-6)
        self.head = ISTFTHead(width, channels, n_fft, hop_length // upsample)
        self.activation = getattr(nn, final_activation)() if final_activation else nn.Identity()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(latent).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        if self.upsample is not None:
            x = self.upsample(x)
        for block in self.up_blocks:
            x = block(x)
        x = self.final_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.activation(self.head(x))
