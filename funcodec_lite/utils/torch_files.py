"""Reading released PyTorch files safely: ``torch.load(weights_only=True)`` and nothing else.

Every converter and metric that reads a ``.pth`` / ``.pt`` / ``.bin`` goes through `read_torch_file`:

- a ``torch.package`` archive (a pickled model together with its code) is refused before anything is read;
- the file is loaded with ``weights_only=True`` under ``torch.serialization.safe_globals(allowed_globals)``:
  tensors and plain values, plus exactly the extra globals the caller names (numpy scalars, an
  ``argparse.Namespace``, a stand-in for a training history's ``defaultdict``);
- any other object refuses the file, naming the globals it needs
  (``torch.serialization.get_unsafe_globals_in_checkpoint``); torch's own warnings during the load are
  silenced, so that bad input yields one line and nothing else;
- every failure is a ``ValueError`` of one line starting with the path.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# an allowed global: the object itself, or (a stand-in, the dotted name it stands for in the file)
AllowedGlobal = Any


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (its type's name when it has none), at most ``limit`` chars."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``; ``ValueError`` (``<path>: no such file`` / ``is a directory``) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    return path


def source_provenance(path: str | os.PathLike, source: str, loader: str = "torch.load(weights_only=True)",
                      **extra: Any) -> dict[str, Any]:
    """What a converted model directory's ``provenance.json`` records of the file it came from: the
    converter (``source``), the file's absolute path and sha256, how it was read (``loader``), and
    ``extra`` (the source's config, the weights' licence, ...)."""
    path = Path(path)
    return {"source": source, "source_file": str(path.resolve()), "sha256": file_sha256(path),
            "loader": loader, **extra}


def is_torch_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``torch.package`` archive (a zip holding ``.data/extern_modules``)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".data/extern_modules") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def numpy_scalar_globals() -> list[Any]:
    """The numpy objects a pickled numpy scalar needs (its reconstructor, ``dtype`` and dtype classes)."""
    core = getattr(np, "_core", None) or np.core
    dtype_classes = [type(np.dtype(code)) for code in "?bhilqBHILQefdg"]
    return [core.multiarray.scalar, np.dtype, *dtype_classes]


def plain(value: Any) -> Any:
    """Numpy scalars → Python numbers, recursively through lists, tuples and dicts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _global_name(entry: AllowedGlobal) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def read_torch_file(path: str | os.PathLike, allowed_globals: Sequence[AllowedGlobal] = (),
                    what: str = "PyTorch checkpoint", expected: str | None = None,
                    package_message: str | None = None) -> Any:
    """The contents of a PyTorch file, read with ``torch.load(weights_only=True)`` on the CPU.

    Args:
        path: the file.
        allowed_globals: the globals allowed beyond tensors and plain values (``safe_globals`` entries: an
            object, or ``(stand_in, "dotted.name")``).
        what: what the file should be, for the unreadable-file message (``not a readable <what>``).
        expected: what the file should hold, appended to the refused-objects message.
        package_message: the message (after ``<path>: ``) refusing a ``torch.package`` archive.

    Raises:
        ValueError: one line, starting with the path: no such file, a ``torch.package`` archive, objects
            other than the allowed ones (named), or a file torch cannot read (truncated, not a checkpoint).
    """
    path = require_file(path)
    if is_torch_package(path):
        raise ValueError(f"{path}: " + (package_message or "a torch.package archive (a pickled model with "
                                        "its code), not loaded for safety; convert a file of its weights"))
    try:
        with warnings.catch_warnings():  # torch warns on some legacy files: bad input stays one line
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(list(allowed_globals)):
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        refused = _refused_globals(path, allowed_globals)
        if refused:
            names = ", ".join(refused[:3])
            raise ValueError(f"{path}: holds objects that are not loaded for safety ({names})"
                             + (f"; expected {expected}" if expected else "")) from err
        raise ValueError(f"{path}: not a readable {what} ({first_line(err)})") from err


def _refused_globals(path: Path, allowed_globals: Iterable[AllowedGlobal]) -> list[str]:
    """The globals the file needs beyond the allowed ones ([] when it cannot tell)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - unreadable in another way (truncated, legacy format)
        return []
    names = {_global_name(entry) for entry in allowed_globals}
    return [name for name in needed if name not in names]


def state_dict_in(data: Any, wrappers: Sequence[str] = (), path: str | os.PathLike | None = None,
                  allow_empty: bool = False) -> dict[str, torch.Tensor]:
    """The state dict in ``data``: unwrapped from ``data[w]`` for each of ``wrappers`` in turn (those that
    hold a dict), then checked to be a (non-empty, unless ``allow_empty``) map of names to tensors.

    Raises:
        ValueError: anything else (``<path>: expected a state dict (parameter name -> tensor)``).
    """
    for key in wrappers:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not (data or allow_empty) or not all(
            isinstance(v, torch.Tensor) for v in data.values()):
        prefix = f"{path}: " if path is not None else ""
        raise ValueError(f"{prefix}expected a state dict (parameter name -> tensor)")
    return data
