"""Fine-tuning (`codec train --init-from`): the run starts where the model was (weights, codebooks, folded
weight norm re-derived), adapts faster than a fresh run, takes the model's codec section, and refuses bad
directories in one line."""

import json

import pytest
import torch
import yaml
from test_trainer import TINY, _data_dir

from funcodec_lite import Codec
from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.finetune import finetune_config, first_difference, load_init_weights
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.codec.training.validate import validate
from funcodec_lite.utils.weights import read_model_config

DEFAULT_MODEL = "funcodec_lite/codec/pretrained/default"
NO_DISC = {"disc_start_step": 1000, "checkpoint_every": 1000, "valid_every": 1000}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _data_dir(root, "train", 6, 0), _data_dir(root, "valid", 2, 1), _data_dir(root, "other", 6, 7)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, data):
    """A tiny codec trained 40 steps (weight norm kept, codebooks k-means-initialised and trained), and
    the same model saved with weight norm folded."""
    root = tmp_path_factory.mktemp("pretrained")
    trainer = Trainer(_config(lr=5e-3, max_steps=40, **NO_DISC), data[0], None, root / "run")
    trainer.fit()
    folded = Codec.from_pretrained(root / "run" / "model")
    assert folded.fold_weight_norm() > 0
    folded.save_pretrained(root / "folded")
    return root / "run" / "model", root / "folded"


def _config(lr: float = 1e-3, codec: bool = True, **schedule) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    data["schedule"].update(schedule)
    data["optim"]["lr"] = lr
    if not codec:
        del data["codec"]
    return TrainConfig.from_dict(data)


def _yaml(tmp_path, codec: bool = False, **schedule) -> str:
    data = json.loads(json.dumps(TINY))
    data["schedule"].update(schedule)
    if not codec:
        del data["codec"]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _clip() -> torch.Tensor:
    t = torch.arange(2400) / 8000
    return (0.3 * torch.sin(2 * torch.pi * 330 * t) * torch.linspace(1, 0.3, 2400))[None, None]


@pytest.mark.parametrize("which", ["weight_norm", "folded"])
def test_the_training_codec_computes_what_the_model_dir_computes(tmp_path, data, pretrained, which):
    model_dir = pretrained[0] if which == "weight_norm" else pretrained[1]
    saved = Codec.from_pretrained(model_dir)
    config = finetune_config(_yaml(tmp_path), None, model_dir)
    trainer = Trainer(config, data[0], None, tmp_path / "exp", init_from=model_dir)
    generator = trainer.engine.unwrap("generator")
    # training keeps weight norm: g and v are parameters, w = g v / ||v|| is the saved weight
    assert any(".parametrizations.weight.original0" in k for k in generator.state_dict())
    for name, buffer in saved.quantizer.named_buffers():  # codebooks, averages, counts, inited flags
        assert torch.equal(buffer, generator.quantizer.get_buffer(name)), name
    assert all(layer.inited.item() == 1.0 for layer in generator.quantizer.layers)  # no k-means again
    generator.eval()
    with torch.no_grad():
        ours, theirs = generator(_clip(), n_q=4), saved(_clip(), n_q=4)
    assert torch.equal(ours.codes, theirs.codes)
    torch.testing.assert_close(ours.wav, theirs.wav, rtol=1e-5, atol=1e-6)
    assert trainer.step == 0 and not trainer.opt_g.state  # a fresh optimizer at step 0


def test_the_shipped_default_model_loads_into_a_training_codec():
    """The shipped model (float16 storage; no weight norm: the frame-rate codec has none) continues."""
    saved = Codec.from_pretrained(DEFAULT_MODEL)
    _, data = read_model_config(DEFAULT_MODEL)
    config = TrainConfig.from_dict({"codec": data})
    torch.manual_seed(0)
    model = Codec(config.codec)
    assert load_init_weights(model, DEFAULT_MODEL) == 0  # nothing to re-parametrise
    wav = torch.randn(1, 1, 4000, generator=torch.Generator().manual_seed(0)) * 0.05
    with torch.no_grad():
        ours, theirs = model.eval()(wav, n_q=4), saved(wav, n_q=4)
    assert torch.equal(ours.codes, theirs.codes)
    torch.testing.assert_close(ours.wav, theirs.wav, rtol=1e-4, atol=1e-6)


def test_first_validation_of_the_fine_tuning_run_is_the_models_own(tmp_path, data, pretrained):
    model_dir = pretrained[1]
    config = finetune_config(_yaml(tmp_path, valid_every=1000), None, model_dir)
    trainer = Trainer(config, data[0], data[1], tmp_path / "exp", init_from=model_dir)
    trainer.fit(max_steps=1)
    first = json.loads((tmp_path / "exp" / "valid.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0
    own = validate(Codec.from_pretrained(model_dir), trainer.valid_set, config, tmp_path / "own")
    assert own and set(own) <= set(first)
    for key, value in own.items():
        assert first[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    provenance = json.loads((tmp_path / "exp" / "model" / "provenance.json").read_text())
    assert provenance["init_from"] == str(model_dir) and provenance["steps"] == 1


def test_fine_tuning_adapts_faster_than_a_fresh_run(tmp_path, data, pretrained):
    """10 steps on other tones: the run that starts from the pretrained model ends far below a fresh one."""
    losses = {}
    for name, init_from in (("scratch", None), ("init", pretrained[0])):
        trainer = Trainer(_config(lr=5e-3, max_steps=10, **NO_DISC), data[2], None, tmp_path / name,
                          init_from=init_from)
        wav = next(iter(trainer.batches()))
        trainer.fit()
        with torch.no_grad():
            trainer.generator.eval()
            losses[name] = trainer.loss(wav, trainer.generator(wav, n_q=4).wav).total.item()
    assert losses["init"] < 0.8 * losses["scratch"], losses


def test_resume_wins_over_init_from(tmp_path, data, pretrained):
    def run(exp, max_steps, resume):
        trainer = Trainer(_config(max_steps=4, checkpoint_every=2, disc_start_step=1), data[0], None, exp,
                          init_from=pretrained[0])
        trainer.fit(max_steps=max_steps, resume=resume)
        return trainer

    run(tmp_path / "straight", 4, False)
    run(tmp_path / "resumed", 2, False)
    torch.manual_seed(1234)
    second = run(tmp_path / "resumed", 4, True)
    assert second.step == 4
    a, b = (load_model(tmp_path / d / "model").state_dict() for d in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_codec_section_comes_from_the_model_dir_or_must_agree(tmp_path, pretrained):
    model_dir = pretrained[0]
    config = finetune_config(_yaml(tmp_path), ["optim.lr=2e-4"], model_dir)
    assert config.codec == Codec.from_pretrained(model_dir).config and config.optim.lr == 2e-4
    same = finetune_config(_yaml(tmp_path, codec=True), None, model_dir)  # the same codec: accepted
    assert same.codec.quantizer == config.codec.quantizer
    with pytest.raises(ValueError, match=r"codec\.model\.n_filters is 8 but .* has 4"):
        finetune_config(_yaml(tmp_path, codec=True), ["codec.model.n_filters=8"], model_dir)
    assert first_difference({"a": {"b": [1, 2]}, "name": "x"}, {"a": {"b": [1, 3]}, "name": "y"}) == (
        "a.b.1", 2, 3)
    assert first_difference({"a": 1, "name": "x"}, {"a": 1, "name": "y"}) is None  # the name is not a shape


def test_codec_train_init_from_end_to_end_and_bad_dirs(tmp_path, data, pretrained, capsys):
    exp = tmp_path / "exp"
    args = ["train", "--config", _yaml(tmp_path), "--train", str(data[0]), "--exp-dir", str(exp),
            "--max-steps", "2"]
    assert main([*args, "--init-from", str(pretrained[1])]) == 0
    assert load_model(exp / "model").n_q == 4
    saved = yaml.safe_load((exp / "train_config.yaml").read_text())
    assert saved["codec"]["model"]["n_filters"] == 4  # the model directory's codec section
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "config.yaml").write_text("kind: pixelsnail\n")
    (tmp_path / "lm" / "model.safetensors").write_bytes(b"")
    cases = {str(tmp_path / "missing"): "no such model directory",
             str(tmp_path / "lm"): "a pixelsnail model directory, not a codec",
             str(data[0]): "model directory is missing"}
    for directory, message in cases.items():
        capsys.readouterr()
        assert main([*args, "--init-from", directory]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err, err
    # weights that do not fit the (overridden) architecture: one line too
    assert main([*args, "--init-from", str(pretrained[0]), "--set", "codec.quantizer.n_q=8",
                 "--set", "codec.quantizer.dropout_choices=[8]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights do not fit the training codec" in err and "\n" not in err, err
