"""Fine-tuning (``codec train --init-from MODEL_DIR``): a run that starts from a codec model directory.

The run takes the directory's architecture (the codec section of its ``config.yaml``), its weights and its
codebooks (EMA averages, cluster sizes and the ``inited`` flags, so k-means does not run again); the
optimizers, the discriminators and the step count start fresh. Directories saved with weight norm folded
(the shipped default model, converted checkpoints folded for inference) are re-parametrised: for each
folded weight w, g = ||w|| (per output slice, along the training model's weight-norm dim) and v = w, so
the network computes the same function.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.training.config import TrainConfig, apply_override
from funcodec_lite.utils.config import ConfigError, load_yaml
from funcodec_lite.utils.weights import ModelDirError, config_to_dict, load_model_dir, read_model_config

IGNORED_KEYS = ("name",)  # codec config keys that do not describe the network


def model_dir_codec_data(model_dir: str | Path) -> dict:
    """The codec section (plain data) of a codec model directory's ``config.yaml``.

    Raises:
        ModelDirError: no such directory, missing files, or a model of another kind.
    """
    kind, data = read_model_config(model_dir)
    if kind != "codec":
        raise ModelDirError(f"{model_dir}: a {kind} model directory, not a codec")
    return data


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted key, value in a, value in b) where two nested config data differ; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key in IGNORED_KEYS and not prefix:
                continue
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{prefix}{i}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def finetune_config(path: str | Path, overrides: list[str] | None, model_dir: str | Path) -> TrainConfig:
    """The training config of a run that starts from ``model_dir``.

    When the training YAML has no ``codec`` section, the model directory's is used (and ``--set codec.…``
    overrides apply to it). When it has one, it must describe the same codec (its ``name`` aside):
    otherwise a `ConfigError` names the first differing key.
    """
    model_data = model_dir_codec_data(model_dir)
    with open(path, encoding="utf-8") as handle:
        data = load_yaml(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    own_codec = "codec" in data
    if not own_codec:
        data["codec"] = copy.deepcopy(model_data)
    for item in overrides or []:
        apply_override(data, item)
    config = TrainConfig.from_dict(data)
    if own_codec:
        try:
            model_codec = CodecConfig.from_dict(model_data)
        except (ConfigError, TypeError, ValueError) as error:
            raise ModelDirError(f"{model_dir}: bad config.yaml ({error})") from error
        found = first_difference(config_to_dict(config.codec), config_to_dict(model_codec))
        if found is not None:
            key, ours, theirs = found
            raise ConfigError(f"{path}: codec.{key} is {ours!r} but {model_dir} has {theirs!r} "
                              "(omit the codec section to take the model directory's)")
    return config


def load_init_weights(model: nn.Module, model_dir: str | Path) -> int:
    """Loads a codec model directory's weights and codebook buffers into ``model`` (a training codec).

    Weights folded in the directory are re-parametrised where ``model`` has weight norm (g = ||w||, v = w),
    so ``model`` computes what the saved model computes. Returns how many weights were re-parametrised.

    Raises:
        ModelDirError: a bad directory, or weights that do not fit ``model``'s architecture.
    """
    saved = load_model_dir(model_dir, kind="codec")
    state = dict(saved.state_dict())
    restored = 0
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if parametrize.is_parametrized(module, "weight") and f"{prefix}weight" in state:
            weight_norm = module.parametrizations.weight[0]
            g, v = weight_norm.right_inverse(state.pop(f"{prefix}weight"))
            state[f"{prefix}parametrizations.weight.original0"] = g
            state[f"{prefix}parametrizations.weight.original1"] = v
            restored += 1
    try:
        with torch.no_grad():
            model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[0][:300]
        raise ModelDirError(f"{model_dir}: weights do not fit the training codec ({detail})") from error
    return restored


__all__ = ["finetune_config", "first_difference", "load_init_weights", "model_dir_codec_data"]
