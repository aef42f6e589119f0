"""The engine's weight EMA and learning-rate schedules: the EMA equals a naive loop and resumes bit-exactly;
the learning rate at each step equals the closed form of warmup, exponential and cosine decay."""

import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from funcodec_lite.train.checkpoint import checkpoint_dirs
from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask


class _Linear(TrainTask):
    """A linear map fitted by SGD to random targets; records the weights after every update."""

    ema_modules = ("model",)

    def __init__(self):
        self.history: list[torch.Tensor] = []

    def build(self):
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))  # a buffer (running mean) too
        return {"model": model}, {"model": torch.optim.SGD(model.parameters(), lr=0.1)}

    def dataset(self):
        generator = torch.Generator().manual_seed(0)
        return TensorDataset(torch.randn(12, 4, generator=generator), torch.randn(12, 3, generator=generator))

    def step(self, batch, engine):
        x, y = batch
        loss = (engine.modules["model"](x) - y).pow(2).mean()
        engine.update("model", loss)
        self.history.append({k: v.detach().clone() for k, v in engine.unwrap("model").state_dict().items()})
        return {"loss": loss.item()}


def _config(**changes) -> LoopConfig:
    return LoopConfig(**{"steps": 6, "batch_size": 4, "seed": 1, "checkpoint_every": 3,
                           "ema_decay": 0.8, **changes})


def test_ema_equals_a_naive_loop():
    torch.manual_seed(0)
    task = _Linear()
    engine = Engine(task, _config(), None)
    initial = {k: v.detach().clone() for k, v in engine.unwrap("model").state_dict().items()}
    engine.fit()
    decay = 0.8
    expected = {k: v.clone() for k, v in initial.items()}
    for weights in task.history:
        for key in ("0.weight", "0.bias", "1.weight", "1.bias"):
            expected[key] = decay * expected[key] + (1 - decay) * weights[key]
    averaged = engine.averaged("model").state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias"):
        torch.testing.assert_close(averaged[key], expected[key], rtol=1e-6, atol=1e-7, msg=key)
    for key in ("0.weight", "1.weight"):  # an average, not the last weights (0.bias gets no gradient)
        assert not torch.allclose(averaged[key], task.history[-1][key]), key
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):  # buffers are the model's
        assert torch.equal(averaged[key], task.history[-1][key]), key
    assert not any(p.requires_grad for p in engine.averaged("model").parameters())
    off = Engine(_Linear(), _config(ema_decay=0.0), None)
    assert off.averaged("model") is off.unwrap("model") and not off.ema


def test_ema_resumes_bit_exactly_and_starts_from_the_weights_when_switched_on(tmp_path):
    Engine(_Linear(), _config(), tmp_path / "straight").fit()
    Engine(_Linear(), _config(), tmp_path / "resumed").fit(max_steps=3)
    torch.manual_seed(1234)
    Engine(_Linear(), _config(), tmp_path / "resumed").fit(resume=True)
    a, b = (load_file(str(checkpoint_dirs(tmp_path / d)[-1] / "ema-model.safetensors"))
            for d in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint written without EMA: the average begins at the resumed weights
    Engine(_Linear(), _config(ema_decay=0.0), tmp_path / "late").fit(max_steps=3)
    late = Engine(_Linear(), _config(), tmp_path / "late")
    assert late.resume()
    weights = late.unwrap("model").state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in late.averaged("model").state_dict().items())
    with pytest.raises(ValueError, match="ema_decay"):
        _config(ema_decay=1.0)


class _Rates(_Linear):
    """Records the learning rate each step ran at."""

    def __init__(self):
        super().__init__()
        self.rates: list[float] = []

    def step(self, batch, engine):
        self.rates.append(engine.optimizers["model"].param_groups[0]["lr"])
        return super().step(batch, engine)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_learning_rate_follows_the_closed_form_across_a_resume(tmp_path, schedule):
    settings = {"steps": 9, "warmup_steps": 3, "lr_schedule": schedule, "lr_decay": 0.5,
                "lr_decay_every": 2, "min_lr_ratio": 0.2, "ema_decay": 0.0}
    first, second = _Rates(), _Rates()
    Engine(first, _config(**settings), tmp_path).fit(max_steps=5)
    Engine(second, _config(**settings), tmp_path).fit(resume=True)
    rates = first.rates + second.rates
    warmup = [1 / 3, 2 / 3, 1]  # steps 0-2; then k = step - 3 = 0..5 steps after the warmup
    if schedule == "step":  # halved every 2 steps
        expected = warmup + [1, 1, 0.5, 0.5, 0.25, 0.25]
    else:  # 0.2 + 0.8 * (1 + cos(pi * k / 6)) / 2 over the 9 - 3 = 6 steps after the warmup
        expected = warmup + [0.2 + 0.4 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert rates == pytest.approx([0.1 * f for f in expected], rel=1e-12)
    assert _config(lr_schedule="cosine", steps=10, min_lr_ratio=0.1).lr_factor(10) == pytest.approx(0.1)
    assert _config(lr_schedule="cosine", steps=10, min_lr_ratio=0.1).lr_factor(25) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lr_schedule"):
        _config(lr_schedule="linear")
