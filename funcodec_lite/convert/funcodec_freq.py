"""FunCodec frequency-domain checkpoints (``model: freq_codec``) → a ``FunCodecFreq`` model.

Accepts the shapes of FunCodec's released and recipe FreqCodecs: ``encodec_seanet_encoder_2d`` /
``decoder_2d`` on ``mag_phase`` or ``mag_angle`` features, GroupNorm (``time_group_norm``) or weight norm,
with or without grouped convs (``conv_group_ratio``, ``tr_conv_group_ratio``) and the LSTM, and FunCodec's
RVQ. Any other option is refused with one line that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from funcodec_lite.audio.funcodec_domain import FUNCODEC_DOMAINS
from funcodec_lite.codec.families.funcodec_freq import FunCodecFreq, FunCodecFreqConfig
from funcodec_lite.convert.encodec import CONV_RENAMES, rename_key
from funcodec_lite.convert.funcodec_common import (
    coder_sections,
    load_generator,
    quantizer_section,
    refuse_unknown,
)
from funcodec_lite.modules.funcodec_freq import FunCodecFreqNetConfig
from funcodec_lite.quantization.rvq import RVQConfig

# FunCodec's constructor defaults (SEANetEncoder2d / SEANetDecoder2d, FreqCodec), which config.yaml omits.
ENCODER_2D_DEFAULTS: dict[str, Any] = {
    "n_filters": 32, "ratios": [[4, 1], [4, 1], [4, 2], [4, 1]], "dimension": 128, "n_residual_layers": 1,
    "activation": "ELU", "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {},
    "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2, "causal": False,
    "pad_mode": "reflect", "true_skip": False, "compress": 2, "seq_model": "lstm", "seq_layer_num": 2,
    "res_seq": True, "conv_group_ratio": -1,
}
DECODER_2D_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in ENCODER_2D_DEFAULTS.items() if k != "dimension"},
    "channels": 1, "final_activation": None, "final_activation_params": None, "trim_right_ratio": 1.0,
    "last_out_padding": [[0, 1], [0, 0]], "tr_conv_group_ratio": -1,
}
MODEL_DEFAULTS: dict[str, Any] = {
    "odim": 512, "target_sample_hz": 24000, "multi_spectral_window_powers_of_two": None,
    "multi_spectral_n_mels": 64, "recon_loss_weight": 1.0, "multi_spectral_recon_loss_weight": 1.0,
    "adversarial_loss_weight": 1 / 9, "feat_match_loss_weight": 100 / 9, "enc_quant_loss_weight": 1.0,
    "audio_normalize": False, "segment_dur": 1.0, "overlap_ratio": 0.01, "use_power_spec_loss": False,
    "bypass_quantizer": False, "codec_domain": ["time", "time"], "domain_conf": {},
    "phase_invariant_training": False, "pit_feat_loss_weight": 1, "pit_disc_loss_weight": 1000,
    "feat_match_layer_start": -1,
}
_SHARED = ("n_filters", "ratios", "n_residual_layers", "activation", "activation_params", "norm",
           "norm_params", "kernel_size", "last_kernel_size", "residual_kernel_size", "dilation_base",
           "causal", "pad_mode", "true_skip", "compress", "seq_model", "seq_layer_num", "res_seq")


def freq_key_to_ours(key: str) -> str:
    """Our key for one FunCodec ``encoder.model.*`` / ``decoder.model.*`` key of a FreqCodec: EnCodec's conv
    renames (SConv2d.conv (NormConv2d).conv (nn.Conv2d) is one PaddedConv2d around an nn.Conv2d; old-style
    weight norm, weight_g / weight_v, becomes the parametrization API)."""
    return rename_key(key, CONV_RENAMES)


def _as_pairs(value: Any) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in value]


def _unsupported(what: str) -> ValueError:
    return ValueError(f"FunCodec freq_codec option not supported by funcodec_lite: {what}")


def funcodec_freq_config(config: Mapping[str, Any]) -> tuple[FunCodecFreqConfig, bool]:
    """Our ``FunCodecFreqConfig`` for a FunCodec ``freq_codec`` ``config.yaml``, and its ``audio_normalize``.

    Raises:
        ValueError: an option funcodec_lite does not implement, named in one line.
    """
    for part in ("encoder", "decoder"):
        expected = f"encodec_seanet_{part}_2d"
        if config.get(part) != expected:
            raise ValueError(f"FunCodec model 'freq_codec' with {part} {config.get(part)!r} cannot be "
                             f"converted; funcodec_lite converts freq_codec with {expected}")
    for section, known in (("encoder_conf", set(ENCODER_2D_DEFAULTS) | {"input_size"}),
                           ("decoder_conf", set(DECODER_2D_DEFAULTS) | {"input_size"}),
                           ("model_conf", set(MODEL_DEFAULTS) | {"input_size"})):
        refuse_unknown(config, section, known)
    enc, dec = coder_sections(config, ENCODER_2D_DEFAULTS, DECODER_2D_DEFAULTS, _SHARED, "config")
    model = {**MODEL_DEFAULTS, **(config.get("model_conf") or {})}
    domain = _domain(model)
    channels = FUNCODEC_DOMAINS[domain]
    if config.get("input_size") != channels or dec["channels"] != channels:
        raise _unsupported(f"input_size {config.get('input_size')!r} / decoder_conf.channels "
                           f"{dec['channels']!r} (codec_domain {domain} has {channels} feature channels)")
    checks = [
        (model["segment_dur"] is None, f"model_conf.segment_dur {model['segment_dur']!r} (FunCodec then "
                                       "codes overlapping segments; funcodec_lite whole signals: null only)"),
        (not model["bypass_quantizer"], "model_conf.bypass_quantizer"),
        (not enc["causal"], "causal true"),
        (enc["activation"] == "ELU", f"activation {enc['activation']!r} (ELU only)"),
        (set(enc["activation_params"] or {}) <= {"alpha"}, f"activation_params {enc['activation_params']!r}"),
        (enc["seq_model"] in ("lstm", "none"), f"seq_model {enc['seq_model']!r} (lstm or none only)"),
        (enc["norm"] in ("weight_norm", "time_group_norm", "none"), f"norm {enc['norm']!r}"),
        (enc["norm_params"] in ({}, {"num_groups": 1}), f"norm_params {enc['norm_params']!r}"),
        (dec["final_activation"] is None, f"final_activation {dec['final_activation']!r}"),
        (float(dec["trim_right_ratio"]) == 1.0, "trim_right_ratio other than 1.0"),
        (enc["pad_mode"] in ("reflect", "constant", "replicate"), f"pad_mode {enc['pad_mode']!r}"),
    ]
    for ok, what in checks:
        if not ok:
            raise _unsupported(what)
    net = {
        "in_channels": channels, "dimension": int(enc["dimension"]), "n_filters": int(enc["n_filters"]),
        "ratios": _as_pairs(enc["ratios"]), "n_residual_layers": int(enc["n_residual_layers"]),
        "kernel_size": int(enc["kernel_size"]), "last_kernel_size": int(enc["last_kernel_size"]),
        "residual_kernel_size": int(enc["residual_kernel_size"]), "dilation_base": int(enc["dilation_base"]),
        "compress": int(enc["compress"]), "true_skip": bool(enc["true_skip"]), "norm": enc["norm"],
        "pad_mode": enc["pad_mode"], "seq_model": enc["seq_model"], "seq_layers": int(enc["seq_layer_num"]),
        "res_seq": bool(enc["res_seq"]),
        "elu_alpha": float((enc["activation_params"] or {}).get("alpha", 1.0)),
        "encoder_group_ratio": int(enc["conv_group_ratio"]),
        "decoder_group_ratio": int(dec["conv_group_ratio"]),
        "transpose_group_ratio": int(dec["tr_conv_group_ratio"]),
        "last_out_padding": _as_pairs(dec["last_out_padding"]),
    }
    domain_conf = dict(model["domain_conf"] or {})
    unknown = sorted(set(domain_conf) - {"n_fft", "hop_length"})
    if unknown:
        raise _unsupported(f"model_conf.domain_conf {unknown}")
    sample_rate = int(config.get("sampling_rate") or model["target_sample_hz"])
    try:
        built = FunCodecFreqConfig(
            sample_rate=sample_rate, domain=domain, n_fft=int(domain_conf.get("n_fft", 512)),
            hop_length=int(domain_conf.get("hop_length", 160)), net=FunCodecFreqNetConfig(**net),
            quantizer=RVQConfig(**quantizer_section(config, int(enc["dimension"]))),
            name="funcodec_freq_converted")
    except ValueError as error:
        raise _unsupported(str(error).splitlines()[0]) from error
    return built, bool(model["audio_normalize"])


def _domain(model: Mapping[str, Any]) -> str:
    codec_domain = model["codec_domain"]
    domains = [codec_domain] * 2 if isinstance(codec_domain, str) else list(codec_domain)
    if len(domains) != 2 or domains[0] != domains[1] or domains[0] not in FUNCODEC_DOMAINS:
        raise _unsupported(f"codec_domain {codec_domain!r} (funcodec_lite converts "
                           "['mag_phase', 'mag_phase'] and ['mag_angle', 'mag_angle'])")
    return domains[0]


def funcodec_freq_to_model(state_dict: Mapping[str, torch.Tensor],
                           config: Mapping[str, Any]) -> tuple[FunCodecFreq, bool]:
    """A ``FunCodecFreq`` holding the generator weights of a FunCodec ``freq_codec`` checkpoint.

    Args:
        state_dict: the ``model.pth`` contents (discriminator, loss and STFT-window buffers are ignored).
        config: the matching ``config.yaml`` as a mapping.
    Returns:
        the model (eval mode) and the config's ``audio_normalize``.
    Raises:
        ValueError: unsupported options, or weights that do not fit (naming the first offending keys).
    """
    freq_config, normalize = funcodec_freq_config(config)
    model = FunCodecFreq(freq_config)
    load_generator(model, state_dict, freq_key_to_ours)
    return model.eval(), normalize
