"""Tests for the reconstruction, spectral, adversarial and feature-matching losses and their total."""

import math

import pytest
import torch

from funcodec_lite.audio.spectral import Resolution
from funcodec_lite.losses import (
    CodecLoss,
    LossWeights,
    MultiScaleSpectralLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    log_compress,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    time_l1_loss,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def spectral() -> MultiScaleSpectralLoss:
    return MultiScaleSpectralLoss(16000)


def test_time_l1_and_log_compress():
    x = torch.tensor([[[0.5, -1.0, 2.0, 0.0]]])
    y = torch.tensor([[[0.0, -1.5, 2.0, 1.0]]])
    assert time_l1_loss(x, y).item() == pytest.approx((0.5 + 0.5 + 0.0 + 1.0) / 4)
    assert time_l1_loss(x, x).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        time_l1_loss(x, y[..., :3])
    spec = torch.tensor([100.0, 1e-3, 0.0, 1e-9], requires_grad=True)
    out = log_compress(spec, floor=1e-5)
    torch.testing.assert_close(out, torch.tensor([2.0, -3.0, -5.0, -5.0]), atol=5e-3, rtol=0)
    out.sum().backward()
    assert (spec.grad > 0).all()  # no dead zone below the floor: quiet decoder outputs still learn


def test_hinge_losses_match_hand_computation():
    real = [torch.tensor([2.0, 0.5, -1.0]), torch.tensor([[0.0, 3.0]])]
    fake = [torch.tensor([-2.0, 0.5, 1.0]), torch.tensor([[-0.5, 0.25]])]
    # generator: mean(relu(1 - D(fake))) per discriminator, then the mean
    gen_terms = [(3.0 + 0.5 + 0.0) / 3, (1.5 + 0.75) / 2]
    assert hinge_generator_loss(fake).item() == pytest.approx(sum(gen_terms) / 2)
    assert hinge_generator_loss(fake, reduction="sum").item() == pytest.approx(sum(gen_terms))
    # discriminator: mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))
    d0 = (0.0 + 0.5 + 2.0) / 3 + (0.0 + 1.5 + 2.0) / 3
    d1 = (1.0 + 0.0) / 2 + (0.5 + 1.25) / 2
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx((d0 + d1) / 2)
    with pytest.raises(ValueError, match="differ in count"):
        hinge_discriminator_loss(real, fake[:1])
    with pytest.raises(ValueError, match="reduction"):
        hinge_generator_loss(fake, reduction="max")


def test_lsgan_losses_match_hand_computation():
    real = [torch.tensor([1.0, 0.5]), torch.tensor([[2.0], [0.0]])]
    fake = [torch.tensor([0.0, -1.0]), torch.tensor([[0.5], [1.5]])]
    g0, g1 = (1.0 + 4.0) / 2, (0.25 + 0.25) / 2
    assert lsgan_generator_loss(fake).item() == pytest.approx((g0 + g1) / 2)
    assert lsgan_generator_loss(fake, reduction="sum").item() == pytest.approx(g0 + g1)
    d0 = (0.0 + 0.25) / 2 + (0.0 + 1.0) / 2
    d1 = (1.0 + 1.0) / 2 + (0.25 + 2.25) / 2
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx((d0 + d1) / 2)
    assert lsgan_discriminator_loss(real, fake, reduction="sum").item() == pytest.approx(d0 + d1)


def test_feature_matching_is_zero_for_identical_features_and_matches_hand_computation():
    real = [[torch.tensor([1.0, -2.0]), torch.tensor([[4.0]])], [torch.tensor([0.5, 0.5, 1.0])]]
    fake = [[torch.tensor([0.0, -2.0]), torch.tensor([[1.0]])], [torch.tensor([0.5, -0.5, 1.0])]]
    assert feature_matching_loss(real, real).item() == 0.0
    terms = [0.5, 3.0, 1.0 / 3]  # mean |real - fake| per (discriminator, layer)
    assert feature_matching_loss(real, fake).item() == pytest.approx(sum(terms) / 3)
    assert feature_matching_loss(real, fake, reduction="sum").item() == pytest.approx(sum(terms))
    scales = [1.5, 4.0, 2.0 / 3]  # mean |real|
    relative = sum(t / s for t, s in zip(terms, scales)) / 3
    assert feature_matching_loss(real, fake, relative=True).item() == pytest.approx(relative)


def test_feature_matching_trains_the_generator_only():
    real = [[torch.tensor([1.0, 2.0], requires_grad=True)]]
    fake = [[torch.tensor([0.0, 4.0], requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None
    torch.testing.assert_close(fake[0][0].grad, torch.tensor([-0.5, 0.5]))


def _direct_log_power_loss(x: torch.Tensor, y: torch.Tensor, n_fft: int = 256, hop: int = 64) -> float:
    """L1 + L2 of log10(|STFT|² + 1e-5) (Hann window, zero-padded centred frames), from torch.stft."""
    window = torch.hann_window(n_fft)

    def log_power(s: torch.Tensor) -> torch.Tensor:
        frames = s.reshape(-1, s.shape[-1])
        spec = torch.stft(frames, n_fft, hop, window=window, pad_mode="constant", return_complex=True)
        return (spec.abs().square() + 1e-5).log10()

    diff = log_power(x) - log_power(y)
    return (diff.abs().mean() + diff.square().mean()).item()


def test_spectral_loss_single_resolution_matches_direct_computation():
    x, y = 0.3 * _randn(2, 1, 3000, seed=1), 0.3 * _randn(2, 1, 3000, seed=2)
    loss = MultiScaleSpectralLoss(16000, [Resolution(256, 64, None, None)])
    assert loss(x, y).item() == pytest.approx(_direct_log_power_loss(x, y), rel=1e-4)


def test_spectral_loss_zero_for_identical_and_grows_with_noise(spectral):
    x = 0.3 * _randn(2, 1, 8000, seed=3)
    noise = _randn(2, 1, 8000, seed=4)
    assert spectral(x, x).item() == 0.0
    values = [spectral(x, x + level * noise).item() for level in (0.003, 0.03, 0.3)]
    assert 0.0 < values[0] < values[1] < values[2]
    assert values[0] > 1e-3  # a -40 dB noise is already visible in quiet bins


def test_spectral_loss_of_a_gain_change(spectral):
    # 2x amplitude shifts every unclamped log10 power and mel bin by log10(4): L1 + L2 = 0.602 + 0.362
    x = 0.5 * _randn(1, 1, 8000, seed=5)
    shift = math.log10(4.0)
    assert spectral(x, 2 * x).item() == pytest.approx(shift + shift**2, rel=0.01)
    assert [r.n_mels for r in spectral.resolutions] == [8, 15, 29, 57, 64, 64, 64]


def test_spectral_loss_computes_one_stft_per_resolution_per_signal(spectral, monkeypatch):
    calls = []
    real_stft = torch.stft

    def counting_stft(*args, **kwargs):
        calls.append(kwargs.get("n_fft"))
        return real_stft(*args, **kwargs)

    monkeypatch.setattr(torch, "stft", counting_stft)
    x = 0.3 * _randn(2, 1, 4000, seed=6)
    spectral(x, x.flip(-1))
    windows = [2**i for i in range(5, 12)]
    assert calls == windows + windows


def test_spectral_loss_gradient_is_finite(spectral):
    hyp = (0.1 * _randn(1, 1, 4000, seed=7)).requires_grad_()
    spectral(0.3 * _randn(1, 1, 4000, seed=8), hyp).backward()
    assert bool(torch.isfinite(hyp.grad).all()) and hyp.grad.abs().max().item() > 0.0


def _disc_outputs(seed: int) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    return [(_randn(2, 1, 5, seed=seed + k), [_randn(2, 3, 5, seed=seed + 10 + k)]) for k in range(2)]


def test_codec_loss_total_is_the_weighted_sum_of_its_terms():
    """Each term against a direct computation from the inputs (not the loss functions it calls)."""
    assert LossWeights() == LossWeights(1.0, 1.0, 1 / 9, 100 / 9, 1.0)
    x = 0.3 * _randn(2, 1, 4000, seed=9)
    x_hat = (x + 0.05 * _randn(2, 1, 4000, seed=10)).requires_grad_()
    commit = torch.tensor(0.25)
    real, fake = _disc_outputs(20), _disc_outputs(40)
    weights = LossWeights(time=2.0, freq=0.5, adv=0.25, feat=3.0, commit=4.0)
    one_scale = MultiScaleSpectralLoss(16000, [Resolution(256, 64, None, None)])
    out = CodecLoss(16000, weights, spectral=one_scale)(x, x_hat, commit, real, fake)
    t = out.terms
    assert set(t) == {"time", "freq", "adv", "feat", "commit", "total"}
    with torch.no_grad():
        assert t["time"] == pytest.approx((x - x_hat).abs().mean().item(), rel=1e-6)
        assert t["freq"] == pytest.approx(_direct_log_power_loss(x, x_hat), rel=1e-4)
        hinge = [(1 - logits).clamp(min=0).mean().item() for logits, _ in fake]  # per discriminator
        assert t["adv"] == pytest.approx(sum(hinge) / len(hinge), rel=1e-6)
        maps = [(r - f).abs().mean().item() for (_, rs), (_, fs) in zip(real, fake) for r, f in zip(rs, fs)]
        assert len(maps) == 2 and t["feat"] == pytest.approx(sum(maps) / len(maps), rel=1e-6)
    assert t["commit"] == 0.25
    expected = 2.0 * t["time"] + 0.5 * t["freq"] + 0.25 * t["adv"] + 3.0 * t["feat"] + 4.0 * 0.25
    assert out.total.item() == pytest.approx(expected, rel=1e-6) and t["total"] == pytest.approx(expected)
    out.total.backward()
    assert x_hat.grad.abs().sum().item() > 0.0


def test_codec_loss_skips_missing_or_unweighted_terms(spectral):
    x = 0.3 * _randn(1, 1, 4000, seed=11)
    x_hat = x + 0.1
    out = CodecLoss(16000, LossWeights(freq=0.0), spectral=spectral)(x, x_hat)
    assert set(out.terms) == {"time", "total"}
    assert out.total.item() == pytest.approx(0.1, rel=1e-5)
    lsgan = CodecLoss(16000, gan="lsgan", spectral=spectral)
    real, fake = _disc_outputs(50), _disc_outputs(60)
    out = lsgan(x, x_hat, None, None, fake)
    assert "feat" not in out.terms
    assert out.terms["adv"] == pytest.approx(lsgan_generator_loss([d for d, _ in fake]).item())
    disc = lsgan.discriminator_loss(real, fake)
    expected = lsgan_discriminator_loss([d for d, _ in real], [d for d, _ in fake]).item()
    assert disc.total.item() == pytest.approx(expected)
    assert set(disc.terms) == {"disc", "total"} and disc.terms["disc"] == disc.terms["total"]
    with pytest.raises(ValueError, match="disabled or missing"):
        CodecLoss(16000, LossWeights(time=0.0, freq=0.0), spectral=spectral)(x, x_hat)
    with pytest.raises(ValueError, match="unknown gan"):
        CodecLoss(16000, gan="wasserstein", spectral=spectral)


def test_dac_mel_loss_is_the_mean_log10_ratio_and_matches_a_direct_computation():
    from funcodec_lite.audio.melscale import melscale_fbanks
    from funcodec_lite.losses import MelReconstructionLoss

    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 1, 8000, generator=g) * 0.3
    loss = MelReconstructionLoss(16000)
    assert [r.n_fft for r in loss.resolutions] == [32, 64, 128, 256, 512, 1024, 2048]
    assert [r.n_mels for r in loss.resolutions] == [5, 10, 20, 40, 80, 160, 320]
    assert loss(wav, wav).item() == 0.0
    # a gain of 10 raises every (loud) magnitude mel bin by exactly one decade
    torch.testing.assert_close(loss(wav, 10 * wav), torch.tensor(1.0), atol=2e-3, rtol=0)
    # one scale by hand: torch.stft, slaney filters, log10(mel + 1e-5), mean |difference|
    hyp = wav + 0.1 * torch.randn(wav.shape, generator=g)
    single = MelReconstructionLoss(16000, resolutions=[loss.resolutions[4]])
    fb = melscale_fbanks(257, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney")

    def logmel(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.reshape(-1, 8000), 512, 128, window=torch.hann_window(512), pad_mode="constant",
                          return_complex=True).abs()
        return (spec.transpose(1, 2) @ fb + 1e-5).log10()

    expected = (logmel(wav) - logmel(hyp)).abs().mean()
    torch.testing.assert_close(single(wav, hyp), expected, rtol=1e-4, atol=1e-5)


def test_codec_loss_builds_the_named_spectral_loss():
    from funcodec_lite.losses import MelReconstructionLoss, MultiScaleSpectralLoss

    assert isinstance(CodecLoss(16000, LossWeights(spectral="dac_mel")).spectral, MelReconstructionLoss)
    assert isinstance(CodecLoss(16000).spectral, MultiScaleSpectralLoss)
    with pytest.raises(ValueError, match="unknown spectral loss"):
        LossWeights(spectral="nope")
