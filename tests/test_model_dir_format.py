"""The one model-directory format: every kind saves and loads through one loader, with one-line errors."""

import json
import shutil

import pytest
import torch
import yaml
from tiny_models import tiny_config

from funcodec_lite import MODEL_KINDS, load_model_dir
from funcodec_lite.cli import main
from funcodec_lite.codec.kinds import CODEC_KINDS
from funcodec_lite.codec.loading import default_model_dir
from funcodec_lite.codec.model import Codec
from funcodec_lite.foley.classifier import ClassifierConfig, FoleyClassifier
from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.lm import PixelSNAIL, PixelSNAILConfig
from funcodec_lite.lm.codec_lm import CodecLM, CodecLMConfig
from funcodec_lite.lm.masked import MaskedLM, MaskedLMConfig
from funcodec_lite.lm.multiscale import MultiScaleConfig, MultiScaleLM
from funcodec_lite.lm.nar import NARCodecLM, NARConfig
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.lm.vampnet import VampNetLM, VampNetLMConfig
from funcodec_lite.utils.weights import (
    ModelDirError,
    read_model_config,
    read_provenance,
    save_model_dir,
)
from funcodec_lite.vocoders.hifigan import HiFiGANGenerator, hifigan_tiny


def _models() -> dict[str, tuple[torch.nn.Module, torch.Tensor | tuple]]:
    """One small model of every kind, with an input for it."""
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 8) - 5
    codes = torch.randint(0, 8, (1, 2, 4))
    small = TransformerConfig(dim=16, n_layers=1, n_heads=2)
    bidirectional = TransformerConfig(dim=16, n_layers=1, n_heads=2, causal=False)
    return {
        "codec": (Codec(tiny_config()), (torch.randn(1, 1, 1600) * 0.1,)),
        "mel_vqvae": (MelVQVAE(MelVQVAEConfig(strides=(4, 2), channel=8, n_res_channel=4, embed_dim=8,
                                              codebook_size=16)), (torch.randn(1, 1, 80, 344),)),
        "pixelsnail": (PixelSNAIL(PixelSNAILConfig(height=4, width=6, n_codes=8, n_classes=2, channel=8,
                                                   n_block=1, n_res_block=1, res_channel=8, n_head=2,
                                                   class_dim=4)),
                       (torch.randint(0, 8, (1, 4, 6)), torch.tensor([1]))),
        "hifigan": (HiFiGANGenerator(hifigan_tiny()), (mel,)),
        "foley_classifier": (FoleyClassifier(ClassifierConfig(channels=(4, 8), embed_dim=8, num_classes=3)),
                             (mel,)),
        "codec_lm": (CodecLM(CodecLMConfig(n_q=2, card=8, n_classes=2, transformer=small)),
                     (codes, _prefix)),
        "nar_lm": (NARCodecLM(NARConfig(n_q=2, card=8, transformer=bidirectional)),
                   (codes, torch.tensor([4]), torch.tensor([0]), torch.tensor([1]), _prefix)),
        "multiscale_lm": (MultiScaleLM(MultiScaleConfig(n_q=2, card=8, global_transformer=small,
                                                        local_transformer=small)), (codes, _prefix)),
        "masked_lm": (MaskedLM(MaskedLMConfig(n_q=2, n_conditioning=1, card=8, transformer=bidirectional)),
                      (codes, _prefix)),
        "vampnet_lm": (VampNetLM(VampNetLMConfig(n_q=2, n_conditioning=1, card=8, latent_dim=4, dim=16,
                                                 n_layers=1, n_heads=2)), (codes, _prefix)),
    }


class _Prefix:
    """Stands for the model's own condition prefix (built by the model being called)."""


_prefix = _Prefix()


def _output(model, inputs):
    if any(x is _prefix for x in inputs):
        prefix = model.conditioner(1, torch.device("cpu"))
        inputs = tuple(prefix if x is _prefix else x for x in inputs)
    with torch.no_grad():
        out = model.eval()(*inputs)
    return out.wav if hasattr(out, "wav") else out.mel if hasattr(out, "mel") else out


def test_every_kind_round_trips_through_the_one_loader(tmp_path):
    models = _models()
    # the vocoder kinds and the Foley generator round-trip in their own tests (test_wavenet, test_student,
    # test_flows, test_foley_generator, test_foley_stages: every vocoder kind through the recipe)
    elsewhere = {"wavenet", "student", "waveglow", "flowavenet", "griffinlim", "foley_generator"}
    elsewhere |= set(CODEC_KINDS) - {"codec"}  # the converted codec families: their own exactness tests
    assert set(models) | elsewhere == set(MODEL_KINDS)
    for kind, (model, inputs) in models.items():
        directory = tmp_path / kind
        save_model_dir(directory, model, {"steps": 7, "data": "somewhere"})
        assert sorted(p.name for p in directory.iterdir()) == ["config.yaml", "model.safetensors",
                                                               "provenance.json"]
        assert yaml.safe_load((directory / "config.yaml").read_text())["kind"] == kind
        provenance = read_provenance(directory)
        assert provenance["steps"] == 7 and provenance["kind"] == kind and provenance["code_version"]
        loaded = load_model_dir(directory, kind)
        assert type(loaded) is type(model) and not loaded.training
        assert loaded.config == model.config, kind
        torch.testing.assert_close(_output(loaded, inputs), _output(model, inputs), rtol=0, atol=0)


def test_wrong_kind_and_broken_directories_are_one_line(tmp_path):
    model, _ = _models()["pixelsnail"]
    directory = tmp_path / "prior"
    save_model_dir(directory, model)
    cases = {}
    with pytest.raises(ModelDirError) as cases["kind"]:
        load_model_dir(directory, "codec")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.yaml").write_text("kind: pixelsnail\nchannel: [unclosed\n")
    (tmp_path / "bad" / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    with pytest.raises(ModelDirError) as cases["yaml"]:
        load_model_dir(tmp_path / "bad")
    config = yaml.safe_load((directory / "config.yaml").read_text())
    (tmp_path / "bad" / "config.yaml").write_text(yaml.safe_dump({**config, "channel": 16}))
    with pytest.raises(ModelDirError) as cases["shapes"]:
        load_model_dir(tmp_path / "bad")
    (tmp_path / "bad" / "config.yaml").write_text(yaml.safe_dump({**config, "colour": "blue"}))
    with pytest.raises(ModelDirError) as cases["unknown"]:
        load_model_dir(tmp_path / "bad")
    with pytest.raises(ModelDirError) as cases["missing"]:
        load_model_dir(tmp_path / "nothing")
    expected = {"kind": "a pixelsnail model directory, not a codec", "yaml": "unreadable config.yaml",
                "shapes": "weights do not fit", "unknown": "colour", "missing": "no such model directory"}
    for case, info in cases.items():
        message = str(info.value)
        assert expected[case] in message and "\n" not in message, (case, message)


def test_codec_directories_without_a_kind_read_as_codecs(tmp_path):
    """Directories saved before config.yaml carried a ``kind`` (the earlier shipped models) are codecs."""
    config = yaml.safe_load((default_model_dir() / "config.yaml").read_text())
    config.pop("kind")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(default_model_dir() / "model.safetensors", tmp_path / "model.safetensors")
    kind, data = read_model_config(tmp_path)
    assert kind == "codec" and data["arch"] == "vocos" and "kind" not in data


def test_codec_info_describes_any_kind(tmp_path, capsys):
    for kind in ("codec", "mel_vqvae"):
        model, _ = _models()[kind]
        save_model_dir(tmp_path / kind, model, {"steps": 3})
        assert main(["info", str(tmp_path / kind), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        parameters = sum(p.numel() for p in model.parameters())
        assert info["model_kind"] == kind and info["steps"] == 3
        if kind == "codec":
            assert info["n_q"] == model.n_q and "name" not in info  # an unnamed model has no name line
        else:
            assert info["parameters"] == parameters
