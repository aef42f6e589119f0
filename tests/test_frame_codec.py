"""The frame-rate codec (arch: vocos) and the compressed complex spectral loss."""

from pathlib import Path

import pytest
import torch

from funcodec_lite import Codec, CodecConfig, ConfigError
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.losses import CodecLoss, LossWeights
from funcodec_lite.losses.complex_spectral import CompressedComplexLoss
from funcodec_lite.losses.reconstruction import MelReconstructionLoss
from funcodec_lite.modules.frame_codec import STFTFeatures, VocosConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "egs" / "speech_codec" / "conf"


def _config(**model) -> CodecConfig:
    """hop 16, encoder STFT 24 points at hop 8 (two frames stacked), 2 + 2 blocks of 16 channels."""
    sizes = {"hop_length": 16, "dimension": 8, "enc_n_fft": 24, "enc_stack": 2, "enc_width": 16,
             "enc_blocks": 2, "dec_width": 16, "dec_blocks": 2, "dec_n_fft": 64, **model}
    return CodecConfig.from_dict({"sample_rate": 8000, "arch": "vocos", "domain": "time", "model": sizes,
                                  "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 3}})


def test_stft_features_match_a_frame_by_frame_computation():
    """Code frame n stacks the STFT frames centred on n·hop + h/2 + k·h (h = hop / stack), k < stack."""
    config = VocosConfig(hop_length=16, enc_n_fft=24, enc_stack=2, compress=0.3)
    wav = torch.randn(2, 1, 70, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    feats = STFTFeatures(config, 1)(wav)
    n_frames, h, bins = 5, 8, 13  # ceil(70 / 16); STFT hop; 24 // 2 + 1
    assert feats.shape == (2, 2 * 3 * bins, n_frames)
    padded = torch.nn.functional.pad(wav[:, 0], (0, n_frames * 16 - 70))
    window = torch.hann_window(24).to(torch.float64)  # the module keeps a float32 window
    for n in range(n_frames):
        for k in range(2):
            centre = n * 16 + k * h + h // 2
            start = centre - 12
            segment = torch.zeros(2, 24, dtype=torch.float64)
            lo, hi = max(start, 0), min(start + 24, padded.shape[-1])
            segment[:, lo - start: hi - start] = padded[:, lo:hi]
            spec = torch.fft.rfft(segment * window)
            power = spec.abs().square() + 1e-10
            expected = torch.cat([0.5 * power.log(), spec.real * power.pow(-0.35),
                                  spec.imag * power.pow(-0.35)], dim=1)
            got = feats[:, k * 3 * bins: (k + 1) * 3 * bins, n]
            torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-7)


UPSAMPLED = {"dec_upsample": 2, "dec_up_blocks": 1, "dec_n_fft": 32}  # decoder hop 8, 4x overlap


@pytest.mark.parametrize("model", [{}, UPSAMPLED], ids=["frame_rate", "upsampled"])
@pytest.mark.parametrize("length", [1, 15, 16, 17, 100])
def test_codec_round_trip_keeps_the_length_and_frame_count(length, model):
    codec = Codec(_config(**model)).eval()
    wav = torch.randn(2, 1, length) * 0.1
    codes = codec.encode(wav)
    assert codes.shape == (2, 4, -(-length // 16))
    assert codec.decode(codes, length).shape == (2, 1, length)
    assert codec(wav).wav.shape == wav.shape
    assert codec.frame_rate == 500


@pytest.mark.parametrize("model", [{}, UPSAMPLED], ids=["frame_rate", "upsampled"])
def test_gradient_reaches_the_encoder_and_training_lowers_the_loss(model):
    torch.manual_seed(0)
    codec = Codec(_config(**model))
    loss = CodecLoss(8000, LossWeights(time=1.0, freq=1.0, spectral="dac_mel", complex=1.0))
    optim = torch.optim.Adam(codec.parameters(), lr=3e-3)
    t = torch.arange(800) / 8000
    tone = 0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.linspace(0, 1, 800)
    wav = tone.reshape(1, 1, -1).repeat(2, 1, 1)
    values = []
    for _ in range(30):
        out = codec(wav)
        total = loss(wav, out.wav, out.commit_loss).total
        optim.zero_grad()
        total.backward()
        assert codec.encoder.embed.weight.grad.abs().sum() > 0
        optim.step()
        values.append(float(total.detach()))
    assert sum(values[-5:]) / 5 < 0.7 * sum(values[:5]) / 5


def test_save_load_round_trip(tmp_path):
    codec = Codec(_config()).eval()
    codec.save_pretrained(tmp_path / "m")
    loaded = Codec.from_pretrained(tmp_path / "m")
    wav = torch.randn(1, 1, 64) * 0.1
    torch.testing.assert_close(loaded.decode(loaded.encode(wav)), codec.decode(codec.encode(wav)))


@pytest.mark.parametrize("model,message", [
    ({"enc_stack": 3}, "enc_stack must divide"),
    ({"enc_n_fft": 9}, "enc_n_fft"),
    ({"dec_n_fft": 17}, "dec_n_fft"),
    ({"causal": True}, "non-causal"),
    ({"kernel_size": 4}, "odd"),
    ({"dec_upsample": 3}, "dec_upsample"),
    ({"dec_upsample": 2, "dec_n_fft": 8}, "dec_n_fft"),
])
def test_bad_configs_are_refused(model, message):
    with pytest.raises(ConfigError, match=message):
        _config(**model)


def test_recipe_config_builds_at_its_bit_rates():
    config = TrainConfig.from_yaml(CONF_DIR / "tiny_vocos.yaml")
    codec = Codec(config.codec)
    assert codec.frame_rate == 50
    assert [codec.bandwidth(n) for n in (3, 6, 12)] == [1.5, 3.0, 6.0]


def test_complex_loss_matches_a_direct_computation_and_sees_the_phase():
    gen = torch.Generator().manual_seed(1)
    wav, hat = torch.randn(2, 1, 400, generator=gen), torch.randn(2, 1, 400, generator=gen)
    loss = CompressedComplexLoss(windows=(64,), compress=0.3, mag_weight=0.5, eps=1e-8)
    spec = [torch.stft(x[:, 0], 64, 16, window=torch.hann_window(64), center=True, pad_mode="constant",
                       return_complex=True) for x in (wav, hat)]
    comp = [s / (s.abs().square() + 1e-8).pow(0.35) for s in spec]
    mags = [(s.abs().square() + 1e-8).pow(0.15) for s in spec]
    expected = (comp[0] - comp[1]).abs().square().mean() + 0.5 * (mags[0] - mags[1]).square().mean()
    torch.testing.assert_close(loss(wav, hat), expected, rtol=1e-5, atol=1e-6)
    assert float(loss(wav, wav)) == 0.0
    # a sign flip keeps every magnitude: the mel loss cannot see it, the complex loss does
    assert float(MelReconstructionLoss(8000)(wav, -wav)) < 1e-6
    assert float(CompressedComplexLoss()(wav, -wav)) > 1.0


def test_complex_loss_gradient_is_finite_on_silence():
    hat = torch.zeros(1, 1, 512, requires_grad=True)
    CompressedComplexLoss()(torch.zeros(1, 1, 512), hat).backward()
    assert torch.isfinite(hat.grad).all()


def test_codec_loss_adds_the_weighted_complex_term():
    wav, hat = torch.randn(1, 1, 800) * 0.1, torch.randn(1, 1, 800) * 0.1
    plain = CodecLoss(8000, LossWeights(time=1.0, freq=1.0))(wav, hat)
    both = CodecLoss(8000, LossWeights(time=1.0, freq=1.0, complex=2.0))(wav, hat)
    assert "complex" not in plain.terms
    assert both.terms["complex"] == pytest.approx(float(CompressedComplexLoss()(wav, hat)), rel=1e-5)
    assert both.terms["total"] == pytest.approx(plain.terms["total"] + 2.0 * both.terms["complex"], rel=1e-5)


def test_the_upsampling_decoder_runs_its_inverse_stft_at_the_finer_hop():
    codec = Codec(_config(**UPSAMPLED)).eval()
    decoder = codec.decoder
    assert decoder.head.istft.hop_length == 8 and decoder.head.istft.n_fft == 32
    assert len(decoder.up_blocks) == 1
    latent = torch.randn(2, 8, 5)
    features = decoder.upsample(torch.randn(2, 16, 5))
    assert features.shape == (2, 16, 10)  # N frames -> 2N
    assert decoder(latent).shape == (2, 1, 5 * 16)
    # the default (no upsampling) has none of these modules: released state dicts are unchanged
    plain = Codec(_config())
    assert not any(".upsample." in k or ".up_blocks." in k for k in plain.state_dict())
    assert plain.decoder.head.istft.hop_length == 16
