"""Weights of the ``encodec`` package's EncodecModel → a funcodec_lite ``Codec``."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.checked_load import load_checked

SUPPORTED_PRESETS = ("encodec_24khz",)

# Renames, applied in order, from EnCodec's module paths to ours.  EnCodec wraps each conv twice
# (SConv1d.conv = NormConv1d, NormConv1d.conv = nn.Conv1d) and uses the old weight_norm hook
# (weight_g / weight_v); ours is one StreamableConv1d around an nn.Conv1d with the parametrization API.
# The encoder/decoder's Sequential and the conv wrappers (shared with FunCodec, which wraps convs alike):
CONV_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^(encoder|decoder)\.model\.", r"\1.layers."),
    (r"\.(conv|convtr)\.\1\.weight_g$", r".\1.parametrizations.weight.original0"),
    (r"\.(conv|convtr)\.\1\.weight_v$", r".\1.parametrizations.weight.original1"),
    (r"\.(conv|convtr)\.\1\.(weight|bias)$", r".\1.\2"),
    (r"\.(conv|convtr)\.norm\.", r".norm."),
)
_RENAMES: tuple[tuple[str, str], ...] = (
    *CONV_RENAMES,
    (r"\.block\.(\d+)\.", r".block.layers.\1."),
    (r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", r"quantizer.layers.\1."),
)


def rename_key(key: str, renames: tuple[tuple[str, str], ...]) -> str:
    """``key`` after each ``(pattern, replacement)`` of ``renames`` in turn (``re.sub``)."""
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


def encodec_key_to_ours(key: str) -> str:
    """Maps one EnCodec state-dict key to the matching ``Codec`` key."""
    return rename_key(key, _RENAMES)


def encodec_to_codec(state_dict: Mapping[str, torch.Tensor], preset: str = "encodec_24khz") -> Codec:
    """Builds a ``Codec`` holding the weights of an ``encodec`` ``EncodecModel`` state dict.

    Args:
        state_dict: ``EncodecModel.state_dict()`` (or the dict in a released ``encodec_24khz-*.th``).
        preset: the architecture the weights belong to; ``encodec_24khz`` (causal, mono, 24 kHz).
    Returns:
        a ``Codec`` in eval mode whose ``encode`` gives EnCodec's codes and whose ``decode`` gives its audio.
    Raises:
        ValueError: unknown preset, or a state dict that does not fit the architecture (missing or
            unexpected keys, wrong shapes), naming the first offending keys.
    """
    if preset not in SUPPORTED_PRESETS:
        raise ValueError(f"unsupported EnCodec preset {preset!r}; choose one of {SUPPORTED_PRESETS}")
    codec = Codec(CodecConfig.from_yaml(preset))
    ours = codec.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("quantizer.") and key.endswith(".inited"):
            value = value.reshape(ours[encodec_key_to_ours(key)].shape)
        converted[encodec_key_to_ours(key)] = value
    for key in _own_bookkeeping(codec):
        converted.setdefault(key, ours[key])
    return load_checked(codec, converted, f"state dict does not match {preset}")


def _own_bookkeeping(codec: Codec) -> list[str]:
    """Buffers of ours with no EnCodec counterpart (e.g. the quantizer's dropout step counter)."""
    codebook_buffers = ("embed", "embed_avg", "cluster_size", "inited")
    parameters = {name for name, _ in codec.named_parameters()}
    return [name for name, _ in codec.named_buffers()
            if name not in parameters and name.rsplit(".", 1)[-1] not in codebook_buffers]
