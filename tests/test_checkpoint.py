"""Training checkpoints: pickle-free, atomic, pruned, and an exact resume."""

import random

import numpy as np
import torch

from funcodec_lite.train.checkpoint import (
    checkpoint_dirs,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ELU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.9))
    return model, optimizer


def _step(model, optimizer):
    x = torch.randn(16, 4)  # draws from the global generator: part of the state that must resume
    noise = float(np.random.rand()) + random.random()
    loss = (model(x) - noise).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_resume_continues_exactly(tmp_path):
    model, optimizer = _setup()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    for _ in range(4):
        _step(model, optimizer)
    straight = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer = _setup()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    for _ in range(2):
        _step(model, optimizer)
    save_checkpoint(tmp_path, 2, {"generator": model}, {"generator": optimizer}, extra={"epoch": 0})
    torch.manual_seed(99), np.random.seed(99), random.seed(99)  # a fresh process has other states

    model, optimizer = _setup(seed=5)
    state = load_checkpoint(latest_checkpoint(tmp_path), {"generator": model}, {"generator": optimizer})
    assert state["step"] == 2 and state["extra"] == {"epoch": 0}
    for _ in range(2):
        _step(model, optimizer)
    for key, value in model.state_dict().items():
        assert torch.equal(value, straight[key]), key


def test_keeps_last_k_and_ignores_partial_writes(tmp_path):
    model, optimizer = _setup()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"generator": model}, {"generator": optimizer}, keep_last=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000003", "step-00000004"]
    (tmp_path / "checkpoints" / ".step-00000005.tmp").mkdir()  # a crash mid-write
    (tmp_path / "checkpoints" / "step-00000006").mkdir()  # no state.json: incomplete
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    files = sorted(p.name for p in latest_checkpoint(tmp_path).iterdir())
    assert files == ["generator.safetensors", "optim-generator.safetensors", "rng.safetensors", "state.json"]
