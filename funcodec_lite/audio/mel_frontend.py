"""The DCASE 2023 Task 7 baseline's log-mel front end (HiFi-GAN's ``mel_spectrogram``, 80 x 344 per clip): the
input of the Foley models and of every vocoder kind."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.audio.spectral import STFT, STFTConfig, power_spectrum
from funcodec_lite.modules.conv import pad1d


@dataclass
class FoleyMelConfig:
    """Log-mel settings; the defaults are the baseline's (and HiFi-GAN V1's input features).

    Args:
        sample_rate: audio rate in Hz.
        n_fft: FFT size.
        hop_length: samples between frames.
        win_length: Hann window length (<= n_fft).
        n_mels: mel bands (Slaney scale, Slaney area norm: librosa's defaults).
        fmin: lowest band edge in Hz.
        fmax: highest band edge in Hz; None means sample_rate / 2 (HiFi-GAN's ``fmax_for_loss``).
        num_samples: clips are cut or zero-padded to this length first; None keeps their length.
        magnitude_eps: added to |X|^2 under the square root.
        log_floor: the mel is floored here before the natural log (ln 1e-5 = -11.51).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    num_samples: int | None = 88200
    magnitude_eps: float = 1e-9
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even, got {self.n_fft} - {self.hop_length}")
        if not 1 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}")

    @property
    def padding(self) -> int:
        """Reflect padding on each side, (n_fft - hop) / 2 (384 samples by default)."""
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, length: int | None = None) -> int:
        """Frames for a signal of ``length`` samples (default ``num_samples``): 344 for 88,200."""
        length = self.num_samples if length is None else length
        if length is None:
            raise ValueError("give a length: this config keeps every clip's own length")
        return (length + 2 * self.padding - self.n_fft) // self.hop_length + 1


def hz_to_mel_slaney(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale (librosa's default): 3 mels per 200 Hz below 1 kHz, logarithmic above."""
    log_step = math.log(6.4) / 27.0
    return torch.where(hz >= 1000.0, 15.0 + torch.log(hz.clamp_min(1e-10) / 1000.0) / log_step, hz * 0.015)


def mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_mel_slaney`."""
    log_step = math.log(6.4) / 27.0
    return torch.where(mel >= 15.0, 1000.0 * torch.exp(log_step * (mel - 15.0)), mel / 0.015)


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """librosa's ``filters.mel`` (Slaney scale and area norm), computed in float64.

    torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="slaney")`` is the same design computed in
    float32; its filter tails then differ from librosa's by up to ~1e-7 (0.2 % of the smallest
    weights), which moves near-floor log-mel values by up to 2e-3. Computing in float64 and casting,
    as the baseline does with librosa, removes that.

    Returns:
        torch.Tensor: float64 filters of shape [n_fft // 2 + 1, n_mels].
    """
    bins = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    limits = hz_to_mel_slaney(torch.tensor([float(fmin), float(fmax)], dtype=torch.float64))
    mels = torch.linspace(float(limits[0]), float(limits[1]), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz_slaney(mels)
    width = edges.diff()  # [n_mels + 1]
    offset = edges[:, None] - bins[None, :]  # [n_mels + 2, F]
    rising = -offset[:-2] / width[:-1, None]
    falling = offset[2:] / width[1:, None]
    filters = torch.minimum(rising, falling).clamp_min(0.0) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return filters.t().contiguous()


def fit_length(wav: torch.Tensor, num_samples: int | None) -> torch.Tensor:
    """Cuts ``wav`` [..., T] to its first ``num_samples`` samples or zero-pads it on the right.

    ``num_samples=None`` (a `FoleyMelConfig` that keeps every clip's length) returns ``wav`` as it is.
    """
    if num_samples is None:
        return wav
    length = wav.shape[-1]
    if length >= num_samples:
        return wav[..., :num_samples]
    return F.pad(wav, (0, num_samples - length))


def check_vocoder(config: FoleyMelConfig, hop_length: int, num_mels: int, name: str = "vocoder") -> None:
    """Raises ValueError unless a vocoder with this hop and input size inverts mels of this front end.

    A vocoder with another hop would write clips of the wrong length at the wrong pitch.

    Args:
        config: the front end's settings.
        hop_length: the vocoder's samples per mel frame (the product of HiFi-GAN's upsampling rates).
        num_mels: the vocoder's input mel bands.
        name: how the error message names the vocoder.
    """
    if hop_length != config.hop_length:
        raise ValueError(f"{name}: hop_length {hop_length} (product of its upsampling rates) differs from "
                         f"the mel front end's hop {config.hop_length}")
    if num_mels != config.n_mels:
        raise ValueError(f"{name}: takes {num_mels} mel bands, the front end gives {config.n_mels}")


class FoleyMel(nn.Module):
    """Waveform -> natural-log magnitude mel spectrogram, as the baseline's ``mel_spectrogram_hifi``.

    Steps: cut/pad to ``num_samples``; reflect-pad (n_fft - hop) / 2 on both sides; STFT (periodic
    Hann, ``center=False``); magnitude sqrt(re² + im² + 1e-9); Slaney mel filters; ln(max(x, 1e-5)).
    There is no mean/variance normalisation.

    Args:
        config: settings; None means the baseline's.
    """

    def __init__(self, config: FoleyMelConfig | None = None):
        super().__init__()
        self.config = cfg = config or FoleyMelConfig()
        self.stft = STFT(STFTConfig(cfg.n_fft, cfg.hop_length, cfg.win_length, "hann", center=False))
        fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
        fbank = slaney_mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, fmax)
        self.register_buffer("fbank", fbank.float(), persistent=False)  # [n_fft // 2 + 1, n_mels]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): mono audio in [-1, 1] of shape [B, T] or [B, 1, T].

        Returns:
            torch.Tensor: log-mel of shape [B, n_mels, N]; [B, 80, 344] with the default config
            (N = T / hop when ``num_samples`` is None and T is a multiple of hop).
        """
        if wav.dim() == 3:
            if wav.shape[1] != 1:
                raise ValueError(f"expected mono audio [B, 1, T], got {tuple(wav.shape)}")
            wav = wav[:, 0]
        if wav.dim() != 2:
            raise ValueError(f"expected audio [B, T] or [B, 1, T], got {tuple(wav.shape)}")
        magnitude = self.magnitude(wav)
        mel = torch.matmul(self.fbank.t().to(magnitude.dtype), magnitude)
        return mel.clamp_min(self.config.log_floor).log()

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """The linear magnitude under the mel, frame for frame: mono audio [B, T] -> [B, n_fft // 2 + 1, N]
        (the whole band, also above fmax)."""
        cfg = self.config
        if cfg.num_samples is not None:
            wav = fit_length(wav, cfg.num_samples)
        wav = pad1d(wav, cfg.padding, cfg.padding, "reflect")
        return (power_spectrum(self.stft(wav)) + cfg.magnitude_eps).sqrt()  # [B, F, N]


def recipe_front_end() -> FoleyMel:
    """The Foley recipe's log-mel front end (the baseline's, `FoleyMelConfig` defaults): the one source
    of the clips' sample rate, length (``config.num_samples``) and hop for every stage."""
    return FoleyMel()
