"""Codec training with the generator's weight EMA and the learning-rate schedules: exact resume with the
average, validation and export of the average, and the learning rate of G and D against the closed form."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from test_trainer import TINY, _data_dir

from funcodec_lite import Codec
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.train.checkpoint import checkpoint_dirs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _data_dir(root, "train", 6, 0), _data_dir(root, "valid", 2, 1)


def _config(optim: dict | None = None, **schedule) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    data["schedule"].update(schedule)
    data["optim"].update(optim or {})
    return TrainConfig.from_dict(data)


def _checkpoint(exp_dir) -> dict[str, torch.Tensor]:
    latest = checkpoint_dirs(exp_dir)[-1]
    return {f"{p.stem}/{k}": v for p in sorted(latest.glob("*.safetensors")) if p.stem != "rng"
            for k, v in load_file(str(p)).items()}


def test_generator_ema_resumes_exactly_and_is_what_validation_and_export_use(tmp_path, data):
    config = _config(ema_decay=0.9, max_steps=4, checkpoint_every=2, disc_start_step=1)
    Trainer(config, data[0], None, tmp_path / "straight").fit()
    Trainer(config, data[0], None, tmp_path / "resumed").fit(max_steps=2)
    torch.manual_seed(1234)
    second = Trainer(config, data[0], data[1], tmp_path / "resumed")
    second.fit(resume=True)
    a, b = _checkpoint(tmp_path / "straight"), _checkpoint(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(k.startswith("ema-generator/") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    engine = second.engine
    average, live = engine.averaged("generator"), engine.unwrap("generator")
    assert average is not live
    exported = Codec.from_pretrained(tmp_path / "resumed" / "model").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in average.state_dict().items())
    assert any(not torch.equal(exported[k], v) for k, v in live.state_dict().items())
    seen = []
    hook = average.encoder.register_forward_pre_hook(lambda module, args: seen.append(1))
    results = second.task.validate(engine)
    hook.remove()
    assert seen and "nq4/mel_distance" in results  # validation ran the average
    with pytest.raises(ValueError, match="ema_decay"):
        _config(ema_decay=-0.1)


@pytest.mark.parametrize("scheduler", ["none", "exponential", "cosine"])
def test_generator_and_discriminator_rates_follow_the_schedule(tmp_path, data, scheduler):
    optim = {"lr": 1e-3, "disc_lr": 4e-3, "scheduler": scheduler, "gamma": 0.9, "warmup_steps": 2,
             "min_lr_ratio": 0.1}
    trainer = Trainer(_config(optim, max_steps=6, disc_start_step=0), data[0], None, tmp_path)
    batches = trainer.batches()
    seen = []
    for _ in range(6):
        trainer.train_step(next(batches))
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
        trainer.step += 1

    def factor(step: int) -> float:
        if step < 2:
            return (step + 1) / 2
        if scheduler == "exponential":
            return 0.9 ** (step - 2)
        if scheduler == "cosine":
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 4))
        return 1.0

    assert [g for g, _ in seen] == pytest.approx([1e-3 * factor(s) for s in range(6)], rel=1e-12)
    assert [d for _, d in seen] == pytest.approx([4e-3 * factor(s) for s in range(6)], rel=1e-12)
    with pytest.raises(ValueError, match="optim.scheduler"):
        _config({"scheduler": "linear"})
    with pytest.raises(ValueError, match="min_lr_ratio"):
        _config({"min_lr_ratio": 1.5})
