"""VampNet checkpoints (coarse ``coarse.pth``, coarse-to-fine ``c2f.pth``) → a ``vampnet_lm`` model directory.

VampNet (github.com/hugofloresgarcia/vampnet) saves its models with audiotools' ``BaseModel.save(...,
package=False)`` (``save_to_folder`` writes ``vampnet/weights.pth``; the released files are copies of it):
``{"state_dict": ..., "metadata": {"kwargs": VampNet's arguments, "logs": the training history}}``. The
history holds ``collections.defaultdict(audiotools.ml.decorators.default_list)`` objects, which
``torch.load(weights_only=True)`` refuses; exactly those two names (and numpy scalars) are allowed
(`funcodec_lite.utils.torch_files.read_torch_file`), rebuilt as a plain dict and list (nothing of audiotools
is imported or run);
any other object refuses the file. A ``torch.package`` file (``package.pth``, a pickled module with its
source) is refused.

The conversion folds what VampNet computes at load time: each LoRA pair into its weight (``W + B A / r``,
as ``loralib`` merges it in eval mode; VampNet builds rank 8, alpha 1), the classifier's weight norm into
a plain weight, the classifier's rows into codebook-major order. VampNet reads its token embeddings from
the codec's codebooks at run time; they are copied from the codec directory given (``--codec``: the
release's ``codec.pth`` converted by ``codec convert --from lac``, or a DAC) into the model, and the
codec's id is recorded so that ``codec vamp`` refuses another codec. Options the released models do not
use (flash attention, FiLM conditioning, control signals, cross-attention) are refused by name.
"""

from __future__ import annotations

import collections
import os
import re
from pathlib import Path
from typing import Any

import torch

from funcodec_lite.lm.vampnet import VampNetLM, VampNetLMConfig
from funcodec_lite.utils.torch_files import numpy_scalar_globals, plain, read_torch_file, source_provenance

REFERENCE = "github.com/hugofloresgarcia/vampnet (vampnet/modules/transformer.py)"
LORA_SCALING = 1.0 / 8  # loralib's lora_alpha / r as VampNet builds its layers (alpha 1, r 8)
# VampNet's linear layers -> ours, per block
BLOCK_LINEARS = {"self_attn.w_qs": "attention.q", "self_attn.w_ks": "attention.k",
                 "self_attn.w_vs": "attention.v", "self_attn.fc": "attention.out",
                 "feed_forward.w_1": "ff.inp", "feed_forward.w_2": "ff.out"}


def _default_list() -> list:
    return []


def _plain_dict(*_factory: Any) -> dict:
    return {}


# the only objects beyond tensors and plain values a VampNet file may hold: the training history's
# defaultdicts, rebuilt as plain dicts and lists (their default factory is never called)
HISTORY_GLOBALS = [(_plain_dict, "collections.defaultdict"),
                   (_default_list, "audiotools.ml.decorators.default_list")]


def read_vampnet_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, VampNet's keyword arguments) of a VampNet ``weights.pth`` / release ``.pth``.

    Raises:
        ValueError: one line: no such file, not a readable checkpoint (truncated, a torch.package), objects
            other than the training history's, or a checkpoint that is not VampNet's.
    """
    path = Path(path)
    data = read_torch_file(path, [*HISTORY_GLOBALS, *numpy_scalar_globals()],
                           expected="VampNet's weights.pth (tensors, kwargs and the training history)",
                           package_message="a torch.package archive (VampNet's package.pth: a pickled "
                           "model with its code), not loaded for safety; convert vampnet/weights.pth, saved "
                           "beside it")
    state = data.get("state_dict") if isinstance(data, dict) else None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(state, dict) or not isinstance(metadata, dict) or not isinstance(
            metadata.get("kwargs"), dict):
        raise ValueError(f"{path}: not a VampNet checkpoint (expected 'state_dict' and metadata['kwargs'])")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: not a VampNet checkpoint ('state_dict' is not a map of names to tensors)")
    if "embedding.special.MASK" not in state or "embedding.out_proj.weight" not in state:
        raise ValueError(f"{path}: not a VampNet checkpoint (no embedding.special.MASK / "
                         "embedding.out_proj: another model's weights)")
    return state, plain(metadata["kwargs"])


def vampnet_config(state: dict[str, torch.Tensor], kwargs: dict[str, Any]) -> VampNetLMConfig:
    """Our config from VampNet's kwargs, checked against the weights' shapes; unsupported options refused."""
    refused = [name for name, bad in (("flash_attn", kwargs.get("flash_attn")),
                                      ("r_cond_dim", kwargs.get("r_cond_dim")),
                                      ("ctrl_dims (control signals)", kwargs.get("ctrl_dims")),
                                      ("cond_dim", kwargs.get("cond_dim"))) if bad]
    extra = re.compile(r"(Wqkv|cross_attn|film_\d\.|ctrl_encoder)")
    refused += [f"weights {key}" for key in state if extra.search(key)]
    if refused:
        raise ValueError(f"VampNet options not supported: {', '.join(refused[:3])} (the released coarse and "
                         "c2f models use none)")
    n_q, latent_dim = state["embedding.special.MASK"].shape
    dim = state["embedding.out_proj.weight"].shape[0]
    n_layers = len({m.group(1) for key in state if (m := re.match(r"transformer\.layers\.(\d+)\.", key))})
    buckets = state.get("transformer.layers.0.self_attn.relative_attention_bias.weight")
    if buckets is None or n_layers == 0:
        raise ValueError("not a VampNet checkpoint (no transformer layers with a relative position bias)")
    card = int(kwargs.get("vocab_size", 1024))
    n_cond = int(kwargs.get("n_conditioning_codebooks", 0))
    found = {"n_codebooks": n_q, "latent_dim": latent_dim, "embedding_dim": dim, "n_layers": n_layers,
             "n_heads": buckets.shape[1]}
    for name, value in found.items():
        if name in kwargs and int(kwargs[name]) != int(value):
            raise ValueError(f"VampNet checkpoint: metadata says {name} {kwargs[name]}, the weights {value}")
    try:
        return VampNetLMConfig(n_q=n_q, n_conditioning=n_cond, card=card, latent_dim=latent_dim, dim=dim,
                               n_layers=n_layers, n_heads=buckets.shape[1], num_buckets=buckets.shape[0])
    except ValueError as err:
        raise ValueError(f"VampNet checkpoint: {err}") from err


def _lora_folded(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The weight VampNet's eval mode uses: ``W + (B @ A) * scaling`` when the layer has a LoRA pair."""
    weight = state[f"{prefix}.weight"]
    if f"{prefix}.lora_A" in state:
        weight = weight + (state[f"{prefix}.lora_B"] @ state[f"{prefix}.lora_A"]) * LORA_SCALING
    return weight


def _classifier_weight(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """[Kp·card, D, 1] from weight norm (old ``weight_g``/``weight_v`` or parametrizations) or a plain
    weight."""
    base = "classifier.layers.0"
    for g_key, v_key in ((f"{base}.weight_g", f"{base}.weight_v"),
                         (f"{base}.parametrizations.weight.original0",
                          f"{base}.parametrizations.weight.original1")):
        if g_key in state:
            return torch._weight_norm(state[v_key], state[g_key], 0)
    return state[f"{base}.weight"]


def vampnet_state_dict(state: dict[str, torch.Tensor], config: VampNetLMConfig,
                       codebooks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``VampNetLM`` state dict from VampNet's and the codec's codebooks (``n_q`` tensors [card, L])."""
    mask = state["embedding.special.MASK"]
    latents = torch.stack([torch.cat([codebooks[q].float(), mask[q : q + 1]]) for q in range(config.n_q)])
    out = {"latents": latents, "in_proj.weight": state["embedding.out_proj.weight"],
           "in_proj.bias": state["embedding.out_proj.bias"],
           "relative_bias.weight": state["transformer.layers.0.self_attn.relative_attention_bias.weight"],
           "norm.weight": state["transformer.norm.weight"]}
    for i in range(config.n_layers):
        src = f"transformer.layers.{i}"
        out[f"blocks.{i}.norm1.weight"] = state[f"{src}.norm_1.weight"]
        out[f"blocks.{i}.norm2.weight"] = state[f"{src}.norm_3.weight"]
        for theirs, ours in BLOCK_LINEARS.items():
            out[f"blocks.{i}.{ours}.weight"] = _lora_folded(state, f"{src}.{theirs}")
    kp, card = config.n_q - config.n_conditioning, config.card
    # VampNet's classifier rows are (token, codebook) with the codebook fastest; ours codebook-major
    weight = _classifier_weight(state)
    out["heads.weight"] = weight.view(card, kp, *weight.shape[1:]).transpose(0, 1).reshape(weight.shape)
    out["heads.bias"] = state["classifier.layers.0.bias"].view(card, kp).t().reshape(-1)
    return out


def codec_codebooks(codec: torch.nn.Module, n_q: int, card: int, latent_dim: int) -> list[torch.Tensor]:
    """The first ``n_q`` codebooks [card, latent_dim] of a DAC-like codec (``quantizer.quantizers[i]
    .codebook``, where VampNet reads them)."""
    quantizers = getattr(getattr(codec, "quantizer", None), "quantizers", None)
    if quantizers is None or len(quantizers) < n_q:
        raise ValueError(f"the codec must be a DAC or LAC with at least {n_q} codebooks (VampNet embeds "
                         "tokens with its codebooks)")
    books = [quantizers[q].codebook.weight.detach() for q in range(n_q)]
    if any(tuple(book.shape) != (card, latent_dim) for book in books):
        raise ValueError(f"the codec's codebooks are {tuple(books[0].shape)}; the VampNet model needs "
                         f"{card} x {latent_dim}")
    return books


def convert_vampnet_file(path: str | os.PathLike,
                         codec_dir: str | os.PathLike) -> tuple[VampNetLM, dict[str, Any]]:
    """(our model, provenance) of a VampNet checkpoint, with the token embeddings of ``codec_dir``."""
    from funcodec_lite.codec.loading import ModelError, load_model, model_id

    state, kwargs = read_vampnet_file(path)
    try:
        config = vampnet_config(state, kwargs)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    unused = [k for k in state if not _is_mapped(k)]
    if unused:
        raise ValueError(f"{path}: weights this converter does not know: {', '.join(unused[:3])}")
    try:
        codec = load_model(codec_dir, fold=False)
    except ModelError as err:
        raise ValueError(str(err)) from err
    try:
        books = codec_codebooks(codec, config.n_q, config.card, config.latent_dim)
    except ValueError as err:
        raise ValueError(f"{codec_dir}: {err}") from err
    model = VampNetLM(config)
    converted = vampnet_state_dict(state, config, books)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    provenance = source_provenance(path, "vampnet", reference=REFERENCE,
                                   vampnet_kwargs=collections.OrderedDict(sorted(kwargs.items())),
                                   codec=str(Path(codec_dir).resolve()), tokens={"model_id": model_id(codec)})
    return model.eval(), _json_safe(provenance)


def _is_mapped(key: str) -> bool:
    if key in ("embedding.special.MASK", "embedding.out_proj.weight", "embedding.out_proj.bias",
               "transformer.norm.weight", "classifier.layers.0.bias"):
        return True
    if key.startswith("classifier.layers.0.") and re.search(r"weight(_g|_v)?$|original[01]$", key):
        return True
    match = re.fullmatch(r"transformer\.layers\.\d+\.(.+)", key)
    if not match:
        return False
    rest = match.group(1)
    linear = re.fullmatch(r"(.+)\.(weight|lora_A|lora_B)", rest)
    return rest in ("norm_1.weight", "norm_3.weight", "self_attn.relative_attention_bias.weight") or bool(
        linear and linear.group(1) in BLOCK_LINEARS)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
