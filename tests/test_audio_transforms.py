"""Tests for the codec domain transforms and their inverses."""

import math

import pytest
import torch

from funcodec_lite.audio import (
    IdentityTransform,
    MagAngleTransform,
    MagPhaseTransform,
    STFTConfig,
    build_transform,
)

FUNCODEC = STFTConfig(n_fft=512, hop_length=160, window="hann")  # not COLA-aligned, but NOLA
QUARTER = STFTConfig(n_fft=256, hop_length=64, window="hann")  # COLA: hop = n_fft / 4
SPECTRAL = ["mag_angle", "mag_phase"]


def _audio(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _rel_err(y: torch.Tensor, x: torch.Tensor) -> float:
    return ((y - x).norm() / x.norm()).item()


def test_build_transform_and_channel_counts():
    assert isinstance(build_transform("time", None), IdentityTransform)
    mag_angle = build_transform("mag_angle", QUARTER)
    assert isinstance(mag_angle, MagAngleTransform) and mag_angle.feature_channels == 2
    assert mag_angle.config.n_fft == 256
    mag_phase = build_transform("mag_phase", None)
    assert isinstance(mag_phase, MagPhaseTransform) and mag_phase.feature_channels == 3
    assert mag_phase.config == STFTConfig()
    with pytest.raises(ValueError, match=r"unknown domain 'freq'.*mag_angle.*mag_phase.*time"):
        build_transform("freq", None)


@pytest.mark.parametrize("domain", ["time", *SPECTRAL])
@pytest.mark.parametrize("cfg", [QUARTER, FUNCODEC], ids=["quarter-hop", "funcodec-512-160"])
@pytest.mark.parametrize("length", [4800, 4801, 3333])
def test_round_trip_is_exact(domain, cfg, length):
    transform = build_transform(domain, cfg)
    x = _audio(2, 2, length, seed=length)
    features = transform(x)
    if domain != "time":
        k = transform.feature_channels
        assert features.shape == (2, 2 * k, cfg.freq_bins, cfg.num_frames(length))
    y = transform.inverse(features, length)
    assert y.shape == x.shape
    assert _rel_err(y, x) < 1e-4


@pytest.mark.parametrize("domain", SPECTRAL)
def test_features_are_audio_channel_major(domain):
    transform = build_transform(domain, QUARTER)
    k = transform.feature_channels
    x = _audio(1, 3, 2000)
    both = transform(x)
    for c in range(3):
        torch.testing.assert_close(both[:, c * k:(c + 1) * k], transform(x[:, c:c + 1]))


def test_feature_values_follow_the_definitions():
    cfg = QUARTER
    x = _audio(1, 1, 2000)
    spec = torch.stft(x[0], 256, 64, window=torch.hann_window(256), return_complex=True)[0]
    mag_phase = MagPhaseTransform(cfg, eps=1e-5)(x)[0]
    torch.testing.assert_close(mag_phase[0], torch.log(spec.abs() + 1e-5))
    torch.testing.assert_close(mag_phase[1], spec.real / spec.abs())
    torch.testing.assert_close(mag_phase[2], spec.imag / spec.abs())
    torch.testing.assert_close(mag_phase[1] ** 2 + mag_phase[2] ** 2, torch.ones_like(mag_phase[1]))
    mag_angle = MagAngleTransform(cfg)(x)[0]
    torch.testing.assert_close(mag_angle[1], torch.angle(spec))
    assert mag_angle[1].abs().max().item() <= math.pi + 1e-6  # float32 pi rounds up


@pytest.mark.parametrize("domain", ["time", *SPECTRAL])
def test_silence_is_finite_and_inverts_to_zero(domain):
    transform = build_transform(domain, FUNCODEC)
    x = torch.zeros(2, 2, 3200)
    features = transform(x)
    assert bool(torch.isfinite(features).all())
    if domain == "mag_phase":  # phase of X = 0 is defined as (1, 0)
        assert bool((features[:, 1::3] == 1).all()) and bool((features[:, 2::3] == 0).all())
    if domain == "mag_angle":
        assert bool((features[:, 1::2] == 0).all())
    y = transform.inverse(features, 3200)
    assert bool(torch.isfinite(y).all()) and y.abs().max().item() <= 1e-6


@pytest.mark.parametrize("domain", ["time", *SPECTRAL])
@pytest.mark.parametrize("silent", [True, False], ids=["silence", "noise"])
def test_gradients_flow_through_forward_and_inverse(domain, silent):
    transform = build_transform(domain, QUARTER)
    x = torch.zeros(1, 2, 1600) if silent else _audio(1, 2, 1600)
    x.requires_grad_()
    features = transform(x)
    features.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    decoded = features.detach().clone().requires_grad_()
    y = transform.inverse(decoded, 1600)
    (y * torch.linspace(-1, 1, 1600)).sum().backward()
    assert bool(torch.isfinite(decoded.grad).all()) and decoded.grad.abs().max().item() > 0.0


def test_mag_phase_inverse_renormalises_decoder_output():
    transform = MagPhaseTransform(QUARTER)
    x = _audio(1, 1, 2000)
    features = transform(x)
    scaled = features.clone()
    scaled[:, 1:] *= torch.rand(scaled[:, 1:2].shape, generator=torch.Generator().manual_seed(1)) * 5 + 0.1
    assert _rel_err(transform.inverse(scaled, 2000), x) < 1e-4
    zero_phase = features.clone()
    zero_phase[:, 1:] = 0.0  # (0, 0) reads as phase 0: no NaN
    y = transform.inverse(zero_phase, 2000)
    assert bool(torch.isfinite(y).all())
    zero_phase.requires_grad_()
    transform.inverse(zero_phase, 2000).sum().backward()
    assert bool(torch.isfinite(zero_phase.grad).all())


def test_log_magnitude_inverse_never_goes_negative():
    transform = MagAngleTransform(QUARTER, eps=1e-5)
    features = transform(_audio(1, 1, 2000))
    features[:, 0] = math.log(1e-5) - 3.0  # below log(eps): decodes to |X| = 0, not a negative magnitude
    assert transform.inverse(features, 2000).abs().max().item() == 0.0


def test_identity_inverse_trims_or_pads():
    transform = IdentityTransform()
    x = _audio(2, 1, 100)
    assert transform(x) is x
    torch.testing.assert_close(transform.inverse(x, 60), x[..., :60])
    padded = transform.inverse(x, 130)
    assert padded.shape == (2, 1, 130) and bool((padded[..., 100:] == 0).all())


def test_inverse_rejects_wrong_feature_layout():
    transform = MagPhaseTransform(QUARTER)
    with pytest.raises(ValueError, match="expected features"):
        transform.inverse(torch.zeros(1, 4, 129, 10), 576)
    with pytest.raises(ValueError, match="expected features"):
        transform.inverse(torch.zeros(1, 3, 128, 10), 576)


def test_window_moves_with_the_module():
    transform = MagPhaseTransform(QUARTER).to(torch.float64)
    x = _audio(1, 1, 1000).double()
    y = transform.inverse(transform(x), 1000)
    assert y.dtype == torch.float64 and _rel_err(y, x) < 1e-10
