"""FunCodec checkpoints (``model.pth`` + ``config.yaml``) → a funcodec_lite ``Codec``.

Supported: FunCodec's time-domain models (``model: encodec``: the encodec_16k and soundstream configs,
e.g. the released 16 kHz ds320 / ds640 codecs), whose SEANet, LSTM and RVQ match ours layer for layer.
FunCodec's frequency-domain models (``model: freq_codec``) are refused: our FreqCodec pads the
frequency axis differently and has no GroupNorm, so their weights would load but compute other things.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.encodec import encodec_key_to_ours

# FunCodec's constructor defaults (funcodec/models/encoder/seanet_encoder.py, decoder/seanet_decoder.py,
# quantizer/costume_quantizer.py), which its config.yaml files leave out.
SEANET_DEFAULTS: dict[str, Any] = {
    "n_filters": 32, "ratios": [8, 5, 4, 2], "dimension": 128, "n_residual_layers": 1, "kernel_size": 7,
    "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2, "compress": 2, "causal": False,
    "norm": "weight_norm", "pad_mode": "reflect", "true_skip": False, "seq_model": "lstm", "seq_layer_num": 2,
    "res_seq": True, "activation": "ELU", "activation_params": {"alpha": 1.0}, "norm_params": {},
    "add_snake_activation": False, "double_filters": True, "half_filters": True, "final_activation": None,
    "trim_right_ratio": 1.0,
}
QUANTIZER_DEFAULTS: dict[str, Any] = {
    "codebook_size": 1024, "num_quantizers": 8, "ema_decay": 0.95, "kmeans_init": False,
    "quantize_dropout": False, "rand_num_quant": None, "use_ddp": True, "q0_ds_ratio": 1, "codec_dim": None,
    "codec_range": None,
}
_SHARED = ("n_filters", "ratios", "n_residual_layers", "kernel_size", "last_kernel_size",
           "residual_kernel_size", "dilation_base", "compress", "causal", "norm", "pad_mode", "true_skip",
           "seq_model", "seq_layer_num", "activation", "activation_params")
_CODEBOOK_BUFFERS = ("inited", "cluster_size", "embed", "embed_avg")


class FunCodecModel(NamedTuple):
    """A converted model and what the user should know about it."""

    codec: Codec
    audio_normalize: bool  # FunCodec scaled the input to unit RMS before encoding


def funcodec_config(config: Mapping[str, Any]) -> tuple[CodecConfig, bool]:
    """Our ``CodecConfig`` for a FunCodec ``config.yaml`` (as a mapping), and its ``audio_normalize``.

    Raises:
        ValueError: a model kind or an option funcodec_lite does not implement, naming it.
    """
    kind = config.get("model", "encodec")
    if kind in ("freq_codec", "codec_semantic_aug"):
        raise ValueError(f"FunCodec model {kind!r} cannot be converted: only time-domain models "
                         "(model: encodec) match funcodec_lite layer for layer (its FreqCodec pads "
                         "frequencies differently and has no GroupNorm)")
    if kind != "encodec":
        raise ValueError(f"unknown FunCodec model {kind!r}; expected 'encodec'")
    model_conf = config.get("model_conf") or {}
    if model_conf.get("codec_domain", "time") not in ("time", ["time", "time"]):
        raise ValueError(f"codec_domain {model_conf['codec_domain']!r} is not supported (time only)")
    for part in ("encoder", "decoder"):
        expected = f"encodec_seanet_{part}"
        if config.get(part, expected) != expected:
            raise ValueError(f"{part} {config.get(part)!r} is not supported; expected {expected!r}")
    if config.get("quantizer", "costume_quantizer") != "costume_quantizer":
        raise ValueError(f"quantizer {config.get('quantizer')!r} is not supported; "
                         "expected 'costume_quantizer'")
    _refuse_unknown(config, "encoder_conf", set(SEANET_DEFAULTS) | {"input_size"})
    _refuse_unknown(config, "decoder_conf", set(SEANET_DEFAULTS) | {"input_size", "channels"})
    _refuse_unknown(config, "quantizer_conf", set(QUANTIZER_DEFAULTS) | {"input_size", "sampling_rate",
                                                                         "encoder_hop_length"})
    enc = {**SEANET_DEFAULTS, **(config.get("encoder_conf") or {})}
    dec = {**SEANET_DEFAULTS, **(config.get("decoder_conf") or {})}
    for name in _SHARED:
        if enc[name] != dec[name]:
            raise ValueError(f"encoder_conf.{name} ({enc[name]!r}) differs from decoder_conf.{name} "
                             f"({dec[name]!r}); funcodec_lite builds both from one SEANet config")
    _refuse_unsupported(enc, dec)
    quant = {**QUANTIZER_DEFAULTS, **(config.get("quantizer_conf") or {})}
    projected = quant["codec_dim"] not in (None, enc["dimension"]) or quant["codec_range"] is not None
    if projected or quant["q0_ds_ratio"] != 1:
        raise ValueError("quantizer_conf codec_dim / codec_range / q0_ds_ratio are not supported")
    sample_rate = int(config.get("sampling_rate") or model_conf.get("target_sample_hz") or 16000)
    choices = list(quant["rand_num_quant"]) if quant["quantize_dropout"] and quant["rand_num_quant"] else None
    data = {
        "name": "funcodec_converted", "sample_rate": sample_rate,
        "channels": int(config.get("input_size", 1)), "domain": "time", "arch": "seanet",
        "model": {
            "n_filters": enc["n_filters"], "ratios": list(enc["ratios"]), "dimension": enc["dimension"],
            "n_residual_layers": enc["n_residual_layers"], "kernel_size": enc["kernel_size"],
            "last_kernel_size": enc["last_kernel_size"], "residual_kernel_size": enc["residual_kernel_size"],
            "dilation_base": enc["dilation_base"], "compress": enc["compress"],
            "lstm": enc["seq_layer_num"] if enc["seq_model"] == "lstm" else 0, "causal": bool(enc["causal"]),
            "norm": enc["norm"], "pad_mode": enc["pad_mode"], "true_skip": bool(enc["true_skip"]),
            "elu_alpha": float((enc["activation_params"] or {}).get("alpha", 1.0)),
        },
        "quantizer": {
            "dim": enc["dimension"], "n_q": int(quant["num_quantizers"]),
            "codebook_size": int(quant["codebook_size"]),
            "decay": float(quant["ema_decay"]), "kmeans_init": bool(quant["kmeans_init"]),
            "quantizer_dropout": bool(quant["quantize_dropout"]), "dropout_choices": choices,
        },
    }
    return CodecConfig.from_dict(data), bool(model_conf.get("audio_normalize", True))


def _refuse_unknown(config: Mapping[str, Any], section: str, known: set[str]) -> None:
    unknown = sorted(set(config.get(section) or {}) - known)
    if unknown:
        raise ValueError(f"{section}: option(s) funcodec_lite does not know: {unknown}")


def _refuse_unsupported(enc: dict, dec: dict) -> None:
    checks = [
        (enc["seq_model"] in ("lstm", "none"), f"seq_model {enc['seq_model']!r} (lstm or none only)"),
        (enc["activation"] == "ELU", f"activation {enc['activation']!r} (ELU only)"),
        (not enc["add_snake_activation"] and not dec["add_snake_activation"], "add_snake_activation"),
        (enc["double_filters"] and dec["half_filters"], "double_filters / half_filters false"),
        (enc["res_seq"] and dec["res_seq"], "res_seq false (LSTM without skip)"),
        (dec["final_activation"] is None, f"final_activation {dec['final_activation']!r}"),
        (float(dec["trim_right_ratio"]) == 1.0, "trim_right_ratio other than 1.0"),
        (enc["norm"] in ("weight_norm", "time_group_norm", "none"), f"norm {enc['norm']!r}"),
        (enc["norm_params"] in ({}, {"num_groups": 1}), f"norm_params {enc['norm_params']!r}"),
    ]
    for ok, what in checks:
        if not ok:
            raise ValueError(f"FunCodec option not supported by funcodec_lite: {what}")


def funcodec_key_to_ours(key: str) -> str | None:
    """Our key for a FunCodec generator key (encoder, decoder, per-layer quantizer keys); None if not ours."""
    if key.startswith(("encoder.model.", "decoder.model.")):
        return encodec_key_to_ours(key)
    match = re.fullmatch(r"quantizer\.rq\.model\.layers\.(\d+)\._codebook\.(\w+)", key)
    if match and match.group(2) in _CODEBOOK_BUFFERS:
        return f"quantizer.layers.{match.group(1)}.{match.group(2)}"
    return None


def funcodec_to_codec(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> FunCodecModel:
    """Builds a ``Codec`` holding the generator weights of a FunCodec time-domain checkpoint.

    Args:
        state_dict: the ``model.pth`` contents (discriminator and loss buffers are ignored).
        config: the matching ``config.yaml`` as a mapping.

    Raises:
        ValueError: unsupported options, or weights that do not fit (naming the first offending keys).
    """
    codec_config, normalize = funcodec_config(config)
    codec = Codec(codec_config)
    ours = codec.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        stacked = re.fullmatch(r"quantizer\.rq\.model\.(\w+)", key)
        if stacked and stacked.group(1) in _CODEBOOK_BUFFERS:  # distributed RVQ: [n_q, ...] for all layers
            name = stacked.group(1)
            for i, layer in enumerate(value):
                converted[f"quantizer.layers.{i}.{name}"] = layer
            continue
        target = funcodec_key_to_ours(key)
        if target is None:
            if key.startswith(("encoder.", "decoder.", "quantizer.")):
                unknown.append(key)
            continue
        converted[target] = value
    converted.setdefault("quantizer.step", ours["quantizer.step"])
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours)) + unknown
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match its config: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    wrong = [k for k, v in converted.items() if v.shape != ours[k].shape]
    if wrong:
        raise ValueError(f"checkpoint does not match its config: {wrong[0]} has shape "
                         f"{tuple(converted[wrong[0]].shape)}, expected {tuple(ours[wrong[0]].shape)}")
    codec.load_state_dict({k: v.to(ours[k].dtype) for k, v in converted.items()}, strict=True)
    return FunCodecModel(codec.eval(), normalize)
