"""Tests for the DCASE Foley baseline log-mel front-end against an independent numpy computation."""

import numpy as np
import pytest
import torch
from scipy.signal import get_window
from torch.nn import functional as F

from funcodec_lite.audio.io import save_audio
from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig, fit_length, slaney_mel_filters
from funcodec_lite.audio.spectral import mel_filters
from funcodec_lite.foley.data import FoleyClip, FoleyDataError, extract_features, load_clips


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


def _slaney_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Area-normalised triangular filters [n_mels, n_fft // 2 + 1], written from the definition."""
    bins = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    filters = np.zeros((n_mels, bins.size))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        filters[m] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (hi - lo)
    return filters


def _baseline_window(n_fft: int) -> np.ndarray:
    """The periodic Hann window as the baseline gets it: ``torch.hann_window`` in float32.

    Its values differ from the exact window by up to 2e-7; the resulting leakage sits ~1e-7 below the
    spectral peak, which is visible in log-mel values near the 1e-5 floor. Everything else in the
    reference is computed here in float64.
    """
    window = torch.hann_window(n_fft).double().numpy()
    assert np.abs(window - get_window("hann", n_fft, fftbins=True)).max() < 5e-7
    return window


def _numpy_log_mel(wav: np.ndarray, cfg: FoleyMelConfig) -> np.ndarray:
    """The baseline's definition with numpy/scipy only: [n_mels, N]."""
    wav = np.asarray(wav, dtype=np.float64)[: cfg.num_samples]
    wav = np.pad(wav, (0, cfg.num_samples - wav.size))
    pad = (cfg.n_fft - cfg.hop_length) // 2
    wav = np.pad(wav, (pad, pad), mode="reflect")
    n_frames = 1 + (wav.size - cfg.n_fft) // cfg.hop_length
    starts = np.arange(n_frames) * cfg.hop_length
    frames = wav[starts[:, None] + np.arange(cfg.n_fft)[None, :]]
    spec = np.fft.rfft(frames * _baseline_window(cfg.n_fft), axis=1).T  # [F, N]
    magnitude = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
    mel = _slaney_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, fmax) @ magnitude
    return np.log(np.maximum(mel, 1e-5))


def _assert_float32_close(ours: np.ndarray, ref: np.ndarray) -> None:
    """float32 log-mel vs the float64 reference: FFT rounding (~1e-7 of the peak) shows only in quiet bins."""
    error = np.abs(ours - ref)
    assert error.mean() < 1e-5
    assert np.percentile(error, 99) < 1e-4
    assert error[ref > -7.0].max() < 1e-4  # mel above 1e-3
    assert error.max() < 5e-4


def _clip(seconds: float, seed: int = 0) -> torch.Tensor:
    """A chirp, a noise floor and noise bursts, peak 0.5, at 22,050 Hz: [T]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 22050), dtype=torch.float64) / 22050
    chirp = torch.sin(2 * torch.pi * (200 * t + 900 * t**2))
    noise = torch.randn(t.shape, generator=gen, dtype=torch.float64) * (0.01 + (torch.sin(3 * t) > 0.5))
    wav = chirp + 0.3 * noise
    return (0.5 * wav / wav.abs().max()).float()


def test_default_config_gives_80_by_344_for_a_4_second_clip():
    cfg = FoleyMelConfig()
    assert (cfg.padding, cfg.num_frames()) == (384, 344)
    mel = FoleyMel()(_clip(4.0)[None])
    assert mel.shape == (1, 80, 344)
    assert mel.dtype == torch.float32


def test_matches_an_independent_numpy_computation():
    wav = _clip(4.0)
    ref = _numpy_log_mel(wav.numpy(), FoleyMelConfig())
    # The definition, evaluated in float64.
    exact = FoleyMel().double()(wav[None].double())[0].numpy()
    assert np.abs(exact - ref).max() < 1e-6
    # float32, as used: its FFT rounding (~1e-7 of the peak) shows only in quiet bins.
    ours = FoleyMel()(wav[None])[0].double().numpy()
    _assert_float32_close(ours, ref)
    assert ours.min() >= np.log(1e-5) - 1e-6


def test_filters_are_librosas_slaney_filters():
    ref = _slaney_filters(22050, 1024, 80, 0.0, 8000.0)
    exact = slaney_mel_filters(22050, 1024, 80, 0.0, 8000.0).t().numpy()
    np.testing.assert_allclose(exact, ref, rtol=0, atol=1e-15)
    ours = FoleyMel().fbank.t().double().numpy()  # cast to float32, as the baseline casts librosa's
    assert ours.shape == (80, 513)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=0)
    assert (ref[:, 372:] == 0).all()  # 8 kHz is bin 371.5: nothing above it
    assert ref.max() == pytest.approx(0.0264925, abs=1e-7)  # ~2 / (2 * 37.24 Hz), the linear-region area norm
    # torchaudio's float32 design is the same up to ~7e-8 in the filter tails.
    torchaudio_fb = mel_filters(22050, 1024, 80, 0.0, 8000.0, "slaney", "slaney").t().double().numpy()
    assert np.abs(torchaudio_fb - ref).max() < 1e-7


def test_short_clips_are_zero_padded_and_long_clips_cut():
    cfg = FoleyMelConfig()
    short, long = _clip(3.0, seed=1), _clip(5.0, seed=2)
    mel = FoleyMel(cfg)(torch.stack([fit_length(short, 100_000), long[:100_000]])[:, None])
    assert mel.shape == (2, 80, 344)
    for i, wav in enumerate((short, long)):
        _assert_float32_close(mel[i].double().numpy(), _numpy_log_mel(wav.numpy(), cfg))
    # The padded tail is silence: the 1e-9 under the square root lifts it above the log floor.
    tail = mel[0, :, -40:]
    floor = np.log(np.sqrt(1e-9) * _slaney_filters(22050, 1024, 80, 0.0, 8000.0).sum(1))
    np.testing.assert_allclose(tail[:, -1].double().numpy(), np.maximum(floor, np.log(1e-5)), atol=1e-4)


def test_loss_config_keeps_length_and_uses_the_full_band():
    cfg = FoleyMelConfig(fmax=None, num_samples=None)
    wav = _clip(8192 / 22050, seed=3)
    mel = FoleyMel(cfg)(wav[None])
    assert mel.shape == (1, 80, 32)  # one frame per 256 samples
    ref = _numpy_log_mel(wav.numpy(), FoleyMelConfig(fmax=None, num_samples=8192))
    _assert_float32_close(mel[0].double().numpy(), ref)


def test_rejects_multichannel_audio():
    with pytest.raises(ValueError, match="mono"):
        FoleyMel()(torch.zeros(1, 2, 1000))


def test_fit_length_none_keeps_the_length_and_features_follow_it(tmp_path):
    wav = _clip(0.5, seed=4)
    assert fit_length(wav, None) is wav  # None: "keep every clip's length", as FoleyMelConfig means it
    torch.testing.assert_close(fit_length(wav, 20_000), F.pad(wav, (0, 20_000 - len(wav))), rtol=0, atol=0)
    cfg = FoleyMelConfig(num_samples=None)
    paths = []
    for i, seconds in enumerate((8192 / 22050, 8192 / 22050, 4096 / 22050)):
        paths.append(tmp_path / f"{i}.wav")
        save_audio(paths[-1], _clip(seconds, seed=5 + i)[None], 22050, "FLOAT")
    clips = [FoleyClip(f"A-{i}", str(p), "A") for i, p in enumerate(paths)]
    features = extract_features(clips[:2], ["A", "B"], FoleyMel(cfg))
    assert features.mels.shape == (2, 80, 32)  # 8,192 samples kept, one frame per 256
    expected = _numpy_log_mel(load_clips([str(paths[0])], cfg)[0].numpy(), FoleyMelConfig(num_samples=8192))
    _assert_float32_close(features.mels[0].double().numpy(), expected)
    with pytest.raises(FoleyDataError, match="4096 to 8192 samples"):
        extract_features(clips, ["A", "B"], FoleyMel(cfg))  # lengths kept but different: no common shape
