"""LAC release files (VampNet's ``codec.pth``) → kind ``lac``: LAC's codes and audio, and VampNet end to end.

LAC is not on PyPI, so ``tools/make_lac_fixtures.py`` ran its code (the commit in
``tests/fixtures/lac/meta.json``) once: a random seeded LAC with the released encoder and quantizer (14
codebooks of 1024 x 8; the first 9 are the VampNet fixtures' codebooks) and a narrow decoder, saved by
``LAC.save(package=False)``, inputs of several lengths and a batch, LAC's codes and decoded audio. Here the
file is converted by ``codec convert --from lac`` and compared; then VampNet's fixture models are converted
with ``--codec`` that directory and run by ``codec vamp``.
"""

from __future__ import annotations

import collections
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference

from funcodec_lite.cli import main
from funcodec_lite.codec.families.lac import LAC, LACConfig
from funcodec_lite.codec.kinds import available_codec_kinds, codec_class
from funcodec_lite.codec.loading import load_model
from funcodec_lite.convert.dac import read_dac_file
from funcodec_lite.convert.lac import convert_lac_file
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.lm.vamp import load_masked_models

FIXTURES = Path(__file__).parent / "fixtures" / "lac"
VAMPNET = Path(__file__).parent / "fixtures" / "vampnet"
META = json.loads((FIXTURES / "meta.json").read_text())
CASES = dict(np.load(FIXTURES / "cases.npz", allow_pickle=False))
NAMES = ["one", "short", "frame", "mid", "long", "batch"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lac") / "codec"
    assert main(["convert", "--from", "lac", str(FIXTURES / "lac.pth"), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def codec(converted) -> LAC:
    model = load_model(converted)
    assert isinstance(model, LAC)
    return model


def test_fixtures_record_the_reference():
    assert META["reference"] == "github.com/hugofloresgarcia/lac@7761206878d1fba79aad314a38f975e9589af0a4"
    assert sum(f.stat().st_size for f in FIXTURES.iterdir()) < 1_500_000
    books = np.load(VAMPNET / "codebooks.npz", allow_pickle=False)["codebooks"]
    state, kwargs = read_dac_file(FIXTURES / "lac.pth")
    assert kwargs == {**META["kwargs"], "quantizer_dropout": False}  # what LAC.save writes
    assert all(np.array_equal(state[f"quantizer.quantizers.{k}.codebook.weight"].numpy(), books[k])
               for k in range(9))
    assert any(key.endswith("mrf_blocks.2.block.2.layer.3.weight_g") for key in state)
    gain, direction = state["decoder.model.0.weight_g"], state["decoder.model.0.weight_v"]
    assert (gain.flatten() - direction.flatten(1).norm(dim=1)).abs().min() > 0.1  # g ≠ ‖v‖


def test_conversion_reads_the_config(converted, codec):
    config = yaml.safe_load((converted / "config.yaml").read_text())
    assert config["kind"] == "lac" and config["decoder_rates"] == [8, 4, 4, 2, 2]
    assert (config["encoder_dim"], config["decoder_dim"], config["n_codebooks"]) == (2, 32, 14)
    provenance = json.loads((converted / "provenance.json").read_text())
    assert provenance["source"] == "lac" and "hugofloresgarcia/lac@7761206" in provenance["reference"]
    assert (codec.sample_rate, codec.samples_per_frame, codec.n_q, codec.codebook_size) == (44100, 512, 14,
                                                                                            1024)
    assert abs(codec.frame_rate - 86.1328125) < 1e-9
    assert codec.describe().startswith("LAC 44100 Hz, 86.13 frames/s (hop 512), 14 x 1024 codebooks")
    assert codec_class("lac") is LAC and "lac" in available_codec_kinds()


@pytest.mark.parametrize("name", NAMES)
def test_codes_and_audio_match_lac(codec, name):
    wav = torch.from_numpy(CASES[f"wav_{name}"])
    expected_codes, expected_audio = CASES[f"codes_{name}"], CASES[f"audio_{name}"]
    with torch.no_grad():
        codes = codec.encode(wav)
        audio = codec.decode(codes)
        trimmed = codec.decode(codes, length=wav.shape[-1])
    frames = -(-wav.shape[-1] // 512)
    assert codes.shape == (wav.shape[0], 14, frames) and np.array_equal(codes.numpy(), expected_codes)
    assert audio.shape == expected_audio.shape == (wav.shape[0], 1, frames * 512)
    assert np.abs(audio.numpy() - expected_audio).max() <= 1e-4
    assert torch.equal(trimmed, audio[..., : wav.shape[-1]])
    assert expected_audio.std() > 1e-3 and len(np.unique(expected_codes)) > 1  # not a trivial model


def test_batch_items_are_independent(codec):
    wav = torch.from_numpy(CASES["wav_batch"])
    with torch.no_grad():
        alone = torch.cat([codec.encode(wav[i : i + 1]) for i in range(wav.shape[0])])
    assert np.array_equal(alone.numpy(), CASES["codes_batch"])
    assert len({tuple(c.flatten()) for c in CASES["codes_batch"]}) == 3


def test_fewer_codebooks_and_vampnets_decode_path(codec):
    wav = torch.from_numpy(CASES["wav_nq4"])
    with torch.no_grad():
        codes = codec.encode(wav, n_q=4)
        audio = codec.decode(codes)
        all_codes = codec.encode(wav)
        all_audio = codec.decode(all_codes)
        full = codec.decode(torch.from_numpy(CASES["codes_long"]))
    assert np.array_equal(codes.numpy(), CASES["codes_nq4"]) and torch.equal(codes, all_codes[:, :4])
    assert np.abs(audio.numpy() - CASES["audio_nq4"]).max() <= 1e-4
    assert (audio - all_audio).abs().max() > 1e-3  # four codebooks decode differently from 14
    # VampNet decodes through quantizer.from_latents of the codebook vectors: the same audio
    assert np.abs(full.numpy() - CASES["audio_vampnet"]).max() <= 1e-4


def test_codec_encode_and_decode_on_the_converted_dir(converted, tmp_path):
    wav = CASES["wav_long"][0, 0]
    sf.write(tmp_path / "a.wav", wav, 44100, subtype="FLOAT")
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", str(converted)]) == 0
    tokens = load_tokens(tmp_path / "a.npz")
    assert np.array_equal(np.asarray(tokens.codes).reshape(CASES["codes_long"].shape), CASES["codes_long"])
    assert main(["decode", str(tmp_path / "a.npz"), str(tmp_path / "b.wav"), "--model", str(converted)]) == 0
    decoded, rate = sf.read(tmp_path / "b.wav", dtype="float32")
    assert rate == 44100 and decoded.shape == wav.shape
    assert np.abs(decoded - CASES["audio_long"][0, 0, : wav.shape[0]]).max() <= 1e-4


def test_config_refuses_what_lac_cannot_be():
    with pytest.raises(ValueError, match="encoder rate 5 is odd"):
        LACConfig(encoder_rates=(2, 4, 5, 8), decoder_rates=(8, 5, 4, 2), decoder_dim=64)
    with pytest.raises(ValueError, match="different hops"):
        LACConfig(decoder_rates=(4, 4, 4, 2, 2), decoder_dim=64)
    with pytest.raises(ValueError, match="latent_dim 512"):
        LACConfig(latent_dim=512)


# ---------------------------------------------------------------------------------------------------
# VampNet end to end: its fixture models with this codec's codebooks
@pytest.fixture(scope="module")
def vampnet_dirs(converted, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vampnet_lac")
    dirs = {name: root / name for name in ("coarse", "c2f")}
    for name, out in dirs.items():
        assert main(["convert", "--from", "vampnet", str(VAMPNET / f"{name}.pth"), str(out),
                     "--codec", str(converted)]) == 0
    return dirs


def test_vampnet_on_the_lac_codec_gives_vampnets_logits(vampnet_dirs, converted):
    coarse, c2f, codec, provenance = load_masked_models(vampnet_dirs["coarse"], vampnet_dirs["c2f"], None,
                                                        torch.device("cpu"))
    assert isinstance(codec, LAC) and provenance["codec"] == str(converted.resolve())
    cases = np.load(VAMPNET / "cases.npz", allow_pickle=False)
    codes = torch.from_numpy(cases["codes"])
    token_mask, fine_mask = torch.from_numpy(cases["token_mask"]), torch.from_numpy(cases["fine_mask"])
    with torch.no_grad():
        got_coarse = coarse(codes[:, :4].masked_fill(token_mask[:, :4], 1024))
        got_c2f = c2f(codes.masked_fill(fine_mask, 1024))
    for got, name, kp in ((got_coarse, "coarse", 4), (got_c2f, "c2f", 5)):
        ref = torch.from_numpy(cases[f"{name}_logits"]).view(1, 1024, -1, kp).permute(0, 3, 2, 1)
        assert (got - ref).abs().max() <= 1e-5


def test_codec_vamp_runs_vampnet_with_the_lac_codec(vampnet_dirs, tmp_path, capsys):
    rate = 44100
    t = torch.arange(rate // 5) / rate
    sf.write(tmp_path / "in.wav", (0.3 * torch.sin(2 * torch.pi * 220 * t)).numpy(), rate)
    args = ["vamp", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--model",
            str(vampnet_dirs["coarse"]), "--c2f", str(vampnet_dirs["c2f"]), "--mask", "periodic:3,width:1",
            "--steps", "2", "--seed", "0"]
    assert main(args) == 0
    assert "tokens generated" in capsys.readouterr()[0]
    out, out_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert out_rate == rate and out.shape == (rate // 5,) and np.abs(out).max() > 1e-3
    assert main([*args[:2], str(tmp_path / "again.wav"), *args[3:]]) == 0
    assert np.array_equal(sf.read(tmp_path / "again.wav", dtype="float32")[0], out)  # seeded


# ---------------------------------------------------------------------------------------------------
class Unsafe:
    """An arbitrary class: the loader must refuse to rebuild it."""


def _save_variant(path: Path, change) -> None:
    state, kwargs = read_dac_file(FIXTURES / "lac.pth")
    data = {"state_dict": dict(state), "metadata": {"kwargs": dict(kwargs)}}
    change(data)
    torch.save(data, path)


@pytest.mark.parametrize("case", ["dac_checkpoint", "lac_to_dac", "truncated", "pickled_object", "package",
                                  "unknown_option", "odd_rate", "missing_weight", "missing", "no_checkpoint"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    path = tmp_path / "x.pth"
    source = "lac"
    expected = {"dac_checkpoint": "a DAC checkpoint: convert it with --from dac",
                "lac_to_dac": "a LAC checkpoint (VampNet's codec.pth), not DAC: convert it with --from lac",
                "truncated": "not a readable PyTorch checkpoint", "pickled_object": "not loaded for safety",
                "package": "a torch.package archive",
                "unknown_option": "unsupported LAC option 'latent_dim'", "odd_rate": "encoder rate 5 is odd",
                "missing_weight": "missing ['decoder.blocks.1.mrf.stacks.2.0.conv1",
                "missing": "no such file", "no_checkpoint": "needs a CHECKPOINT"}[case]
    if case == "dac_checkpoint":  # DAC's own release format, written by its DAC.save
        dac = import_reference("dac")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dac.model.DAC(encoder_dim=4, decoder_dim=16, n_codebooks=2, codebook_size=16).save(
                str(path), package=False)
    elif case == "lac_to_dac":
        path, source = FIXTURES / "lac.pth", "dac"
    elif case == "truncated":
        data = (FIXTURES / "lac.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "pickled_object":
        _save_variant(path, lambda d: d["metadata"].update(extra=collections.OrderedDict(x=Unsafe())))
    elif case == "package":  # audiotools' package.pth: torch.package pickles the model with its code
        with torch.package.PackageExporter(str(path)) as exporter:
            exporter.save_pickle("LAC", "LAC.pth", {"w": torch.ones(2)})
    elif case == "unknown_option":
        _save_variant(path, lambda d: d["metadata"]["kwargs"].update(latent_dim=64))
    elif case == "odd_rate":
        _save_variant(path, lambda d: d["metadata"]["kwargs"].update(encoder_rates=[2, 4, 5, 8],
                                                                      decoder_rates=[8, 5, 4, 2, 2]))
    elif case == "missing_weight":
        _save_variant(path, lambda d: d["state_dict"].pop(
            "decoder.model.2.block.2.mrf_blocks.2.block.0.layer.1.weight_v"))
    elif case == "missing":
        path = tmp_path / "absent.pth"
    if case not in ("lac_to_dac", "no_checkpoint"):
        with pytest.raises(ValueError, match=re.escape(expected)):
            convert_lac_file(path)
    capsys.readouterr()  # what writing the bad file printed (torch.package's warnings) is not the CLI's
    args = ["convert", "--from", source, str(path), str(tmp_path / "out")]
    code = main(args[:3] + args[4:] if case == "no_checkpoint" else args)
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
