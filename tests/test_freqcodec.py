"""Tests for the FreqCodec encoder/decoder: shapes, the 257-bin rule, output heads, sizes, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from funcodec_lite.modules.freq_blocks import group_count
from funcodec_lite.modules.freqcodec import FreqCodecConfig, FreqDecoder, FreqEncoder
from funcodec_lite.utils.profile import count_parameters

PRESETS = Path(__file__).resolve().parents[1] / "funcodec_lite" / "codec" / "presets"


def small_config(**overrides) -> FreqCodecConfig:
    """A narrow config over the full 257 bins (fast on CPU)."""
    values = dict(base_channels=8, max_channels=32, lstm_layers=1, dimension=16)
    values.update(overrides)
    return FreqCodecConfig(**values)


def preset_config(name: str) -> FreqCodecConfig:
    preset = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    assert set(preset) == {"sample_rate", "channels", "domain", "stft", "arch", "model", "quantizer"}
    return FreqCodecConfig.from_dict(preset["model"])


def stft_features(n_frames: int, n_fft: int, hop: int, eps: float = 1e-5) -> torch.Tensor:
    """mag_phase features [1, 3, n_fft // 2 + 1, n_frames] of a harmonic tone plus a little noise."""
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(n_frames * hop) / 4000
    wav = sum(torch.sin(2 * math.pi * 220 * k * t) / k for k in range(1, 6))
    wav = wav + 0.01 * torch.randn(t.shape, generator=gen)
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)[:, :n_frames]
    mag = spec.abs()
    return torch.stack([torch.log(mag + eps), spec.real / mag, spec.imag / mag])[None]


def test_257_bins_become_256_then_divide_by_four() -> None:
    cfg = FreqCodecConfig()
    assert cfg.freq_bins == [257, 256, 64, 16, 4, 1]
    assert cfg.stem_freq_pad() == (2, 3)  # 257 + 5 - 7 + 1 = 256
    assert cfg.head_freq_pad() == (3, 4)  # 256 + 7 - 7 + 1 = 257
    assert cfg.channels == [32, 64, 128, 256, 512]
    assert cfg.flat_dim == 512 and cfg.hop == 2
    wide = FreqCodecConfig(n_freq=513)  # n_fft 1024: two bins remain, flattened to 2 × 512 channels
    assert wide.freq_bins == [513, 512, 128, 32, 8, 2]
    assert wide.flat_dim == 1024


@pytest.mark.parametrize("audio_channels", [1, 2])
@pytest.mark.parametrize("domain", ["mag_phase", "mag_angle"])
@pytest.mark.parametrize("n_frames", [1, 2, 7, 40, 101])
def test_shapes(audio_channels: int, domain: str, n_frames: int) -> None:
    torch.manual_seed(0)
    kinds = 3 if domain == "mag_phase" else 2
    cfg = small_config(domain=domain, in_channels=kinds * audio_channels)
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    features = torch.randn(2, kinds * audio_channels, 257, n_frames)
    with torch.no_grad():
        latent = enc(features)
        out = dec(latent, n_frames)
        alone = [enc(features[i : i + 1]) for i in range(2)]
        every_frame = dec(latent, 2 * latent.shape[-1])
    assert latent.shape == (2, 16, math.ceil(n_frames / 2))
    assert out.shape == features.shape
    # items are coded independently (per-item GroupNorm, no batch statistics)
    torch.testing.assert_close(latent, torch.cat(alone), rtol=1e-5, atol=1e-5)
    # asking for fewer frames crops the decoder's output, it does not compute other values
    torch.testing.assert_close(out, every_frame[..., :n_frames], rtol=0, atol=1e-6)
    # output heads: log magnitude >= log(mag_eps); an angle stays in (-pi, pi)
    mag = out.unflatten(1, (audio_channels, kinds))
    assert mag[:, :, 0].min().item() >= math.log(cfg.mag_eps)
    if domain == "mag_angle":
        assert mag[:, :, 1].abs().max().item() <= math.pi


def test_time_strides_compose() -> None:
    cfg = small_config(time_strides=(2, 1, 2, 1), lstm_layers=0)
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    with torch.no_grad():
        for n in (1, 5, 13, 16):
            latent = enc(torch.randn(1, 3, 257, n))
            assert latent.shape[-1] == math.ceil(n / 4)
            assert dec(latent, n).shape[-1] == n


def test_full_preset_forward_mono_and_stereo() -> None:
    torch.manual_seed(0)
    sizes = {}
    for in_channels in (3, 6):
        cfg = FreqCodecConfig.from_dict({**vars(preset_config("freqcodec_16k")), "in_channels": in_channels})
        enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
        features = torch.randn(1, in_channels, 257, 9)
        with torch.no_grad():
            latent = enc(features)
            out = dec(latent, 9)
            padded = enc(torch.cat([features, torch.randn(1, in_channels, 257, 1)], dim=-1))
        assert latent.shape == (1, 128, 5)
        assert out.shape == (1, in_channels, 257, 9)
        sizes[in_channels] = count_parameters(enc)
        # the LSTM and GroupNorm see the whole clip: a tenth frame changes the latent, and not only its end
        assert padded.shape == (1, 128, 5) and not torch.allclose(padded, latent)
        assert (padded[..., 0] - latent[..., 0]).abs().max().item() > 1e-6
    # FunCodec's mag-phase encoder has 8.11 M parameters (the paper's M3: 16.21 M for both halves);
    # a stereo input adds only the stem's extra input channels (32 filters x 3 x 7 x 7)
    assert sizes[3] == pytest.approx(8.11e6, rel=0.005)
    assert sizes[6] - sizes[3] == 32 * 3 * 7 * 7


def test_decoder_and_encoder_reject_bad_sizes() -> None:
    cfg = small_config()
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    with pytest.raises(ValueError, match="n_frames"):
        dec(torch.randn(1, 16, 5), 11)  # 5 latent frames give at most 10 feature frames
    with pytest.raises(ValueError, match="expected features"):
        enc(torch.randn(1, 3, 256, 10))
    with pytest.raises(ValueError, match="causal"):
        FreqCodecConfig(causal=True)
    with pytest.raises(ValueError, match="unknown"):
        FreqCodecConfig.from_dict({"n_filters": 32})


@pytest.mark.parametrize("domain", ["mag_phase", "mag_angle"])
def test_output_heads_follow_interleaved_stereo_layout(domain: str) -> None:
    kinds = 3 if domain == "mag_phase" else 2
    cfg = small_config(domain=domain, in_channels=2 * kinds, norm="none", mag_eps=1e-3)
    dec = FreqDecoder(cfg)
    with torch.no_grad():
        dec.head.conv.weight.zero_()
        bias = torch.tensor([-50.0, -4.0, 3.0][:kinds] + [30.0, 0.5, -2.0][:kinds])
        dec.head.conv.bias.copy_(bias)
        out = dec(torch.randn(1, 16, 4), 8)
    assert out.shape == (1, 2 * kinds, 257, 8)
    # log magnitude: log(softplus(a) + eps); softplus(-50) ~ 0 gives log(eps), softplus(30) = 30.
    torch.testing.assert_close(out[:, 0], torch.full_like(out[:, 0], math.log(1e-3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, kinds], torch.full_like(out[:, 0], math.log(30 + 1e-3)))
    if domain == "mag_phase":  # phase pair passes through unchanged
        for ch, value in ((1, -4.0), (2, 3.0), (4, 0.5), (5, -2.0)):
            torch.testing.assert_close(out[:, ch], torch.full_like(out[:, ch], value))
    else:  # angle = π·tanh(b)
        torch.testing.assert_close(out[:, 1], torch.full_like(out[:, 1], math.pi * math.tanh(-4.0)))
        torch.testing.assert_close(out[:, 3], torch.full_like(out[:, 3], math.pi * math.tanh(0.5)))


# (preset, exact encoder + decoder parameters, FunCodec Table 4 figure)
PRESET_SIZES = [
    ("freqcodec_16k", 16_218_598, 16.21e6),
    ("freqcodec_16k_grouped", 4_679_398, 4.50e6),
    ("freqcodec_16k_tiny", 510_870, 0.52e6),
]


@pytest.mark.parametrize(("name", "exact", "funcodec"), PRESET_SIZES)
def test_preset_parameter_counts_match_funcodec(name: str, exact: int, funcodec: float) -> None:
    cfg = preset_config(name)
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    total = count_parameters(enc) + count_parameters(dec)
    assert abs(total - funcodec) / funcodec < 0.10
    assert total == exact


def test_grouping_shrinks_the_model() -> None:
    sizes = {}
    for name, _, _ in PRESET_SIZES:
        cfg = preset_config(name)
        sizes[name] = count_parameters(FreqDecoder(cfg))
    assert sizes["freqcodec_16k_tiny"] < sizes["freqcodec_16k_grouped"] < sizes["freqcodec_16k"]
    ungrouped = count_parameters(FreqEncoder(small_config(lstm_layers=0)))
    grouped = count_parameters(FreqEncoder(small_config(lstm_layers=0, enc_group_size=4)))
    assert grouped < ungrouped
    assert group_count(256, 128, 8) == 16 and group_count(64, 128, 1) == 64 and group_count(64, 128, 0) == 1


def test_gradient_reaches_every_parameter_and_input() -> None:
    torch.manual_seed(0)
    cfg = small_config()
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    features = torch.randn(1, 3, 257, 12, requires_grad=True)
    dec(enc(features), 12).square().mean().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert (features.grad != 0).float().mean() > 0.99
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_encoder_is_local_in_time_without_lstm() -> None:
    """A change at feature frame 40 reaches only latent frames near 20 (= 40 / 2)."""
    torch.manual_seed(0)
    enc = FreqEncoder(small_config(lstm_layers=0))
    x = torch.randn(1, 3, 257, 80)
    y = x.clone()
    y[..., 40] += 1.0
    with torch.no_grad():
        delta = (enc(y) - enc(x)).abs().amax(dim=(0, 1))
    changed = torch.nonzero(delta > 0).flatten()
    assert 17 <= (changed.min() + changed.max()).item() / 2 <= 21
    assert changed.min() >= 8 and changed.max() <= 32  # receptive field of ±12 latent frames at most


def test_tiny_config_overfits_one_example() -> None:
    torch.manual_seed(0)
    cfg = FreqCodecConfig(
        n_freq=65, base_channels=8, max_channels=32, freq_strides=(4, 4, 4), time_strides=(2, 1, 1),
        lstm_layers=0, dimension=32,
    )
    enc, dec = FreqEncoder(cfg), FreqDecoder(cfg)
    features = stft_features(8, n_fft=128, hop=40)
    assert features.shape == (1, 3, 65, 8)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(dec(enc(features), 8), features)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


@pytest.mark.parametrize("length", [16 * 101 + 10, 16 * 101 + 1, 16 * 103 + 15])
def test_decode_path_inverts_exact_features_to_the_last_sample(length: int) -> None:
    # T // hop odd: the STFT frames fill the decoder's frames exactly; the decode path used to
    # return only (frames - 1) * hop samples and zero the last T mod hop
    from tiny_models import make_codec, speechlike, tiny_freq_config

    codec = make_codec(tiny_freq_config())
    wav = speechlike(length / 16000, 16000)[None]
    features = codec.transform(wav)
    latent = codec.encode_latent(wav)
    assert features.shape[-1] == latent.shape[-1] * codec.config.model.hop
    codec.decoder.forward = lambda latent, n_frames: features[..., :n_frames]  # a perfect decoder
    with torch.no_grad():
        out = codec.decode_latent(latent, length)
    torch.testing.assert_close(out, wav, atol=1e-5, rtol=0)
