"""Mel scale in plain torch: Hz <-> mel (HTK and Slaney), triangular filter banks, the DCT-II and MFCCs.

Closed formulas written here rather than taken from torchaudio, which has no release built for the torch
this project runs on; they compute torchaudio 2.x's numbers (``melscale_fbanks``, ``create_dct``,
``transforms.MFCC``) operation for operation, in float32 (tests/test_audio_melscale.py compares them).
"""

from __future__ import annotations

import math

import torch

# Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (a factor 6.4 per 27 mels)
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0
MEL_SCALES = ("htk", "slaney")


def _check_scale(mel_scale: str) -> None:
    if mel_scale not in MEL_SCALES:
        raise ValueError(f"mel_scale must be one of {MEL_SCALES}, got {mel_scale!r}")


def hz_to_mel(freq: float, mel_scale: str = "htk") -> float:
    """A frequency in Hz on the mel scale ("htk": 2595 log10(1 + f / 700); "slaney": linear, then log)."""
    _check_scale(mel_scale)
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if freq >= _SLANEY_BREAK_HZ:
        return _SLANEY_BREAK_MEL + math.log(freq / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return freq / _SLANEY_HZ_PER_MEL


def mel_to_hz(mels: torch.Tensor, mel_scale: str = "htk") -> torch.Tensor:
    """The inverse of `hz_to_mel`, element-wise on a tensor of mels."""
    _check_scale(mel_scale)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = _SLANEY_HZ_PER_MEL * mels
    logarithmic = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mels - _SLANEY_BREAK_MEL))
    return torch.where(mels >= _SLANEY_BREAK_MEL, logarithmic, linear)


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int,
                    norm: str | None = None, mel_scale: str = "htk",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Triangular mel filters over the bins of a one-sided spectrum.

    Filter ``m`` rises from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` (``n_mels + 2`` points
    evenly spaced in mels from ``f_min`` to ``f_max``), evaluated at the ``n_freqs`` bin frequencies
    ``linspace(0, sample_rate // 2)``; with ``norm="slaney"`` each filter is divided by half its width in Hz
    (equal area). A filter narrower than the bin spacing can be all zero; callers check.

    Returns:
        torch.Tensor: filter bank of shape [n_freqs, n_mels], computed in ``dtype`` (float32: torchaudio's
        numbers; float64: librosa's, which computes in double precision).
    """
    if norm not in (None, "slaney"):
        raise ValueError(f'norm must be None or "slaney", got {norm!r}')
    bins = torch.linspace(0, sample_rate // 2, n_freqs, dtype=dtype)
    mels = torch.linspace(hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale), n_mels + 2, dtype=dtype)
    points = mel_to_hz(mels, mel_scale)  # [n_mels + 2] Hz
    spacing = points[1:] - points[:-1]
    offsets = points[None, :] - bins[:, None]  # [n_freqs, n_mels + 2]
    rising = (-1.0 * offsets[:, :-2]) / spacing[:-1]
    falling = offsets[:, 2:] / spacing[1:]
    fb = torch.minimum(rising, falling).clamp_min(0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (points[2:] - points[:-2]))[None, :]
    return fb


def dct_matrix(n_coeffs: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II as a matrix [n_mels, n_coeffs]: ``x [..., n_mels] @ D`` gives the first
    ``n_coeffs`` coefficients (``D[n, k] = sqrt(2 / M) cos(pi / M (n + 1/2) k)``, column 0 times 1/sqrt 2)."""
    n = torch.arange(float(n_mels))
    k = torch.arange(float(n_coeffs))[:, None]
    dct = torch.cos(math.pi / float(n_mels) * (n + 0.5) * k)  # [n_coeffs, n_mels]
    dct[0] *= 1.0 / math.sqrt(2.0)
    dct *= math.sqrt(2.0 / float(n_mels))
    return dct.t()


def mfcc(wav: torch.Tensor, sample_rate: int, n_mfcc: int, n_fft: int, hop_length: int, n_mels: int,
         log_offset: float = 1e-6) -> torch.Tensor:
    """MFCCs: power spectrogram (periodic Hann window of ``n_fft``, centred, reflect padding) through HTK
    mel filters (0 Hz to ``sample_rate // 2``, no norm), ``log(mel + log_offset)``, orthonormal DCT-II.

    Args:
        wav (torch.Tensor): audio of shape [..., T].
        sample_rate: sample rate in Hz.
        n_mfcc: coefficients kept (c0 included), at most ``n_mels``.
        n_fft, hop_length: STFT size and hop in samples.
        n_mels: mel bands.
        log_offset: added to the mel energies before the natural log.

    Returns:
        torch.Tensor: coefficients of shape [..., n_mfcc, frames].
    """
    if n_mfcc > n_mels:
        raise ValueError(f"cannot keep {n_mfcc} coefficients of {n_mels} mel bands")
    shape = wav.shape
    spec = torch.stft(wav.reshape(-1, shape[-1]), n_fft, hop_length, n_fft,
                      window=torch.hann_window(n_fft, dtype=wav.dtype, device=wav.device),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs().pow(2.0)  # [N, F, frames]
    fb = melscale_fbanks(n_fft // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate)
    mel = torch.matmul(power.transpose(-1, -2), fb.to(power)).transpose(-1, -2)
    logmel = torch.log(mel + log_offset)
    out = torch.matmul(logmel.transpose(-1, -2), dct_matrix(n_mfcc, n_mels).to(logmel)).transpose(-1, -2)
    return out.reshape(*shape[:-1], *out.shape[-2:])
