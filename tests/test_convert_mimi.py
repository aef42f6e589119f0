"""Mimi: converted from ``moshi``'s ``MimiModel`` and from ``transformers``' ``MimiModel``, exactly.

The references are built from their own configs (``moshi.models.loaders`` kwargs; a small random
``transformers.MimiConfig``) with seeded random weights, perturbed so that no layer is trivial (layer
scales and norms away from their init, codebooks from random EMA sums and usage counts).  Most cases use
a reduced architecture (4 SEANet filters, 32 latent channels, 2 transformer layers, 5 codebooks of 64)
with Mimi's real ratios, so frames are the real 1920 samples; one case uses the released shapes.
"""

import copy
import hashlib
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference
from safetensors.torch import load_file, save_file

from funcodec_lite.cli import main
from funcodec_lite.codec.families.mimi import Mimi, MimiConfig
from funcodec_lite.convert.mimi import (
    config_from_hf,
    config_from_moshi,
    convert_mimi_file,
    mimi_from_hf,
    mimi_from_moshi,
)
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.utils.weights import load_model_as

loaders = import_reference("moshi.models.loaders")
FRAME = 1920
LENGTHS = (1000, 1921, 3 * 24000 + 17)  # shorter than a frame, one sample over a frame, ~3 s (odd)


def small_moshi_config(context: int = 6) -> dict:
    cfg = copy.deepcopy(loaders._mimi_config)
    cfg["seanet"].update(n_filters=4, dimension=32)
    cfg["transformer"].update(d_model=32, num_heads=4, num_layers=2, dim_feedforward=64, context=context,
                              input_dimension=32, output_dimensions=[32])
    cfg["quantizer"].update(n_q=5, bins=64, dimension=16, input_dimension=32, output_dimension=32)
    return cfg


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights at a usable scale; layer scales, norms, codebooks and usage counts all non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.copy_(0.2 + 0.3 * torch.rand(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(float(name.endswith("weight")) + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
        for name, b in model.named_buffers():
            if name.endswith(("embedding_sum", "embed_sum")):
                b.copy_(torch.randn(b.shape, generator=g))
            elif name.endswith("cluster_usage"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    for module in model.modules():  # codewords cached from the init
        for cache in ("_embedding", "_embed"):
            if getattr(module, cache, None) is not None:
                setattr(module, cache, None)
    return model


def moshi_mimi(cfg: dict | None, seed: int, n_q: int):
    return perturb(loaders.get_mimi(None, cfg, num_codebooks=n_q), seed).eval()


def signal(batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 24000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t * (1 + torch.arange(batch)[:, None]))
    return (tone + 0.1 * torch.randn(batch, length, generator=g))[:, None]


@pytest.fixture(scope="module")
def small():
    ref = moshi_mimi(small_moshi_config(), seed=0, n_q=5)
    return ref, mimi_from_moshi(ref.state_dict(), small_moshi_config(), num_codebooks=None)


# ---------------------------------------------------------------------------------------------------
# moshi's MimiModel
@pytest.mark.parametrize("length", LENGTHS)
@torch.no_grad()
def test_codes_and_audio_equal_moshi(small, length):
    ref, model = small
    wav = signal(2, length, length)
    codes = model.encode(wav)
    expected = ref.encode(wav)
    assert codes.shape == (2, 5, -(-length // FRAME)) and torch.equal(codes, expected)
    assert len(torch.unique(codes)) > 3
    audio = ref.decode(expected)
    assert audio.std() > 0.05 and (model.decode(codes) - audio).abs().max() <= 1e-4
    assert torch.equal(model.decode(codes, length), model.decode(codes)[..., :length])
    # unbatched: each item alone gives the same codes
    for item in range(2):
        assert torch.equal(model.encode(wav[item:item + 1]), expected[item:item + 1])


@torch.no_grad()
def test_fewer_codebooks_equal_moshi(small):
    ref, model = small
    wav = signal(1, 5 * FRAME, 3)
    ref.set_num_codebooks(3)
    try:
        expected = ref.encode(wav)
        assert torch.equal(model.encode(wav, n_q=3), expected)
        model.set_num_codebooks(3)
        assert torch.equal(model.encode(wav), expected)
        assert model.bandwidth() == pytest.approx(3 * 6 * 12.5 / 1000)
        assert (model.decode(expected) - ref.decode(expected)).abs().max() <= 1e-4
    finally:
        ref.set_num_codebooks(5)
        model.set_num_codebooks(5)
    with pytest.raises(ValueError, match="num_codebooks must be in 1..5"):
        model.set_num_codebooks(6)


@torch.no_grad()
def test_released_shapes():
    ref = moshi_mimi(None, seed=1, n_q=8)
    model = mimi_from_moshi(ref.state_dict())
    assert config_from_moshi(loaders._mimi_config) == MimiConfig()  # our defaults: the released model
    assert model.config == MimiConfig(num_codebooks=8)
    assert (model.sample_rate, model.frame_rate, model.samples_per_frame) == (24000, 12.5, 1920)
    assert (model.n_q, model.codebook_size, model.num_codebooks) == (32, 2048, 8)
    assert model.bandwidth() == pytest.approx(1.1) and model.bandwidth(32) == pytest.approx(4.4)
    wav = signal(1, FRAME + 7, 5)
    codes = model.encode(wav)
    assert codes.shape == (1, 8, 2) and torch.equal(codes, ref.encode(wav))
    ref.set_num_codebooks(32)
    all_codes = ref.encode(wav)
    assert torch.equal(model.encode(wav, n_q=32), all_codes)
    assert (model.decode(all_codes) - ref.decode(all_codes)).abs().max() <= 1e-4


@torch.no_grad()
def test_streaming_equals_moshi_and_whole_signal():
    # context 250 (the released window): moshi's own streaming equals its whole-signal output here
    cfg = small_moshi_config(context=250)
    ref = moshi_mimi(cfg, seed=2, n_q=5)
    model = mimi_from_moshi(ref.state_dict(), cfg, num_codebooks=None)
    wav = signal(2, 10 * FRAME, 7)
    with ref.streaming(2):
        ref_codes = torch.cat([ref.encode(wav[..., i:i + FRAME]) for i in range(0, wav.shape[-1], FRAME)], -1)
    with model.streaming_encoder() as encoder:
        codes = torch.cat([encoder.push(wav[..., i:i + FRAME]) for i in range(0, wav.shape[-1], FRAME)]
                          + [encoder.flush()], -1)
    assert torch.equal(codes, ref_codes) and torch.equal(codes, model.encode(wav))
    with ref.streaming(2):
        ref_audio = torch.cat([ref.decode(codes[..., i:i + 1]) for i in range(codes.shape[-1])], -1)
    decoder = model.streaming_decoder()
    audio = torch.cat([decoder.push(codes[..., i:i + 1]) for i in range(codes.shape[-1])]
                      + [decoder.flush()], -1)
    assert (audio - ref_audio).abs().max() <= 1e-4 and (audio - model.decode(codes)).abs().max() <= 1e-4


@torch.no_grad()
def test_streaming_beyond_the_context_window_equals_whole_signal(small):
    # a 6-frame window over 24 encoder frames: each chunk attends to kept keys only
    ref, model = small
    wav = signal(2, 12 * FRAME + 555, 8)
    whole = model.encode(wav)
    assert torch.equal(whole, ref.encode(wav))
    for chunk in (FRAME, 777):
        encoder = model.streaming_encoder()
        parts = [encoder.push(wav[..., i:i + chunk]) for i in range(0, wav.shape[-1], chunk)]
        assert torch.equal(torch.cat(parts + [encoder.flush()], -1), whole)
    decoder = model.streaming_decoder()
    parts = [decoder.push(whole[..., i:i + 2]) for i in range(0, whole.shape[-1], 2)]
    with pytest.raises(RuntimeError, match="streaming decoder is open"):
        model.decode(whole)  # would run through the open stream's state
    audio = torch.cat(parts + [decoder.flush()], -1)
    assert (audio - model.decode(whole)).abs().max() <= 1e-4


@torch.no_grad()
def test_architecture_variants_equal_moshi():
    # conv shortcuts, two residual units per stage, no layer scale, 2 heads, 2 semantic codebooks
    cfg = small_moshi_config()
    cfg["seanet"].update(true_skip=False, n_residual_layers=2, compress=4, activation_params={"alpha": 0.7})
    cfg["transformer"].update(layer_scale=None, num_heads=2)
    cfg["quantizer"].update(n_q_semantic=2)
    ref = moshi_mimi(cfg, seed=4, n_q=5)
    model = mimi_from_moshi(ref.state_dict(), cfg, num_codebooks=None)
    assert model.config.seanet.elu_alpha == 0.7 and model.config.transformer.layer_scale is None
    wav = signal(2, 2 * FRAME + 99, 12)
    codes = model.encode(wav)
    assert torch.equal(codes, ref.encode(wav)) and len(torch.unique(codes)) > 3
    assert (model.decode(codes) - ref.decode(codes)).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="n_q must be in 2..5"):
        model.encode(wav, n_q=1)


@torch.no_grad()
def test_edge_cases(small):
    _, model = small
    assert model.encode(torch.zeros(2, 1, 0)).shape == (2, 5, 0)
    assert model.decode(torch.zeros(2, 5, 0, dtype=torch.long)).shape == (2, 1, 0)
    assert model.decode(torch.zeros(1, 5, 2, dtype=torch.long), length=4000).shape == (1, 1, 4000)
    assert model.streaming_encoder().flush().shape[1:] == (5, 0)
    encoder = model.streaming_encoder(n_q=2)
    assert encoder.push(signal(1, 1000, 1)).shape == (1, 2, 0)  # less than a frame: waits
    assert torch.equal(encoder.flush(), model.encode(signal(1, 1000, 1), n_q=2))
    with pytest.raises(ValueError, match=r"audio \[B, 1, T\]"):
        model.encode(torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="out of range"):
        model.decode(torch.full((1, 5, 2), 64))


@torch.no_grad()
def test_older_moshi_key_names(small):
    ref, model = small
    renames = {".self_attn.in_projs.0.weight": ".self_attn.in_proj_weight", ".embedding_sum": ".embed_avg",
               ".cluster_usage": ".cluster_size"}
    state = {}
    for key, value in ref.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value
    wav = signal(1, 3 * FRAME, 9)
    assert torch.equal(mimi_from_moshi(state, small_moshi_config(), None).encode(wav), model.encode(wav))


def test_moshi_config_refusals():
    cfg = small_moshi_config()
    cfg["transformer"]["gating"] = "silu"
    with pytest.raises(ValueError, match=r"option transformer\.gating='silu'"):
        config_from_moshi(cfg)
    cfg = small_moshi_config()
    cfg["seanet"]["norm"] = "weight_norm"
    with pytest.raises(ValueError, match=r"option seanet\.norm"):
        config_from_moshi(cfg)
    with pytest.raises(ValueError, match="not a Mimi .moshi. checkpoint"):
        mimi_from_moshi({"encoder.model.0.conv.conv.weight_g": torch.ones(1)})


# ---------------------------------------------------------------------------------------------------
# transformers' MimiModel
def hf_mimi(seed: int = 3, **overrides):
    transformers = import_reference("transformers")
    options = dict(hidden_size=32, num_filters=4, num_hidden_layers=2, intermediate_size=64,
                   num_attention_heads=4, num_key_value_heads=4, codebook_size=64, codebook_dim=16,
                   vector_quantization_hidden_dimension=16, num_quantizers=5, upsample_groups=32,
                   sliding_window=6)
    config = transformers.MimiConfig(**{**options, **overrides})
    torch.manual_seed(seed)
    return perturb(transformers.MimiModel(config).eval(), seed)


@torch.no_grad()
def test_transformers_mimi_model(tmp_path):
    reference = hf_mimi()
    reference.save_pretrained(tmp_path)  # what users have on disk: config.json + model.safetensors
    config = json.loads((tmp_path / "config.json").read_text())
    model = mimi_from_hf(config, load_file(str(tmp_path / "model.safetensors")))
    nested = mimi_from_hf(reference.config.to_dict(), reference.state_dict())  # in-memory key layout
    assert model.n_q == 5 and model.num_codebooks == 5 and not model.config.pad_to_frame
    for batch, length in ((2, LENGTHS[0]), (1, LENGTHS[1]), (2, LENGTHS[2])):
        wav = signal(batch, length, length + 1)
        expected = reference.encode(wav).audio_codes
        codes = model.encode(wav)
        assert torch.equal(codes, expected) and torch.equal(nested.encode(wav), expected)
        audio = reference.decode(expected).audio_values
        assert audio.std() > 0.05 and (model.decode(codes) - audio).abs().max() <= 1e-4
        # streaming: each convolution pads its own end at flush, as transformers does for the whole signal
        encoder = model.streaming_encoder()
        streamed = [encoder.push(wav[..., i:i + 1111]) for i in range(0, length, 1111)]
        assert torch.equal(torch.cat(streamed + [encoder.flush()], -1), expected)
    assert torch.equal(model.encode(wav, n_q=2), reference.encode(wav, num_quantizers=2).audio_codes)


@torch.no_grad()
def test_transformers_variant():
    # conv shortcuts, two residual units, 2 semantic codebooks, grouped upsampling, and no quantizer
    # projections (codebooks as wide as the latent: transformers then stores none)
    reference = hf_mimi(6, use_conv_shortcut=True, num_residual_layers=2, num_semantic_quantizers=2,
                        codebook_dim=32, vector_quantization_hidden_dimension=32, upsample_groups=8)
    assert "quantizer.semantic_residual_vector_quantizer.input_proj.weight" not in reference.state_dict()
    model = mimi_from_hf(reference.config.to_dict(), reference.state_dict())
    wav = signal(2, 3 * FRAME + 5, 13)
    codes = model.encode(wav)
    assert torch.equal(codes, reference.encode(wav).audio_codes) and len(torch.unique(codes)) > 3
    assert (model.decode(codes) - reference.decode(codes).audio_values).abs().max() <= 1e-4


def test_transformers_config_refusals():
    base = hf_mimi().config.to_dict()
    assert config_from_hf(base).transformer.context == 6
    for option, value in (("use_causal_conv", False), ("num_key_value_heads", 2), ("pad_mode", "reflect"),
                          ("vector_quantization_hidden_dimension", 8)):
        with pytest.raises(ValueError, match=f"option {option}"):
            config_from_hf({**base, option: value})
    with pytest.raises(ValueError, match="model_type 'dac'"):
        config_from_hf({**base, "model_type": "dac"})
    with pytest.raises(ValueError, match="does not match the Mimi config"):
        mimi_from_hf(base, {"quantizer.semantic_residual_vector_quantizer.input_proj.weight": torch.ones(1)})


# ---------------------------------------------------------------------------------------------------
# the command line and the model directory
def write_release(tmp_path, ref, cfg):
    ckpt = tmp_path / "tokenizer-small.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(ckpt))
    (tmp_path / "mimi.json").write_text(json.dumps(cfg))
    return ckpt


@torch.no_grad()
def test_convert_command_then_load_encode_decode(tmp_path, capsys, small):
    ref, _ = small
    ckpt = write_release(tmp_path, ref, small_moshi_config())
    out = tmp_path / "mimi"
    config_file = str(tmp_path / "mimi.json")
    assert main(["convert", "--from", "mimi", str(ckpt), str(out), "--config", config_file]) == 0
    assert "codec convert: mimi" in capsys.readouterr()[0]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["kind"] == "mimi" and config["n_q"] == 5 and config["num_codebooks"] == 5
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["source"] == "mimi"
    assert provenance["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert "CC-BY 4.0" in provenance["weights_licence"]

    loaded = load_model_as(out, Mimi)
    wav = signal(1, 4 * FRAME + 300, 11)
    assert torch.equal(loaded.encode(wav), ref.encode(wav))
    model, _ = convert_mimi_file(ckpt, tmp_path / "mimi.json")
    assert loaded.config == model.config
    tokenizer = Tokenizer.from_pretrained(out)  # through the codec-kind registry
    assert isinstance(tokenizer.codec, Mimi) and tokenizer.frame_rate == 12.5
    assert torch.equal(tokenizer.encode(wav[:, 0], 24000).codes, ref.encode(wav))

    sf.write(tmp_path / "a.wav", wav[0, 0].numpy(), 24000, subtype="FLOAT")
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", str(out)]) == 0
    tokens = load_tokens(tmp_path / "a.npz")
    expected = ref.encode(wav)
    assert np.array_equal(np.asarray(tokens.codes).reshape(expected.shape), expected.numpy())
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "b.wav"), "--model", str(out)]) == 0
    decoded, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    reference = ref.decode(expected)[0, 0, :wav.shape[-1]].numpy()
    assert rate == 24000 and decoded.shape == (wav.shape[-1],)
    assert np.abs(decoded - reference).max() <= 1e-4


@pytest.mark.parametrize("case", ["other_family", "truncated", "unsupported_option", "shape_mismatch"])
def test_convert_refuses_bad_input(tmp_path, capsys, small, case):
    ref, _ = small
    cfg = small_moshi_config()
    ckpt = write_release(tmp_path, ref, cfg)
    expected = {"other_family": "not a Mimi (moshi) checkpoint", "truncated": "not a readable safetensors",
                "unsupported_option": "unsupported Mimi config option transformer.gating",
                "shape_mismatch": "does not match the Mimi config"}[case]
    if case == "other_family":  # an EnCodec/DAC-style state dict
        save_file({"encoder.model.0.conv.conv.weight_g": torch.ones(32, 1, 1)}, str(ckpt))
    elif case == "truncated":
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[:len(data) // 2])
    elif case == "unsupported_option":
        cfg["transformer"]["gating"] = "silu"
    else:
        cfg["quantizer"]["bins"] = 128
    (tmp_path / "mimi.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    code = main(["convert", "--from", "mimi", str(ckpt), str(out), "--config", str(tmp_path / "mimi.json")])
    err = capsys.readouterr()[1]
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (out / "model.safetensors").exists() and not (out / "config.yaml").exists()
