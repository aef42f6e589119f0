"""SNAC: the ``snac`` package's model with random (perturbed) weights, converted, gives its codes and audio.

The reference is ``snac.SNAC`` 1.2.1 itself, built with seeded random weights at the released models'
shapes and at small shapes that exercise each option (attention or not, depthwise or not, noise or
not). Its decoder draws noise from torch's global RNG: both decoders run under the same
``torch.manual_seed``, so equal audio also shows that ours draws the same noise in the same order.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
from reference_libs import import_reference

from funcodec_lite.cli import main
from funcodec_lite.codec.families.snac import SNAC, SNACConfig
from funcodec_lite.convert.snac import snac_config_from_dict, snac_from_state_dict
from funcodec_lite.utils.weights import load_model_as, read_provenance

snac = import_reference("snac")

# Released configs (hubertsiuzdak/snac_24khz, snac_32khz, snac_44khz config.json; parameter counts 19.8 M
# and 54.5 M as their model cards give them)
SNAC_24KHZ = dict(sampling_rate=24000, encoder_dim=48, encoder_rates=[2, 4, 8, 8], decoder_dim=1024,
                  decoder_rates=[8, 8, 4, 2], attn_window_size=None, codebook_size=4096, codebook_dim=8,
                  vq_strides=[4, 2, 1], noise=True, depthwise=True)
SNAC_32KHZ = dict(sampling_rate=32000, encoder_dim=64, encoder_rates=[2, 3, 8, 8], decoder_dim=1536,
                  decoder_rates=[8, 8, 3, 2], attn_window_size=32, codebook_size=4096, codebook_dim=8,
                  vq_strides=[8, 4, 2, 1], noise=True, depthwise=True)
SNAC_44KHZ = {**SNAC_32KHZ, "sampling_rate": 44100}
# Small shapes: attention with 2 heads, odd rates, no depthwise, no noise
SMALL_ATTENTION = dict(sampling_rate=16000, encoder_dim=8, encoder_rates=[2, 2, 2, 2], decoder_dim=128,
                       decoder_rates=[2, 2, 2, 2], attn_window_size=4, codebook_size=64, codebook_dim=4,
                       vq_strides=[4, 2, 1], noise=True, depthwise=True)
SMALL_PLAIN = dict(sampling_rate=16000, encoder_dim=4, encoder_rates=[3, 2], decoder_dim=32,
                   decoder_rates=[2, 3], attn_window_size=None, codebook_size=32, codebook_dim=4,
                   vq_strides=[2, 1], noise=False, depthwise=False)
SMALL_ODD = dict(sampling_rate=16000, encoder_dim=4, encoder_rates=[3, 5], decoder_dim=32,
                 decoder_rates=[5, 3], attn_window_size=None, codebook_size=32, codebook_dim=4,
                 vq_strides=[3, 1], noise=True, depthwise=True)


def perturbed_reference(config: dict, seed: int = 0) -> torch.nn.Module:
    """``snac.SNAC`` with seeded random weights, none trivial: weight-norm gains ≠ ‖v‖, Snake α ≠ 1,
    non-zero biases, LayerNorm ≠ identity, random codebooks."""
    torch.manual_seed(seed)
    model = snac.SNAC(**config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("original0"):
                p.mul_(0.8 + 0.4 * torch.rand_like(p))
            elif name.endswith("alpha"):
                p.copy_(0.5 + torch.rand_like(p))
            elif name.endswith("codebook.weight"):
                p.copy_(torch.randn_like(p))
            elif name.endswith("bias"):  # small: larger random biases swamp the signal (constant codes)
                p.copy_(0.003 * torch.randn_like(p))
            elif ".norm." in name:
                p.add_(0.05 * torch.randn_like(p))
            elif name.endswith("original1") or "to_qkv" in name or "to_out" in name:
                p.mul_(1 + 0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def pairs():
    """config name -> (reference, ours); built once."""
    cache = {}

    def get(name: str, config: dict):
        if name not in cache:
            reference = perturbed_reference(config)
            ours = snac_from_state_dict(reference.state_dict(), snac_config_from_dict(config))
            cache[name] = reference, ours
        return cache[name]
    return get


def signal(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t * (1 + torch.arange(batch)[:, None]))
    return (tone + 0.05 * torch.randn(batch, length, generator=generator))[:, None, :]


def reference_decode(reference, levels: list[torch.Tensor], seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return reference.decode(levels)


def ours_decode(model: SNAC, codes: torch.Tensor, seed: int, **kwargs) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.decode(codes, **kwargs)


def check_pair(reference, ours: SNAC, wav: torch.Tensor) -> torch.Tensor:
    """Asserts identical codes (native layout and joined) and audio ≤ 1e-4; returns our codes."""
    with torch.no_grad():
        expected = reference.encode(wav)
        codes = ours.encode(wav)
    assert codes.shape == (wav.shape[0], ours.n_q, ours.num_frames(wav.shape[-1]))
    got = ours.split_codes(codes)
    assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    assert torch.equal(ours.join_codes(expected), codes)
    audio_ref = reference_decode(reference, expected, seed=7)
    audio = ours_decode(ours, codes, seed=7)
    assert audio.shape == audio_ref.shape == (wav.shape[0], 1, codes.shape[-1] * ours.samples_per_frame)
    assert (audio - audio_ref).abs().max().item() <= 1e-4
    assert 0.01 < audio_ref.abs().max().item() < 0.999  # the decoder is neither silent nor saturated
    return codes


@pytest.mark.parametrize("name, config, lengths", [
    ("attention", SMALL_ATTENTION, [1, 333, 1601, 16000 * 3]),
    ("plain", SMALL_PLAIN, [1, 7, 1001]),
    ("odd", SMALL_ODD, [2, 1234]),
])
def test_small_configs_match_snac_batched_and_unbatched(pairs, name, config, lengths):
    reference, ours = pairs(name, config)
    for length in lengths:
        wav = signal(3, length)
        codes = check_pair(reference, ours, wav)
        if length >= 300:  # the finest codebook follows the signal (the codes are not one constant)
            assert len(codes[:, -1].unique()) >= 4
        for b in range(wav.shape[0]):  # each item alone: the same codes as in the batch, and SNAC's audio
            assert torch.equal(check_pair(reference, ours, wav[b:b + 1]), codes[b:b + 1])


@pytest.mark.parametrize("name, config, lengths", [
    ("24khz", SNAC_24KHZ, [8000, 72000]),  # 1/3 s and 3 s
    ("32khz", SNAC_32KHZ, [10667]),
    ("44khz", SNAC_44KHZ, [14000]),
])
def test_released_shapes_match_snac(pairs, name, config, lengths):
    reference, ours = pairs(name, config)
    expected_params = {"24khz": 19.84, "32khz": 54.55, "44khz": 54.55}[name]
    assert sum(p.numel() for p in ours.parameters()) / 1e6 == pytest.approx(expected_params, abs=0.01)
    for length in lengths:
        check_pair(reference, ours, signal(1, length) * 0.5)


def test_layout_rates_and_lengths(pairs):
    _, ours = pairs("24khz", SNAC_24KHZ)
    assert ours.samples_per_frame == 512 and ours.codebook_strides == (4, 2, 1)
    assert [ours.frame_rate / s for s in ours.codebook_strides] == pytest.approx([11.71875, 23.4375, 46.875])
    assert ours.bandwidth() == pytest.approx(12 * 1.75 * 46.875 / 1000)  # 0.98 kbps
    assert ours.num_frames(24000) == 48 and ours.num_frames(2048) == 4 and ours.num_frames(2049) == 8
    _, ours32 = pairs("32khz", SNAC_32KHZ)  # padding unit: hop 384 x lcm(8, window 32) = 12288 samples
    assert ours32.num_frames(32000) == 96 and ours32.frame_alignment == 32
    assert ours32.bandwidth() == pytest.approx(12 * 1.875 * 32000 / 384 / 1000)  # 1.9 kbps
    codes = ours.join_codes([torch.tensor([[5, 6]]), torch.tensor([[1, 2, 3, 4]]), torch.arange(8)[None]])
    assert codes.tolist() == [[[5, 5, 5, 5, 6, 6, 6, 6], [1, 1, 2, 2, 3, 3, 4, 4], list(range(8))]]
    levels = [level.tolist() for level in ours.split_codes(codes)]
    assert levels == [[[5, 6]], [[1, 2, 3, 4]], [list(range(8))]]


def test_fewer_codebooks_and_unaligned_codes(pairs):
    reference, ours = pairs("attention", SMALL_ATTENTION)
    wav = signal(2, 1500)
    with torch.no_grad():
        full = ours.encode(wav)
        coarse = ours.encode(wav, n_q=2)
        assert torch.equal(coarse, full[:, :2])
        # K < n_q: the sum of the first K stages, as SNAC's quantizer would give it
        latent = sum(reference.quantizer.quantizers[k].out_proj(reference.quantizer.quantizers[k].decode_code(
            level)).repeat_interleave(reference.vq_strides[k], dim=-1)
            for k, level in enumerate(ours.split_codes(coarse)))
        torch.manual_seed(3)
        expected = reference.decoder(latent)
    assert (ours_decode(ours, coarse, seed=3) - expected).abs().max() <= 1e-4
    # N not a multiple of L (lcm(strides, window) = 4 here): each codebook's last token is repeated up to
    # 24 frames, then the audio cut back
    assert ours.frame_alignment == 4
    cut = full[..., :21]
    padded = ours.join_codes([torch.cat([level, level[:, -1:].expand(-1, 24 // stride - level.shape[-1])], -1)
                              for level, stride in zip(ours.split_codes(cut), ours.codebook_strides)])
    assert padded.shape[-1] == 24 and torch.equal(padded[..., :21], cut)
    short = ours_decode(ours, cut, seed=4)
    assert short.shape[-1] == 21 * 16
    assert torch.equal(short, ours_decode(ours, padded, seed=4)[..., : 21 * 16])


def test_noise_reproducible_and_deterministic_options(pairs):
    _, ours = pairs("attention", SMALL_ATTENTION)
    with torch.no_grad():
        codes = ours.encode(signal(1, 2000))
        torch.manual_seed(0)
        a = ours.decode(codes)
        b = ours.decode(codes)  # the global RNG moved on: other noise
        assert (a - b).abs().max() > 1e-3
        g1 = ours.decode(codes, generator=torch.Generator().manual_seed(9))
        g2 = ours.decode(codes, generator=torch.Generator().manual_seed(9))
        assert torch.equal(g1, g2)
        quiet = ours.decode(codes, noise=False)
        assert torch.equal(quiet, ours.decode(codes, noise=False)) and (quiet - a).abs().max() > 1e-3
        ours.set_noise_seed(9)
        try:
            state = torch.get_rng_state()
            assert torch.equal(ours.decode(codes), g1)
            assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
        finally:
            ours.set_noise_seed(None)


def write_release(directory, reference, config: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    torch.save(reference.state_dict(), directory / "pytorch_model.bin")


def test_cli_convert_and_load(pairs, tmp_path, capsys):
    reference, ours = pairs("attention", SMALL_ATTENTION)
    release, out = tmp_path / "snac_release", tmp_path / "converted"
    write_release(release, reference, SMALL_ATTENTION)
    assert main(["convert", "--from", "snac", str(release), str(out)]) == 0
    assert "snac" in capsys.readouterr()[0]
    loaded = load_model_as(out, SNAC)
    assert loaded.config == SNACConfig(**SMALL_ATTENTION)
    provenance = read_provenance(out)
    assert provenance["kind"] == "snac"
    assert provenance["source"] == "snac" and provenance["source_config"] == SMALL_ATTENTION
    assert provenance["sha256"] == hashlib.sha256((release / "pytorch_model.bin").read_bytes()).hexdigest()
    wav = signal(2, 1000)
    check_pair(reference, loaded, wav)
    loaded.fold_weight_norm()  # folded weights save and load folded, with the same outputs
    loaded.save_pretrained(tmp_path / "folded")
    folded = load_model_as(tmp_path / "folded", SNAC)
    with torch.no_grad():
        assert torch.equal(folded.encode(wav), ours.encode(wav))
        codes = ours.encode(wav)
    assert (ours_decode(folded, codes, 2) - ours_decode(ours, codes, 2)).abs().max() < 1e-5


def test_codec_kind_registry_loads_snac(pairs, tmp_path):
    from funcodec_lite.codec.kinds import codec_class
    from funcodec_lite.codec.loading import load_model

    _, ours = pairs("plain", SMALL_PLAIN)
    ours.save_pretrained(tmp_path / "m")
    assert codec_class("snac") is SNAC
    loaded = load_model(tmp_path / "m")  # folds weight norm
    assert isinstance(loaded, SNAC)
    wav = signal(2, 999)
    with torch.no_grad():
        assert torch.equal(loaded.encode(wav), ours.encode(wav))


@pytest.mark.parametrize("case", ["no_config", "no_weights", "truncated", "other_family", "bad_option",
                                  "bad_value", "not_json", "pickle"])
def test_cli_bad_input_exit_2(pairs, tmp_path, capsys, case):
    reference, _ = pairs("plain", SMALL_PLAIN)
    release, out = tmp_path / "release", tmp_path / "out"
    write_release(release, reference, SMALL_PLAIN)
    expected = {"no_config": "config.json: no such file", "no_weights": "pytorch_model.bin: no such file",
                "truncated": "not a readable PyTorch state dict",
                "other_family": "does not fit the SNAC config",
                "bad_option": "unsupported SNAC config option 'n_codebooks'",
                "bad_value": "decoder_rates", "not_json": "not a JSON file",
                "pickle": "not loaded for safety"}[case]
    weights = release / "pytorch_model.bin"
    if case == "no_config":
        (release / "config.json").unlink()
    elif case == "no_weights":
        weights.unlink()
    elif case == "truncated":
        weights.write_bytes(weights.read_bytes()[:3000])
    elif case == "other_family":  # a DAC-like state dict: other module names
        torch.save({"encoder.block.0.weight": torch.zeros(4, 1, 7), "quantizer.quantizers.0.codebook.weight":
                    torch.zeros(32, 4)}, weights)
    elif case == "bad_option":
        (release / "config.json").write_text(json.dumps({**SMALL_PLAIN, "n_codebooks": 4}))
    elif case == "bad_value":
        (release / "config.json").write_text(json.dumps({**SMALL_PLAIN, "decoder_rates": [2, 2]}))
    elif case == "not_json":
        (release / "config.json").write_text("sampling_rate: 24000\n")
    elif case == "pickle":  # an arbitrary object: refused by weights_only, never unpickled
        torch.save({"model": torch.nn.Identity()}, weights)
    capsys.readouterr()
    assert main(["convert", "--from", "snac", str(release), str(out)]) == 2
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err
    assert not out.exists()


def test_codec_encode_decode_and_tokenizer_on_converted_dir(pairs, tmp_path, capsys):
    """`codec encode/decode/tokenize` and the Tokenizer load the converted directory by its kind."""
    sf = pytest.importorskip("soundfile")
    np = pytest.importorskip("numpy")
    from funcodec_lite import Tokenizer

    reference, ours = pairs("attention", SMALL_ATTENTION)
    write_release(tmp_path / "release", reference, SMALL_ATTENTION)
    model_dir = tmp_path / "model"
    assert main(["convert", "--from", "snac", str(tmp_path / "release"), str(model_dir)]) == 0
    wav = signal(1, 4321)[0, 0] * 0.5
    sf.write(tmp_path / "in.wav", wav.numpy(), 16000, subtype="FLOAT")
    with torch.no_grad():
        expected = ours.join_codes(reference.encode(wav[None, None]))
    assert main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "c.npz"), "--model", str(model_dir)]) == 0
    tokens = np.load(tmp_path / "c.npz")
    assert np.array_equal(tokens["codes"], expected.numpy())
    assert tokens["codebook_strides"].tolist() == [4, 2, 1]
    decode = ["decode", str(tmp_path / "c.npz"), str(tmp_path / "out.wav"), "--model", str(model_dir)]
    assert main(decode) == 0
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and out.shape == (4321,) and np.isfinite(out).all() and out.std() > 0.01
    (tmp_path / "wav.scp").write_text(f"utt1 {tmp_path / 'in.wav'}\n")
    tokenize = ["tokenize", "--scp", str(tmp_path / "wav.scp"), "--out-dir", str(tmp_path / "tokens"),
                "--model", str(model_dir), "-q"]
    assert main(tokenize) == 0
    assert np.array_equal(np.load(tmp_path / "tokens" / "utt1.npz")["codes"], expected.numpy())
    tokenizer = Tokenizer.from_pretrained(model_dir)
    encoded = tokenizer.encode(wav[None], 16000)
    assert torch.equal(encoded.codes, expected) and tokenizer.codebook_strides == (4, 2, 1)
    # loaded for inference, the decoder noise is seeded: the file commands decode reproducibly
    assert torch.equal(tokenizer.decode(encoded.codes).wav, tokenizer.decode(encoded.codes).wav)
    assert main(decode) == 0
    assert np.array_equal(sf.read(tmp_path / "out.wav", dtype="float32")[0], out)
    tokenizer.codec.set_noise_seed(None)  # torch's global RNG: the reference package's draws
    torch.manual_seed(5)
    decoded = tokenizer.decode(encoded.codes).wav
    audio_ref = reference_decode(reference, reference.encode(wav[None, None]), seed=5)
    assert (decoded - audio_ref).abs().max() <= 1e-4
    capsys.readouterr()
