"""Tests for the MSD, MPD and MS-STFT discriminators and their combination."""

import math

import pytest
import torch
from reference_libs import import_reference
from torch.nn.utils import parametrize

from funcodec_lite.discriminators import (
    DiscriminatorConfig,
    MPDConfig,
    MSDConfig,
    MSSTFTConfig,
    MultiDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
)
from funcodec_lite.losses import hinge_discriminator_loss, hinge_generator_loss

SMALL_MSD = MSDConfig(channels=[16, 16, 32, 32, 64, 64, 64], groups=[1, 4, 8, 8, 8, 8, 1])
SMALL_MPD = MPDConfig(channels=[8, 16, 32, 32, 32])
SMALL_STFT = MSSTFTConfig(filters=8, windows=[512, 256, 128])


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _small(kinds: list[str]) -> MultiDiscriminator:
    torch.manual_seed(0)
    return MultiDiscriminator(DiscriminatorConfig(kinds, SMALL_MSD, SMALL_MPD, SMALL_STFT))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_of_the_published_configurations():
    assert _count(MultiPeriodDiscriminator()) == 41_105_770  # HiFi-GAN V1 MPD, ~41.1M
    assert _count(MultiScaleDiscriminator()) == 29_618_821  # HiFi-GAN V1 MSD, ~29.6M
    assert _count(MultiScaleSTFTDiscriminator()) == 283_398  # FunCodec: 0.283M
    five = MultiScaleSTFTDiscriminator(MSSTFTConfig(windows=[2048, 1024, 512, 256, 128]))
    assert _count(five) == 472_330


def test_msstft_matches_the_encodec_reference_with_the_same_weights():
    # encodec's msstftd computes its spectrogram with torchaudio.transforms.Spectrogram. Where torchaudio
    # cannot load (CI: no build for torch 2.13), that is tests/reference_libs.py's stand-in (torch.stft
    # divided by the window's L2 norm), so this compares with EnCodec's code everything after the STFT
    # (real/imag channel layout, time/frequency axes, convs, padding, dilations, activations, features),
    # while the STFT itself is our reading of torchaudio's, not independent of ours; the stand-in is
    # compared with real torchaudio where that loads (tests/test_reference_libs.py).
    Reference = import_reference("encodec.msstftd").MultiScaleSTFTDiscriminator

    torch.manual_seed(0)
    reference, ours = Reference(32), MultiScaleSTFTDiscriminator()
    with torch.no_grad():
        for ref_disc, disc in zip(reference.discriminators, ours.discriminators):
            for ref_conv, conv in zip([*ref_disc.convs, ref_disc.conv_post], [*disc.convs, disc.post]):
                weight = ref_conv.conv.weight.detach().clone()  # EnCodec's weight-norm weight
                if parametrize.is_parametrized(conv, "weight"):
                    conv.weight = weight
                else:
                    conv.weight.copy_(weight)
                conv.bias.copy_(ref_conv.conv.bias)
    wav = _randn(2, 1, 4500)
    ref_logits, ref_features = reference(wav)
    outputs = ours(wav)
    assert len(outputs) == len(ref_logits) == 3
    for (logits, features), ref_l, ref_f in zip(outputs, ref_logits, ref_features):
        torch.testing.assert_close(logits, ref_l, atol=1e-6, rtol=1e-5)
        assert len(features) == len(ref_f) == 5
        for feat, ref in zip(features, ref_f):
            torch.testing.assert_close(feat, ref, atol=1e-6, rtol=1e-5)


def _conv_len(length: int, stride: int) -> int:  # odd kernel, padding kernel // 2
    return (length - 1) // stride + 1


@pytest.mark.parametrize("length", [2048, 4097, 5001])
def test_output_shapes_for_lengths_not_divisible_by_periods_or_pools(length):
    disc = _small(["msd", "mpd", "msstft"])
    outputs = disc(_randn(2, 1, length))
    assert len(outputs) == 3 + 5 + 3
    assert disc.names == ["msd/0", "msd/1", "msd/2", "mpd/2", "mpd/3", "mpd/5", "mpd/7", "mpd/11",
                          "msstft/512", "msstft/256", "msstft/128"]
    msd, mpd, stft = outputs[:3], outputs[3:8], outputs[8:]

    scale_len = length
    for s, (logits, feats) in enumerate(msd):
        if s:
            scale_len = scale_len // 2 + 1  # AvgPool1d(4, 2, padding=2)
        lens = [scale_len]
        for stride in SMALL_MSD.strides:
            lens.append(_conv_len(lens[-1], stride))
        assert [f.shape for f in feats] == [(2, c, n) for c, n in zip(SMALL_MSD.channels, lens[1:])]
        assert logits.shape == (2, 1, lens[-1])

    for period, (logits, feats) in zip(SMALL_MPD.periods, mpd):
        rows = [math.ceil(length / period)]
        for stride in (3, 3, 3, 3, 1):
            rows.append(_conv_len(rows[-1], stride))
        assert [f.shape for f in feats] == [(2, c, n, period) for c, n in zip(SMALL_MPD.channels, rows[1:])]
        assert logits.shape == (2, 1, rows[-1], period)

    for window, (logits, feats) in zip(SMALL_STFT.windows, stft):
        frames, bins = (length - window) // (window // 4) + 1, window // 2 + 1
        strided = [bins, _conv_len(bins, 2), _conv_len(_conv_len(bins, 2), 2)]
        strided.append(_conv_len(strided[-1], 2))
        expected = [(2, 8, frames, b) for b in strided] + [(2, 8, frames, strided[-1])]
        assert [tuple(f.shape) for f in feats] == expected
        assert logits.shape == (2, 1, frames, strided[-1])


def test_mpd_folds_with_reflect_padding():
    disc = MultiPeriodDiscriminator(MPDConfig(periods=[3], channels=[4, 4]))
    wav = _randn(1, 1, 10)
    padded = torch.cat([wav, wav[..., -3:-1].flip(-1)], dim=-1)  # reflect by 2 samples -> 12 = 4 x 3
    logits, feats = disc(wav)[0]
    ref_logits, ref_feats = disc(padded)[0]
    torch.testing.assert_close(logits, ref_logits)
    assert feats[0].shape == (1, 4, 2, 3)


def test_msd_norms_and_config_validation():
    msd = MultiScaleDiscriminator(SMALL_MSD)
    first, second = msd.discriminators[0].convs[0], msd.discriminators[1].convs[0]
    assert type(first.parametrizations.weight[0]).__name__ == "_SpectralNorm"
    assert type(second.parametrizations.weight[0]).__name__ == "_WeightNorm"
    with pytest.raises(ValueError, match="groups=4 must divide"):
        MSDConfig(channels=[16, 18, 32, 32, 64, 64, 64])
    with pytest.raises(ValueError, match="kinds"):
        DiscriminatorConfig(["msd", "msd"])
    with pytest.raises(ValueError, match="kinds"):
        DiscriminatorConfig(["stft"])
    with pytest.raises(ValueError, match="mono"):
        _small(["mpd"])(_randn(1, 2, 1000))
    with pytest.raises(ValueError, match="shorter than the STFT window"):
        _small(["msstft"])(_randn(1, 1, 300))


def test_gradients_reach_the_generator_output_through_every_discriminator():
    disc = _small(["msd", "mpd", "msstft"])
    wav_hat = (0.1 * _randn(1, 1, 3001, seed=1)).requires_grad_()
    outputs = disc(wav_hat[:, 0])  # [B, T] is accepted as mono
    for name, (logits, feats) in zip(disc.names, outputs):
        loss = hinge_generator_loss([logits]) + feats[-1].abs().mean()
        (grad,) = torch.autograd.grad(loss, wav_hat, retain_graph=True)
        assert grad.abs().sum().item() > 0.0, name
        assert bool(torch.isfinite(grad).all()), name


@pytest.mark.parametrize("kinds", [["msstft"], ["msd", "mpd"]])
def test_a_discriminator_learns_to_separate_sine_from_noise(kinds):
    disc = _small(kinds)
    optim = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    t = torch.arange(2048) / 16000
    real = 0.5 * torch.sin(2 * math.pi * torch.tensor([[220.0], [330.0]]) * t)[:, None]
    gen = torch.Generator().manual_seed(3)
    losses, margins = [], []
    for _ in range(30):
        fake = 0.3 * torch.randn(2, 1, 2048, generator=gen)
        real_out, fake_out = disc(real), disc(fake)
        loss = hinge_discriminator_loss([d for d, _ in real_out], [d for d, _ in fake_out])
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    with torch.no_grad():
        fake = 0.3 * torch.randn(2, 1, 2048, generator=gen)
        margins = [(r.mean() - f.mean()).item() for (r, _), (f, _) in zip(disc(real), disc(fake))]
    assert losses[0] > 1.5 and sum(losses[-5:]) / 5 < 0.5 * losses[0], losses[::5]
    assert min(margins) > 1.0, margins  # every sub-discriminator scores the sine higher
