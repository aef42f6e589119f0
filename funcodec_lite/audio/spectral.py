"""The one STFT / mel-spectrogram implementation shared by transforms, losses and metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from funcodec_lite.audio.melscale import melscale_fbanks

_WINDOWS: dict[str, Callable[[int], torch.Tensor]] = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
    "rect": torch.ones,
}


@dataclass
class STFTConfig:
    """Short-time Fourier transform settings.

    Args:
        n_fft: FFT size.
        hop_length: samples between frames.
        win_length: window length (<= n_fft); None means n_fft.
        window: one of "hann", "hamming", "blackman", "bartlett", "rect" (periodic windows).
        center: pad the signal by n_fft // 2 on both sides so frame n is centred on sample n * hop.
        pad_mode: padding used when `center` is set ("reflect" or "constant"); "reflect" needs
            signals longer than n_fft // 2.
    """

    n_fft: int = 512
    hop_length: int = 160
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.window not in _WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; choose from {sorted(_WINDOWS)}")
        if self.n_fft < 2 or self.hop_length < 1:
            raise ValueError(f"need n_fft >= 2 and hop_length >= 1, got {self.n_fft}, {self.hop_length}")
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}")

    @property
    def window_length(self) -> int:
        """Effective window length in samples."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def freq_bins(self) -> int:
        """Number of one-sided frequency bins, n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        """Number of STFT frames produced for a signal of `length` samples."""
        if self.center:
            return length // self.hop_length + 1
        return max(0, (length - self.n_fft) // self.hop_length + 1)


class STFT(nn.Module):
    """Complex one-sided STFT and its inverse for signals with any leading dimensions.

    Args:
        config: STFT settings.
    """

    def __init__(self, config: STFTConfig | None = None):
        super().__init__()
        self.config = config or STFTConfig()
        window = _WINDOWS[self.config.window](self.config.window_length)
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): real signal of shape [..., T].

        Returns:
            torch.Tensor: complex spectrum of shape [..., F, N] with F = n_fft // 2 + 1.
        """
        cfg = self.config
        lead = wav.shape[:-1]
        spec = torch.stft(
            wav.reshape(-1, wav.shape[-1]),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.window_length,
            window=self.window.to(wav.dtype),
            center=cfg.center,
            pad_mode=cfg.pad_mode,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Args:
            spec (torch.Tensor): complex spectrum of shape [..., F, N].
            length (int): number of output samples T (trims or zero-pads the overlap-add result).

        Returns:
            torch.Tensor: real signal of shape [..., T].
        """
        cfg = self.config
        lead = spec.shape[:-2]
        wav = torch.istft(
            spec.reshape(-1, *spec.shape[-2:]),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.window_length,
            window=self.window.to(spec.real.dtype),
            center=cfg.center,
            length=length,
        )
        return wav.reshape(*lead, wav.shape[-1])


def power_spectrum(spec: torch.Tensor) -> torch.Tensor:
    """|X|^2 of a complex spectrum, written so its gradient is finite at X = 0.

    Args:
        spec (torch.Tensor): complex tensor of any shape.
    """
    return spec.real.square() + spec.imag.square()


def mel_filters(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "htk",
    norm: str | None = None,
) -> torch.Tensor:
    """Triangular mel filter bank of shape [n_fft // 2 + 1, n_mels] (`melscale_fbanks`, torchaudio's design;
    an empty filter is left for the callers to report)."""
    return melscale_fbanks(n_fft // 2 + 1, f_min, f_max if f_max is not None else sample_rate / 2, n_mels,
                           sample_rate, norm=norm, mel_scale=mel_scale)


def max_mel_bins(
    sample_rate: int, n_fft: int, f_min: float = 0.0, f_max: float | None = None, mel_scale: str = "htk",
    limit: int = 256,
) -> int:
    """Largest n_mels <= `limit` whose filter bank has no all-zero filter at this FFT resolution.

    The lowest mel filters are the narrowest in Hz; once one of them is narrower than the FFT bin
    spacing (sample_rate / n_fft) it can fall between two bins and be empty. Empty filters appear as
    n_mels grows, so a bisection finds the boundary; the returned count is always checked (0: none fits).
    """

    def has_empty(n_mels: int) -> bool:
        return bool((mel_filters(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale).amax(dim=0) <= 0).any())

    if not has_empty(limit):
        return limit
    good, bad = 0, limit
    while bad - good > 1:
        mid = (good + bad) // 2
        if has_empty(mid):
            bad = mid
        else:
            good = mid
    return good


class MelSpectrogram(nn.Module):
    """Mel spectrogram with an optional log compression.

    Args:
        sample_rate: audio sample rate in Hz.
        stft: STFT settings.
        n_mels: number of mel bands; every band must cover at least one FFT bin.
        f_min, f_max: band edges in Hz (f_max None means sample_rate / 2).
        power: 1 for a magnitude mel spectrogram, 2 for a power one.
        mel_scale: "htk" or "slaney".
        norm: None or "slaney" (area normalisation of the filters).
        log: return log(max(mel, log_floor)) (natural log) instead of mel.
        log_floor: floor applied before the log.
    """

    def __init__(
        self,
        sample_rate: int,
        stft: STFTConfig | None = None,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 1.0,
        mel_scale: str = "htk",
        norm: str | None = None,
        log: bool = False,
        log_floor: float = 1e-5,
    ):
        super().__init__()
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 or 2, got {power}")
        self.stft = STFT(stft)
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.power = float(power)
        self.log = log
        self.log_floor = log_floor
        fb = mel_filters(sample_rate, self.stft.config.n_fft, n_mels, f_min, f_max, mel_scale, norm)
        empty = int((fb.amax(dim=0) <= 0).sum())
        if empty:
            best = max_mel_bins(sample_rate, self.stft.config.n_fft, f_min, f_max, mel_scale)
            raise ValueError(
                f"{empty} of {n_mels} mel filters are empty at n_fft={self.stft.config.n_fft}, "
                f"sample_rate={sample_rate}; use n_mels <= {best}"
            )
        self.register_buffer("fbank", fb.float(), persistent=False)

    def from_power(self, power_spec: torch.Tensor) -> torch.Tensor:
        """Args:
            power_spec (torch.Tensor): |X|^2 of shape [..., F, N] from the same STFT settings.

        Returns:
            torch.Tensor: mel spectrogram of shape [..., n_mels, N].
        """
        spec = power_spec
        if self.power == 1.0:
            # clamp_min zeroes the gradient below the floor, so sqrt'(0) = inf never reaches it
            spec = power_spec.clamp_min(1e-20).sqrt()
        mel = torch.matmul(spec.transpose(-1, -2), self.fbank.to(spec.dtype)).transpose(-1, -2)
        if self.log:
            mel = mel.clamp_min(self.log_floor).log()
        return mel

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): signal of shape [..., T].

        Returns:
            torch.Tensor: mel spectrogram of shape [..., n_mels, N].
        """
        return self.from_power(power_spectrum(self.stft(wav)))


@dataclass
class Resolution:
    """One analysis scale of a multi-scale spectrogram (n_mels None: no mel term)."""

    n_fft: int
    hop_length: int
    win_length: int | None = None
    n_mels: int | None = None


class ScaleSpectra(NamedTuple):
    """Spectra of one resolution: power [..., F, N] and mel [..., n_mels, N] (or None)."""

    power: torch.Tensor
    mel: torch.Tensor | None


class MultiScaleSpectrogram(nn.Module):
    """Power and mel spectra at several resolutions, one STFT per resolution.

    Args:
        sample_rate: audio sample rate in Hz.
        resolutions: analysis scales.
        window: window name shared by all scales.
        pad_mode: STFT padding mode shared by all scales ("reflect" or "constant").
        mel_power, mel_log, log_floor, f_min, f_max, mel_scale, norm: forwarded to each MelSpectrogram.
    """

    def __init__(
        self,
        sample_rate: int,
        resolutions: Sequence[Resolution],
        window: str = "hann",
        pad_mode: str = "reflect",
        mel_power: float = 1.0,
        mel_log: bool = False,
        log_floor: float = 1e-5,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "htk",
        norm: str | None = None,
    ):
        super().__init__()
        self.resolutions = list(resolutions)
        self.stfts = nn.ModuleList()
        self.mels = nn.ModuleList()
        for res in self.resolutions:
            cfg = STFTConfig(n_fft=res.n_fft, hop_length=res.hop_length, win_length=res.win_length,
                             window=window, pad_mode=pad_mode)
            self.stfts.append(STFT(cfg))
            # nn.Identity marks "no mel term" so the two lists stay aligned
            self.mels.append(
                nn.Identity() if res.n_mels is None else MelSpectrogram(
                    sample_rate, cfg, res.n_mels, f_min, f_max, mel_power, mel_scale, norm, mel_log, log_floor
                )
            )

    def forward(self, wav: torch.Tensor) -> list[ScaleSpectra]:
        """Args:
            wav (torch.Tensor): signal of shape [B, T] or [B, C, T].

        Returns:
            list[ScaleSpectra]: per resolution, power [B, (C,) F, N] and mel [B, (C,) n_mels, N].
        """
        out = []
        for stft, mel in zip(self.stfts, self.mels):
            power = power_spectrum(stft(wav))
            mel_spec = mel.from_power(power) if isinstance(mel, MelSpectrogram) else None
            out.append(ScaleSpectra(power, mel_spec))
        return out


def funcodec_resolutions(sample_rate: int, n_mels: int = 64, f_max: float | None = None) -> list[Resolution]:
    """FunCodec / SoundStream multi-scale loss scales: window 2^i, hop 2^i / 4, for i in 5..11.

    FunCodec asks for 64 mel bands at every scale, but a 32- or 64-sample window has only 17 or 33
    FFT bins: most of 64 filters would fall between two bins and be all-zero, i.e. constant features
    that carry no information. We keep `n_mels` bands where the FFT resolution allows it and otherwise
    use the largest count with no empty filter (`max_mel_bins`); at 16 kHz that gives
    8, 15, 29, 57, 64, 64, 64 bands for windows 32 ... 2048.
    """
    return [
        Resolution(2**i, 2**i // 4, 2**i, max_mel_bins(sample_rate, 2**i, f_max=f_max, limit=n_mels))
        for i in range(5, 12)
    ]


class MelDistance(nn.Module):
    """Mean L1 distance between log-magnitude mel spectra over a few resolutions.

    Default scales: windows of 512, 1024 and 2048 samples with hop = window / 4 and up to 80 mel bands
    (fewer where the FFT resolution cannot support 80, see `max_mel_bins`), natural log with floor 1e-5,
    zero padding at the edges so clips shorter than half a window still work. The distance is averaged
    over all elements of each scale, then over scales.

    Args:
        sample_rate: audio sample rate in Hz.
        windows: analysis window sizes.
        n_mels: maximum number of mel bands per scale.
    """

    def __init__(self, sample_rate: int, windows: Sequence[int] = (512, 1024, 2048), n_mels: int = 80):
        super().__init__()
        resolutions = [Resolution(w, w // 4, w, max_mel_bins(sample_rate, w, limit=n_mels)) for w in windows]
        self.spectra = MultiScaleSpectrogram(sample_rate, resolutions, pad_mode="constant", mel_log=True)

    def forward(self, ref: torch.Tensor, hyp: torch.Tensor) -> torch.Tensor:
        """Args:
            ref (torch.Tensor): reference signal of shape [..., T].
            hyp (torch.Tensor): signal to compare, same shape as `ref`.

        Returns:
            torch.Tensor: scalar distance (0 for identical inputs).
        """
        if ref.shape != hyp.shape:
            raise ValueError(f"ref and hyp shapes differ: {tuple(ref.shape)} vs {tuple(hyp.shape)}")
        ref2, hyp2 = ref.reshape(-1, ref.shape[-1]), hyp.reshape(-1, hyp.shape[-1])
        terms = [(r.mel - h.mel).abs().mean() for r, h in zip(self.spectra(ref2), self.spectra(hyp2))]
        return torch.stack(terms).mean()


def mel_distance(ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean L1 log-mel distance (see `MelDistance` for the scales) between two signals [..., T]."""
    return MelDistance(sample_rate).to(ref.device)(ref, hyp)
