"""Reference libraries the tests compare against (test extras): imported, or the test is skipped."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
import torch


def import_reference(name: str) -> ModuleType:
    """The module ``name``, or a skip when it is missing or installed but unable to load.

    torchaudio, which the `encodec` package imports, has no release built for the torch this project runs
    on (2.13): pip installs it as encodec's dependency, and its compiled extension then fails with OSError
    (``pytest.importorskip`` only skips on ImportError). Usable at module level too.
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pytest.skip(f"{name} is not installed ({err})", allow_module_level=True)
    except OSError as err:
        pytest.skip(f"{name} cannot load against torch {torch.__version__} ({str(err).splitlines()[0]})",
                    allow_module_level=True)
