"""Reconstruction losses: time-domain L1, FunCodec's multi-scale spectral loss (Eq. 4), DAC's mel loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from funcodec_lite.audio.spectral import MultiScaleSpectrogram, Resolution, funcodec_resolutions, max_mel_bins

# DAC's mel reconstruction scales (descript-audio-codec conf/base.yml): windows and mel bands
DAC_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MELS = (5, 10, 20, 40, 80, 160, 320)


def time_l1_loss(wav: torch.Tensor, wav_hat: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between a signal and its reconstruction, ||x - x̂||₁ / numel.

    Args:
        wav (torch.Tensor): reference signal of shape [B, C, T] (any shape works).
        wav_hat (torch.Tensor): reconstruction, same shape as `wav`.

    Returns:
        torch.Tensor: scalar loss.
    """
    _check_shapes(wav, wav_hat)
    return (wav - wav_hat).abs().mean()


def log_compress(spec: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """log10(spec + floor): log compression of power and mel spectra with a -50 dB floor.

    FunCodec clamps instead (log10(max(spec, floor))), which has zero gradient below the floor: a
    freshly initialised decoder whose output is quieter than the floor then gets no spectral gradient
    at all and training stalls (we measured a flat loss for 1,200 steps).  Adding the floor keeps the
    same values where spec >> floor and a gradient everywhere.
    """
    return (spec + floor).log10()


class MultiScaleSpectralLoss(nn.Module):
    """FunCodec's multi-scale spectral reconstruction loss (Eq. 4, with its power-spectrum term).

    For each resolution (by default window 2^i, hop 2^i / 4, i = 5..11, Hann window, zero-padded
    centred frames) we take S = log10(|X|² + 1e-5) (power spectrum) and
    M = log10(mel(|X|²) + 1e-5) (power mel spectrum, HTK mel scale, unnormalised triangular filters).
    The scale's loss is the mean over these two spectra of L1 + L2, where L1 is the mean absolute and
    L2 the mean squared difference over all bins and frames, i.e.
    ``0.5 * (L1(S) + L2(S) + L1(M) + L2(M))``; a resolution with no mel term uses ``L1(S) + L2(S)``.
    The result is the mean over resolutions.

    Mel bands per scale are `n_mels` (64), reduced where the window is too short to give every band an
    FFT bin (see `funcodec_resolutions`): at 16 kHz 8, 15, 29, 57, 64, 64, 64 for windows 32 ... 2048.

    Each resolution's STFT is computed once per signal and shared by the power and mel terms.

    Args:
        sample_rate: audio sample rate in Hz.
        resolutions: analysis scales; None means `funcodec_resolutions(sample_rate, n_mels)`.
        n_mels: upper bound on mel bands per scale when `resolutions` is None.
        floor: added before the log10 (see `log_compress`).
        pad_mode: STFT edge padding, "constant" (works for clips of any length) or "reflect".
    """

    def __init__(
        self,
        sample_rate: int,
        resolutions: Sequence[Resolution] | None = None,
        n_mels: int = 64,
        floor: float = 1e-5,
        pad_mode: str = "constant",
    ):
        super().__init__()
        if resolutions is None:
            resolutions = funcodec_resolutions(sample_rate, n_mels)
        self.floor = floor
        self.spectra = MultiScaleSpectrogram(sample_rate, resolutions, pad_mode=pad_mode, mel_power=2.0)

    @property
    def resolutions(self) -> list[Resolution]:
        """The analysis scales, smallest window first for the default scales."""
        return self.spectra.resolutions

    def _distance(self, ref: torch.Tensor, hyp: torch.Tensor) -> torch.Tensor:
        diff = log_compress(ref, self.floor) - log_compress(hyp, self.floor)
        return diff.abs().mean() + diff.square().mean()

    def forward(self, wav: torch.Tensor, wav_hat: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): reference signal of shape [B, C, T] or [B, T].
            wav_hat (torch.Tensor): reconstruction, same shape as `wav`.

        Returns:
            torch.Tensor: scalar loss, 0 for identical signals.
        """
        _check_shapes(wav, wav_hat)
        per_scale = []
        for ref, hyp in zip(self.spectra(wav), self.spectra(wav_hat)):
            terms = [self._distance(ref.power, hyp.power)]
            if ref.mel is not None:
                terms.append(self._distance(ref.mel, hyp.mel))
            per_scale.append(torch.stack(terms).mean())
        return torch.stack(per_scale).mean()


def dac_resolutions(sample_rate: int) -> list[Resolution]:
    """DAC's mel-loss scales: windows 32 ... 2048, hop = window / 4, 5 ... 320 mel bands.

    Where a band count has empty filters at this rate and window (320 bands of a 2048-point FFT at
    16 kHz), it is lowered to the largest count without one (`max_mel_bins`).
    """
    return [Resolution(w, w // 4, w, max_mel_bins(sample_rate, w, mel_scale="slaney", limit=m))
            for w, m in zip(DAC_WINDOWS, DAC_MELS)]


class MelReconstructionLoss(nn.Module):
    """DAC's reconstruction loss: mean over scales of L1 between log10 magnitude mel spectra.

    Per scale (`dac_resolutions`): M = log10(mel(|X|) + floor), slaney mel scale and filter
    normalisation (librosa's defaults, which DAC uses), and the loss is mean |M(x) - M(x̂)|. DAC
    clamps at the floor instead of adding it; adding keeps a gradient for outputs quieter than the
    floor (see `log_compress`). Use it with a weight near DAC's 15 (``loss.freq``).

    Args:
        sample_rate: audio sample rate in Hz.
        resolutions: analysis scales; None means `dac_resolutions(sample_rate)`.
        floor: added before the log10.
    """

    def __init__(self, sample_rate: int, resolutions: Sequence[Resolution] | None = None,
                 floor: float = 1e-5):
        super().__init__()
        self.floor = floor
        self.spectra = MultiScaleSpectrogram(sample_rate, resolutions or dac_resolutions(sample_rate),
                                             pad_mode="constant", mel_power=1.0, mel_scale="slaney",
                                             norm="slaney")

    @property
    def resolutions(self) -> list[Resolution]:
        return self.spectra.resolutions

    def forward(self, wav: torch.Tensor, wav_hat: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): reference signal of shape [B, C, T] or [B, T].
            wav_hat (torch.Tensor): reconstruction, same shape as `wav`.

        Returns:
            torch.Tensor: scalar loss, 0 for identical signals.
        """
        _check_shapes(wav, wav_hat)
        terms = [(log_compress(r.mel, self.floor) - log_compress(h.mel, self.floor)).abs().mean()
                 for r, h in zip(self.spectra(wav), self.spectra(wav_hat))]
        return torch.stack(terms).mean()


SPECTRAL_LOSSES = {"funcodec": MultiScaleSpectralLoss, "dac_mel": MelReconstructionLoss}


def _check_shapes(wav: torch.Tensor, wav_hat: torch.Tensor) -> None:
    if wav.shape != wav_hat.shape:
        shapes = f"{tuple(wav.shape)} vs {tuple(wav_hat.shape)}"
        raise ValueError(f"signal and reconstruction shapes differ: {shapes}")
