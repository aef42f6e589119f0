"""The one model-directory format of the toolkit, and its one loader.

Every model the toolkit trains (codec, mel VQ-VAE, PixelSNAIL, HiFi-GAN, the Foley classifier, and the
token models to come) is saved as a directory of

- ``config.yaml``: ``kind: <model kind>`` and the model's config fields (plain YAML data),
- ``model.safetensors``: the state dict (nothing is unpickled, ever),
- ``provenance.json`` (optional): how it was made: training steps and minutes, data, code version.

A model class takes part by having ``model_kind`` (a class attribute), a dataclass ``config`` attribute
(its class: ``config_class``) and a constructor ``cls(config)``. Directories written before ``kind``
existed (the codec's ``config.yaml``) read as ``kind: codec``.

This module names no model: a kind is known once the module that defines its class has been imported
(`model_class` looks among the imported classes that set ``model_kind`` themselves), and `load_model_as`
loads a directory into a class its caller holds. The table of every kind's module, and the loader that
imports them, is the package's entry point, above the models: ``funcodec_lite.load_model_dir``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from funcodec_lite.utils.atomic import atomic_path
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
PROVENANCE_FILE = "provenance.json"
LEGACY_KIND = "codec"

class ModelDirError(ValueError):
    """A model directory that cannot be used: missing, incomplete, corrupt or of another kind."""


def config_to_dict(config: Any) -> dict:
    """Plain YAML data of a config dataclass (tuples become lists)."""
    data = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    return json.loads(json.dumps(data))


def config_from_dict(cls: type, data: dict) -> Any:
    """A config dataclass from plain data (its ``from_dict`` when it has one)."""
    return cls.from_dict(data) if hasattr(cls, "from_dict") else build_dataclass(cls, data, "config")


def save_weights(path: str | os.PathLike, module: nn.Module) -> None:
    """Writes the module's state dict (on CPU) as safetensors, atomically; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, 0o644)  # safetensors creates its files readable by the owner only


def code_version() -> str:
    """The package version, with the git commit when run from a checkout."""
    try:
        version = importlib.metadata.version(__name__.partition(".")[0])  # the distribution: this package
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version


def save_model_dir(directory: str | os.PathLike, model: nn.Module, provenance: dict | None = None) -> None:
    """Writes ``model`` (with ``model_kind`` and ``config``) as a model directory, each file atomically.

    Args:
        directory: created if needed.
        model: the module; its weights are saved as they are (weight norm included).
        provenance: JSON data on how it was made (steps, data, ...); the code version and time are added.
    """
    directory = Path(directory)
    kind = getattr(type(model), "model_kind", None)
    if not isinstance(kind, str) or not kind:
        raise ModelDirError(f"{type(model).__name__} has no model_kind")
    save_weights(directory / WEIGHTS_FILE, model)
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(yaml.safe_dump({"kind": kind, **config_to_dict(model.config)}, sort_keys=False))
    record = {"kind": kind, "code_version": code_version(),
              "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(provenance or {})}
    with atomic_path(directory / PROVENANCE_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def read_model_config(directory: str | os.PathLike) -> tuple[str, dict]:
    """(kind, config data) of a model directory, with one-line errors.

    Raises:
        ModelDirError: no such directory, a missing file, or an unreadable config.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: no such model directory")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        raise ModelDirError(f"{directory}: model directory is missing {', '.join(missing)}")
    try:
        data = load_yaml((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ModelDirError(f"{directory}: unreadable {CONFIG_FILE} ({_first_line(error)})") from error
    if not isinstance(data, dict):
        raise ModelDirError(f"{directory}: {CONFIG_FILE} is not a mapping")
    data = dict(data)
    return str(data.pop("kind", LEGACY_KIND)), data


def read_provenance(directory: str | os.PathLike) -> dict:
    """The provenance record of a model directory ({} when it has none)."""
    path = Path(directory) / PROVENANCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_model_as(directory: str | os.PathLike, cls: type,
               map_location: str | torch.device = "cpu") -> nn.Module:
    """The ``cls`` model saved in ``directory``, in eval mode, weights loaded strictly.

    Args:
        directory: a model directory of ``cls.model_kind``.
        cls: the model class (``model_kind``, ``config_class``, ``cls(config)``).
        map_location: the device of the weights.

    Raises:
        ModelDirError: missing or corrupt files, a directory of another kind, or weights that do not fit
            the config; the message is one line that names the directory.
    """
    directory = Path(directory)
    found, data = read_model_config(directory)
    if found != cls.model_kind:
        raise ModelDirError(f"{directory}: a {found} model directory, not a {cls.model_kind}")
    try:
        config = config_from_dict(cls.config_class, data)
        model = cls(config)
    except (ConfigError, TypeError, ValueError) as error:
        raise ModelDirError(f"{directory}: bad {CONFIG_FILE} ({_first_line(error)})") from error
    try:
        state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
    except Exception as error:  # safetensors raises several types for corrupt files
        raise ModelDirError(f"{directory}: unreadable {WEIGHTS_FILE} ({_first_line(error)})") from error
    prepare = getattr(model, "prepare_state_dict", None)
    if prepare is not None:
        prepare(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = _first_line(error)
        raise ModelDirError(f"{directory}: weights do not fit {CONFIG_FILE} ({detail})") from error
    return model.to(map_location).eval()


def model_classes() -> dict[str, type]:
    """Kind -> class of every model class imported so far (each class that sets ``model_kind`` itself)."""
    found: dict[str, type] = {}
    queue = [nn.Module]
    while queue:
        cls = queue.pop(0)
        queue.extend(cls.__subclasses__())
        kind = cls.__dict__.get("model_kind")
        if isinstance(kind, str):
            found.setdefault(kind, cls)
    return found


def model_class(kind: str) -> type:
    """The model class of a kind, among the imported ones (``funcodec_lite.model_class`` imports any kind).

    Raises:
        ModelDirError: no imported class has this kind (the message lists the imported kinds).
    """
    classes = model_classes()
    if kind not in classes:
        raise ModelDirError(f"unknown model kind {kind!r} (not imported); imported: {sorted(classes)}; "
                            "funcodec_lite.load_model_dir imports every kind")
    return classes[kind]


def load_model_dir(directory: str | os.PathLike, kind: str | None = None,
                   map_location: str | torch.device = "cpu") -> nn.Module:
    """The model saved in ``directory``, of an imported kind (see `model_class`), in eval mode.

    Args:
        directory: a model directory.
        kind: the kind expected (None: whatever it holds).
        map_location: the device of the weights.

    Raises:
        ModelDirError: as `load_model_as`, or a kind that is not imported.
    """
    found, _ = read_model_config(directory)
    if kind is not None and found != kind:
        raise ModelDirError(f"{directory}: a {found} model directory, not a {kind}")
    return load_model_as(directory, model_class(found), map_location)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
