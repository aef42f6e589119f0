"""The iSTFT decoder head: exact inverse STFT, shapes, gradients, configs."""

from pathlib import Path

import pytest
import torch
from torch import nn

from funcodec_lite import Codec, CodecConfig, ConfigError
from funcodec_lite.modules.istft_head import LOG_MAG_MAX, InverseSTFT, ISTFTDecoder
from funcodec_lite.utils.config import load_yaml

CONF_DIR = Path(__file__).resolve().parents[1] / "egs" / "speech_codec" / "conf"


def _istft_config(**model) -> CodecConfig:
    """SEANet encoder (hop 8) + iSTFT decoder with 2 blocks of 16 channels; n_fft 32 unless overridden."""
    data = {"sample_rate": 8000, "arch": "seanet", "domain": "time",
            "model": {"n_filters": 4, "ratios": [4, 2], "dimension": 8, "lstm": 0, "decoder_head": "istft",
                      "istft_blocks": 2, "istft_width": 16, **model},
            "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 3}}
    return CodecConfig.from_dict(data)


@pytest.mark.parametrize("n_fft,hop", [(1280, 320), (64, 16), (40, 16), (18, 16)])
@pytest.mark.parametrize("n_frames", [1, 2, 9])
def test_inverse_stft_inverts_stft_of_the_padded_signal(n_fft, hop, n_frames):
    """The "same" padding: x padded by (n_fft - hop) / 2 per side has N STFT frames, which invert to x."""
    x = torch.randn(3, n_frames * hop, generator=torch.Generator().manual_seed(n_frames))
    pad = (n_fft - hop) // 2
    spec = torch.stft(nn.functional.pad(x, (pad, pad)), n_fft, hop, window=torch.hann_window(n_fft),
                      center=False, return_complex=True)
    assert spec.shape == (3, n_fft // 2 + 1, n_frames)
    y = InverseSTFT(n_fft, hop)(spec)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_fft,hop", [(1280, 320), (64, 16)])
def test_inverse_stft_equals_torch_istft_half_a_hop_later(n_fft, hop):
    """On any spectrum, the same overlap-add as torch.istft(center=True), whose frame n is centred on
    sample n * hop instead of n * hop + hop / 2."""
    generator = torch.Generator().manual_seed(0)
    n_frames = 12
    spec = torch.complex(torch.randn(2, n_fft // 2 + 1, n_frames, generator=generator),
                         torch.randn(2, n_fft // 2 + 1, n_frames, generator=generator))
    ours = InverseSTFT(n_fft, hop)(spec)
    theirs = torch.istft(spec, n_fft, hop, window=torch.hann_window(n_fft), center=True,
                         length=n_frames * hop)
    assert ours.shape == theirs.shape == (2, n_frames * hop)
    torch.testing.assert_close(ours[:, hop // 2 :], theirs[:, : n_frames * hop - hop // 2], atol=1e-5, rtol=0)


def test_inverse_stft_refuses_windows_that_do_not_overlap_evenly():
    for n_fft in (16, 17, 12):  # no overlap (the Hann window's first sample is 0), odd difference, too short
        with pytest.raises(ValueError, match="n_fft > hop"):
            InverseSTFT(n_fft, 16)


@pytest.mark.parametrize("length", [1, 7, 8, 1001, 3205])
def test_codec_round_trip_keeps_the_length(length):
    torch.manual_seed(0)
    codec = Codec(_istft_config()).eval()
    wav = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(1)) * 0.2
    with torch.no_grad():
        codes = codec.encode(wav)
        frames = -(-length // 8)
        assert codes.shape == (2, 4, frames)
        assert codec.decode(codes).shape == (2, 1, frames * 8)
        assert codec.decode(codes, length=length).shape == wav.shape
        assert codec(wav).wav.shape == wav.shape
        assert codec.decode_latent(codec.encode_latent(wav), length).shape == wav.shape


def test_decoder_has_no_upsampling_layers_and_default_sizes():
    codec = Codec(_istft_config(istft_width=None))
    decoder = codec.decoder
    assert isinstance(decoder, ISTFTDecoder)
    assert not any(isinstance(m, nn.ConvTranspose1d) for m in decoder.modules())
    assert all(m.stride == (1,) for m in decoder.modules() if isinstance(m, nn.Conv1d))
    assert decoder.embed.out_channels == 4 * 2**2  # n_filters * 2 ** len(ratios)
    assert decoder.head.istft.n_fft == 32  # 4 * hop
    assert decoder.head.proj.out_channels == 2 * (32 // 2 + 1)
    assert [block.gamma.data.unique().item() for block in decoder.blocks] == [0.5, 0.5]  # 1 / n_blocks


def test_stereo_and_clamped_log_magnitude():
    torch.manual_seed(0)
    config = _istft_config()
    config.channels = 2
    codec = Codec(CodecConfig.from_dict(config.to_dict())).eval()
    wav = torch.randn(1, 2, 100) * 0.2
    with torch.no_grad():
        assert codec(wav).wav.shape == (1, 2, 100)
        codec.decoder.head.proj.bias.fill_(1e3)  # log-magnitudes far above the clamp: still finite
        out = codec(wav).wav
    assert torch.isfinite(out).all() and out.abs().max() > 0
    assert LOG_MAG_MAX == 10.0


def test_gradient_reaches_the_encoder_through_the_quantizer():
    torch.manual_seed(0)
    codec = Codec(_istft_config()).train()
    out = codec(torch.randn(2, 1, 800) * 0.2)
    (out.wav.pow(2).mean() + out.commit_loss).backward()
    grad = codec.encoder.layers[0].conv.parametrizations.weight.original1.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in codec.decoder.parameters())


def test_a_few_steps_of_training_lower_the_loss():
    torch.manual_seed(0)
    from tiny_models import overfit_losses

    losses = overfit_losses(Codec(_istft_config()).train(), steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_config_round_trip_and_save_load(tmp_path):
    config = _istft_config(istft_n_fft=24, istft_blocks=3)
    config.to_yaml(tmp_path / "c.yaml")
    again = CodecConfig.from_yaml(tmp_path / "c.yaml")
    assert again == config
    assert (again.model.decoder_head, again.model.istft_blocks, again.model.istft_width,
            again.model.istft_n_fft) == ("istft", 3, 16, 24)
    torch.manual_seed(0)
    codec = Codec(config).eval()
    codec.save_pretrained(tmp_path / "model")
    loaded = Codec.from_pretrained(tmp_path / "model")
    wav = torch.randn(1, 1, 500) * 0.2
    with torch.no_grad():
        assert torch.equal(loaded(wav).wav, codec(wav).wav)


@pytest.mark.parametrize("model,message", [
    ({"causal": True}, "non-causal only"),
    ({"decoder_head": "transposed"}, "unknown decoder_head"),
    ({"istft_n_fft": 8}, "istft_n_fft"),
    ({"istft_n_fft": 31}, "istft_n_fft"),
    ({"istft_blocks": 0}, "istft_blocks"),
])
def test_bad_istft_configs_are_refused(model, message):
    with pytest.raises(ConfigError, match=message):
        _istft_config(**model)


def test_conv_head_ignores_the_istft_fields():
    """The default head is today's transposed-conv decoder, whatever the istft_* fields say."""
    data = _istft_config().to_dict()
    data["model"].update(decoder_head="conv", causal=True, istft_n_fft=31)
    codec = Codec(CodecConfig.from_dict(data))
    assert any(isinstance(m, nn.ConvTranspose1d) for m in codec.decoder.modules())


@pytest.mark.parametrize("name,gain,head", [("tiny_time", 1.0, "conv"), ("tiny_time_scaled", 20.0, "conv"),
                                            ("tiny_time_istft", 20.0, "istft")])
def test_recipe_configs_build(name, gain, head):
    data = load_yaml((CONF_DIR / f"{name}.yaml").read_text())
    config = CodecConfig.from_dict(data["codec"])
    assert (config.input_gain, config.model.decoder_head) == (gain, head)
    codec = Codec(config).eval()
    assert codec.frame_rate == 50.0
    with torch.no_grad():
        assert codec(torch.randn(1, 1, 1000) * 0.05).wav.shape == (1, 1, 1000)


def test_bfloat16_weights_decode_in_bfloat16():
    torch.manual_seed(0)
    codec = Codec(_istft_config()).eval()
    wav = torch.randn(1, 1, 400) * 0.2
    with torch.no_grad():
        reference = codec(wav).wav
        out = codec.to(torch.bfloat16)(wav).wav
    assert out.dtype == torch.bfloat16 and out.shape == wav.shape
    assert (out.float() - reference).abs().max() < 0.1 * reference.abs().max()
