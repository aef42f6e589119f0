"""What FunCodec's time- and frequency-domain checkpoints share: the RVQ section and tensors, key checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from funcodec_lite.convert.checked_load import load_checked

# FunCodec's costume_quantizer defaults (funcodec/models/quantizer/costume_quantizer.py).
QUANTIZER_DEFAULTS: dict[str, Any] = {
    "codebook_size": 1024, "num_quantizers": 8, "ema_decay": 0.95, "kmeans_init": False,
    "quantize_dropout": False, "rand_num_quant": None, "use_ddp": True, "q0_ds_ratio": 1, "codec_dim": None,
    "codec_range": None,
}
_CODEBOOK_BUFFERS = ("inited", "cluster_size", "embed", "embed_avg")
_STACKED_KEY = re.compile(r"quantizer\.rq\.model\.(\w+)")
_LAYER_KEY = re.compile(r"quantizer\.rq\.model\.layers\.(\d+)\._codebook\.(\w+)")


def quantizer_section(config: Mapping[str, Any], dimension: int) -> dict[str, Any]:
    """Our ``RVQConfig`` fields for a FunCodec ``costume_quantizer`` on a ``dimension``-wide latent.

    Raises:
        ValueError: another quantizer, unknown options, or the projections funcodec_lite lacks.
    """
    if config.get("quantizer", "costume_quantizer") != "costume_quantizer":
        raise ValueError(f"quantizer {config.get('quantizer')!r} is not supported; "
                         "expected 'costume_quantizer'")
    refuse_unknown(config, "quantizer_conf", set(QUANTIZER_DEFAULTS) | {"input_size", "sampling_rate",
                                                                         "encoder_hop_length"})
    quant = {**QUANTIZER_DEFAULTS, **(config.get("quantizer_conf") or {})}
    projected = quant["codec_dim"] not in (None, dimension) or quant["codec_range"] is not None
    if projected or quant["q0_ds_ratio"] != 1:
        raise ValueError("quantizer_conf codec_dim / codec_range / q0_ds_ratio are not supported")
    choices = list(quant["rand_num_quant"]) if quant["quantize_dropout"] and quant["rand_num_quant"] else None
    return {"dim": dimension, "n_q": int(quant["num_quantizers"]),
            "codebook_size": int(quant["codebook_size"]),
            "decay": float(quant["ema_decay"]), "kmeans_init": bool(quant["kmeans_init"]),
            "quantizer_dropout": bool(quant["quantize_dropout"]), "dropout_choices": choices}


def quantizer_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``quantizer.layers.{i}.*`` buffers from a FunCodec state dict (per-layer or stacked, ddp)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        stacked = _STACKED_KEY.fullmatch(key)
        if stacked and stacked.group(1) in _CODEBOOK_BUFFERS:  # distributed RVQ: [n_q, ...] for all layers
            for i, layer in enumerate(value):
                converted[f"quantizer.layers.{i}.{stacked.group(1)}"] = layer
        elif quantizer_key_to_ours(key) is not None:
            converted[quantizer_key_to_ours(key)] = value
    return converted


def _is_quantizer_key(key: str) -> bool:
    match = _STACKED_KEY.fullmatch(key) or _LAYER_KEY.fullmatch(key)
    return bool(match) and match.group(match.lastindex) in _CODEBOOK_BUFFERS


def refuse_unknown(config: Mapping[str, Any], section: str, known: set[str]) -> None:
    """Raises ValueError naming the keys of ``config[section]`` outside ``known``."""
    unknown = sorted(set(config.get(section) or {}) - known)
    if unknown:
        raise ValueError(f"{section}: option(s) funcodec_lite does not know: {unknown}")


def coder_sections(config: Mapping[str, Any], encoder_defaults: Mapping[str, Any],
                   decoder_defaults: Mapping[str, Any], shared: tuple[str, ...], what: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``encoder_conf`` and ``decoder_conf`` over their defaults, checked to agree on the options in
    ``shared`` (funcodec_lite builds encoder and decoder from one ``what``).

    Raises:
        ValueError: the first option in ``shared`` whose values differ (named, with both values).
    """
    enc = {**encoder_defaults, **(config.get("encoder_conf") or {})}
    dec = {**decoder_defaults, **(config.get("decoder_conf") or {})}
    for name in shared:
        if enc[name] != dec[name]:
            raise ValueError(f"encoder_conf.{name} ({enc[name]!r}) differs from decoder_conf.{name} "
                             f"({dec[name]!r}); funcodec_lite builds both from one {what}")
    return enc, dec


def quantizer_key_to_ours(key: str) -> str | None:
    """Our key for one per-layer FunCodec quantizer key (``quantizer.rq.model.layers.{i}._codebook.*``)."""
    match = _LAYER_KEY.fullmatch(key)
    if match and match.group(2) in _CODEBOOK_BUFFERS:
        return f"quantizer.layers.{match.group(1)}.{match.group(2)}"
    return None


def load_generator(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                   rename: Callable[[str], str], extra: Mapping[str, torch.Tensor] | None = None) -> None:
    """Loads FunCodec's encoder (``rename``d), decoder (``rename``d) and quantizer tensors, and ``extra``
    (already in our names), into ``model``.

    Raises:
        ValueError: missing, unexpected or misshapen tensors (naming the first offending keys).
    """
    ours = model.state_dict()
    converted = {**quantizer_tensors(state_dict), **(extra or {})}
    unknown = []
    for key, value in state_dict.items():
        if key.startswith(("encoder.model.", "decoder.model.")):
            converted[rename(key)] = value
        elif key.startswith(("encoder.", "decoder.", "quantizer.")) and not _is_quantizer_key(key):
            unknown.append(key)
    converted.setdefault("quantizer.step", ours["quantizer.step"])
    load_checked(model, converted, "checkpoint does not match its config", unknown)
