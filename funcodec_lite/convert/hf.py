"""Directories saved by Hugging Face ``transformers`` (``save_pretrained``) → funcodec_lite codecs.

Such a directory holds ``config.json`` (with ``model_type``) and ``model.safetensors``, or shards listed in
``model.safetensors.index.json``; the weights are read with safetensors only (nothing is unpickled).
``model_type`` picks the converter:

- ``encodec`` (``EncodecModel``) → our own ``Codec`` (a SEANet ``CodecConfig``); configs that our codec
  cannot reproduce exactly (``normalize``, ``chunk_length_s``, ``trim_right_ratio`` ≠ 1, a
  ``codebook_dim`` other than ``hidden_size``) are refused with one line naming the option,
- ``dac`` (``DacModel``) → ``funcodec_lite.convert.dac.dac_from_hf``,
- ``mimi`` (``MimiModel``) → ``funcodec_lite.convert.mimi.mimi_from_hf``.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.checked_load import load_checked
from funcodec_lite.utils.config import ConfigError, read_mapping_file
from funcodec_lite.utils.torch_files import file_sha256, first_line

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
# model_type -> (module, function(config, state_dict) -> model, what to call it in a message)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "encodec": ("funcodec_lite.convert.hf", "encodec_from_hf", "EnCodec"),
    "dac": ("funcodec_lite.convert.dac", "dac_from_hf", "DAC"),
    "mimi": ("funcodec_lite.convert.mimi", "mimi_from_hf", "Mimi"),
}

# transformers' EncodecConfig defaults (facebook/encodec_24khz), for keys an older config.json leaves out
ENCODEC_DEFAULTS: dict[str, Any] = {
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "sampling_rate": 24000, "audio_channels": 1,
    "normalize": False, "chunk_length_s": None, "overlap": None, "hidden_size": 128, "num_filters": 32,
    "num_residual_layers": 1, "upsampling_ratios": [8, 5, 4, 2], "norm_type": "weight_norm",
    "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_growth_rate": 2,
    "use_causal_conv": True, "pad_mode": "reflect", "compress": 2, "num_lstm_layers": 2,
    "trim_right_ratio": 1.0, "codebook_size": 1024, "codebook_dim": None, "use_conv_shortcut": True,
}

# Renames, in order, from transformers' EncodecModel keys to our Codec's
_ENCODEC_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\.block\.(\d+)\.", r".block.layers.\1."),
    (r"\.conv\.weight_g$", ".conv.parametrizations.weight.original0"),  # older saves: the weight_norm hook
    (r"\.conv\.weight_v$", ".conv.parametrizations.weight.original1"),
    (r"^quantizer\.layers\.(\d+)\.codebook\.", r"quantizer.layers.\1."),
)


def read_hf_dir(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of a ``save_pretrained`` directory (one safetensors file or its shards).

    Raises:
        ValueError: not a directory, a missing or unreadable file (one line naming it).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory (expected one saved by transformers' "
                         f"save_pretrained, with {CONFIG_NAME} and {WEIGHTS_NAME})")
    config = read_mapping_file(directory / CONFIG_NAME)
    if (directory / WEIGHTS_NAME).is_file():
        files = [directory / WEIGHTS_NAME]
    elif (directory / INDEX_NAME).is_file():
        try:
            weight_map = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))["weight_map"]
            files = [directory / name for name in sorted(set(weight_map.values()))]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{directory / INDEX_NAME}: not a safetensors index "
                             f"({first_line(error, 300)})") from error
    else:
        raise ValueError(f"{directory}: no {WEIGHTS_NAME} (or {INDEX_NAME})")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: no such file (listed in {INDEX_NAME})")
        try:
            state.update(load_file(str(path)))
        except Exception as error:  # safetensors raises several types for corrupt files
            raise ValueError(f"{path}: unreadable safetensors file ({first_line(error, 300)})") from error
    return config, state


def hf_converter(model_type: Any) -> Callable[[dict, dict], Any]:
    """The ``function(config, state_dict) -> model`` for a transformers ``model_type``.

    Raises:
        ValueError: an unknown model type, or a family whose converter is not in this installation.
    """
    if model_type not in FAMILIES:
        raise ValueError(f"unsupported model_type {model_type!r} (supported: {', '.join(sorted(FAMILIES))})")
    module_name, function, label = FAMILIES[model_type]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise ValueError(f"{label} support not installed (no {module_name})") from error
        raise
    if not hasattr(module, function):
        raise ValueError(f"{label} support not installed (no {module_name}.{function})")
    return getattr(module, function)


def convert_hf_dir(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """(model, provenance) from a directory saved by ``transformers``' ``save_pretrained``.

    Raises:
        ValueError: as `read_hf_dir` and `hf_converter`, or a config / weights the converter refuses.
    """
    directory = Path(directory)
    config, state = read_hf_dir(directory)
    model_type = config.get("model_type")
    if model_type is None:
        raise ValueError(f"{directory / CONFIG_NAME}: no model_type "
                         "(not saved by transformers' save_pretrained)")
    convert = hf_converter(model_type)
    try:
        model = convert(config, state)
    except (ValueError, ConfigError, KeyError, TypeError) as error:
        raise ValueError(f"{directory}: {first_line(error, 300)}") from error
    files = sorted(path.name for path in directory.glob("*.safetensors"))
    provenance = {"source": "hf", "source_dir": str(directory.resolve()), "model_type": model_type,
                  "architectures": config.get("architectures"),
                  "transformers_version": config.get("transformers_version"), "loader": "safetensors",
                  "sha256": {name: file_sha256(directory / name) for name in files},
                  "source_config": config}
    return model, provenance


# -------------------------------------------------------------------------------------------------
# EnCodec
def encodec_config_from_hf(config: Mapping[str, Any]) -> CodecConfig:
    """Our ``CodecConfig`` for a transformers ``EncodecConfig`` (its ``config.json`` as a dict).

    Raises:
        ValueError: an option our codec cannot reproduce exactly (named).
    """
    c = {**ENCODEC_DEFAULTS, **{k: v for k, v in config.items() if k in ENCODEC_DEFAULTS}}
    if c["normalize"]:
        raise ValueError("unsupported EnCodec option normalize: true (per-chunk RMS scaling, as the 48 kHz "
                         "model uses it, is not in funcodec_lite's codec)")
    if c["chunk_length_s"] is not None:
        raise ValueError(f"unsupported EnCodec option chunk_length_s: {c['chunk_length_s']} (chunked "
                         "encoding with overlap-add is not in funcodec_lite's codec)")
    if float(c["trim_right_ratio"]) != 1.0:
        raise ValueError(f"unsupported EnCodec option trim_right_ratio: {c['trim_right_ratio']} (only 1.0)")
    if c["codebook_dim"] is not None and c["codebook_dim"] != c["hidden_size"]:
        raise ValueError(f"unsupported EnCodec option codebook_dim: {c['codebook_dim']} (must equal "
                         f"hidden_size {c['hidden_size']})")
    hop = math.prod(c["upsampling_ratios"])
    frame_rate = math.ceil(c["sampling_rate"] / hop)
    n_q = int(1000 * c["target_bandwidths"][-1] // (frame_rate * math.ceil(math.log2(c["codebook_size"]))))
    if n_q < 1:
        raise ValueError(f"unsupported EnCodec option target_bandwidths: {c['target_bandwidths']} "
                         f"(no codebook fits {c['target_bandwidths'][-1]} kbps at {frame_rate} frames/s)")
    data = {
        "name": f"hf_encodec_{c['sampling_rate'] // 1000}khz", "sample_rate": c["sampling_rate"],
        "channels": c["audio_channels"], "domain": "time", "arch": "seanet",
        "model": {"n_filters": c["num_filters"], "ratios": list(c["upsampling_ratios"]),
                  "dimension": c["hidden_size"], "n_residual_layers": c["num_residual_layers"],
                  "kernel_size": c["kernel_size"], "last_kernel_size": c["last_kernel_size"],
                  "residual_kernel_size": c["residual_kernel_size"],
                  "dilation_base": c["dilation_growth_rate"], "compress": c["compress"],
                  "lstm": c["num_lstm_layers"], "causal": bool(c["use_causal_conv"]), "norm": c["norm_type"],
                  "pad_mode": c["pad_mode"], "true_skip": not c["use_conv_shortcut"]},
        # EnCodec's absolute dead-code rule, as the encodec_24khz preset keeps it for fine-tuning
        "quantizer": {"dim": c["hidden_size"], "n_q": n_q, "codebook_size": c["codebook_size"],
                      "threshold_ema_dead_code": 2.0, "dead_code_ratio": 0.0},
    }
    try:
        return CodecConfig.from_dict(data)
    except (ConfigError, TypeError, ValueError) as error:
        raise ValueError(f"unsupported EnCodec config ({first_line(error, 300)})") from error


def encodec_key_from_hf(key: str) -> str:
    """Maps one transformers EncodecModel key to our ``Codec``'s (transposed convs fixed by the caller)."""
    for pattern, replacement in _ENCODEC_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def encodec_from_hf(config: dict, state_dict: Mapping[str, torch.Tensor]) -> Codec:
    """A ``Codec`` holding the weights of a transformers ``EncodecModel`` (eval mode).

    Args:
        config: the model's ``config.json``.
        state_dict: its tensors.
    Raises:
        ValueError: an unsupported option, or weights that do not fit the config (naming the first key).
    """
    codec = Codec(encodec_config_from_hf(config))
    ours = codec.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = encodec_key_from_hf(key)
        if name not in ours and ".conv." in name:  # transformers calls the transposed convs `conv` too
            name = name.replace(".conv.", ".convtr.")
        converted[name] = value
    for name, _ in codec.named_buffers():  # our own bookkeeping (the quantizer's step counter)
        if name.rsplit(".", 1)[-1] not in ("embed", "embed_avg", "cluster_size", "inited"):
            converted.setdefault(name, ours[name])
    for name, value in converted.items():
        if name.endswith(".inited") and name in ours and value.numel() == ours[name].numel():
            converted[name] = value.reshape(ours[name].shape)
    return load_checked(codec, converted, "weights do not fit the EnCodec config")
