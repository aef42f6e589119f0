"""Codec training options through the trainer: the exponential scheduler, disc_lr, the LSGAN objective,
no gradient clipping, bf16 and fp16 training, and `codec train` end to end."""

import json

import pytest
import torch
import yaml
from test_trainer import TINY, _data_dir

from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.train.checkpoint import checkpoint_dirs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _data_dir(root, "train", 6, 0), _data_dir(root, "valid", 2, 1)


def _config(**sections) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    for section, changes in sections.items():
        if isinstance(changes, dict):
            data[section].update(changes)
        else:
            data[section] = changes
    return TrainConfig.from_dict(data)


def _lrs(trainer: Trainer) -> tuple[float, float]:
    return trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]


def test_exponential_scheduler_and_disc_lr(tmp_path, data):
    gamma = 0.9
    config = _config(optim={"lr": 1e-3, "disc_lr": 4e-3, "scheduler": "exponential", "gamma": gamma},
                     schedule={"max_steps": 3, "checkpoint_every": 100})
    trainer = Trainer(config, data[0], None, tmp_path / "a")
    assert _lrs(trainer) == (1e-3, 4e-3)
    trainer.fit()
    g, d = _lrs(trainer)  # the third step (step index 2) ran at lr * gamma^2
    assert g == pytest.approx(1e-3 * gamma**2) and d == pytest.approx(4e-3 * gamma**2)
    flat = Trainer(_config(optim={"lr": 1e-3}, schedule={"max_steps": 3}), data[0], None, tmp_path / "b")
    flat.fit()
    assert _lrs(flat) == (1e-3, 1e-3)  # no scheduler; disc_lr defaults to lr


def test_lsgan_objective_through_the_trainer(tmp_path, data):
    trainer = Trainer(_config(gan="lsgan", schedule={"disc_start_step": 0}), data[0], None, tmp_path)
    real = [(torch.tensor([[0.5, 1.5]]), [])]  # (logits, feature maps) of one discriminator
    fake = [(torch.tensor([[0.25, -0.5]]), [])]
    terms = trainer.loss.discriminator_loss(real, fake)
    expected = ((1 - 0.5) ** 2 + (1 - 1.5) ** 2) / 2 + (0.25**2 + 0.5**2) / 2  # mean (1 - D(x))^2 + D(G(z))^2
    assert terms.total.item() == pytest.approx(expected)
    before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    step_terms = trainer.train_step(next(trainer.batches()))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))
    assert all(torch.isfinite(torch.tensor(v)) for v in step_terms.values())


def test_no_gradient_clipping_reports_the_norm(tmp_path, data):
    config = _config(optim={"grad_clip": 0.0}, schedule={"disc_start_step": 0})
    trainer = Trainer(config, data[0], None, tmp_path)
    wav = next(trainer.batches())
    terms = trainer.train_step(wav)
    norms = [p.grad.norm() for p in trainer.generator.parameters() if p.grad is not None]
    assert terms["grad_norm_g"] == pytest.approx(float(torch.stack(norms).norm()), rel=1e-5)
    assert terms["grad_norm_d"] > 0


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_training(tmp_path, data, precision, dtype):
    # fp16 starts at scale 2^16: the first steps overflow and are skipped while the scale backs off
    config = _config(schedule={"mixed_precision": precision, "max_steps": 8, "disc_start_step": 0,
                               "checkpoint_every": 100})
    trainer = Trainer(config, data[0], None, tmp_path)
    seen = []
    hook = trainer.generator.encoder.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    trainer.fit()
    hook.remove()
    assert seen and set(seen) == {dtype}  # the encoder ran under autocast
    params = list(trainer.generator.parameters())
    assert all(p.dtype == torch.float32 for p in params)  # master weights stay float32
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    state = json.loads((checkpoint_dirs(tmp_path)[-1] / "state.json").read_text())
    scalers = state["extra"]["scalers"]
    assert set(scalers) == {"generator", "discriminator"}
    if precision == "fp16":
        # one GradScaler per optimizer, each with its own history
        assert 0 < scalers["generator"]["scale"] < 2.0**16
        assert scalers["generator"]["scale"] == trainer.engine.scalers["generator"].get_scale()
    else:
        assert all(s == {} for s in scalers.values())  # bf16 needs no scaling


def test_codec_train_command_end_to_end(tmp_path, data, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(TINY))
    exp = tmp_path / "exp"
    args = ["train", "--config", str(config), "--train", str(data[0]), "--valid", str(data[1]),
            "--exp-dir", str(exp), "--max-steps", "2", "--set", "schedule.valid_every=2"]
    assert main(args) == 0
    codec = load_model(exp / "model")
    assert codec.n_q == 4 and codec.sample_rate == 8000
    assert [p.name for p in checkpoint_dirs(exp)] == ["step-00000002"]
    assert json.loads((exp / "valid.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert yaml.safe_load((exp / "model" / "config.yaml").read_text())["kind"] == "codec"
    assert json.loads((exp / "model" / "provenance.json").read_text())["steps"] == 2
    # resumed to 4 steps: continues from the checkpoint
    assert main([*args[:-4], "--max-steps", "4", "--resume"]) == 0
    assert [p.name for p in checkpoint_dirs(exp)] == ["step-00000002", "step-00000004"]
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "missing.yaml"), "--train", str(data[0]),
                 "--exp-dir", str(exp)]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.yaml" in err and "\n" not in err and "Traceback" not in err
