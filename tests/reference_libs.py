"""Reference libraries the tests compare against (test extras): imported, or the test is skipped.

The ``encodec``, ``dac`` (descript-audiotools) and ``funcodec`` packages import torchaudio; where torchaudio
cannot load (see `import_reference`), they are imported against the torchaudio stand-in of
``tools/bench/torchaudio_standin.py`` (shared with the benchmarks), which stands in for torchaudio while
they import and is taken out of ``sys.modules`` again afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "bench"))
from torchaudio_standin import (  # noqa: E402  (tools/bench/torchaudio_standin.py)
    IMPORT_WITH_STANDIN,
    STANDIN_MARK,
    InverseSpectrogram,
    Resample,
    Spectrogram,
    import_package,
    is_standin,
    load,
    save,
    torchaudio_standin,
)

__all__ = ["IMPORT_WITH_STANDIN", "STANDIN_MARK", "InverseSpectrogram", "Resample", "Spectrogram",
           "import_reference", "is_standin", "load", "save", "torchaudio_standin"]


def import_reference(name: str) -> ModuleType:
    """The module ``name``, or a skip when it is missing or installed but unable to load.

    torchaudio, which the `encodec` package imports, has no release built for the torch this project runs
    on (2.13): pip installs it as encodec's dependency, and its compiled extension then fails with OSError
    (``pytest.importorskip`` only skips on ImportError). encodec (and its submodules) is then imported
    against `torchaudio_standin` instead, so the EnCodec comparisons still run; torchaudio itself, and any
    other module that fails, is skipped. The same holds for the other packages of `IMPORT_WITH_STANDIN`,
    whose model code never calls torchaudio. Usable at module level too.
    """
    try:
        return import_package(name)
    except (ImportError, OSError) as err:
        _skip(name, err)


def _skip(name: str, err: BaseException):
    if isinstance(err, ImportError):
        pytest.skip(f"{name} is not installed ({err})", allow_module_level=True)
    pytest.skip(f"{name} cannot load against torch {torch.__version__} ({str(err).splitlines()[0]})",
                allow_module_level=True)
