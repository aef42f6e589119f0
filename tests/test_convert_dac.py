"""DAC checkpoints → funcodec_lite's ``DAC``: the codes of descript-audio-codec's own model, bit for bit.

The reference is ``dac.model.DAC`` (descript-audio-codec 1.0.0) at the shapes of the three released models
(16, 24 and 44.1 kHz; full width: encoder 64, decoder 1536, latent 1024), with seeded random weights that
are perturbed so no layer is trivial (weight-norm gains ≠ ‖v‖, non-zero biases, Snake α ≠ 1, N(0, 1)
codebooks), saved with its own ``DAC.save`` and converted. Reference codes are DAC's ``preprocess`` +
``encode``; reference audio its ``quantizer.from_codes`` + ``decode``. ``transformers``' ``DacModel``
(random, small) is checked the same way through `dac_from_hf`.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference
from safetensors.torch import load_file

from funcodec_lite.cli import main
from funcodec_lite.codec.families.dac import DAC, DACConfig
from funcodec_lite.convert.dac import (
    RELEASED_CONFIGS,
    convert_dac_file,
    dac_config_from_hf,
    dac_config_from_kwargs,
    dac_from_hf,
    read_dac_file,
)
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.inference.tokens import load_tokens

dac = import_reference("dac")

SMALL = {"sample_rate": 16000, "encoder_dim": 8, "encoder_rates": [2, 4, 5, 8], "decoder_dim": 64,
         "decoder_rates": [8, 5, 4, 2], "n_codebooks": 4, "codebook_size": 64, "codebook_dim": 4}
SMALL_44K = {**SMALL, "sample_rate": 44100, "encoder_rates": [2, 4, 8, 8], "decoder_rates": [8, 8, 4, 2]}
# (batch, length) per released config: shorter than a frame (batched), odd (unbatched); 3 s signals run on
# the narrow models above (the same rates at a fraction of the width), where they take a second
LENGTHS = {"16khz": [(2, 200), (1, 4801)], "24khz": [(2, 150), (1, 2401)], "44khz": [(2, 300), (1, 4411)]}


def perturb(model: torch.nn.Module, seed: int, encoder_gain: tuple[float, float] = (1.0, 1.5)) -> None:
    """Weight-norm gains off ‖v‖ (encoder ×1–2.5 = low + span, elsewhere ×0.5–1.5), biases N(0, 0.01²),
    α in 0.5–2, codebooks N(0, 1): diverse codes and unsaturated audio."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("weight_g", "original0"):
                low, span = encoder_gain if name.startswith("encoder") else (0.5, 1.0)
                p.mul_(torch.rand(p.shape, generator=g) * span + low)
            elif leaf == "bias":
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
            elif leaf == "alpha":
                p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.5)
            elif "codebook" in name:
                p.copy_(torch.randn(p.shape, generator=g))


def reference_dac(kwargs: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of the old weight_norm that DAC uses
        model = dac.model.DAC(**kwargs).eval()
    perturb(model, seed + 1)
    return model


def save_reference(model: torch.nn.Module, path) -> None:
    """DAC's own release format (``DAC.save(package=False)``: state_dict + metadata.kwargs)."""
    model.save(str(path), package=False)


def signal(batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * (150 + 100 * torch.rand(batch, 1, 1, generator=g)) * t)
    return tone + 0.1 * torch.randn(batch, 1, length, generator=g)


@torch.no_grad()
def reference_codes(model, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
    return model.encode(model.preprocess(wav, model.sample_rate), n_q)[1]


@torch.no_grad()
def reference_audio(model, codes: torch.Tensor) -> torch.Tensor:
    return model.decode(model.quantizer.from_codes(codes)[0])


@pytest.fixture(scope="module", params=sorted(RELEASED_CONFIGS))
def release(request, tmp_path_factory):
    """(name, reference model, converted model with weight norm folded) at a released config's shapes."""
    name = request.param
    ref = reference_dac(RELEASED_CONFIGS[name], seed=len(name) + int(name[:2]))
    path = tmp_path_factory.mktemp("dac") / f"weights_{name}.pth"
    save_reference(ref, path)
    model, provenance = convert_dac_file(path)
    assert provenance["source_config"]["n_codebooks"] == RELEASED_CONFIGS[name]["n_codebooks"]
    assert model.fold_weight_norm() > 0
    return name, ref, model


@torch.no_grad()
def test_release_configs_give_dacs_codes_and_audio(release):
    name, ref, model = release
    hop = {"16khz": 320, "24khz": 320, "44khz": 512}[name]
    rate = {"16khz": 50.0, "24khz": 75.0, "44khz": 44100 / 512}[name]
    assert (model.samples_per_frame, model.sample_rate, model.frame_rate) == (hop, ref.sample_rate, rate)
    assert model.n_q == ref.n_codebooks and model.codebook_sizes == (1024,) * ref.n_codebooks
    kbps = {"16khz": 6.0, "24khz": 24.0, "44khz": 9 * 10 * 44100 / 512 / 1000}[name]
    assert model.bandwidth() == pytest.approx(kbps) and not model.is_causal
    for seed, (batch, length) in enumerate(LENGTHS[name]):
        wav = signal(batch, length, seed)
        codes = model.encode(wav)
        expected = reference_codes(ref, wav)
        assert codes.shape == (batch, ref.n_codebooks, -(-length // hop))
        assert torch.equal(codes, expected)
        assert len(torch.unique(codes)) > min(codes.numel() // 4, 8)  # not a constant code
        audio = model.decode(codes)
        reference = reference_audio(ref, expected)
        assert audio.shape == (batch, 1, codes.shape[-1] * hop)
        n = reference.shape[-1]  # DAC's decoder gives 8 samples less than N * hop with odd rates
        assert n == codes.shape[-1] * hop - (8 if hop == 320 else 0)
        assert (audio[..., :n] - reference).abs().max() <= 1e-4
        assert torch.all(audio[..., n:] == 0)
        assert reference.std() > 0.01 and reference.abs().max() < 0.99  # neither silent nor saturated
        trimmed = model.decode(codes, length=length)
        assert trimmed.shape[-1] == length and torch.equal(trimmed, audio[..., :length])


@torch.no_grad()
def test_fewer_codebooks_like_n_quantizers(tmp_path):
    ref = reference_dac({**SMALL, "n_codebooks": 12}, seed=4)
    save_reference(ref, tmp_path / "w.pth")
    model = convert_dac_file(tmp_path / "w.pth")[0]
    wav = signal(2, 4001, 1)
    for n_q in (1, 5):
        expected = reference_codes(ref, wav, n_q)
        assert expected.shape[1] == n_q and torch.equal(model.encode(wav, n_q=n_q), expected)
        model.set_num_codebooks(n_q)
        assert torch.equal(model.encode(wav), expected)
        reference = reference_audio(ref, expected)
        assert (model.decode(expected)[..., :reference.shape[-1]] - reference).abs().max() <= 1e-4
    model.set_num_codebooks(12)
    assert model.bandwidth() == pytest.approx(12 * 6 * 50 / 1000)  # 64-entry codebooks: 6 bits
    assert model.bandwidth(5) == pytest.approx(5 * 6 * 50 / 1000)
    with pytest.raises(ValueError, match="n_q must be in 1..12"):
        model.encode(wav, n_q=13)


@pytest.mark.parametrize("kwargs", [SMALL, SMALL_44K], ids=["16khz_rates", "44khz_rates"])
@torch.no_grad()
def test_three_seconds_batched_and_alone(tmp_path, kwargs):
    ref = reference_dac(kwargs, seed=8)
    save_reference(ref, tmp_path / "w.pth")
    model = convert_dac_file(tmp_path / "w.pth")[0]
    model.fold_weight_norm()
    rate, hop = kwargs["sample_rate"], model.samples_per_frame
    wav = signal(2, 3 * rate + 7, 9)
    codes = model.encode(wav)
    assert codes.shape[-1] == -(-(3 * rate + 7) // hop) and torch.equal(codes, reference_codes(ref, wav))
    assert torch.equal(model.encode(wav[1:, :, :3 * rate]), reference_codes(ref, wav[1:, :, :3 * rate]))
    reference = reference_audio(ref, codes)
    audio = model.decode(codes, length=3 * rate + 7)
    assert audio.shape == (2, 1, 3 * rate + 7) and reference.std() > 0.01
    assert (audio - reference[..., :3 * rate + 7]).abs().max() <= 1e-4
    alone = model.decode(codes[1:])
    assert (alone[..., :reference.shape[-1]] - reference[1:]).abs().max() <= 1e-4


@torch.no_grad()
def test_unfolded_and_saved_models_agree(tmp_path):
    ref = reference_dac(SMALL, seed=5)
    save_reference(ref, tmp_path / "small.pth")
    model, provenance = convert_dac_file(tmp_path / "small.pth")
    wav = signal(2, 1601, 2)
    codes = model.encode(wav)
    assert torch.equal(codes, reference_codes(ref, wav))
    model.save_pretrained(tmp_path / "dir", provenance)
    loaded = DAC.from_pretrained(tmp_path / "dir")
    assert loaded.config == model.config and loaded.config.weight_norm
    assert loaded.fold_weight_norm() == sum(1 for k in ref.state_dict() if k.endswith("weight_g"))
    assert torch.equal(loaded.encode(wav), codes)
    assert (loaded.decode(codes) - model.decode(codes)).abs().max() <= 1e-5


def test_release_file_loads_with_weights_only(tmp_path):
    ref = reference_dac(SMALL, seed=5)
    save_reference(ref, tmp_path / "w.pth")
    data = torch.load(tmp_path / "w.pth", weights_only=True)  # what read_dac_file does
    assert set(data) == {"state_dict", "metadata"}
    state, kwargs = read_dac_file(tmp_path / "w.pth")
    assert kwargs == {**SMALL, "latent_dim": 128, "quantizer_dropout": False}
    assert set(state) == set(ref.state_dict())
    # numpy scalars in the metadata (which weights_only refuses) are allowed, and become Python numbers
    torch.save({"state_dict": ref.state_dict(),
                "metadata": {"kwargs": {**SMALL, "n_codebooks": np.int64(4)}, "step": np.float32(2.5)}},
               tmp_path / "np.pth")
    _, kwargs = read_dac_file(tmp_path / "np.pth")
    assert kwargs["n_codebooks"] == 4 and type(kwargs["n_codebooks"]) is int


# ---------------------------------------------------------------------------------------------------
# transformers' DacModel
def hf_model(weight_norm: bool = False):
    transformers = import_reference("transformers")
    config = transformers.DacConfig(encoder_hidden_size=8, downsampling_ratios=[2, 4, 5, 8],
                                    decoder_hidden_size=64, n_codebooks=4, codebook_size=64, codebook_dim=4,
                                    sampling_rate=16000)
    torch.manual_seed(11)
    model = transformers.DacModel(config).eval()
    g = torch.Generator().manual_seed(13)
    with torch.no_grad():  # its init (N(0, 0.02²) convs) leaves the encoder's output all bias: rescale
        for name, p in model.named_parameters():
            if name.endswith("weight") and "codebook" not in name:
                gain = 1.0 if name.startswith("encoder") else 0.75
                p.copy_(torch.randn(p.shape, generator=g) * gain / p[0].numel() ** 0.5)
    if weight_norm:
        model.apply_weight_norm()
    perturb(model, 12, encoder_gain=(0.5, 1.0))
    return model


@pytest.mark.parametrize("weight_norm", [False, True])
@torch.no_grad()
def test_transformers_dac_model(tmp_path, weight_norm):
    reference = hf_model(weight_norm)
    if weight_norm:
        state = {k: v.clone() for k, v in reference.state_dict().items()}
        config = reference.config.to_dict()
    else:
        reference.save_pretrained(tmp_path)  # what users have on disk: config.json + model.safetensors
        config = json.loads((tmp_path / "config.json").read_text())
        state = load_file(str(tmp_path / "model.safetensors"))
    model = dac_from_hf(config, state)
    assert model.config.weight_norm == weight_norm and model.sample_rate == 16000 and model.n_q == 4
    for batch, length in ((2, 200), (1, 1601), (2, 3200)):
        wav = signal(batch, length, length)
        padded = torch.nn.functional.pad(wav, (0, -length % 320))
        expected = reference.encode(padded).audio_codes
        codes = model.encode(wav)
        assert torch.equal(codes, expected) and len(torch.unique(codes)) > min(codes.numel() // 2, 16)
        audio = reference.decode(audio_codes=expected).audio_values  # [B, T']
        ours = model.decode(codes)[:, 0, :audio.shape[-1]]
        assert audio.std() > 0.01 and (ours - audio).abs().max() <= 1e-4


def test_transformers_config_mapping_and_refusals():
    config = {"model_type": "dac", "sampling_rate": 24000, "downsampling_ratios": [2, 4, 5, 8],
              "upsampling_ratios": [8, 5, 4, 2], "hop_length": 512, "n_codebooks": 32, "hidden_size": 1024,
              "encoder_hidden_size": 64, "decoder_hidden_size": 1536, "codebook_dim": 8,
              "codebook_size": 1024, "quantizer_dropout": 0.0, "commitment_loss_weight": 0.25}
    assert dac_config_from_hf(config) == dac_config_from_kwargs(RELEASED_CONFIGS["24khz"], weight_norm=False)
    with pytest.raises(ValueError, match="model_type 'encodec'"):
        dac_config_from_hf({**config, "model_type": "encodec"})
    with pytest.raises(ValueError, match="hidden_size 512"):
        dac_config_from_hf({**config, "hidden_size": 512})
    with pytest.raises(ValueError, match="weights do not fit"):
        dac_from_hf({**config, "n_codebooks": 4, "encoder_hidden_size": 8, "decoder_hidden_size": 64,
                     "hidden_size": 128}, {"encoder.conv1.weight": torch.zeros(8, 1, 7)})


# ---------------------------------------------------------------------------------------------------
# the command line
@torch.no_grad()
def test_convert_command_then_encode_and_decode(tmp_path, capsys):
    ref = reference_dac(SMALL, seed=21)
    ckpt = tmp_path / "weights_16khz.pth"
    save_reference(ref, ckpt)
    out = tmp_path / "dac16"
    assert main(["convert", "--from", "dac", str(ckpt), str(out)]) == 0
    assert "codec convert: dac" in capsys.readouterr()[0]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["kind"] == "dac" and config["n_codebooks"] == 4 and config["encoder_rates"] == [2, 4, 5, 8]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["source"] == "dac" and provenance["source_file"] == str(ckpt.resolve())
    assert provenance["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert provenance["source_config"]["sample_rate"] == 16000

    wav = signal(1, 5000, 4)[0]
    sf.write(tmp_path / "a.wav", wav[0].numpy(), 16000, subtype="FLOAT")
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", str(out)]) == 0
    tokens = load_tokens(tmp_path / "a.npz")
    written = torch.from_numpy(sf.read(tmp_path / "a.wav", dtype="float32")[0])[None, None]
    expected = reference_codes(ref, written)
    assert np.array_equal(np.asarray(tokens.codes).reshape(expected.shape), expected.numpy())
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "b.wav"), "--model", str(out)]) == 0
    decoded, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    reference = reference_audio(ref, expected)[0, 0]
    assert rate == 16000 and decoded.shape == (5000,)
    assert np.abs(decoded[:4992] - reference[:4992].numpy()).max() <= 1e-4

    tokenizer = Tokenizer.from_pretrained(out)  # through the codec-kind registry
    assert isinstance(tokenizer.codec, DAC) and tokenizer.frame_rate == 50.0
    encoded = tokenizer.encode(written[0], 16000)
    assert torch.equal(encoded.codes, expected) and encoded.lengths.tolist() == [16]
    assert (tokenizer.decode(encoded.codes).wav[0, 0, :4992] - reference[:4992]).abs().max() <= 1e-4


@pytest.mark.parametrize("case", ["other_family", "truncated", "unsupported_option", "pickled_object",
                                  "config_mismatch"])
def test_convert_refuses_bad_checkpoints(tmp_path, capsys, case):
    ref = reference_dac(SMALL, seed=1)
    path = tmp_path / "x.pth"
    expected = {"other_family": "not a DAC checkpoint", "truncated": "not a readable PyTorch checkpoint",
                "unsupported_option": "unsupported DAC option 'n_residual'",
                "pickled_object": "not loaded for safety", "config_mismatch": "weights do not fit"}[case]
    if case == "other_family":  # an EnCodec-style bare state dict
        torch.save({"encoder.model.0.conv.conv.weight_g": torch.ones(32, 1, 1)}, path)
    elif case == "truncated":
        save_reference(ref, tmp_path / "full.pth")
        data = (tmp_path / "full.pth").read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif case == "unsupported_option":
        torch.save({"state_dict": ref.state_dict(), "metadata": {"kwargs": {**SMALL, "n_residual": 2}}}, path)
    elif case == "pickled_object":
        torch.save({"state_dict": ref.state_dict(), "metadata": {"kwargs": SMALL, "x": Unsafe()}}, path)
    else:
        kwargs = {**SMALL, "n_codebooks": 5}
        torch.save({"state_dict": ref.state_dict(), "metadata": {"kwargs": kwargs}}, path)
    with pytest.raises(ValueError, match=expected):
        convert_dac_file(path)
    code = main(["convert", "--from", "dac", str(path), str(tmp_path / "out")])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


class Unsafe:
    """An arbitrary class: ``weights_only`` must refuse to rebuild it."""


def test_config_checks():
    with pytest.raises(ValueError, match="decoder_dim 100 is not divisible"):
        DACConfig(decoder_dim=100)
    with pytest.raises(ValueError, match="codebook_dim has 2 entries for 9"):
        DACConfig(codebook_dim=(8, 8))
    assert DACConfig(encoder_dim=32, encoder_rates=(2, 4)).latent_dim == 128
    model = DAC(DACConfig(**{**SMALL, "codebook_dim": [4, 2, 4, 2]}))
    assert [q.codebook.weight.shape[1] for q in model.quantizer.quantizers] == [4, 2, 4, 2]
    with pytest.raises(ValueError, match="mono"):
        model.encode(torch.zeros(1, 2, 320))
    assert model.encode(torch.zeros(2, 1, 0)).shape == (2, 4, 0)
    assert model.decode(torch.zeros(2, 4, 0, dtype=torch.long)).shape == (2, 1, 0)
