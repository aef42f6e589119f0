"""SNAC's release format → a funcodec_lite ``SNAC`` model.

A released SNAC model (``hubertsiuzdak/snac_24khz``, ``snac_32khz``, ``snac_44khz``) is a directory of

- ``config.json``: the keyword arguments of ``snac.SNAC`` (``sampling_rate``, ``encoder_dim``, ...),
- ``pytorch_model.bin``: its state dict, read here with ``torch.load(weights_only=True)`` (tensors only;
  no arbitrary object is unpickled).

SNAC's modules are positional (``encoder.block.3.block.1...``, ``decoder.model.2...``); ours are named.
The table of module pairs is derived from the config (the positions shift with ``depthwise``, ``noise``
and ``attn_window_size``), and every tensor is checked for its shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from funcodec_lite.codec.families.snac import SNAC, SNACConfig
from funcodec_lite.convert.checked_load import load_checked
from funcodec_lite.utils.config import read_mapping_file
from funcodec_lite.utils.torch_files import read_torch_file, source_provenance, state_dict_in

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
UNIT_LAYERS = ("act1", "conv1", "act2", "conv2")
ATTENTION_PARAMS = {"norm": "norm", "to_qkv": "to_qkv", "to_out": "to_out", "rel_pos": "rotary"}


def snac_config_from_dict(data: Mapping[str, Any]) -> SNACConfig:
    """A ``SNACConfig`` from the keys of a SNAC ``config.json``.

    Raises:
        ValueError: a key SNAC does not have, or a value it cannot take (one line, naming it).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a SNAC config is a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(SNACConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unsupported SNAC config option {unknown[0]!r} "
                         f"(SNAC takes {', '.join(sorted(known))})")
    try:
        return SNACConfig(**data)
    except (TypeError, ValueError) as error:
        text = str(error).strip().splitlines()
        raise ValueError(text[0] if text else f"bad SNAC config ({type(error).__name__})") from error


def _module_pairs(config: SNACConfig) -> Iterator[tuple[str, str]]:
    """(SNAC module path, our module path) for every module that holds tensors."""
    rates = config.encoder_rates
    yield "encoder.block.0", "encoder.conv_in"
    for i in range(len(rates)):
        yield from _block_pairs(f"encoder.block.{i + 1}.block", f"encoder.blocks.{i}", 0, up=False)
    position = len(rates) + 1
    if config.attn_window_size:
        yield from _attention_pairs(f"encoder.block.{position}", "encoder.attention")
        position += 1
    yield f"encoder.block.{position}", "encoder.conv_out"

    for k in range(len(config.vq_strides)):
        yield f"quantizer.quantizers.{k}", f"quantizer.quantizers.{k}"

    yield "decoder.model.0", "decoder.conv_in.0"
    position = 1
    if config.depthwise:
        yield "decoder.model.1", "decoder.conv_in.1"
        position = 2
    if config.attn_window_size:
        yield from _attention_pairs(f"decoder.model.{position}", "decoder.attention")
        position += 1
    for i in range(len(config.decoder_rates)):
        ours = f"decoder.blocks.{i}"
        yield f"decoder.model.{position}.block.0", f"{ours}.act"
        yield f"decoder.model.{position}.block.1", f"{ours}.up"
        first_unit = 2
        if config.noise:
            yield f"decoder.model.{position}.block.2.linear", f"{ours}.noise.linear"
            first_unit = 3
        yield from _block_pairs(f"decoder.model.{position}.block", ours, first_unit, up=True)
        position += 1
    yield f"decoder.model.{position}", "decoder.act"
    yield f"decoder.model.{position + 1}", "decoder.conv_out"


def _block_pairs(source: str, ours: str, first_unit: int, up: bool) -> Iterator[tuple[str, str]]:
    """The three residual units of an encoder or decoder block (and an encoder block's Snake + conv)."""
    for j in range(3):
        for index, name in enumerate(UNIT_LAYERS):
            yield f"{source}.{first_unit + j}.block.{index}", f"{ours}.units.{j}.{name}"
    if not up:
        yield f"{source}.3", f"{ours}.act"
        yield f"{source}.4", f"{ours}.down"


def _attention_pairs(source: str, ours: str) -> Iterator[tuple[str, str]]:
    for theirs, mine in ATTENTION_PARAMS.items():
        yield f"{source}.{theirs}", f"{ours}.{mine}"


def _rename(key: str, modules: Mapping[str, str]) -> str:
    """Our name of a SNAC key: its longest module prefix in ``modules`` renamed, the rest kept."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in modules:
            return ".".join([modules[prefix], *parts[cut:]])
    return key


def snac_from_state_dict(state_dict: Mapping[str, torch.Tensor], config: SNACConfig) -> SNAC:
    """Builds a ``SNAC`` holding the weights of a ``snac.SNAC`` state dict (eval mode).

    Raises:
        ValueError: missing or unexpected tensors, or a shape that does not fit ``config`` (naming the
            first offending key).
    """
    model = SNAC(config)
    ours = model.state_dict()
    modules = dict(_module_pairs(config))
    converted: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state_dict.items():
        target = _rename(key, modules)
        if target not in ours:
            unexpected.append(key)
            continue
        converted[target] = value
    return load_checked(model, converted, "state dict does not fit the SNAC config", sorted(unexpected))


def read_snac_release(path: str | Path) -> tuple[SNACConfig, dict[str, torch.Tensor], Path]:
    """(config, state dict, weights file) of a SNAC release: its directory, or its ``pytorch_model.bin``
    with ``config.json`` beside it.

    Raises:
        ValueError: a missing file, an unreadable or non-JSON config, a weights file that is not a state
            dict of tensors (read with ``weights_only=True``), or an unsupported config option.
    """
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    config_path = weights.parent / CONFIG_NAME
    for needed in (weights, config_path):
        if not needed.is_file():
            raise ValueError(f"{needed}: no such file (a SNAC release is a directory with {CONFIG_NAME} "
                             f"and {WEIGHTS_NAME})")
    data = read_mapping_file(config_path)
    try:
        config = snac_config_from_dict(data)
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from error
    state = state_dict_in(read_torch_file(weights, what="PyTorch state dict"), (), weights)
    return config, state, weights


def convert_snac_release(path: str | Path) -> tuple[SNAC, dict[str, Any]]:
    """(model, provenance) from a SNAC release directory (or its ``pytorch_model.bin``).

    Raises:
        ValueError: as `read_snac_release`, or weights that do not fit the config.
    """
    config, state, weights = read_snac_release(path)
    try:
        model = snac_from_state_dict(state, config)
    except ValueError as error:
        raise ValueError(f"{weights}: {error}") from error
    return model, source_provenance(
        weights, "snac",
        source_config=json.loads((weights.parent / CONFIG_NAME).read_text(encoding="utf-8")),
        weights_licence="MIT (hubertsiuzdak/snac_* model cards)")
