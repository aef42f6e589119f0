"""Codec domain transforms (time, magnitude-angle, magnitude-phase), each with an exact inverse."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .spectral import STFT, STFTConfig


class DomainTransform(nn.Module):
    """Maps audio [B, C, T] to codec input features and back.

    Attributes:
        feature_channels: feature channels produced per audio channel.
    """

    feature_channels: int = 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def inverse(self, features: torch.Tensor, length: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class IdentityTransform(DomainTransform):
    """Time domain: the features are the waveform itself."""

    feature_channels = 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): audio of shape [B, C, T].

        Returns:
            torch.Tensor: the same tensor, shape [B, C, T].
        """
        return wav

    def inverse(self, features: torch.Tensor, length: int) -> torch.Tensor:
        """Args:
            features (torch.Tensor): waveform of shape [B, C, T'] (e.g. a decoder output).
            length (int): wanted length T; longer inputs are trimmed, shorter ones zero-padded.

        Returns:
            torch.Tensor: audio of shape [B, C, T].
        """
        if features.shape[-1] >= length:
            return features[..., :length]
        return F.pad(features, (0, length - features.shape[-1]))


def _safe_magnitude(power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (|X|, mask of |X| > 0) with a zero (not NaN) gradient where |X| = 0."""
    nonzero = power > 0
    # double-where: sqrt never sees 0, so its infinite slope cannot turn a zero gradient into NaN
    mag = torch.where(nonzero, torch.where(nonzero, power, 1.0).sqrt(), 0.0)
    return mag, nonzero


class _SpectralTransform(DomainTransform):
    """Shared STFT plumbing and log-magnitude coding for the spectral domains.

    The log magnitude is log(|X| + eps), inverted exactly by exp(.) - eps clamped at 0, so it is finite
    for silence (log(eps)) and needs no clipping.

    Args:
        stft: STFT settings (any window/hop meeting torch.istft's NOLA condition inverts exactly).
        eps: offset inside the log.
    """

    def __init__(self, stft: STFTConfig | None = None, eps: float = 1e-5):
        super().__init__()
        self.stft = STFT(stft)
        self.eps = eps

    @property
    def config(self) -> STFTConfig:
        return self.stft.config

    def features(self, real: torch.Tensor, imag: torch.Tensor) -> list[torch.Tensor]:
        """The ``feature_channels`` feature maps of a spectrum given as its real and imaginary parts
        (real tensors, so an exported graph without complex numbers can use it too)."""
        raise NotImplementedError

    def real_imag(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of the spectrum coded by ``feats`` [..., k, F, N] (k on dim 2)."""
        raise NotImplementedError

    def _log_mag(self, mag: torch.Tensor) -> torch.Tensor:
        return torch.log(mag + self.eps)

    def _mag(self, log_mag: torch.Tensor) -> torch.Tensor:
        return (torch.exp(log_mag) - self.eps).clamp_min(0.0)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): audio of shape [B, C, T].

        Returns:
            torch.Tensor: features of shape [B, C * k, F, N], k = feature_channels, F = n_fft // 2 + 1;
            audio channel c owns feature channels c * k ... c * k + k - 1.
        """
        b, c, _ = wav.shape
        spec = self.stft(wav)
        feats = torch.stack(self.features(spec.real, spec.imag), dim=2)  # [B, C, k, F, N]
        return feats.reshape(b, c * self.feature_channels, *feats.shape[-2:])

    def inverse(self, features: torch.Tensor, length: int) -> torch.Tensor:
        """Args:
            features (torch.Tensor): features of shape [B, C * k, F, N] (e.g. a decoder output).
            length (int): number of output samples T.

        Returns:
            torch.Tensor: audio of shape [B, C, T].
        """
        b, ck, f, n = features.shape
        k = self.feature_channels
        if ck % k or f != self.config.freq_bins:
            raise ValueError(
                f"expected features [B, C*{k}, {self.config.freq_bins}, N], got {tuple(features.shape)}"
            )
        feats = features.reshape(b, ck // k, k, f, n)
        return self.stft.inverse(torch.complex(*self.real_imag(feats)), length)


class MagAngleTransform(_SpectralTransform):
    """Two features per audio channel: log(|X| + eps) and angle(X) in (-pi, pi] (0 where X = 0)."""

    feature_channels = 2

    def features(self, real: torch.Tensor, imag: torch.Tensor) -> list[torch.Tensor]:
        mag, nonzero = _safe_magnitude(real.square() + imag.square())
        # atan2(0, 0) has a NaN gradient; feed (1, 0) instead so the angle of silence is 0
        angle = torch.atan2(torch.where(nonzero, imag, 0.0), torch.where(nonzero, real, 1.0))
        return [self._log_mag(mag), angle]

    def real_imag(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mag, angle = self._mag(feats[:, :, 0]), feats[:, :, 1]
        return mag * torch.cos(angle), mag * torch.sin(angle)


class MagPhaseTransform(_SpectralTransform):
    """Three features per audio channel: log(|X| + eps), Re(X)/|X|, Im(X)/|X| (FunCodec Eq. 1).

    The phase pair is (1, 0) where X = 0. `inverse` re-normalises the pair to unit length, so an
    unnormalised decoder output is fine; a pair of (0, 0) is read as phase 0.
    """

    feature_channels = 3

    @staticmethod
    def _unit(re: torch.Tensor, im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norm, nonzero = _safe_magnitude(re.square() + im.square())
        safe = torch.where(nonzero, norm, 1.0)
        return torch.where(nonzero, re / safe, 1.0), torch.where(nonzero, im / safe, 0.0)

    def features(self, real: torch.Tensor, imag: torch.Tensor) -> list[torch.Tensor]:
        mag, _ = _safe_magnitude(real.square() + imag.square())
        cos, sin = self._unit(real, imag)
        return [self._log_mag(mag), cos, sin]

    def real_imag(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mag = self._mag(feats[:, :, 0])
        cos, sin = self._unit(feats[:, :, 1], feats[:, :, 2])
        return mag * cos, mag * sin


_DOMAINS = {"time": IdentityTransform, "mag_angle": MagAngleTransform, "mag_phase": MagPhaseTransform}


def build_transform(domain: str, stft: STFTConfig | None = None) -> DomainTransform:
    """Builds the transform for a codec domain.

    Args:
        domain: "time", "mag_angle" or "mag_phase".
        stft: STFT settings for the spectral domains (None: STFTConfig() defaults); ignored for "time".
    """
    if domain not in _DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {sorted(_DOMAINS)}")
    if domain == "time":
        return IdentityTransform()
    return _DOMAINS[domain](stft)
