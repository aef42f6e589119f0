"""Released Mimi weights → a funcodec_lite ``Mimi``: Kyutai's safetensors (``moshi`` keys) or a
``transformers`` ``MimiModel`` directory (``config.json`` + ``model.safetensors``).

Nothing is unpickled: safetensors files are read as tensors, and a PyTorch checkpoint only with
``torch.load(weights_only=True)``.  Each codebook's stored EMA statistics become its codewords here
(``embedding_sum / max(cluster_usage, 1e-5)``, the division the references do at run time).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from funcodec_lite.codec.families.mimi import Mimi, MimiConfig, mimi_seanet
from funcodec_lite.convert.dac import file_sha256
from funcodec_lite.modules.transformer import TransformerConfig

RELEASED_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
CODEBOOK_EPSILON = 1e-5
MOSHI_NUM_CODEBOOKS = 8  # what moshi's loader sets on the released 32-codebook model

# ---------------------------------------------------------------------------------------------------
# Configs


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


# ---------------------------------------------------------------------------------------------------
# Weights

_MOSHI_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^downsample\.conv\.conv\.conv\.", "downsample.conv."),
    (r"^upsample\.convtr\.convtr\.convtr\.", "upsample.convtr."),
    (r"^(encoder|decoder)\.model\.", r"\1.layers."),
    (r"\.block\.(\d+)\.", r".block.layers.\1."),
    (r"\.(conv|convtr)\.\1\.", r".\1."),
    (r"^(encoder|decoder)_transformer\.transformer\.", r"\1_transformer."),
    (r"\.self_attn\.in_projs\.0\.weight$", ".self_attn.in_proj.weight"),
    (r"\.self_attn\.in_proj_weight$", ".self_attn.in_proj.weight"),
    (r"\.self_attn\.out_projs\.0\.weight$", ".self_attn.out_proj.weight"),
    (r"_transformer\.output_projs\.0\.", "_transformer.output_proj."),
    (r"^quantizer\.rvq_first\.", "quantizer.semantic."),
    (r"^quantizer\.rvq_rest\.", "quantizer.acoustic."),
)
_MOSHI_CODEBOOK = re.compile(r"^(quantizer\.(?:semantic|acoustic))\.vq\.layers\.(\d+)\._codebook\.(\w+)$")
_MOSHI_SUM = ("embedding_sum", "embed_sum", "embed_avg")
_MOSHI_USAGE = ("cluster_usage", "cluster_size")


def _codebooks(found: dict[str, dict[int, dict[str, torch.Tensor]]], sums: tuple[str, ...],
               usages: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """{group: {layer: {buffer: tensor}}} → {group + '.codebooks': [n_q, K, D]} (codewords from EMA sums)."""
    out = {}
    for group, layers in found.items():
        books = []
        for index in range(len(layers)):
            buffers = layers.get(index, {})
            total = next((buffers[n] for n in sums if n in buffers), None)
            usage = next((buffers[n] for n in usages if n in buffers), None)
            if total is None or usage is None:
                raise ValueError(f"not a complete Mimi checkpoint: codebook {index} of {group} lacks "
                                 "its sums or usage counts")
            books.append(total.float() / usage.float().clamp(min=CODEBOOK_EPSILON)[:, None])
        shapes = {tuple(b.shape) for b in books}
        if len(shapes) != 1:
            raise ValueError(f"not a Mimi checkpoint: codebooks of {group} differ in shape {sorted(shapes)}")
        out[f"{group}.codebooks"] = torch.stack(books)
    return out


def _load_into(model: Mimi, converted: dict[str, torch.Tensor], what: str) -> Mimi:
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    if missing or unexpected:
        raise ValueError(f"{what} does not match the Mimi config: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    wrong = [k for k, v in converted.items() if v.shape != ours[k].shape]
    if wrong:
        raise ValueError(f"{what} does not match the Mimi config: shape of {wrong[0]} is "
                         f"{tuple(converted[wrong[0]].shape)}, expected {tuple(ours[wrong[0]].shape)}")
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in converted.items()}, strict=True)
    return model.eval()


def _looks_like(state_dict: Mapping[str, Any], prefixes: tuple[str, ...], family: str) -> None:
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"not a {family} checkpoint: expected a state dict (name -> tensor)")
    if not any(k.startswith(prefixes) for k in state_dict):
        example = next(iter(state_dict))
        raise ValueError(f"not a {family} checkpoint: no {prefixes[0]}* weights (found e.g. {example!r})")


def mimi_from_moshi(state_dict: Mapping[str, torch.Tensor], mimi_config: Mapping[str, Any] | None = None,
                    num_codebooks: int | None = MOSHI_NUM_CODEBOOKS) -> Mimi:
    """A ``Mimi`` holding the weights of a ``moshi`` ``MimiModel`` state dict (the released safetensors).

    Args:
        state_dict: ``MimiModel.state_dict()`` or the tensors of ``tokenizer-e351c8d8-checkpoint125``.
        mimi_config: ``moshi``'s config dict for it (None: the released model's).
        num_codebooks: codebooks ``encode`` gives by default (8: as ``moshi.models.loaders.get_mimi``;
            None: all).
    Raises:
        ValueError: not a Mimi state dict, an unsupported option, or weights that do not fit the config.
    """
    _looks_like(state_dict, ("quantizer.rvq_first.", "encoder_transformer."), "Mimi (moshi)")
    config = config_from_moshi(mimi_config)
    config.num_codebooks = None if num_codebooks is None else min(int(num_codebooks), config.n_q)
    model = Mimi(config)
    converted: dict[str, torch.Tensor] = {}
    found: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key, value in state_dict.items():
        for pattern, replacement in _MOSHI_RENAMES:
            key = re.sub(pattern, replacement, key)
        book = _MOSHI_CODEBOOK.match(key)
        if book:
            group, index, name = book.group(1), int(book.group(2)), book.group(3)
            found.setdefault(group, {}).setdefault(index, {})[name] = value
        else:
            converted[key] = value
    converted.update(_codebooks(found, _MOSHI_SUM, _MOSHI_USAGE))
    return _load_into(model, converted, "state dict")


_HF_NESTED = (
    (r"^encoder\.encoder_seanet\.", "encoder."), (r"^encoder\.encoder_transformer\.", "encoder_transformer."),
    (r"^encoder\.downsample\.", "downsample."), (r"^decoder\.upsample\.", "upsample."),
    (r"^decoder\.decoder_transformer\.", "decoder_transformer."), (r"^decoder\.decoder_seanet\.", "decoder."),
)
_HF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^upsample\.conv\.", "upsample.convtr."),
    (r"\.block\.(\d+)\.", r".block.layers.\1."),
    (r"\.input_layernorm\.", ".norm1."),
    (r"\.post_attention_layernorm\.", ".norm2."),
    (r"\.mlp\.fc1\.", ".linear1."),
    (r"\.mlp\.fc2\.", ".linear2."),
    (r"\.self_attn_layer_scale\.", ".layer_scale_1."),
    (r"\.mlp_layer_scale\.", ".layer_scale_2."),
    (r"\.self_attn\.o_proj\.", ".self_attn.out_proj."),
    (r"^quantizer\.semantic_residual_vector_quantizer\.", "quantizer.semantic."),
    (r"^quantizer\.acoustic_residual_vector_quantizer\.", "quantizer.acoustic."),
)
_HF_CODEBOOK = re.compile(r"^(quantizer\.(?:semantic|acoustic))\.layers\.(\d+)\.codebook\.(\w+)$")
_HF_QKV = re.compile(r"^(.*\.self_attn)\.([qkv])_proj\.weight$")


def _interleave_rope_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k projection rows of ``transformers`` (each head's rotation pairs in two halves) → interleaved."""
    out_dim, in_dim = weight.shape
    head_dim = out_dim // heads
    return weight.view(heads, 2, head_dim // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def mimi_from_hf(config: dict, state_dict: dict) -> Mimi:
    """A ``Mimi`` from a ``transformers`` ``MimiModel`` directory's ``config.json`` dict and its
    ``model.safetensors`` tensors (the saved flat layout or the in-memory nested one).

    ``encode`` then gives the codes of ``MimiModel.encode`` (all codebooks by default, as transformers
    does) and ``decode`` its ``audio_values``.
    Raises:
        ValueError: not a Mimi config or state dict, an unsupported option (named), or weights that do
            not fit the config; one line.
    """
    mimi_config = config_from_hf(config)
    _looks_like(state_dict, ("quantizer.semantic_residual_vector_quantizer.", "encoder.", "decoder."),
                "Mimi (transformers)")
    model = Mimi(mimi_config)
    ours = model.state_dict()
    heads = mimi_config.transformer.num_heads
    converted: dict[str, torch.Tensor] = {}
    found: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        for pattern, replacement in _HF_NESTED + _HF_RENAMES:
            key = re.sub(pattern, replacement, key)
        book = _HF_CODEBOOK.match(key)
        attention = _HF_QKV.match(key)
        if book:
            group, index, name = book.group(1), int(book.group(2)), book.group(3)
            found.setdefault(group, {}).setdefault(index, {})[name] = value
        elif attention:
            qkv.setdefault(attention.group(1), {})[attention.group(2)] = value
        else:
            if key not in ours and key.replace(".conv.", ".convtr.") in ours:
                key = key.replace(".conv.", ".convtr.")  # the decoder's transposed convolutions
            converted[key] = value
    for prefix, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            lacking = sorted({"q", "k", "v"} - set(parts))
            raise ValueError(f"not a complete Mimi checkpoint: {prefix} lacks {lacking}")
        q, k = (_interleave_rope_rows(parts[name], heads) for name in ("q", "k"))
        converted[f"{prefix}.in_proj.weight"] = torch.cat([q, k, parts["v"]])
    converted.update(_codebooks(found, ("embed_sum",), ("cluster_usage",)))
    for group in ("quantizer.semantic", "quantizer.acoustic"):  # transformers omits identity projections
        for name in ("input_proj", "output_proj"):
            key = f"{group}.{name}.weight"
            if key not in converted and key in ours and ours[key].shape[0] == ours[key].shape[1]:
                converted[key] = torch.eye(ours[key].shape[0])[:, :, None]
    return _load_into(model, converted, "state dict")


# ---------------------------------------------------------------------------------------------------
# Files


def load_mimi_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a Mimi checkpoint file: safetensors, or a PyTorch file read with ``weights_only=True``
    (a bare state dict or one under ``model``, as ``moshi``'s loader accepts).

    Raises:
        ValueError: a missing, truncated or unreadable file (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    is_zip_or_pickle = head[:2] == b"PK" or head[:1] == b"\x80"
    if not is_zip_or_pickle:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({_first_line(err)})") from err
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or pickled-object files
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({_first_line(err)})") from err
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor)")
    return data


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def read_mimi_config(path: str | os.PathLike) -> dict[str, Any]:
    """A ``moshi`` Mimi config dict from a JSON or YAML file (bare, or under ``mimi_config`` as in the
    ``config.json`` of Kyutai's repositories)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: not a readable JSON/YAML config ({_first_line(err)})") from err
    if isinstance(data, dict) and isinstance(data.get("mimi_config"), dict):
        data = data["mimi_config"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping (moshi's Mimi config)")
    return data


def convert_mimi_file(path: str | os.PathLike, config_path: str | os.PathLike | None = None,
                      num_codebooks: int | None = MOSHI_NUM_CODEBOOKS) -> tuple[Mimi, dict[str, Any]]:
    """A released Mimi file (``tokenizer-e351c8d8-checkpoint125.safetensors``) → (model in eval mode,
    provenance: source file, its sha256, the config used).

    Args:
        path: the checkpoint.
        config_path: ``moshi``'s Mimi config as JSON/YAML (None: the released model's).
        num_codebooks: default codebooks of ``encode`` (8, as Moshi; None: all).
    Raises:
        ValueError: one line naming the file (unreadable, another family, unsupported option, shapes).
    """
    path = Path(path)
    mimi_config = read_mimi_config(config_path) if config_path is not None else None
    try:
        model = mimi_from_moshi(load_mimi_checkpoint(path), mimi_config, num_codebooks)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from err
    provenance = {"source": "mimi", "source_file": str(path.resolve()), "sha256": file_sha256(path),
                  "source_config": mimi_config or "moshi.models.loaders._mimi_config (released model)",
                  "weights_licence": "CC-BY 4.0 (Kyutai's released Mimi weights)"}
    return model, provenance
