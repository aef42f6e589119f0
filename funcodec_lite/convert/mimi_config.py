"""Configs of released Mimi models → our ``MimiConfig``: ``moshi``'s config dict and ``transformers``'
``config.json``; an option we do not support raises ValueError naming it (one line)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from funcodec_lite.codec.families.mimi import MimiConfig, mimi_seanet
from funcodec_lite.modules.transformer import TransformerConfig


def _take(section: dict, name: str, where: str, allowed: Mapping[str, Any]) -> None:
    """Raises ValueError (one line) for an option whose value we do not support."""
    if name in section and section[name] != allowed[name]:
        raise ValueError(f"unsupported Mimi config option {where}{name}={section[name]!r} "
                         f"(only {allowed[name]!r})")


def config_from_moshi(mimi_config: Mapping[str, Any] | None = None) -> MimiConfig:
    """Our config from ``moshi``'s Mimi config dict (``loaders._mimi_config``: sample_rate, channels,
    frame_rate, and the ``seanet``, ``transformer`` and ``quantizer`` keyword arguments).

    None gives the released model's config.  An option we do not support raises ValueError naming it.
    """
    if mimi_config is None:
        return MimiConfig()
    top = dict(mimi_config)
    seanet, transformer, quantizer = (dict(top.pop(name, {}) or {}) for name in ("seanet", "transformer",
                                                                                  "quantizer"))
    known_top = {"sample_rate", "channels", "frame_rate"}
    for name in top:
        if name not in known_top:
            raise ValueError(f"unsupported Mimi config option {name}")
    fixed_seanet = {"causal": True, "activation": "ELU", "norm": "none", "pad_mode": "constant",
                    "final_activation": None, "trim_right_ratio": 1.0, "mask_fn": None, "mask_position": None}
    for name in fixed_seanet:
        _take(seanet, name, "seanet.", fixed_seanet)
    base = mimi_seanet()
    renames = {"dimension": "dimension", "n_filters": "n_filters", "n_residual_layers": "n_residual_layers",
               "ratios": "ratios", "kernel_size": "kernel_size", "last_kernel_size": "last_kernel_size",
               "residual_kernel_size": "residual_kernel_size", "dilation_base": "dilation_base",
               "compress": "compress", "true_skip": "true_skip"}
    ignored = {"channels", "norm_params", "disable_norm_outer_blocks", "final_activation_params",
               *fixed_seanet}
    values = {}
    for name, value in seanet.items():
        if name in renames:
            values[renames[name]] = list(value) if name == "ratios" else value
        elif name == "activation_params":
            if set(value) - {"alpha"}:
                raise ValueError(f"unsupported Mimi config option seanet.activation_params={value!r}")
            values["elu_alpha"] = float(value.get("alpha", 1.0))
        elif name not in ignored:
            raise ValueError(f"unsupported Mimi config option seanet.{name}")
    seanet_config = replace(base, **values)
    channels = int(top.get("channels", seanet.get("channels", 1)))
    if seanet.get("channels", channels) != channels:
        raise ValueError(f"unsupported Mimi config option seanet.channels={seanet['channels']} "
                         f"(differs from channels={channels})")

    fixed_transformer = {"causal": True, "conv_layout": True, "gating": "none", "norm": "layer_norm",
                         "positional_embedding": "rope", "kv_repeat": 1, "weights_per_step": 0,
                         "cross_attention": False, "skip_self_attn": False, "quantize": False}
    for name in fixed_transformer:
        _take(transformer, name, "transformer.", fixed_transformer)
    dim = seanet_config.dimension
    outputs = list(transformer.get("output_dimensions", [dim]))
    if transformer.get("input_dimension", dim) != dim or outputs != [dim]:
        raise ValueError("unsupported Mimi config option transformer.input_dimension/output_dimensions "
                         f"(must be the SEANet dimension {dim})")
    t_names = {"d_model", "num_heads", "num_layers", "dim_feedforward", "context", "max_period",
               "layer_scale"}
    t_ignored = {"input_dimension", "output_dimensions", "betas", "checkpointing", "positional_scale",
                 *fixed_transformer}
    for name in transformer:
        if name not in t_names | t_ignored:
            raise ValueError(f"unsupported Mimi config option transformer.{name}")
    transformer_config = TransformerConfig(**{k: v for k, v in transformer.items() if k in t_names})

    q_names = {"dimension": "codebook_dim", "n_q": "n_q", "bins": "bins", "n_q_semantic": "n_q_semantic"}
    q_ignored = {"input_dimension", "output_dimension", "q_dropout", "no_quantization_rate", "decay",
                 "threshold_usage_ratio", "replaced_usage_ratio", "force_projection"}
    for name in ("input_dimension", "output_dimension"):
        if quantizer.get(name, dim) != dim:
            raise ValueError(f"unsupported Mimi config option quantizer.{name}={quantizer[name]} "
                             f"(must be the SEANet dimension {dim})")
    for name in quantizer:
        if name not in q_names and name not in q_ignored:
            raise ValueError(f"unsupported Mimi config option quantizer.{name}")
    q_values = {q_names[k]: v for k, v in quantizer.items() if k in q_names}
    return MimiConfig(sample_rate=int(top.get("sample_rate", 24000)), channels=channels,
                      frame_rate=float(top.get("frame_rate", 12.5)), seanet=seanet_config,
                      transformer=transformer_config, **q_values)


def config_from_hf(config: Mapping[str, Any]) -> MimiConfig:
    """Our config from a ``transformers`` ``MimiConfig`` dict (``config.json``).

    Raises:
        ValueError: not a Mimi config, or an option we do not support (named, one line).
    """
    if config.get("model_type", "mimi") != "mimi":
        raise ValueError(f"not a Mimi config (model_type {config.get('model_type')!r})")
    fixed = {"use_causal_conv": True, "pad_mode": "constant", "trim_right_ratio": 1.0, "hidden_act": "gelu",
             "attention_bias": False}
    c = dict(config)
    for half in ("encoder_config", "decoder_config"):
        if half in c and c[half] is None:
            raise ValueError(f"unsupported Mimi config option {half}=None (both halves are needed)")
        c.pop(half, None)
    for name in fixed:
        _take(c, name, "", fixed)
    hidden = int(c.get("hidden_size", 512))
    heads = int(c.get("num_attention_heads", 8))
    if int(c.get("num_key_value_heads", heads) or heads) != heads:
        raise ValueError(f"unsupported Mimi config option num_key_value_heads={c['num_key_value_heads']} "
                         f"(only num_attention_heads={heads})")
    if c.get("head_dim") not in (None, hidden // heads) or hidden % heads:
        raise ValueError(f"unsupported Mimi config option head_dim={c.get('head_dim')!r} "
                         f"(only hidden_size / num_attention_heads)")
    rope = c.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"unsupported Mimi config option rope_parameters.rope_type={rope['rope_type']!r}")
    theta = float(rope.get("rope_theta", c.get("rope_theta", 10000.0)))
    codebook_dim = int(c.get("codebook_dim") or hidden)
    vq_dim = int(c.get("vector_quantization_hidden_dimension", 256))
    if vq_dim != codebook_dim:
        raise ValueError(f"unsupported Mimi config option vector_quantization_hidden_dimension={vq_dim} "
                         f"(must equal codebook_dim={codebook_dim})")
    if c.get("layer_scale_initial_scale", 0.01) is None:
        raise ValueError("unsupported Mimi config option layer_scale_initial_scale=None")
    ratios = [int(r) for r in (c.get("upsampling_ratios") or [8, 6, 5, 4])]
    sample_rate = int(c.get("sampling_rate", 24000))
    hop = 1
    for r in ratios:
        hop *= r
    if sample_rate % hop:
        raise ValueError(f"unsupported Mimi config: sampling_rate {sample_rate} is not a multiple of "
                         f"the hop {hop}")
    frame_rate = c.get("frame_rate", c.get("_frame_rate")) or sample_rate / (2 * hop)
    seanet = replace(mimi_seanet(), dimension=hidden, n_filters=int(c.get("num_filters", 64)), ratios=ratios,
                     n_residual_layers=int(c.get("num_residual_layers", 1)),
                     kernel_size=int(c.get("kernel_size", 7)),
                     last_kernel_size=int(c.get("last_kernel_size", 3)),
                     residual_kernel_size=int(c.get("residual_kernel_size", 3)),
                     dilation_base=int(c.get("dilation_growth_rate", 2)), compress=int(c.get("compress", 2)),
                     true_skip=not c.get("use_conv_shortcut", False))
    transformer = TransformerConfig(d_model=hidden, num_heads=heads,
                                    num_layers=int(c.get("num_hidden_layers", 8)),
                                    dim_feedforward=int(c.get("intermediate_size", 2048)),
                                    context=c.get("sliding_window", 250), max_period=theta,
                                    layer_scale=float(c.get("layer_scale_initial_scale", 0.01)),
                                    norm_eps=float(c.get("norm_eps", 1e-5)))
    groups = int(c.get("upsample_groups", hidden))
    return MimiConfig(sample_rate=sample_rate, channels=int(c.get("audio_channels", 1)),
                      frame_rate=float(frame_rate), seanet=seanet, transformer=transformer,
                      n_q=int(c.get("num_quantizers", 32)),
                      n_q_semantic=int(c.get("num_semantic_quantizers", 1)),
                      bins=int(c.get("codebook_size", 2048)), codebook_dim=codebook_dim,
                      upsample_groups=None if groups == hidden else groups, pad_to_frame=False)
