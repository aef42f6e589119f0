"""Mel filter banks, the DCT-II and MFCCs: against their closed forms and scipy (always), and equal to
torchaudio's numbers where torchaudio is installed."""

import math

import numpy as np
import pytest
import scipy.fft
import torch
from reference_libs import import_reference

from funcodec_lite.audio.melscale import dct_matrix, hz_to_mel, mel_to_hz, melscale_fbanks, mfcc

FBANK_CASES = [  # n_freqs, f_min, f_max, n_mels, sample_rate, norm, mel_scale
    (513, 0.0, 8000.0, 80, 16000, None, "htk"),
    (513, 0.0, 8000.0, 80, 22050, "slaney", "slaney"),
    (513, 20.0, 7600.0, 80, 16000, "slaney", "slaney"),
    (257, 0.0, 12000.0, 64, 24000, None, "slaney"),
    (1025, 30.0, 16000.0, 128, 44100, "slaney", "htk"),
    (17, 0.0, 8000.0, 8, 16000, None, "htk"),
]


def _hz(mel: float, scale: str) -> float:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return mel * 200.0 / 3 if mel < 15.0 else 1000.0 * 6.4 ** ((mel - 15.0) / 27.0)


def test_mel_scales_at_their_anchor_points():
    assert hz_to_mel(700.0, "htk") == pytest.approx(2595.0 * math.log10(2.0))
    assert hz_to_mel(1000.0, "slaney") == pytest.approx(15.0)  # 1 kHz at 200/3 Hz per mel
    assert hz_to_mel(6400.0, "slaney") == pytest.approx(42.0)  # a factor 6.4 per 27 mels above 1 kHz
    mels = torch.tensor([0.0, 7.5, 15.0, 30.0, 42.0], dtype=torch.float64)
    for scale in ("htk", "slaney"):
        hz = mel_to_hz(mels, scale)
        assert [hz_to_mel(float(f), scale) for f in hz] == pytest.approx(mels.tolist())
    with pytest.raises(ValueError, match="mel_scale"):
        hz_to_mel(100.0, "bark")


@pytest.mark.parametrize("n_freqs,f_min,f_max,n_mels,rate,norm,scale", FBANK_CASES)
def test_filters_are_the_triangles_between_mel_points(n_freqs, f_min, f_max, n_mels, rate, norm, scale):
    """Filter m rises linearly from point m to m + 1 and falls to m + 2 (points evenly spaced in mels);
    slaney norm divides it by half its width in Hz."""
    lo, hi = hz_to_mel(f_min, scale), hz_to_mel(f_max, scale)
    points = [_hz(lo + (hi - lo) * k / (n_mels + 1), scale) for k in range(n_mels + 2)]
    bins = np.linspace(0, rate // 2, n_freqs)
    expected = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        left, centre, right = points[m : m + 3]
        rise, fall = (bins - left) / (centre - left), (right - bins) / (right - centre)
        expected[:, m] = np.clip(np.minimum(rise, fall), 0.0, None)
        if norm == "slaney":
            expected[:, m] *= 2.0 / (right - left)
    fb = melscale_fbanks(n_freqs, f_min, f_max, n_mels, rate, norm, scale)
    assert fb.shape == (n_freqs, n_mels) and fb.dtype == torch.float32
    # float32 against float64: the small weights at a filter's edges differ by up to ~5e-6 of the peak
    np.testing.assert_allclose(fb.double().numpy(), expected, rtol=1e-4, atol=2e-5 * expected.max())


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_each_filter_peaks_at_its_centre_frequency(scale):
    rate, n_fft, n_mels = 16000, 8192, 40  # bins of ~2 Hz: every filter spans many bins
    fb = melscale_fbanks(n_fft // 2 + 1, 0.0, 8000.0, n_mels, rate, None, scale)
    top = hz_to_mel(8000.0, scale)
    centres = torch.tensor([_hz(top * (m + 1) / (n_mels + 1), scale) for m in range(n_mels)])
    peaks = fb.argmax(dim=0) * (rate / n_fft)
    assert (peaks - centres).abs().max() <= rate / n_fft
    assert fb.max(dim=0).values.min() > 0.95


def test_dct_is_orthonormal_dct_ii():
    d = dct_matrix(40, 40).double()
    torch.testing.assert_close(d.t() @ d, torch.eye(40, dtype=torch.float64), atol=1e-5, rtol=0)
    x = np.random.default_rng(0).standard_normal((3, 40))
    np.testing.assert_allclose((torch.from_numpy(x).float() @ dct_matrix(13, 40)).numpy(),
                               scipy.fft.dct(x, type=2, norm="ortho")[:, :13], rtol=0, atol=1e-5)


def test_mfcc_against_numpy_and_scipy():
    """Reflect-padded frames, periodic Hann window, |rfft|², HTK mel filters, log(· + 1e-6), DCT-II."""
    rate, n_fft, hop, n_mels = 16000, 400, 160, 40
    x = np.random.default_rng(1).standard_normal(4000) * 0.1
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    fb = melscale_fbanks(n_fft // 2 + 1, 0.0, 8000.0, n_mels, rate).double().numpy()
    expected = scipy.fft.dct(np.log(power @ fb + 1e-6), type=2, norm="ortho")[:, :13].T
    ours = mfcc(torch.from_numpy(x).float(), rate, 13, n_fft, hop, n_mels)
    assert ours.shape == (13, 4000 // hop + 1)
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=0, atol=2e-3)
    assert mfcc(torch.from_numpy(np.stack([x, x])).float(), rate, 13, n_fft, hop, n_mels).shape == (2, 13, 26)


@pytest.mark.parametrize("n_freqs,f_min,f_max,n_mels,rate,norm,scale", FBANK_CASES)
def test_fbanks_equal_torchaudio(n_freqs, f_min, f_max, n_mels, rate, norm, scale):
    functional = import_reference("torchaudio.functional")
    ref = functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, rate, norm, scale)
    assert (melscale_fbanks(n_freqs, f_min, f_max, n_mels, rate, norm, scale) - ref).abs().max() <= 1e-7
    assert (dct_matrix(25, n_mels) - functional.create_dct(25, n_mels, "ortho")).abs().max() <= 1e-7


@pytest.mark.parametrize("rate", [8000, 16000, 22050])
def test_mfcc_equals_torchaudio(rate):
    transforms = import_reference("torchaudio.transforms")
    n_fft, hop = int(0.025 * rate), int(0.010 * rate)
    ref = transforms.MFCC(sample_rate=rate, n_mfcc=25, log_mels=True,
                          melkwargs={"n_fft": n_fft, "hop_length": hop, "n_mels": 40, "center": True})
    x = torch.randn(rate, generator=torch.Generator().manual_seed(rate)) * 0.1
    assert (mfcc(x, rate, 25, n_fft, hop, 40) - ref(x)).abs().max() <= 1e-6  # measured: 0.0
