"""Sinc resampling and the biquad high-pass: against direct evaluations of their formulas (always), and equal
to torchaudio's numbers where torchaudio is installed."""

import math

import numpy as np
import pytest
import scipy.signal
import torch
from reference_libs import import_reference

from funcodec_lite.audio import resample
from funcodec_lite.audio.filters import FILTER_WIDTH, ROLLOFF, highpass_biquad, sinc_resample

RATE_PAIRS = [(44100, 16000), (22050, 16000), (16000, 24000), (48000, 16000), (8000, 16000), (16000, 44100)]


def _tone(freq: float, rate: int, length: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(length, dtype=torch.float64) / rate).float()


def _naive_resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """y[j] = sum_i x[i] h(i / orig - j / new), h a Hann-windowed sinc, summed term by term in float64."""
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    cutoff = min(orig, new) * ROLLOFF
    out = np.zeros(-(-len(x) * new // orig))
    for j in range(len(out)):
        for i in range(len(x)):
            t = min(max((i / orig - j / new) * cutoff, -FILTER_WIDTH), FILTER_WIDTH)
            window = math.cos(t * math.pi / FILTER_WIDTH / 2) ** 2
            sinc = 1.0 if t == 0 else math.sin(math.pi * t) / (math.pi * t)
            out[j] += x[i] * sinc * window * cutoff / orig
    return out


@pytest.mark.parametrize("orig,new", [(44100, 16000), (16000, 24000), (8000, 16000), (3, 2)])
def test_resample_is_the_sinc_sum_evaluated_directly(orig, new):
    x = torch.randn(150, generator=torch.Generator().manual_seed(orig + new), dtype=torch.float64)
    np.testing.assert_allclose(sinc_resample(x, orig, new).numpy(), _naive_resample(x.numpy(), orig, new),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("orig,new", RATE_PAIRS)
def test_a_band_limited_tone_is_the_same_tone_at_the_new_rate(orig, new):
    y = resample(_tone(1000.0, orig, orig // 2), orig, new)
    assert y.shape[-1] == math.ceil(orig // 2 * new / orig)
    expected = _tone(1000.0, new, y.shape[-1])
    assert (y - expected)[64:-64].abs().max() < 1e-3  # edges: the signal stops there
    if new < orig:  # a tone above the new Nyquist frequency is filtered out, not folded back
        assert resample(_tone(0.6 * new, orig, orig // 2), orig, new)[64:-64].abs().max() < 0.05


def test_resampled_length_is_the_exact_ceiling_and_batch_dims_are_kept():
    # 441328 samples at 44.1 kHz are 160119.36 at 16 kHz: 160120 (torchaudio's float32 ratio gives 160119)
    assert sinc_resample(torch.zeros(441328), 44100, 16000).shape == (160120,)
    x = torch.randn(2, 3, 1001, generator=torch.Generator().manual_seed(0))
    y = sinc_resample(x, 16000, 8000)
    assert y.shape == (2, 3, 501)
    torch.testing.assert_close(y[1, 2], sinc_resample(x[1, 2], 16000, 8000))
    assert sinc_resample(x, 16000, 16000) is x
    with pytest.raises(TypeError, match="floating-point"):
        sinc_resample(torch.zeros(10, dtype=torch.int16), 16000, 8000)


def test_highpass_is_the_rbj_biquad_with_clipping():
    """The RBJ cookbook high-pass (b = (1 + cos w0) / 2 · [1, -2, 1], a = [1 + α, -2 cos w0, 1 - α]) run by
    scipy in float64; the output is clipped to [-1, 1]."""
    rate, cutoff, q = 16000, 100.0, 0.707
    w0 = 2 * math.pi * cutoff / rate
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1.0, -2.0, 1.0]) * (1 + math.cos(w0)) / 2
    a = np.array([1 + alpha, -2 * math.cos(w0), 1 - alpha])
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3
    expected = np.clip(scipy.signal.lfilter(b, a, x.numpy(), axis=-1), -1.0, 1.0)
    np.testing.assert_allclose(highpass_biquad(x, rate, cutoff, q).numpy(), expected, rtol=0, atol=1e-12)
    assert highpass_biquad(x * 10, rate, cutoff).abs().max() == 1.0


def test_highpass_removes_dc_and_keeps_the_band():
    rate = 22050
    t = torch.arange(rate) / rate
    x = 0.3 + 0.5 * torch.sin(2 * math.pi * 1000.0 * t)
    y = highpass_biquad(x, rate, 20.0)
    assert y.dtype == x.dtype and y.shape == x.shape
    tail = y[rate // 2 :]  # after the filter has settled
    assert abs(float(tail.mean())) < 1e-3
    assert float(tail.abs().max()) == pytest.approx(0.5, abs=2e-3)


@pytest.mark.parametrize("orig,new", RATE_PAIRS + [(96000, 16000), (22050, 24000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resample_equals_torchaudio(orig, new, dtype):
    functional = import_reference("torchaudio.functional")
    x = torch.randn(2, orig // 3 + 17, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ours, ref = sinc_resample(x, orig, new), functional.resample(x, orig, new)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() <= 1e-6  # measured: 0.0 (the same operations in the same order)


@pytest.mark.parametrize("rate,cutoff", [(22050, 20.0), (16000, 100.0), (24000, 3000.0)])
def test_highpass_equals_torchaudio(rate, cutoff):
    functional = import_reference("torchaudio.functional")
    x = torch.randn(3, 8000, generator=torch.Generator().manual_seed(1)) * 0.4
    assert torch.equal(highpass_biquad(x, rate, cutoff), functional.highpass_biquad(x, rate, cutoff))
