"""FunCodec checkpoints (``model.pth`` + ``config.yaml``) → a funcodec_lite model.

Supported: FunCodec's time-domain models (``model: encodec``: the encodec_16k and soundstream configs,
e.g. the released 16 kHz ds320 / ds640 codecs), whose SEANet, LSTM and RVQ match our ``Codec`` layer for
layer, and its frequency-domain models (``model: freq_codec``, mag/phase and mag/angle, grouped or not),
which become a ``FunCodecFreq`` (`funcodec_lite.convert.funcodec_freq`), and its semantic-augmented
time-domain models (``model: codec_semantic_aug``), which become a ``Codec`` with FunCodec's phoneme front end
(``SemanticConfig(frontend="funcodec")``, `funcodec_lite.quantization.funcodec_semantic`): ``encode`` and
``decode`` then take the phoneme ids as ``semantic=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.encodec import encodec_key_to_ours
from funcodec_lite.convert.funcodec_common import (
    coder_sections,
    load_generator,
    quantizer_key_to_ours,
    quantizer_section,
    refuse_unknown,
)

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
PPG_DEFAULTS: dict[str, Any] = {"ppg_dim": 86, "ppg_ds_rate": 2, "ppg_ds_type": "conv",
                                "ppg_usage_mod": "residual"}  # CodecSemanticAug's ppg_conf defaults
_SHARED = ("n_filters", "ratios", "n_residual_layers", "kernel_size", "last_kernel_size",
           "residual_kernel_size", "dilation_base", "compress", "causal", "norm", "pad_mode", "true_skip",
           "seq_model", "seq_layer_num", "activation", "activation_params")


class FunCodecModel(NamedTuple):
    """A converted model and what the user should know about it."""

    codec: CompressionModel  # a Codec (time domain) or a FunCodecFreq (freq_codec)
    audio_normalize: bool  # FunCodec scaled the input to unit RMS before encoding


def funcodec_config(config: Mapping[str, Any]) -> tuple[CodecConfig, bool]:
    """Our ``CodecConfig`` for a FunCodec ``config.yaml`` (as a mapping), and its ``audio_normalize``.

    Raises:
        ValueError: a model kind or an option funcodec_lite does not implement, naming it.
    """
    kind = config.get("model", "encodec")
    if kind not in ("encodec", "codec_semantic_aug"):
        raise ValueError(f"unknown FunCodec model {kind!r}; expected 'encodec', 'codec_semantic_aug' or "
                         "'freq_codec'")
    model_conf = config.get("model_conf") or {}
    if model_conf.get("codec_domain", "time") not in ("time", ["time", "time"]):
        raise ValueError(f"codec_domain {model_conf['codec_domain']!r} is not supported (time only)")
    for part in ("encoder", "decoder"):
        expected = f"encodec_seanet_{part}"
        if config.get(part, expected) != expected:
            raise ValueError(f"{part} {config.get(part)!r} is not supported; expected {expected!r}")
    refuse_unknown(config, "encoder_conf", set(SEANET_DEFAULTS) | {"input_size"})
    refuse_unknown(config, "decoder_conf", set(SEANET_DEFAULTS) | {"input_size", "channels"})
    enc, dec = coder_sections(config, SEANET_DEFAULTS, SEANET_DEFAULTS, _SHARED, "SEANet config")
    _refuse_unsupported(enc, dec)
    sample_rate = int(config.get("sampling_rate") or model_conf.get("target_sample_hz") or 16000)
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
        "quantizer": quantizer_section(config, enc["dimension"]),
        "semantic": semantic_section(model_conf) if kind == "codec_semantic_aug" else None,
    }
    # the constructor defaults: Encodec (codec_basic) normalises, CodecSemanticAug does not
    return CodecConfig.from_dict(data), bool(model_conf.get("audio_normalize", kind == "encodec"))


def semantic_section(model_conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """Our ``SemanticConfig`` fields for a ``codec_semantic_aug`` model's ``ppg_conf`` (None: ``supervision``,
    whose phoneme classifier only trains, so the model codes audio alone).

    Raises:
        ValueError: unknown ``ppg_conf`` options or the ``ptts`` mode (named).
    """
    ppg = {**PPG_DEFAULTS, **(model_conf.get("ppg_conf") or {})}
    unknown = sorted(set(ppg) - set(PPG_DEFAULTS))
    if unknown:
        raise ValueError(f"model_conf.ppg_conf: option(s) funcodec_lite does not know: {unknown}")
    usage = ppg["ppg_usage_mod"]
    if usage == "supervision":
        return None
    if usage == "ptts":
        raise ValueError("FunCodec option not supported by funcodec_lite: ppg_usage_mod 'ptts'")
    # FunCodec's inference treats any other mode name as its concatenating one
    return {"mode": {"residual": "res", "addition": "add"}.get(usage, "cat"), "frontend": "funcodec",
            "vocab_size": int(ppg["ppg_dim"]), "rate": int(ppg["ppg_ds_rate"]),
            "downsample": "conv" if ppg["ppg_ds_type"] == "conv" else "skip"}


def semantic_tensors(state_dict: Mapping[str, torch.Tensor], codec: Codec) -> dict[str, torch.Tensor]:
    """Our ``semantic.*`` tensors from FunCodec's ``ppg_embedding`` / ``ppg_ds_layer`` / ``ppg_cond_layer``
    (those the converted model uses; the rest, e.g. ``ppg_classifier``, only train)."""
    if codec.semantic is None:
        return {}
    renames = (("ppg_embedding.", "semantic.embedding."), ("ppg_ds_layer.", "semantic.downsample."),
               ("ppg_cond_layer.0.", "semantic.cond."))
    wanted = set(codec.state_dict())
    converted = {}
    for key, value in state_dict.items():
        for theirs, ours in renames:
            if key.startswith(theirs):
                target = encodec_key_to_ours(ours + key[len(theirs):])
                if target in wanted:
                    converted[target] = value
    return converted


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
    return quantizer_key_to_ours(key)


def funcodec_to_codec(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> FunCodecModel:
    """Builds the model holding the generator weights of a FunCodec checkpoint: a ``Codec`` for a
    time-domain model, a ``FunCodecFreq`` for ``model: freq_codec``.

    Args:
        state_dict: the ``model.pth`` contents (discriminator and loss buffers are ignored).
        config: the matching ``config.yaml`` as a mapping.

    Raises:
        ValueError: unsupported options, or weights that do not fit (naming the first offending keys).
    """
    if config.get("model", "encodec") == "freq_codec":
        from funcodec_lite.convert.funcodec_freq import funcodec_freq_to_model

        model, normalize = funcodec_freq_to_model(state_dict, config)
        return FunCodecModel(model, normalize)
    codec_config, normalize = funcodec_config(config)
    codec = Codec(codec_config)
    load_generator(codec, state_dict, encodec_key_to_ours, semantic_tensors(state_dict, codec))
    return FunCodecModel(codec.eval(), normalize)
