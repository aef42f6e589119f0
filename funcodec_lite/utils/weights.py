"""Model directories: ``model.safetensors`` plus ``config.json`` (no pickle), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from funcodec_lite.utils.atomic import atomic_path

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or corrupt."""


def save_weights(path: str | os.PathLike, module: nn.Module) -> None:
    """Writes the module's state dict (on CPU) as safetensors, atomically; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, 0o644)  # safetensors creates its files readable by the owner only


def save_model_dir(directory: str | os.PathLike, module: nn.Module, config: dict) -> None:
    """Writes the module's state dict and a JSON config into ``directory`` (created if needed)."""
    directory = Path(directory)
    save_weights(directory / WEIGHTS_FILE, module)
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")


def load_model_dir(directory: str | os.PathLike,
                   map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Reads what `save_model_dir` wrote: (state dict, config dict).

    Raises:
        ModelDirError: a file is missing or unreadable.
    """
    directory = Path(directory)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise ModelDirError(f"{directory}: no {name}")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
    except Exception as error:  # safetensors and json raise several types for corrupt files
        raise ModelDirError(f"{directory}: unreadable model files ({error})") from error
    return state, config
