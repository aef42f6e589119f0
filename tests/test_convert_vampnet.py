"""VampNet checkpoints → ``vampnet_lm``: VampNet's own logits and sampled tokens, from its own files.

VampNet is not on PyPI, so ``tools/make_vampnet_fixtures.py`` ran its code (the commit in
``tests/fixtures/vampnet/meta.json``) once: random seeded coarse (4 codebooks) and coarse-to-fine (9, 4 given)
models with the released models' structure at a small width, saved by ``VampNet.save(package=False)`` with
a training history; tokens, masks, VampNet's logits and its ``generate`` output (batch 1, seeded). Here a
DAC 44.1 kHz model (``dac`` package, full size) gets the fixture's codebooks, is saved with ``DAC.save`` and
converted by ``codec convert --from dac``; both VampNet files are converted with ``--codec`` that directory,
loaded as ``codec vamp`` loads them, and compared.
"""

from __future__ import annotations

import collections
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from reference_libs import import_reference
from tiny_models import make_codec

from funcodec_lite.cli import main
from funcodec_lite.codec.families.dac import DAC, DACConfig
from funcodec_lite.convert.vampnet import convert_vampnet_file, read_vampnet_file
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate
from funcodec_lite.lm.vamp import VampConfig, load_masked_models, vamp
from funcodec_lite.lm.vampnet import VampNetLM, relative_buckets

dac = import_reference("dac")

FIXTURES = Path(__file__).parent / "fixtures" / "vampnet"
META = json.loads((FIXTURES / "meta.json").read_text())
CASES = dict(np.load(FIXTURES / "cases.npz", allow_pickle=False))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """{'dac': the converted DAC 44.1 kHz dir, 'coarse', 'c2f': the converted VampNet dirs}."""
    root = tmp_path_factory.mktemp("vampnet")
    books = np.load(FIXTURES / "codebooks.npz", allow_pickle=False)["codebooks"]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of the weight_norm DAC uses
        codec = dac.model.DAC().eval()  # 44.1 kHz: 9 codebooks of 1024 x 8
    with torch.no_grad():
        for quantizer, book in zip(codec.quantizer.quantizers, books):
            quantizer.codebook.weight.copy_(torch.from_numpy(book))
    codec.save(str(root / "dac.pth"), package=False)
    dirs = {name: root / name for name in ("dac", "coarse", "c2f")}
    assert main(["convert", "--from", "dac", str(root / "dac.pth"), str(dirs["dac"])]) == 0
    (root / "dac.pth").unlink()
    for name in ("coarse", "c2f"):
        assert main(["convert", "--from", "vampnet", str(FIXTURES / f"{name}.pth"), str(dirs[name]),
                     "--codec", str(dirs["dac"])]) == 0
    return dirs


@pytest.fixture(scope="module")
def models(converted):
    coarse, c2f, codec, _ = load_masked_models(converted["coarse"], converted["c2f"], None,
                                               torch.device("cpu"))
    return coarse, c2f, codec


def test_fixtures_record_the_reference():
    assert META["reference"].endswith("@72e2675790091fe28ecfd8391303a46b25a703db")
    assert sum(f.stat().st_size for f in FIXTURES.iterdir()) < 2_000_000
    assert META["typical_filter_has_no_effect"] is True  # VampNet's generate discards its typical filter


def test_conversion_reads_the_structure(models, converted):
    coarse, c2f, codec = models
    assert isinstance(coarse, VampNetLM) and isinstance(c2f, VampNetLM)
    assert (coarse.config.n_q, coarse.config.n_conditioning, c2f.config.n_q, c2f.config.n_conditioning) == (
        4, 0, 9, 4)
    assert (coarse.config.dim, coarse.config.n_layers, coarse.config.n_heads) == (16, 3, 2)
    # the codec's own codebooks embed the tokens; the MASK rows are VampNet's special vectors
    state, _ = read_vampnet_file(FIXTURES / "c2f.pth")
    for q in range(9):
        assert torch.equal(c2f.latents[q, :1024], codec.quantizer.quantizers[q].codebook.weight)
        assert torch.equal(c2f.latents[q, 1024], state["embedding.special.MASK"][q])
    provenance = json.loads((converted["c2f"] / "provenance.json").read_text())
    assert provenance["source"] == "vampnet" and len(provenance["sha256"]) == 64
    assert provenance["vampnet_kwargs"]["n_conditioning_codebooks"] == 4


def test_relative_buckets_are_t5s():
    offsets = torch.tensor([-300, -128, -40, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 40, 127, 128, 300])
    # 16 buckets per side, 8 exact, log-spaced up to 128: the values VampNet's _relative_position_bucket
    # gives at the reference commit
    expected = [15, 15, 12, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 28, 31, 31, 31]
    assert relative_buckets(offsets, 32, 128).tolist() == expected


def _reference_logits(name: str, kp: int) -> torch.Tensor:
    """VampNet's logits [1, V, (T Kp)] as ours [1, Kp, T, V]."""
    ref = torch.from_numpy(CASES[f"{name}_logits"])
    return ref.view(1, 1024, -1, kp).permute(0, 3, 2, 1)


def test_logits_match_vampnets_forward(models):
    coarse, c2f, _ = models
    codes = torch.from_numpy(CASES["codes"])
    token_mask, fine_mask = torch.from_numpy(CASES["token_mask"]), torch.from_numpy(CASES["fine_mask"])
    with torch.no_grad():
        got_coarse = coarse(codes[:, :4].masked_fill(token_mask[:, :4], 1024))
        got_c2f = c2f(codes.masked_fill(fine_mask, 1024))
        both = c2f(torch.cat([codes.masked_fill(fine_mask, 1024), codes], dim=0))  # batch of 2
    ref_coarse, ref_c2f = _reference_logits("coarse", 4), _reference_logits("c2f", 5)
    assert got_coarse.shape == (1, 4, 12, 1024) and got_c2f.shape == (1, 5, 12, 1024)
    assert (got_coarse - ref_coarse).abs().max() <= 1e-5
    assert (got_c2f - ref_c2f).abs().max() <= 1e-5
    assert ref_coarse.abs().max() > 1.0 and ref_coarse.std() > 0.1  # not a trivial model
    assert (both[:1] - ref_c2f).abs().max() <= 1e-5


def test_padding_frames_are_never_attended_to(models):
    _, c2f, _ = models
    codes = torch.from_numpy(CASES["codes"]).masked_fill(torch.from_numpy(CASES["fine_mask"]), 1024)
    padded = torch.cat([codes, torch.randint(0, 1024, (1, 9, 5), generator=torch.Generator().manual_seed(1))],
                       dim=-1)
    with torch.no_grad():
        alone, with_padding = c2f(codes), c2f(padded, frames=torch.tensor([12]))
    assert (with_padding[:, :, :12] - alone).abs().max() <= 1e-5
    assert (c2f(padded)[:, :, :12] - alone).abs().max() > 1e-3  # the padding would change them otherwise


@pytest.mark.parametrize("setting", range(2))
def test_maskgit_gives_vampnets_tokens(models, setting):
    coarse, c2f, _ = models
    steps, temperature, mask_temperature = META["settings"][setting]
    config = MaskGITConfig(steps=steps, temperature=temperature, mask_temperature=mask_temperature)
    codes = torch.from_numpy(CASES["codes"])
    token_mask, fine_mask = torch.from_numpy(CASES["token_mask"]), torch.from_numpy(CASES["fine_mask"])
    got = maskgit_generate(coarse, codes[:, :4], token_mask[:, :4], config,
                           generator=torch.Generator().manual_seed(META["seed"])).codes
    expected = torch.from_numpy(CASES[f"coarse_generate_{setting}"])
    assert torch.equal(got, expected)
    assert (got != codes[:, :4])[token_mask[:, :4]].float().mean() > 0.8  # tokens were generated
    assert torch.equal(got[~token_mask[:, :4]], codes[:, :4][~token_mask[:, :4]])
    got = maskgit_generate(c2f, codes, fine_mask, config,
                           generator=torch.Generator().manual_seed(META["seed"])).codes
    assert torch.equal(got, torch.from_numpy(CASES[f"c2f_generate_{setting}"]))


@pytest.mark.parametrize("setting", range(2))
def test_vamp_chain_gives_vampnets_tokens(models, setting):
    """Coarse then coarse-to-fine on one random stream, whole frames masked (where our per-frame choice of
    fine tokens and VampNet's agree)."""
    coarse, c2f, _ = models
    steps, temperature, mask_temperature = META["settings"][setting]
    config = VampConfig(window=0, c2f_window=0, maskgit=MaskGITConfig(
        steps=steps, temperature=temperature, mask_temperature=mask_temperature))
    codes, mask = torch.from_numpy(CASES["codes"]), torch.from_numpy(CASES["column_mask"])
    got = vamp(coarse, c2f, codes, mask, config, generator=torch.Generator().manual_seed(META["seed"]))
    assert torch.equal(got, torch.from_numpy(CASES[f"chain_{setting}"]))


def test_codec_vamp_runs_the_converted_models(converted, tmp_path, capsys):
    rate = 44100
    t = torch.arange(rate // 5) / rate
    sf.write(tmp_path / "in.wav", (0.3 * torch.sin(2 * torch.pi * 220 * t)).numpy(), rate)
    args = ["vamp", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--model", str(converted["coarse"]),
            "--c2f", str(converted["c2f"]), "--mask", "periodic:3,width:1", "--steps", "2"]
    assert main(args) == 0
    assert "tokens generated" in capsys.readouterr()[0]
    out, out_rate = sf.read(tmp_path / "out.wav")
    assert out_rate == rate and out.shape == (rate // 5,) and np.abs(out).max() > 0
    # the coarse-to-fine model is no coarse model
    args[4], args[6] = str(converted["c2f"]), str(converted["coarse"])
    assert main(args) == 2
    assert "coarse-to-fine" in capsys.readouterr()[1]


def _save_variant(path: Path, change) -> None:
    state, kwargs = read_vampnet_file(FIXTURES / "coarse.pth")
    data = {"state_dict": dict(state), "metadata": {"kwargs": dict(kwargs)}}
    change(data)
    torch.save(data, path)


class Unsafe:
    """An arbitrary class: the loader must refuse to rebuild it."""


@pytest.mark.parametrize("case", ["dac_checkpoint", "truncated", "pickled_object", "package", "flash_attn",
                                  "unknown_weights", "no_codec", "codec_not_dac", "other_codec",
                                  "too_few_codebooks", "missing"])
def test_bad_input_is_one_line_and_exit_2(converted, tmp_path, capsys, case):
    path = tmp_path / "x.pth"
    codec = str(converted["dac"])
    expected = {"dac_checkpoint": "not a VampNet checkpoint",
                "truncated": "not a readable PyTorch checkpoint",
                "pickled_object": "not loaded for safety", "package": "a torch.package archive",
                "flash_attn": "not supported: flash_attn",
                "unknown_weights": "does not know", "no_codec": "needs --codec",
                "codec_not_dac": "not a codec", "other_codec": "must be a DAC",
                "too_few_codebooks": "at least 9 codebooks", "missing": "no such file"}[case]
    if case == "dac_checkpoint":  # another model's release file (DAC's format: state_dict + kwargs)
        torch.save({"state_dict": {"encoder.block.0.weight": torch.ones(2)}, "metadata": {"kwargs": {}}},
                   path)
    elif case == "truncated":
        data = (FIXTURES / "coarse.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "pickled_object":
        _save_variant(path, lambda d: d["metadata"].update(logs={"x": collections.OrderedDict(x=Unsafe())}))
    elif case == "package":  # VampNet's package.pth: torch.package pickles the model with its code
        with torch.package.PackageExporter(str(path)) as exporter:
            exporter.save_pickle("VampNet", "VampNet.pth", {"w": torch.ones(2)})
    elif case == "flash_attn":
        _save_variant(path, lambda d: d["metadata"]["kwargs"].update(flash_attn=True))
    elif case == "unknown_weights":
        extra = {"transformer.layers.0.extra.weight": torch.ones(1)}
        _save_variant(path, lambda d: d["state_dict"].update(extra))
    elif case == "codec_not_dac":
        path = FIXTURES / "coarse.pth"
        codec = str(converted["coarse"])
    elif case in ("other_codec", "too_few_codebooks"):  # our own codec; a DAC of 4 codebooks for the c2f
        path = FIXTURES / "c2f.pth"
        codec = str(tmp_path / "codec")
        if case == "other_codec":
            make_codec().save_pretrained(codec)
        else:
            DAC(DACConfig(encoder_dim=4, decoder_dim=16, n_codebooks=4)).save_pretrained(codec)
    elif case == "missing":
        path = tmp_path / "absent.pth"
    else:
        path = FIXTURES / "coarse.pth"
    if case not in ("no_codec",):
        with pytest.raises(ValueError, match=expected):
            convert_vampnet_file(path, codec)
    args = ["convert", "--from", "vampnet", str(path), str(tmp_path / "out")]
    code = main(args if case == "no_codec" else [*args, "--codec", codec])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
