"""Configs as dataclasses read from YAML: a safe loader with scientific-notation floats, strict building."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``3e-4`` and ``1E5`` as floats (PyYAML wants ``3.0e-4``)."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text_or_stream: Any) -> Any:
    """Parses config YAML (safe: plain data only) with scientific-notation floats."""
    return yaml.load(text_or_stream, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def read_mapping_file(path: str | os.PathLike, fmt: str = "JSON") -> dict:
    """The mapping a JSON (``fmt="JSON"``) or YAML (``fmt="YAML"``, ``yaml.safe_load``) file holds.

    Raises:
        ValueError: one line naming the file: no such file, not a JSON/YAML file (the parser's first line),
            or not a mapping at the top level.
    """
    from funcodec_lite.utils.torch_files import first_line

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if fmt == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a {fmt} file ({first_line(err, 300)})") from err
    if not isinstance(data, dict):
        shape = "a JSON object" if fmt == "JSON" else "a mapping at the top level"
        raise ValueError(f"{path}: expected {shape}")
    return data


class ConfigError(ValueError):
    """A configuration that cannot be built: unknown key, wrong type or inconsistent sizes."""


def build_dataclass(cls: type, data: dict, where: str) -> Any:
    """Instantiates dataclass ``cls`` from ``data``, recursing into nested dataclass fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        nested = _dataclass_in(hints[name])
        if nested is not None and isinstance(value, dict):
            value = build_dataclass(nested, value, f"{where}.{name}".lstrip("."))
        elif typing.get_origin(hints[name]) is tuple and isinstance(value, list):
            value = tuple(value)  # YAML has no tuples: a list for a tuple field (betas, channels)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # missing fields, or a value its __post_init__ refuses
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass named by a type hint such as ``X`` or ``X | None``, if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None
