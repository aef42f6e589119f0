"""The instantaneous-frequency / group-delay loss: against a direct computation with angles, its
invariances, and what it tells apart."""

import pytest
import torch

from funcodec_lite.losses import CodecLoss, LossWeights
from funcodec_lite.losses.phase_derivative import PhaseDerivativeLoss


def _voice(seconds: float = 0.5, sample_rate: int = 16000) -> torch.Tensor:
    """[1, 1, T] harmonic glide: 19 partials of a 150 ± 30 Hz fundamental."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    phase = 2 * torch.pi * torch.cumsum(150 + 30 * torch.sin(2 * torch.pi * 2 * t), 0) / sample_rate
    return (sum(torch.sin(k * phase) / k for k in range(1, 20)) * 0.1).float().reshape(1, 1, -1)


def _direct(wav: torch.Tensor, hat: torch.Tensor, n_fft: int) -> torch.Tensor:
    """The IF + GD terms with explicit phase angles: weighted mean of 2 (1 - cos(Δφ_hat - Δφ_ref))."""
    window = torch.hann_window(n_fft, dtype=torch.float64)
    ref, hyp = (torch.stft(x[:, 0].double(), n_fft, n_fft // 4, window=window, center=True,
                           pad_mode="constant", return_complex=True) for x in (wav, hat))
    weight = ref.abs().pow(0.3)
    total = 0.0
    for dim in (-1, -2):
        n = ref.shape[dim] - 1
        d_ref = ref.angle().narrow(dim, 1, n) - ref.angle().narrow(dim, 0, n)
        d_hyp = hyp.angle().narrow(dim, 1, n) - hyp.angle().narrow(dim, 0, n)
        w = (weight.narrow(dim, 1, n) * weight.narrow(dim, 0, n)).sqrt()
        total = total + (w * 2 * (1 - torch.cos(d_hyp - d_ref))).sum() / w.sum()
    return total


def test_loss_equals_the_direct_computation_with_angles():
    torch.manual_seed(0)
    wav = _voice() + 0.01 * torch.randn(1, 1, 8000)
    hat = 0.8 * wav + 0.02 * torch.randn(1, 1, 8000)
    loss = PhaseDerivativeLoss(windows=(256, 512), eps=1e-9)
    expected = (_direct(wav, hat, 256) + _direct(wav, hat, 512)) / 2
    assert float(loss(wav, hat)) == pytest.approx(float(expected), rel=1e-3)


def test_it_ignores_level_and_tells_a_coherent_signal_from_a_random_phase_one():
    wav = _voice()
    loss = PhaseDerivativeLoss()
    assert float(loss(wav, wav)) == 0.0
    assert float(loss(wav, 0.5 * wav)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(wav, torch.roll(wav, 1, -1))) < 0.01  # a one-sample delay: nearly the same phases
    window = torch.hann_window(1024)
    spec = torch.stft(wav[0], 1024, 256, window=window, return_complex=True)
    torch.manual_seed(1)
    scrambled = spec.abs() * torch.exp(2j * torch.pi * torch.rand(spec.shape))
    same_magnitude = torch.istft(scrambled, 1024, 256, window=window, length=wav.shape[-1])[None]
    assert float(loss(wav, same_magnitude)) > 1.5  # incoherent phase: near the 2 of independent phasors


def test_gradient_is_finite_on_a_silent_output_and_the_codec_loss_adds_the_term():
    torch.manual_seed(2)
    silent = torch.zeros(1, 1, 4000, requires_grad=True)
    PhaseDerivativeLoss()(torch.randn(1, 1, 4000), silent).backward()
    assert torch.isfinite(silent.grad).all()
    wav, hat = _voice(0.25), 0.9 * _voice(0.25) + 0.01 * torch.randn(1, 1, 4000)
    plain = CodecLoss(16000, LossWeights(time=1.0, freq=1.0, spectral="dac_mel"))(wav, hat)
    both = CodecLoss(16000, LossWeights(time=1.0, freq=1.0, spectral="dac_mel", phase=3.0))(wav, hat)
    assert both.terms["phase"] == pytest.approx(float(PhaseDerivativeLoss()(wav, hat)), rel=1e-5)
    assert both.terms["total"] == pytest.approx(plain.terms["total"] + 3.0 * both.terms["phase"], rel=1e-5)
