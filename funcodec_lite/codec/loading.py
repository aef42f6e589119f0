"""Finding and loading codec model directories: the shipped default model, error reports, the model id.

A codec model directory holds any codec kind of ``funcodec_lite.codec.kinds`` (our ``Codec``, or a family
converted from released checkpoints); ``load_model`` returns it as a ``CompressionModel``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.kinds import CODEC_KINDS, codec_class
from funcodec_lite.codec.model import Codec
from funcodec_lite.utils.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelDirError,
    load_model_as,
    read_model_config,
)

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ENV = "FUNCODEC_LITE_DEFAULT_MODEL"
_ID_ATTRIBUTE = "_funcodec_model_id"
# Seed of the decoder noise of models that draw it (SNAC) when loaded for inference (`load_model`)
INFERENCE_NOISE_SEED = 0
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ModelError(ModelDirError):
    """A codec model directory that cannot be used: missing, incomplete or corrupt files."""


def default_model_dir() -> Path:
    """Where the default model lives: ``$FUNCODEC_LITE_DEFAULT_MODEL`` if set, else the copy shipped in
    the package (``funcodec_lite/codec/pretrained/default/``)."""
    override = os.environ.get(DEFAULT_MODEL_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("funcodec_lite.codec").joinpath("pretrained", DEFAULT_MODEL)))


def resolve_model_dir(model: str | os.PathLike | None = None) -> Path:
    """The model directory named by ``model``: None or ``"default"`` mean the default model.

    Raises:
        ModelError: no default model installed, or a path that is not a directory holding
            ``config.yaml`` and ``model.safetensors``.
    """
    if model is None or str(model) == DEFAULT_MODEL:
        directory = default_model_dir()
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
        if missing:
            raise ModelError(f"no default model is installed ({directory} has no {' or '.join(missing)}); "
                             "pass a model directory (--model DIR), or set "
                             f"{DEFAULT_MODEL_ENV} to one")
        return directory
    directory = Path(model)
    if not directory.exists():
        raise ModelError(f"{directory}: no such model directory")
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a model directory (expected a directory with {CONFIG_FILE} and "
                         f"{WEIGHTS_FILE})")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"{directory}: model directory is missing {', '.join(missing)}")
    return directory


def load_model(model: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               dtype: str | torch.dtype = torch.float32, fold: bool = True) -> CompressionModel:
    """Loads a codec model directory of any codec kind for inference (eval mode), with its ``model_id``
    computed and cached.

    Args:
        model: a directory written by ``save_model_dir`` (``Codec.save_pretrained``, ``codec convert``)
            whose kind is a codec kind (``CODEC_KINDS``); None or "default" for the default model.
        device: where to put it.
        dtype: ``float32`` or ``bfloat16`` (weights are cast after the id is computed, so the id is the
            same in both).
        fold: fold weight normalisation into plain weights (faster inference, same outputs).

    Models with decoder noise (SNAC) get ``set_noise_seed(INFERENCE_NOISE_SEED)``: every run of the command
    line or the ``Tokenizer`` decodes the same codes to the same audio (``set_noise_seed(None)`` restores
    the reference package's draws from torch's global RNG).

    Raises:
        ModelError: missing, incomplete or corrupt files, a directory of a model that is not a codec, a
            codec kind not available here, or weights that do not fit the config.
    """
    directory = resolve_model_dir(model)
    try:
        kind, _ = read_model_config(directory)
        if kind not in CODEC_KINDS:
            raise ModelDirError(f"a {kind} model directory, not a codec (codec kinds: "
                                f"{', '.join(sorted(CODEC_KINDS))})")
        codec = load_model_as(directory, codec_class(kind))
    except (ModelDirError, OSError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        detail = detail.removeprefix(f"{directory}: ")
        raise ModelError(f"{directory}: cannot load the model ({detail[:300]})") from err
    model_id(codec)  # cache it from the weights as stored
    if fold:
        codec.fold_weight_norm()
    codec.set_noise_seed(INFERENCE_NOISE_SEED)  # the same codes decode to the same audio on every run
    return codec.to(device=torch.device(device), dtype=resolve_dtype(dtype)).eval()


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``torch.float32`` / ``torch.bfloat16`` from a name or a dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use float32 or bfloat16")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


# Config fields added after token files began to carry model ids, with their defaults: a field at
# its default is left out of the hash, so a model saved before the field existed keeps its id.
_LATER_FIELDS: dict[tuple[str, ...], object] = {
    ("input_gain",): 1.0,
    ("quantizer", "dead_code_ratio"): 0.1,
    ("quantizer", "revival_grace"): 100,
    ("quantizer", "kind"): "rvq",
    ("quantizer", "levels"): None,
    ("model", "decoder_head"): "conv",
    ("model", "istft_blocks"): 4,
    ("model", "istft_width"): None,
    ("model", "istft_n_fft"): None,
}


def model_id(codec: CompressionModel) -> str:
    """A short identifier of a model: sha256 of its canonical config and weights (16 hex digits).

    The config is hashed as sorted JSON (without its ``name`` label; a kind other than ``codec`` is
    hashed too, so two families never share an id); the weights as float32 bytes in
    key order, with weight-normalised weights taken as the plain weights they compute, so folding
    does not change the id.  Computed once and cached on the model (``load_model`` computes it before
    any dtype cast): change the weights after that and the cached id is stale.
    """
    cached = getattr(codec, _ID_ATTRIBUTE, None)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    kind = getattr(type(codec), "model_kind", Codec.model_kind)
    config = codec.config.to_dict() if hasattr(codec.config, "to_dict") else dataclasses.asdict(codec.config)
    config.pop("name", None)
    if kind == Codec.model_kind:
        for path, default in _LATER_FIELDS.items():
            *parents, key = path
            section = config
            for parent in parents:
                section = section.get(parent) or {}
            if key in section and section[key] == default:
                del section[key]
    else:
        digest.update(f"kind:{kind};".encode())
    digest.update(json.dumps(config, sort_keys=True, separators=(",", ":"), default=list).encode())
    for key, tensor in sorted(_canonical_tensors(codec).items()):
        data = tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype)
        digest.update(f"{key}:{list(data.shape)}:{data.dtype};".encode())
        digest.update(data.contiguous().numpy().tobytes())
    value = digest.hexdigest()[:16]
    object.__setattr__(codec, _ID_ATTRIBUTE, value)
    return value


def _canonical_tensors(codec: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each weight-norm parametrisation replaced by the weight it computes."""
    tensors = {k: v for k, v in codec.state_dict().items() if ".parametrizations.weight." not in k}
    with torch.no_grad():
        for name, module in codec.named_modules():
            if parametrize.is_parametrized(module, "weight"):
                tensors[f"{name}.weight"] = module.weight
    return tensors
