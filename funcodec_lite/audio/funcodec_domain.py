"""FunCodec's frequency-domain front end and back end (``freq_codec`` models), value for value.

FunCodec's FreqCodec codes a centred STFT (Hann window of ``n_fft``, reflect-padded, as torchaudio's
``Spectrogram(power=None)``) in one of two feature sets, and its decoder's output is read back as:

- ``mag_phase``: in ``log(max(|X|, 1e-6))``, ``Re X / max(|X|, 1e-6)``, ``Im X / max(|X|, 1e-6)``;
  out ``softplus(m) · (p + i q)`` (the phase pair is not re-normalised);
- ``mag_angle``: in ``log(max(|X|, 1e-6))``, ``angle(X)``; out ``softplus(m) · e^{i π sin(a)}``;

then a centred inverse STFT (torchaudio's ``InverseSpectrogram``). These differ from our own FreqCodec's
transforms (`funcodec_lite.audio.transforms`: log(|X| + eps), exact inverse), hence this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.audio.spectral import STFT, STFTConfig

FUNCODEC_DOMAINS = {"mag_phase": 3, "mag_angle": 2}  # domain -> feature channels
_FLOOR = 1e-6


class FunCodecSpectralDomain(nn.Module):
    """Waveform ↔ FunCodec's spectral features.

    Args:
        domain: ``mag_phase`` or ``mag_angle``.
        n_fft: FFT size and window length (FunCodec's ``domain_conf.n_fft``, 512).
        hop_length: STFT hop (``domain_conf.hop_length``, 160).

    Shapes: ``forward`` wav [B, 1, T] → features [B, k, n_fft // 2 + 1, 1 + T // hop] (k = 3 or 2);
    ``inverse`` decoder output [B, k, n_fft // 2 + 1, M] → wav [B, 1, length] (default (M - 1) · hop,
    what torchaudio gives).
    """

    def __init__(self, domain: str = "mag_phase", n_fft: int = 512, hop_length: int = 160) -> None:
        super().__init__()
        if domain not in FUNCODEC_DOMAINS:
            raise ValueError(f"unknown FunCodec domain {domain!r}; choose one of {sorted(FUNCODEC_DOMAINS)}")
        self.domain, self.n_fft, self.hop_length = domain, n_fft, hop_length
        self.stft = STFT(STFTConfig(n_fft=n_fft, hop_length=hop_length))  # Hann, centred, reflect-padded

    @property
    def feature_channels(self) -> int:
        return FUNCODEC_DOMAINS[self.domain]

    @property
    def freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, 1, T] → features [B, k, F, 1 + T // hop]."""
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"FunCodec's frequency-domain models code mono audio [B, 1, T], got "
                             f"{tuple(wav.shape)}")
        spec = self.stft(wav[:, 0])
        mag = spec.abs()
        log_mag = torch.log(mag.clamp(min=_FLOOR))
        if self.domain == "mag_angle":
            return torch.stack([log_mag, torch.angle(spec)], dim=1)
        phase = spec / mag.clamp(min=_FLOOR)
        return torch.stack([log_mag, phase.real, phase.imag], dim=1)

    def inverse(self, out: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Decoder output [B, k, F, M] → waveform [B, 1, length] (default (M - 1) · hop).

        A ``length`` beyond (M - 1) · hop (up to M · hop) is still inside the last frame's window.
        """
        if out.dim() != 4 or out.shape[1] != self.feature_channels or out.shape[2] != self.freq_bins:
            raise ValueError(f"expected decoder output [B, {self.feature_channels}, {self.freq_bins}, M], "
                             f"got {tuple(out.shape)}")
        mag = F.softplus(out[:, 0])
        if self.domain == "mag_angle":
            angle = torch.sin(out[:, 1]) * math.pi
            spec = torch.complex(torch.cos(angle) * mag, torch.sin(angle) * mag)
        else:
            spec = mag * torch.complex(out[:, 1], out[:, 2])
        wav = self.stft.inverse(spec, (spec.shape[-1] - 1) * self.hop_length if length is None else length)
        return wav.unsqueeze(1)
