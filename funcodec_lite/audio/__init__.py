"""Audio front-end: file I/O, levels and loudness, STFT/mel spectra and codec domain transforms."""

from .io import AudioError, load_audio, resample, save_audio
from .levels import k_weighting, loudness_lufs, loudness_normalize, peak, peak_normalize, rms_db
from .spectral import (
    STFT,
    MelDistance,
    MelSpectrogram,
    MultiScaleSpectrogram,
    Resolution,
    ScaleSpectra,
    STFTConfig,
    funcodec_resolutions,
    max_mel_bins,
    mel_distance,
    mel_filters,
    power_spectrum,
)
from .transforms import (
    DomainTransform,
    IdentityTransform,
    MagAngleTransform,
    MagPhaseTransform,
    build_transform,
)

__all__ = [
    "AudioError",
    "DomainTransform",
    "IdentityTransform",
    "MagAngleTransform",
    "MagPhaseTransform",
    "MelDistance",
    "MelSpectrogram",
    "MultiScaleSpectrogram",
    "Resolution",
    "STFT",
    "STFTConfig",
    "ScaleSpectra",
    "build_transform",
    "funcodec_resolutions",
    "k_weighting",
    "load_audio",
    "loudness_lufs",
    "loudness_normalize",
    "max_mel_bins",
    "mel_distance",
    "mel_filters",
    "peak",
    "peak_normalize",
    "power_spectrum",
    "resample",
    "rms_db",
    "save_audio",
]
