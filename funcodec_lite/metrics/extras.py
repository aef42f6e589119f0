"""Optional packages of the perceptual metrics: imported on demand, with an error that names the pip extra."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

EXTRA = "eval"
INSTALL_HINT = f"pip install 'funcodec_lite[{EXTRA}]'"


class MissingExtraError(RuntimeError):
    """An optional package that a metric needs is not installed (the message says how to install it)."""


def require(feature: str, modules: Sequence[str]) -> list[ModuleType]:
    """Imports ``modules`` for ``feature``.

    Raises:
        MissingExtraError: one of them is missing: "<feature> needs the <package> package (<install hint>)".
    """
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as err:
            missing = (err.name or name).split(".")[0]
            raise MissingExtraError(f"{feature} needs the {missing} package, which is not installed "
                                    f"({INSTALL_HINT})") from err
    return loaded
