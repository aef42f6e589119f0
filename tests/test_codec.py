"""The Codec model: configs, shapes, bitrates, save/load, semantic augmentation, training signal."""

import dataclasses

import pytest
import torch
import yaml
from tiny_models import make_codec, speechlike, tiny_config

from funcodec_lite import Codec, CodecConfig, ConfigError, list_presets
from funcodec_lite.codec.model import CONFIG_FILE, WEIGHTS_FILE
from funcodec_lite.inference.chunking import ChunkConfig, decode_chunked, encode_chunked
from funcodec_lite.inference.stream import StreamingDecoder, StreamingEncoder


def _tiny(arch: str = "seanet", **overrides) -> CodecConfig:
    if arch == "seanet":
        data = {"sample_rate": 8000, "arch": "seanet", "domain": "time",
                "model": {"n_filters": 4, "ratios": [4, 2], "dimension": 8, "lstm": 1},
                "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 3}}
    else:
        data = {"sample_rate": 8000, "arch": "freqcodec", "domain": "mag_phase",
                "stft": {"n_fft": 64, "hop_length": 16},
                "model": {"in_channels": 3, "n_freq": 33, "base_channels": 4, "max_channels": 16,
                          "freq_strides": [4, 4, 2], "time_strides": [1, 2, 1], "lstm_layers": 0,
                          "dimension": 8},
                "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 3}}
    data.update(overrides)
    return CodecConfig.from_dict(data)


def _wav(batch=2, channels=1, length=1001, seed=0):
    return torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(seed)) * 0.2


@pytest.mark.parametrize("preset", list_presets())
def test_presets_build_and_describe_their_rates(preset):
    codec = Codec(CodecConfig.from_yaml(preset))
    expected_rate = {"encodec_24khz": 75.0}.get(preset, 50.0)
    assert codec.frame_rate == expected_rate
    assert codec.codebook_size == 1024 and codec.n_q == 32
    # 10 bits per code: n_q codebooks cost n_q * 10 * frame_rate bits per second.
    assert codec.bandwidth(8) == pytest.approx(8 * 10 * expected_rate / 1000)
    assert codec.n_q_for_bandwidth(codec.bandwidth(8)) == 8
    assert codec.n_q_for_bandwidth(1000.0) == 32 and codec.n_q_for_bandwidth(0.01) == 1


def test_encodec_bandwidths_map_to_its_codebook_counts():
    codec = Codec(CodecConfig.from_yaml("encodec_24khz"))
    assert [codec.n_q_for_bandwidth(kbps) for kbps in (1.5, 3, 6, 12, 24)] == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("arch", ["seanet", "freqcodec"])
@pytest.mark.parametrize("channels,length", [(1, 1001), (2, 800), (1, 37)])
def test_shapes_round_trip(arch, channels, length):
    torch.manual_seed(0)
    codec = Codec(_tiny(arch, channels=channels) if arch == "seanet" else _tiny_freq(channels))
    with torch.no_grad():
        codec.train()(_wav(channels=channels, length=4000, seed=1))  # k-means: codebooks from latents
    codec.eval()
    wav = _wav(channels=channels, length=length)
    with torch.no_grad():
        codes = codec.encode(wav, n_q=3)
        out = codec.decode(codes, length=length)
        full = codec(wav)
    frames = -(-length // codec.samples_per_frame)
    if arch == "freqcodec":  # center-padded STFT frames: T // hop + 1, then / time stride (ceil)
        frames = -(-(length // 16 + 1) // 2)
    assert codes.shape == (2, 3, frames) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 16
    assert out.shape == wav.shape and full.wav.shape == wav.shape
    assert full.codes.shape == (2, 4, frames)
    wav_hat, codes_all, commit_loss, metrics = full  # forward unpacks like a tuple
    assert wav_hat is full.wav and commit_loss.dim() == 0 and isinstance(metrics, dict)
    # the codes are a brute-force residual nearest-neighbour search over the codebooks (float64)
    with torch.no_grad():
        residual = codec.encode_latent(wav).double().transpose(1, 2)  # [B, N, D]
    summed = torch.zeros_like(residual)
    for i in range(3):
        book = codec.quantizer.layers[i].embed.double()
        nearest = torch.cdist(residual, book[None].expand(2, -1, -1)).argmin(-1)
        assert torch.equal(codes[:, i], nearest), i
        residual, summed = residual - book[nearest], summed + book[nearest]
    # decode = decoder of the summed codewords; forward (eval, all 4 layers) starts with the same codes
    with torch.no_grad():
        by_hand = codec.decode_latent(summed.transpose(1, 2).float(), length)
        torch.testing.assert_close(out, by_hand, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(full.wav, codec.decode(full.codes, length=length), rtol=1e-5, atol=1e-6)
    assert torch.equal(full.codes[:, :3], codes)
    assert codes.unique().numel() > 2  # not one code everywhere


def _tiny_freq(channels: int) -> CodecConfig:
    config = _tiny("freqcodec", channels=channels)
    config.model.in_channels = 3 * channels
    return CodecConfig.from_dict(config.to_dict())


def test_n_q_and_bandwidth_arguments():
    codec = Codec(_tiny()).eval()
    wav = _wav()
    with torch.no_grad():
        assert codec.encode(wav).shape[1] == 4
        assert codec.encode(wav, n_q=2).shape[1] == 2
        # 8000 / 8 = 1000 frames/s, 4 bits per code: 8 kbps = 2 codebooks.
        assert codec.encode(wav, bandwidth=8.0).shape[1] == 2
        with pytest.raises(ValueError, match="n_q must be in 1..4"):
            codec.encode(wav, n_q=5)
        with pytest.raises(ValueError, match="not both"):
            codec.encode(wav, n_q=2, bandwidth=8.0)
        with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
            codec.encode(wav[:, 0])


def test_decoding_fewer_codebooks_is_coarser():
    """With codebooks fitted to the data, each added codebook lowers the latent error."""
    torch.manual_seed(0)
    codec = Codec(_tiny())
    wav = _wav(batch=8, length=4000)
    codec.train()
    with torch.no_grad():
        codec(wav)  # k-means initialisation of all four layers
    codec.eval()
    with torch.no_grad():
        latent = codec.encode_latent(wav)
        errors = [(codec.quantizer.decode(codec.encode(wav, n_q=n)) - latent).pow(2).mean().item()
                  for n in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


def test_save_and_load_pretrained(tmp_path):
    torch.manual_seed(0)
    codec = Codec(_tiny())
    codec.train()
    with torch.no_grad():
        codec(_wav(batch=8, length=4000))
    codec.eval()
    codec.save_pretrained(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == [CONFIG_FILE, WEIGHTS_FILE, "provenance.json"]
    assert yaml.safe_load((tmp_path / "model" / CONFIG_FILE).read_text())["model"]["ratios"] == [4, 2]
    loaded = Codec.from_pretrained(tmp_path / "model")
    wav = _wav(seed=5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(wav), codec.encode(wav))
        assert torch.equal(loaded.decode(codec.encode(wav)), codec.decode(codec.encode(wav)))
    # A folded model saves plain weights and loads back to the same output.
    loaded.fold_weight_norm()
    loaded.save_pretrained(tmp_path / "folded")
    again = Codec.from_pretrained(tmp_path / "folded")
    with torch.no_grad():
        assert torch.equal(again.encode(wav), codec.encode(wav))


def test_weights_file_is_not_a_pickle(tmp_path):
    Codec(_tiny()).save_pretrained(tmp_path)
    head = (tmp_path / WEIGHTS_FILE).read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # pickle / torch zip
    assert int.from_bytes(head[:8], "little") < 1 << 20  # safetensors: 8-byte header length


@pytest.mark.parametrize("change,message", [
    ({"arch": "transformer"}, "unknown arch"),
    ({"domain": "wavelet"}, "unknown domain"),
    ({"arch": "seanet", "domain": "mag_phase"}, "time domain"),
    ({"model": {"n_filterz": 3}}, "unknown key"),
    ({"quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "bogus": 1}}, "unknown key"),
    ({"input_gain": 0.0}, "input_gain must be a finite number > 0"),
    ({"model": {"decoder_head": "istft", "causal": True}}, "non-causal only"),
])
def test_config_errors_are_clear(change, message):
    data = _tiny().to_dict()
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        CodecConfig.from_dict(data)


def test_inconsistent_sizes_are_refused():
    data = _tiny().to_dict()
    data["quantizer"]["dim"] = 16
    with pytest.raises(ConfigError, match="quantizer.dim"):
        Codec(CodecConfig.from_dict(data))


def test_yaml_round_trip(tmp_path):
    for preset in list_presets():
        config = CodecConfig.from_yaml(preset)
        config.to_yaml(tmp_path / "c.yaml")
        assert CodecConfig.from_yaml(tmp_path / "c.yaml") == config


@pytest.mark.parametrize("mode", ["cat", "add", "res"])
def test_semantic_augmentation_through_the_codec(mode):
    torch.manual_seed(0)
    config = _tiny(semantic={"mode": mode, "vocab_size": 10})
    codec = Codec(config)
    wav = _wav(length=800)
    ids = torch.randint(0, 10, (2, 25))  # e.g. phone ids at 25 Hz; resampled to the codec's 100 frames
    out = codec.train()(wav, semantic=ids)
    assert out.wav.shape == wav.shape
    # In `res` mode the straight-through estimator cancels the reconstruction gradient on V_s
    # (RVQ(V_a - V_s) + V_s passes d/dV_s = -1 + 1); V_s then learns through the commitment loss.
    (out.wav.pow(2).mean() + out.commit_loss).backward()
    assert codec.semantic.embedding.weight.grad.abs().sum() > 0  # the semantic path is trained
    codec.eval()
    with torch.no_grad():
        codes = codec.encode(wav, semantic=ids)
        assert codec.decode(codes, length=800, semantic=ids).shape == wav.shape
    with pytest.raises(ValueError, match="semantic"):
        codec.encode(wav)


def test_gradients_reach_the_encoder_through_the_quantizer():
    torch.manual_seed(0)
    codec = Codec(_tiny()).train()
    out = codec(_wav(length=800))
    (out.wav.pow(2).mean() + out.commit_loss).backward()
    first_conv = codec.encoder.layers[0].conv
    grad = first_conv.parametrizations.weight.original1.grad
    assert grad is not None and grad.abs().sum() > 0


def test_a_few_steps_of_training_lower_the_loss():
    """End to end: encoder → RVQ → decoder learn to reconstruct a fixed batch."""
    torch.manual_seed(0)
    config = _tiny()
    config.model.n_filters, config.model.lstm = 8, 0
    from tiny_models import overfit_losses

    # the loss sits near 0.32 for ~50 steps before the codes take hold
    losses = overfit_losses(Codec(config).train(), steps=120, lr=1e-2)
    assert losses[-1] < 0.25 * losses[0], losses[::10]


@pytest.mark.parametrize("arch", ["seanet", "freqcodec"])
def test_input_gain_scales_the_signal_not_the_codes(arch):
    """Gain g with weights W is exactly gain 1 with W applied to input · g, output ÷ g."""
    torch.manual_seed(0)
    plain_config = _tiny() if arch == "seanet" else _tiny_freq(1)
    plain = Codec(plain_config)
    wav = _wav(batch=4, length=2000)
    with torch.no_grad():
        plain.train()(wav * 20)  # k-means on the scaled signal's latents: well-spread codes
    plain.eval()
    gained = Codec(CodecConfig.from_dict({**plain_config.to_dict(), "input_gain": 20})).eval()
    gained.load_state_dict(plain.state_dict())
    assert gained.config.input_gain == 20.0 and plain.config.input_gain == 1.0
    with torch.no_grad():
        codes = gained.encode(wav)
        assert torch.equal(codes, plain.encode(wav * 20))
        assert codes[:, 0].unique().numel() > 4
        assert torch.equal(gained.encode_latent(wav), plain.encode_latent(wav * 20))
        assert torch.equal(gained.decode(codes), plain.decode(codes) / 20)
        assert torch.equal(gained(wav).wav, plain(wav * 20).wav / 20)


def test_presets_and_default_keep_unit_gain():
    assert CodecConfig().input_gain == 1.0
    assert all(CodecConfig.from_yaml(preset).input_gain == 1.0 for preset in list_presets())


@pytest.mark.parametrize("gain", [0, 0.0, -20.0, float("nan"), float("inf"), "20", True])
def test_bad_input_gain_is_refused(gain):
    with pytest.raises(ConfigError, match="input_gain"):
        _tiny(input_gain=gain)


def test_streaming_and_chunked_coding_with_input_gain_equal_whole_signal():
    """The streaming encoder/decoder and the chunked paths apply the gain as encode/decode do."""
    wav = speechlike(0.5, 16000, channels=2)[:, None]  # [2, 1, 8000]
    chunk = ChunkConfig(chunk_seconds=0.05, context_seconds=0.02)
    for causal in (True, False):
        codec = make_codec(dataclasses.replace(tiny_config(causal=causal), input_gain=20.0))
        assert codec.config.input_gain == 20.0
        with torch.no_grad():
            whole = codec.encode(wav)
            whole_audio = codec.decode(whole)
        assert whole[:, 0].unique().numel() > 4
        assert torch.equal(encode_chunked(codec, wav, config=chunk), whole)
        torch.testing.assert_close(decode_chunked(codec, whole, config=chunk), whole_audio, atol=1e-6,
                                   rtol=1e-5)
        if not causal:
            continue
        with StreamingEncoder(codec) as stream:
            parts = [stream.push(wav[..., i : i + 333]) for i in range(0, wav.shape[-1], 333)]
            parts.append(stream.flush())
        assert torch.equal(torch.cat(parts, -1), whole)
        with StreamingDecoder(codec) as stream:
            audio = [stream.push(whole[..., i : i + 7]) for i in range(0, whole.shape[-1], 7)]
            audio.append(stream.flush())
        torch.testing.assert_close(torch.cat(audio, -1), whole_audio, atol=1e-6, rtol=1e-5)
