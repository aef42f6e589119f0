"""The registry of codec kinds: every ``CompressionModel`` a model directory can hold, imported lazily.

``CODEC_KINDS`` maps the ``kind`` of a model directory's ``config.yaml`` to the module that defines its
class; the module is imported only when a directory of that kind is loaded (``codec_class``), so a family
whose module is absent from this installation costs nothing until it is asked for, and then gives one
line.
"""

from __future__ import annotations

import importlib

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.utils.weights import ModelDirError, model_classes

CODEC_KINDS: dict[str, str] = {
    "codec": "funcodec_lite.codec.model",
    "dac": "funcodec_lite.codec.families.dac",
    "funcodec_freq": "funcodec_lite.codec.families.funcodec_freq",
    "lac": "funcodec_lite.codec.families.lac",
    "mimi": "funcodec_lite.codec.families.mimi",
    "snac": "funcodec_lite.codec.families.snac",
}


class CodecKindError(ModelDirError):
    """A codec kind that is unknown, not installed, or whose class is not a ``CompressionModel``."""


def is_codec_kind(kind: str) -> bool:
    """True when ``kind`` names a codec (a ``CompressionModel``), installed or not."""
    return kind in CODEC_KINDS


def available_codec_kinds() -> list[str]:
    """The codec kinds whose module imports here, sorted."""
    found = []
    for kind in CODEC_KINDS:
        try:
            codec_class(kind)
        except CodecKindError:
            continue
        found.append(kind)
    return sorted(found)


def codec_class(kind: str) -> type[CompressionModel]:
    """The ``CompressionModel`` subclass of a codec kind (its module imported on first use).

    Raises:
        CodecKindError: an unknown kind, a kind whose module is not in this installation or fails to
            import, or a module that defines no ``CompressionModel`` of that kind; one line.
    """
    if kind not in CODEC_KINDS:
        raise CodecKindError(f"unknown codec kind {kind!r}; known: {', '.join(sorted(CODEC_KINDS))}")
    module = CODEC_KINDS[kind]
    try:
        importlib.import_module(module)
    except ImportError as error:
        missing = getattr(error, "name", None)
        if missing and (module == missing or module.startswith(missing + ".")):
            raise CodecKindError(f"codec kind {kind!r} is not available in this installation "
                                 f"(no module {module})") from error
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CodecKindError(f"codec kind {kind!r} cannot be used: importing {module} failed "
                             f"({detail[:200]})") from error
    cls = model_classes().get(kind)
    if cls is None or not issubclass(cls, CompressionModel):
        raise CodecKindError(f"{module} defines no CompressionModel with model_kind {kind!r}")
    return cls
