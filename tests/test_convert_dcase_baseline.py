"""`codec convert --from dcase-baseline`: the DCASE 2023 Task 7 baseline's VQ-VAE, PixelSNAIL and HiFi-GAN.

The reference (github.com/DCASE2023-Task7-Foley-Sound-Synthesis/dcase2023_task7_baseline @ 411ab9e) is not on
PyPI: tools/make_dcase_baseline_fixtures.py built its own models with random seeded, perturbed weights, saved
their checkpoints in its formats and its outputs in tests/fixtures/dcase_baseline/. The converted models must
give the same code maps, the prior's logits and decoded mels within 1e-5, the vocoder's audio within 1e-4, and
the same sampled map for one clip (inference.py's rule: ``multinomial(softmax(logits))`` per raster position
on a seeded generator, which our incremental sampler follows; see docs/recipes/dcase_foley.md).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from funcodec_lite.cli import main
from funcodec_lite.convert.dcase_baseline import (
    CLASS_NAMES,
    REFERENCE_COMMIT,
    BaselineRelease,
    convert_release,
    read_checkpoint,
    write_model_dirs,
)
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.lm.pixelsnail import PixelSNAIL, PixelSNAILConfig
from funcodec_lite.lm.pixelsnail_sampling import incremental_logits, sample_incremental
from funcodec_lite.utils.weights import load_model_dir, read_provenance
from funcodec_lite.vocoders.training import load_any_vocoder

FIXTURES = Path(__file__).parent / "fixtures" / "dcase_baseline"
RELEASE = BaselineRelease(FIXTURES / "vqvae.pth", FIXTURES / "pixelsnail.pt", FIXTURES / "g_small",
                          FIXTURES / "hifigan_config.json")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    with np.load(FIXTURES / "reference.npz", allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    assert str(data.pop("reference_commit")) == REFERENCE_COMMIT
    return {key: torch.from_numpy(value) for key, value in data.items()}


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    write_model_dirs(convert_release(RELEASE), out)
    return out


def test_vqvae_gives_the_baselines_code_maps_and_mels(converted_dir, reference):
    model = MelVQVAE.from_pretrained(converted_dir / "vqvae" / "model")
    assert (model.config.channel, model.config.n_res_block, model.config.n_res_channel) == (16, 2, 8)
    assert (model.config.embed_dim, model.config.codebook_size) == (8, 16)
    mel = reference["mel"].float()
    with torch.no_grad():
        codes = model.encode(mel)
        decoded = model.decode_codes(reference["codes"])
    assert codes.unique().numel() == 16  # every code in use: the comparison is not trivial
    assert torch.equal(codes, reference["codes"])
    assert (decoded - reference["decoded"]).abs().max().item() <= 1e-5
    assert reference["decoded"].std().item() > 0.1


def test_prior_gives_the_baselines_logits(converted_dir, reference):
    model = load_model_dir(converted_dir / "prior" / "model", PixelSNAIL.model_kind)
    cfg = model.config
    assert (cfg.height, cfg.width, cfg.n_codes, cfg.n_classes) == (20, 86, 16, 7)
    assert (cfg.channel, cfg.kernel_size, cfg.n_block, cfg.n_res_block, cfg.res_channel) == (32, 5, 2, 2, 8)
    assert (cfg.n_out_res_block, cfg.class_dim, cfg.class_map, cfg.shifted_stems) == (1, 0, True, True)
    codes, labels, expected = reference["codes"], reference["labels"].long(), reference["logits"]
    with torch.no_grad():
        logits = model(codes, labels)
    assert (logits - expected).abs().max().item() <= 1e-5
    assert expected.std().item() > 0.2
    cached = incremental_logits(model, codes, labels)  # the sampler's path
    assert (cached - expected).abs().max().item() <= 1e-5
    # the class map matters: the other class's logits are far from these
    with torch.no_grad():
        assert (model(codes, labels.flip(0)) - expected).abs().max().item() > 0.1


def test_incremental_sampler_draws_the_baselines_map(converted_dir, reference):
    model = load_model_dir(converted_dir / "prior" / "model", PixelSNAIL.model_kind)
    label, seed = int(reference["sample_label"]), int(reference["sample_seed"])
    codes = sample_incremental(model, torch.tensor([label]), torch.Generator().manual_seed(seed))
    assert codes.unique().numel() > 8
    assert torch.equal(codes, reference["sampled"])
    other = sample_incremental(model, torch.tensor([label]), torch.Generator().manual_seed(seed + 1))
    assert (other != reference["sampled"]).float().mean().item() > 0.5


def test_vocoder_gives_the_baselines_audio(converted_dir, reference):
    model = load_any_vocoder(converted_dir / "vocoder" / "model", for_inference=True)
    with torch.no_grad():
        audio = model(reference["decoded"][0][..., :64])  # the baseline's wrapper: one mel [1, 80, F]
    expected = reference["audio"]
    assert audio.shape == expected.shape == (1, 1, 64 * 256)
    assert (audio - expected).abs().max().item() <= 1e-4
    assert 0.05 < expected.std().item() and (expected.abs() > 0.99).float().mean().item() < 0.01


def test_provenance_records_sources_and_classes(converted_dir):
    prior = read_provenance(converted_dir / "prior" / "model")
    assert prior["reference_commit"] == REFERENCE_COMMIT and len(prior["sha256"]) == 64
    assert prior["class_names"] == CLASS_NAMES
    assert prior["dropped"] == ["cond_resnet", "embedNet"]
    assert prior["training_args"]["n_res_channel"] == 8 and prior["training_args"]["sched"] is None
    assert read_provenance(converted_dir / "vocoder" / "model")["config_file"].endswith("hifigan_config.json")


def test_shifted_stems_change_only_the_first_row_and_column_and_keep_the_cached_path_exact():
    torch.manual_seed(0)
    config = PixelSNAILConfig(height=4, width=6, n_codes=8, channel=16, res_channel=8, n_block=1,
                              n_res_block=1, class_dim=0)
    plain = PixelSNAIL(config).eval()
    shifted = PixelSNAIL(PixelSNAILConfig(**{**config.__dict__, "shifted_stems": True})).eval()
    shifted.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for stem in (plain.stem_above, plain.stem_left, shifted.stem_above, shifted.stem_left):
            stem.bias.fill_(0.5)
    codes, labels = torch.randint(0, 8, (2, 4, 6)), torch.tensor([1, 3])
    with torch.no_grad():
        a, b = plain(codes, labels), shifted(codes, labels)
    assert (a - b)[:, :, 0, 0].abs().min().item() > 0  # position 0 differs (no stem bias at all)
    assert (incremental_logits(shifted, codes, labels) - b).abs().max().item() <= 1e-5
    # removing the stems' biases makes the two layouts the same function
    with torch.no_grad():
        for stem in (plain.stem_above, plain.stem_left, shifted.stem_above, shifted.stem_left):
            stem.bias.zero_()
        assert torch.allclose(plain(codes, labels), shifted(codes, labels), atol=1e-6)


# --- files that are not the baseline's -------------------------------------------------------------------

def test_the_priors_args_load_without_unpickling_other_objects(tmp_path):
    data = read_checkpoint(RELEASE.pixelsnail)
    assert isinstance(data["args"], argparse.Namespace)
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "args": shutil.copyfile}, evil)  # a callable: refused
    with pytest.raises(ValueError, match=r"not loaded for safety \(shutil.copyfile\)"):
        read_checkpoint(evil)


@pytest.mark.parametrize("case", ["swapped", "truncated", "text", "vocoder_config"])
def test_bad_files_are_one_line_errors(tmp_path, case):
    release = RELEASE
    if case == "swapped":
        release = BaselineRelease(RELEASE.pixelsnail, RELEASE.vqvae, RELEASE.hifigan, RELEASE.hifigan_config)
        match = "pixelsnail.pt: not a DCASE baseline VQ-VAE checkpoint"
    elif case == "truncated":
        cut = tmp_path / "cut.pt"
        cut.write_bytes(RELEASE.pixelsnail.read_bytes()[:5000])
        release = BaselineRelease(RELEASE.vqvae, cut, RELEASE.hifigan, RELEASE.hifigan_config)
        match = "cut.pt: not a readable PyTorch checkpoint"
    elif case == "text":
        text = tmp_path / "g_text"
        text.write_text("hello")
        release = BaselineRelease(RELEASE.vqvae, RELEASE.pixelsnail, text, RELEASE.hifigan_config)
        match = "g_text: not a readable PyTorch checkpoint"
    else:  # the generator with V1's config: its layers do not fit
        release = BaselineRelease(RELEASE.vqvae, RELEASE.pixelsnail, RELEASE.hifigan, None)
        match = "g_small: not a HiFi-GAN generator checkpoint"
    with pytest.raises(ValueError, match=match) as error:
        convert_release(release)
    assert "\n" not in str(error.value)


def test_cli_convert_and_bad_input(tmp_path, capsys, reference):
    out = tmp_path / "released"
    args = ["convert", "--from", "dcase-baseline", "--vqvae", str(RELEASE.vqvae), "--pixelsnail",
            str(RELEASE.pixelsnail), "--hifigan", str(RELEASE.hifigan), "--hifigan-config",
            str(RELEASE.hifigan_config)]
    assert main([*args, str(out)]) == 0
    assert "--exp" in capsys.readouterr().out
    for part in ("vqvae", "prior", "vocoder"):
        assert (out / part / "model" / "model.safetensors").is_file()
    model = MelVQVAE.from_pretrained(out / "vqvae" / "model")
    assert torch.equal(model.encode(reference["mel"].float()), reference["codes"])
    assert main([*args, str(out)]) == 2  # already there
    assert "--force" in capsys.readouterr().err
    bad = tmp_path / "bad"
    swapped = ["convert", "--from", "dcase-baseline", "--vqvae", str(RELEASE.hifigan), "--pixelsnail",
               str(RELEASE.pixelsnail), "--hifigan", str(RELEASE.hifigan), str(bad)]
    assert main(swapped) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a DCASE baseline VQ-VAE checkpoint" in err
    assert not bad.exists()  # nothing half-written
    assert main(["convert", "--from", "dcase-baseline", "--vqvae", str(RELEASE.vqvae), str(bad)]) == 2
    assert "missing --pixelsnail, --hifigan" in capsys.readouterr().err
    assert main(["convert", "--from", "dac", str(bad)]) == 2
    assert "needs a CHECKPOINT" in capsys.readouterr().err


def test_recipe_stage6_generator_runs_the_converted_release(converted_dir, reference):
    """``run.sh --exp DIR --stage 6``: the run finds the converted vocoder and classes; its generator draws
    the baseline's map for the baseline's seed and decodes it with the converted VQ-VAE and HiFi-GAN."""
    from funcodec_lite.audio.mel_frontend import fit_length
    from funcodec_lite.foley.generator import remove_dc
    from funcodec_lite.recipes.dcase_foley.generation import build_generator
    from funcodec_lite.recipes.dcase_foley.run import FoleyRun

    conf = Path(__file__).parents[1] / "egs" / "dcase_foley" / "conf" / "baseline_vq.yaml"
    run = FoleyRun(config_path=conf, exp=converted_dir)
    assert run.vocoder_exp == converted_dir / "vocoder" and run.class_names == CLASS_NAMES
    model = build_generator(run).prepare_for_inference()
    label, seed = int(reference["sample_label"]), int(reference["sample_seed"])
    wav = model.generate(torch.tensor([label]), torch.Generator().manual_seed(seed))
    parts = model.parts
    with torch.no_grad():
        mel = parts["autoencoder"].decode_codes(reference["sampled"])[:, 0]
        expected = parts["vocoder"](mel)[:, 0]
    expected = fit_length(remove_dc(expected, 22050), 88200).clamp(-1, 1)  # our clip format (by design)
    assert wav.shape == (1, 88200)
    assert (wav - expected).abs().max().item() <= 1e-5
