"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory ``<exp>/checkpoints/step-00001000/`` holding

- ``<name>.safetensors`` for each module (generator, discriminator),
- ``optim-<name>.safetensors`` for each optimizer's per-parameter state,
- ``state.json``: step, epoch, position in the epoch, optimizer hyper-parameters, scheduler state and the
  random generators' states (the torch CPU state is stored as a tensor in ``rng.safetensors``).

The directory is written under a temporary name and renamed into place, so a crash never leaves a
half-written checkpoint that ``--resume`` would pick up.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step-(\d{8})$")


def checkpoint_dirs(exp_dir: str | Path) -> list[Path]:
    """Complete checkpoints under ``exp_dir/checkpoints``, oldest first."""
    root = Path(exp_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(exp_dir)
    return found[-1] if found else None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """The random generators' states: torch CPU (and CUDA) as tensors, numpy and Python as JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    exp_dir: str | Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    extra: dict | None = None,
    keep_last: int = 3,
) -> Path:
    """Writes ``exp_dir/checkpoints/step-<step>`` atomically and deletes all but the newest ``keep_last``.

    Args:
        exp_dir: experiment directory.
        step: the number of optimisation steps done.
        modules: named modules whose ``state_dict`` is saved (``.safetensors``).
        optimizers: named optimizers whose state is saved.
        extra: JSON-serialisable training state (epoch, position, scheduler state, ...).
        keep_last: checkpoints to keep (at least 1).
    Returns:
        the checkpoint directory.
    """
    root = Path(exp_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, module in modules.items():
            tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"))
        optim_meta = {}
        for name, optimizer in optimizers.items():
            tensors, optim_meta[name] = _optimizer_tensors(optimizer)
            save_file(tensors, str(tmp / f"optim-{name}.safetensors"))
        rng_tensors, rng_meta = rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        state = {"step": step, "optimizers": optim_meta, "rng": rng_meta, "extra": extra or {}}
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoint_dirs(exp_dir)[: -max(1, keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    directory: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    restore_rng: bool = True,
) -> dict:
    """Loads a checkpoint written by ``save_checkpoint`` into ``modules`` and ``optimizers``.

    Returns:
        the state dict: ``step``, ``extra`` (as saved).
    """
    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    for name, module in modules.items():
        device = next(iter(module.state_dict().values())).device
        module.load_state_dict(load_file(str(directory / f"{name}.safetensors"), device=str(device)))
    for name, optimizer in optimizers.items():
        _load_optimizer(optimizer, load_file(str(directory / f"optim-{name}.safetensors")),
                        state["optimizers"][name])
    if restore_rng:
        set_rng_state(load_file(str(directory / "rng.safetensors")), state["rng"])
    return state
