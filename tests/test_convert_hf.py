"""`codec convert --from hf`: directories saved by transformers' ``save_pretrained`` give its codes and audio.

The reference is ``transformers`` itself: an ``EncodecModel`` (a small random config, the 24 kHz default
shapes, a non-causal stereo config) with seeded random weights, perturbed (weight-norm gains ≠ ‖v‖,
non-zero biases, random codebooks), saved with ``save_pretrained``, converted by the command line and
loaded from the model directory; codes must be identical to ``EncodecModel.encode`` at every bandwidth and
audio within 1e-4 of ``EncodecModel.decode``. ``DacModel`` and ``MimiModel`` directories go through the
same command (their converters are tested in detail in ``test_convert_dac.py`` / ``test_convert_mimi.py``).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from reference_libs import import_reference
from safetensors.torch import load_file, save_file

from funcodec_lite.cli import main
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.hf import encodec_config_from_hf, hf_converter
from funcodec_lite.utils.weights import read_provenance

transformers = import_reference("transformers")

SMALL = dict(num_filters=4, upsampling_ratios=[4, 3], hidden_size=16, codebook_size=64, num_lstm_layers=1,
             target_bandwidths=[12.0, 24.0, 48.0])  # hop 12: 2000 frames/s x 6 bits = 12 kbps a codebook
STEREO = dict(SMALL, audio_channels=2, use_causal_conv=False, norm_type="time_group_norm",
              use_conv_shortcut=False, num_residual_layers=2, pad_mode="constant", compress=4)


def perturbed_encodec(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = transformers.EncodecModel(transformers.EncodecConfig(**config)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("original0"):
                p.mul_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            elif name.endswith("bias"):
                p.add_(0.02 * torch.randn(p.shape, generator=g))
            else:
                p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g))
        # transformers initialises the codebooks to zeros: draw them around the encoder's output, each
        # layer at half the spread of the one before (as residuals shrink)
        latent = model.encoder(signal(1, model.config.audio_channels, 6000, seed + 2))
        mean, std = latent.mean(dim=(0, 2)), latent.std(dim=(0, 2))
        for k, layer in enumerate(model.quantizer.layers):
            embed = layer.codebook.embed
            centre = mean if k == 0 else torch.zeros_like(mean)
            embed.copy_(centre + std * 0.5 ** k * torch.randn(embed.shape, generator=g))
    return model


def signal(batch: int, channels: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 24000
    tone = 0.3 * torch.sin(2 * math.pi * 330 * t)
    return tone + 0.1 * torch.randn(batch, channels, length, generator=g)


def convert(tmp_path, reference, capsys, name: str = "hf") -> tuple:
    source, out = tmp_path / name, tmp_path / f"{name}_converted"
    reference.save_pretrained(source)
    capsys.readouterr()
    assert main(["convert", "--from", "hf", str(source), str(out)]) == 0
    assert "codec convert: hf" in capsys.readouterr()[0]
    return source, out


def check_encodec(reference, model: Codec, wav: torch.Tensor) -> None:
    bandwidths = reference.config.target_bandwidths
    with torch.no_grad():
        for bandwidth in bandwidths:
            encoded = reference.encode(wav, bandwidth=bandwidth)
            expected = encoded.audio_codes[0]  # [B, K, N]
            codes = model.encode(wav, n_q=expected.shape[1])
            assert torch.equal(codes, expected)
            audio = reference.decode(encoded.audio_codes, encoded.audio_scales)[0]
            ours = model.decode(codes)
            assert ours.shape[-1] >= audio.shape[-1] >= wav.shape[-1]
            assert audio.std() > 0.01 and (ours[..., :audio.shape[-1]] - audio).abs().max() <= 1e-4
        assert codes.shape[1] == model.n_q and len(codes[:, 0].unique()) >= min(4, codes.shape[-1])


@pytest.mark.parametrize("config, lengths", [(SMALL, [5, 301, 24000 * 3]), (STEREO, [7, 1001])])
def test_small_encodec_configs(tmp_path, capsys, config, lengths):
    reference = perturbed_encodec(config)
    _, out = convert(tmp_path, reference, capsys)
    model = Codec.from_pretrained(out)
    assert model.n_q == reference.config.num_quantizers == 4
    channels = config.get("audio_channels", 1)
    for length in lengths:
        wav = signal(2, channels, length)
        check_encodec(reference, model, wav)
        with torch.no_grad():  # each item alone gives its row of the batch's codes
            alone = reference.encode(wav[1:], bandwidth=48.0).audio_codes[0]
            assert torch.equal(model.encode(wav[1:]), alone)
    provenance = read_provenance(out)
    assert provenance["source"] == "hf" and provenance["model_type"] == "encodec"
    assert provenance["source_config"]["upsampling_ratios"] == [4, 3]
    assert list(provenance["sha256"]) == ["model.safetensors"]


def test_encodec_24khz_default_shapes(tmp_path, capsys):
    reference = perturbed_encodec({})
    _, out = convert(tmp_path, reference, capsys)
    model = Codec.from_pretrained(out)
    shape = (model.sample_rate, model.samples_per_frame, model.n_q, model.codebook_size)
    assert shape == (24000, 320, 32, 1024)
    # the same architecture as the encodec package's 24 kHz model (our encodec_24khz preset)
    preset = Codec(model.config.__class__.from_yaml("encodec_24khz"))
    assert {k: v.shape for k, v in preset.state_dict().items()} == {k: v.shape for k, v in
                                                                    model.state_dict().items()}
    for length in (1, 4001):
        check_encodec(reference, model, signal(2, 1, length))


def test_sharded_and_old_weight_norm_names(tmp_path, capsys):
    reference = perturbed_encodec(SMALL)
    sharded = tmp_path / "sharded"
    reference.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert not (sharded / "model.safetensors").exists()
    assert main(["convert", "--from", "hf", str(sharded), str(tmp_path / "a")]) == 0
    # older transformers saved the weight_norm hook's weight_g / weight_v
    old = tmp_path / "old"
    reference.save_pretrained(old)
    state = load_file(str(old / "model.safetensors"))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
    assert any(k.endswith("weight_g") for k in renamed)
    save_file(renamed, str(old / "model.safetensors"))
    assert main(["convert", "--from", "hf", str(old), str(tmp_path / "b")]) == 0
    wav = signal(1, 1, 2000)
    for out in ("a", "b"):
        check_encodec(reference, Codec.from_pretrained(tmp_path / out), wav)


def test_encodec_refusals_name_the_option():
    for option, value in (("normalize", True), ("chunk_length_s", 1.0), ("trim_right_ratio", 0.5),
                          ("codebook_dim", 8), ("target_bandwidths", [0.1])):
        with pytest.raises(ValueError, match=f"unsupported EnCodec option {option}"):
            encodec_config_from_hf({**SMALL, option: value})
    # facebook/encodec_48khz: stereo, non-causal, normalised, 1 s chunks with overlap: refused (normalize)
    config_48k = dict(sampling_rate=48000, audio_channels=2, normalize=True, chunk_length_s=1.0,
                      overlap=0.01, norm_type="time_group_norm", use_causal_conv=False,
                      target_bandwidths=[3.0, 6.0, 12.0, 24.0])
    with pytest.raises(ValueError, match="option normalize"):
        encodec_config_from_hf(config_48k)
    with pytest.raises(ValueError, match="option chunk_length_s"):
        encodec_config_from_hf({**config_48k, "normalize": False})
    assert encodec_config_from_hf({**config_48k, "normalize": False, "chunk_length_s": None}).channels == 2


def test_dac_and_mimi_directories(tmp_path, capsys):
    """DacModel / MimiModel directories go through the same command and load through the kind registry."""
    kinds = pytest.importorskip("funcodec_lite.codec.kinds")
    from test_convert_dac import hf_model as hf_dac
    from test_convert_mimi import hf_mimi

    for name, reference, sample_rate in (("dac", hf_dac(), 16000), ("mimi", hf_mimi(), 24000)):
        _, out = convert(tmp_path, reference, capsys, name)
        assert read_provenance(out)["kind"] == name
        model = kinds.codec_class(name).from_pretrained(out)
        assert model.sample_rate == sample_rate
        wav = signal(1, 1, model.samples_per_frame * 5)
        with torch.no_grad():
            assert torch.equal(model.encode(wav), reference.encode(wav).audio_codes)


@pytest.mark.parametrize("case", ["unknown_type", "no_type", "no_config", "no_weights", "truncated",
                                  "not_dir", "refused", "bad_shapes", "missing_shard"])
def test_bad_input_exit_2(tmp_path, capsys, case):
    reference = perturbed_encodec(SMALL)
    source, out = tmp_path / "hf", tmp_path / "out"
    reference.save_pretrained(source)
    config = json.loads((source / "config.json").read_text())
    weights = source / "model.safetensors"
    expected = {"unknown_type": "unsupported model_type 'wav2vec2' (supported: dac, encodec, mimi)",
                "no_type": "no model_type", "no_config": "config.json: no such file",
                "no_weights": "no model.safetensors", "truncated": "unreadable safetensors file",
                "not_dir": "not a directory", "refused": "unsupported EnCodec option normalize",
                "bad_shapes": "weights do not fit the EnCodec config", "missing_shard": "no such file"}[case]
    if case == "unknown_type":
        (source / "config.json").write_text(json.dumps({**config, "model_type": "wav2vec2"}))
    elif case == "no_type":
        config.pop("model_type")
        (source / "config.json").write_text(json.dumps(config))
    elif case == "no_config":
        (source / "config.json").unlink()
    elif case == "no_weights":
        weights.unlink()
    elif case == "truncated":
        weights.write_bytes(weights.read_bytes()[:5000])
    elif case == "not_dir":
        source = weights
    elif case == "refused":
        (source / "config.json").write_text(json.dumps({**config, "normalize": True}))
    elif case == "bad_shapes":  # weights of another size than the config says
        (source / "config.json").write_text(json.dumps({**config, "num_filters": 8}))
    elif case == "missing_shard":
        weights.unlink()
        index = {"weight_map": {"encoder.layers.0.conv.bias": "model-00001-of-00002.safetensors"}}
        (source / "model.safetensors.index.json").write_text(json.dumps(index))
    capsys.readouterr()
    assert main(["convert", "--from", "hf", str(source), str(out)]) == 2
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err
    assert not out.exists()


def test_missing_family_is_one_line(monkeypatch):
    import funcodec_lite.convert.hf as hf

    monkeypatch.setitem(hf.FAMILIES, "dac", ("funcodec_lite.convert.not_there", "dac_from_hf", "DAC"))
    with pytest.raises(ValueError, match=r"^DAC support not installed"):
        hf_converter("dac")
