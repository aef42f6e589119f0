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
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from funcodec_lite.codec.families.mimi import Mimi
from funcodec_lite.convert.checked_load import load_checked
from funcodec_lite.convert.mimi_config import config_from_hf, config_from_moshi
from funcodec_lite.utils.torch_files import (
    first_line,
    read_torch_file,
    require_file,
    source_provenance,
    state_dict_in,
)

RELEASED_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
CODEBOOK_EPSILON = 1e-5
MOSHI_NUM_CODEBOOKS = 8  # what moshi's loader sets on the released 32-codebook model

__all__ = ["config_from_hf", "config_from_moshi", "convert_mimi_file", "load_mimi_checkpoint", "mimi_from_hf",
           "mimi_from_moshi", "read_mimi_config"]

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
    return load_checked(model, converted, "state dict does not match the Mimi config")


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
    return load_checked(model, converted, "state dict does not match the Mimi config")


# ---------------------------------------------------------------------------------------------------
# Files


def load_mimi_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a Mimi checkpoint file: safetensors, or a PyTorch file read with ``weights_only=True``
    (a bare state dict or one under ``model``, as ``moshi``'s loader accepts).

    Raises:
        ValueError: a missing, truncated or unreadable file (one line).
    """
    path = require_file(path)
    if not _is_torch_file(path):
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({first_line(err)})") from err
    return state_dict_in(read_torch_file(path), ("model",), path, allow_empty=True)


def _is_torch_file(path: Path) -> bool:
    """Whether ``path`` starts as a PyTorch file does (a zip archive or a pickle), not as safetensors."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head[:2] == b"PK" or head[:1] == b"\x80"


def read_mimi_config(path: str | os.PathLike) -> dict[str, Any]:
    """A ``moshi`` Mimi config dict from a JSON or YAML file (bare, or under ``mimi_config`` as in the
    ``config.json`` of Kyutai's repositories)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: not a readable JSON/YAML config ({first_line(err)})") from err
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
    loader = "torch.load(weights_only=True)" if _is_torch_file(path) else "safetensors"
    return model, source_provenance(
        path, "mimi", loader,
        source_config=mimi_config or "moshi.models.loaders._mimi_config (released model)",
        weights_licence="CC-BY 4.0 (Kyutai's released Mimi weights)")
