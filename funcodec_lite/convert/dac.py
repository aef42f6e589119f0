"""DAC checkpoints → a funcodec_lite ``DAC`` model: the original release files and ``transformers``' layout.

Two sources hold the same weights under different names:

- **DAC's release files** (``weights.pth``, ``weights_24khz.pth``, ``weights_16khz.pth``, written by
  ``DAC.save(..., package=False)``): ``{"state_dict": ..., "metadata": {"kwargs": {...}}}`` with weight
  norm kept (``weight_g`` / ``weight_v``) and the keyword arguments of ``DAC(...)`` in the metadata. The
  file is read with ``torch.load(weights_only=True)``: no arbitrary object is unpickled. ``DAC.save``
  writes plain Python values there; should a file carry numpy scalars or dtypes (which ``weights_only``
  refuses), exactly those numpy types are allowed (`funcodec_lite.utils.torch_files.read_torch_file`) and
  converted to Python numbers; any other object refuses the file (ValueError naming it).
- **``transformers``' ``DacModel``** (``config.json`` + ``model.safetensors``): weight norm removed
  (plain ``weight``) and other module names; `dac_from_hf` takes the parsed config and the state dict
  (the ``codec convert --from hf`` dispatcher reads the files).

Errors (a checkpoint of another family, an unreadable or truncated file, an unsupported option, weights
that do not fit the config) are ValueError with one line naming the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from funcodec_lite.codec.families.dac import DAC, DACConfig
from funcodec_lite.convert.checked_load import load_checked
from funcodec_lite.utils.torch_files import (
    first_line,
    numpy_scalar_globals,
    plain,
    read_torch_file,
    source_provenance,
)

# the keyword arguments of DAC's DAC class (descript-audio-codec 1.0.0) -> DACConfig fields
TRAINING_ONLY_KWARGS = ("quantizer_dropout",)
ConfigT = TypeVar("ConfigT", bound=DACConfig)
# DAC's keyword arguments, with its defaults for those a file leaves out (the 44.1 kHz model)
DAC_DEFAULTS: dict[str, Any] = {"sample_rate": 44100, "encoder_dim": 64, "encoder_rates": [2, 4, 8, 8],
                                "latent_dim": None, "decoder_dim": 1536, "decoder_rates": [8, 8, 4, 2],
                                "n_codebooks": 9, "codebook_size": 1024, "codebook_dim": 8}
# The released models (descript-audio-codec's download tags 0.0.5, 0.0.4, 0.0.1): their metadata kwargs
RELEASED_CONFIGS: dict[str, dict[str, Any]] = {
    "16khz": {**DAC_DEFAULTS, "sample_rate": 16000, "encoder_rates": [2, 4, 5, 8],
              "decoder_rates": [8, 5, 4, 2], "n_codebooks": 12},
    "24khz": {**DAC_DEFAULTS, "sample_rate": 24000, "encoder_rates": [2, 4, 5, 8],
              "decoder_rates": [8, 5, 4, 2], "n_codebooks": 32},
    "44khz": dict(DAC_DEFAULTS),
}
# transformers' DacConfig: key -> (DACConfig field, its default there)
HF_KEYS: dict[str, tuple[str, Any]] = {
    "sampling_rate": ("sample_rate", 16000), "encoder_hidden_size": ("encoder_dim", 64),
    "downsampling_ratios": ("encoder_rates", [2, 4, 8, 8]), "decoder_hidden_size": ("decoder_dim", 1536),
    "n_codebooks": ("n_codebooks", 9), "codebook_size": ("codebook_size", 1024),
    "codebook_dim": ("codebook_dim", 8),
}


# ---------------------------------------------------------------------------------------------------
# Reading DAC's release file
def read_dac_file(path: str | Path, family: str = "DAC", package_message: str | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata kwargs) of a DAC release file, read with ``torch.load(weights_only=True)``.

    Any model saved by audiotools' ``BaseModel.save(..., package=False)`` has this layout (LAC's too);
    ``family`` names the model in the messages; ``package_message`` refuses a ``torch.package`` archive.

    Raises:
        ValueError: no such file, a file torch cannot read (truncated, not a checkpoint), an object in it
            that ``weights_only`` refuses other than numpy scalars, or a checkpoint that is not DAC's
            (no ``state_dict`` + ``metadata.kwargs``).
    """
    path = Path(path)
    data = read_torch_file(path, numpy_scalar_globals(),
                           expected=f"a {family} checkpoint of tensors and plain metadata",
                           package_message=package_message)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise ValueError(f"{path}: not a {family} checkpoint (expected a dict with 'state_dict' and "
                         f"'metadata'; found {_describe(data)})")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("kwargs"), dict):
        raise ValueError(f"{path}: not a {family} checkpoint (no metadata['kwargs'] with {family}'s "
                         "arguments)")
    state = data["state_dict"]
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: not a {family} checkpoint ('state_dict' is not a map of names to tensors)")
    return state, plain(metadata["kwargs"])


def dac_config_from_kwargs(kwargs: Mapping[str, Any], weight_norm: bool = True) -> DACConfig:
    """The ``DACConfig`` of DAC's ``metadata['kwargs']`` (missing keys take DAC's defaults).

    Raises:
        ValueError: an option DAC's model does not have (named), or a value of the wrong type.
    """
    return config_from_kwargs(kwargs, DAC_DEFAULTS, DACConfig, "DAC", weight_norm)


def config_from_kwargs(kwargs: Mapping[str, Any], defaults: Mapping[str, Any], config_class: type[ConfigT],
                       family: str, weight_norm: bool) -> ConfigT:
    """``config_class`` of an audiotools model's ``metadata['kwargs']`` (DAC's, LAC's): the options named in
    ``defaults`` (missing ones take those values), training-only options ignored.

    Raises:
        ValueError: an option ``defaults`` does not have (named), or a value ``config_class`` refuses.
    """
    unknown = sorted(set(kwargs) - set(defaults) - set(TRAINING_ONLY_KWARGS))
    if unknown:
        raise ValueError(f"unsupported {family} option {unknown[0]!r} (supported: {', '.join(defaults)})")
    values = {**defaults, **{k: v for k, v in kwargs.items() if k in defaults}}
    try:
        return config_class(**_as_ints(values), weight_norm=weight_norm)
    except (TypeError, ValueError) as err:
        detail = re.sub(r"^(unsupported )?[DL]AC config:? ", "", first_line(err))
        raise ValueError(f"unsupported {family} config ({detail})") from err


def _as_ints(values: dict[str, Any]) -> dict[str, Any]:
    """Checks that each value is an int (or list of ints, or None for latent_dim); names the first bad one."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        if key == "latent_dim" and value is None:
            out[key] = None
            continue
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise ValueError(f"unsupported DAC config: {key} = {value!r} (expected integers)")
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def convert_dac_file(path: str | Path) -> tuple[DAC, dict[str, Any]]:
    """A DAC release file → (model in eval mode, provenance: source file, its sha256, its kwargs).

    Raises:
        ValueError: see `read_dac_file`, `dac_config_from_kwargs` and `dac_from_state_dict`.
    """
    path = Path(path)
    state, kwargs = read_dac_file(path)
    if any(".mrf_blocks." in key for key in state):
        raise ValueError(f"{path}: a LAC checkpoint (VampNet's codec.pth), not DAC: convert it with "
                         "--from lac")
    config = dac_config_from_kwargs(kwargs, weight_norm=_has_weight_norm(state))
    try:
        model = dac_from_state_dict(state, config, layout="dac")
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return model, source_provenance(path, "dac", source_config=kwargs)


# ---------------------------------------------------------------------------------------------------
# transformers' DacModel
def dac_config_from_hf(config: Mapping[str, Any], weight_norm: bool = False) -> DACConfig:
    """The ``DACConfig`` of a ``transformers`` ``DacConfig`` (``config.json`` as a dict).

    As ``transformers`` builds it: missing keys take its defaults (16 kHz rate, 44.1 kHz architecture), the
    decoder rates are the encoder's reversed (a stored ``upsampling_ratios`` and ``hop_length`` are not
    used), training-only keys (losses, quantizer dropout) are ignored.

    Raises:
        ValueError: not a DAC config (``model_type``), or an unsupported value (named).
    """
    model_type = config.get("model_type")
    if model_type != "dac":
        raise ValueError(f"not a transformers DAC config (model_type {model_type!r}, expected 'dac')")
    values = {field: config.get(key, default) for key, (field, default) in HF_KEYS.items()}
    values = _as_ints(values)
    values["decoder_rates"] = list(reversed(values["encoder_rates"]))
    latent = values["encoder_dim"] * 2 ** len(values["encoder_rates"])
    if config.get("hidden_size", latent) != latent:
        raise ValueError(f"unsupported DAC config: hidden_size {config['hidden_size']} (transformers' "
                         f"DacModel uses encoder_hidden_size x 2^{len(values['encoder_rates'])} = {latent})")
    try:
        return DACConfig(**values, weight_norm=weight_norm)
    except (TypeError, ValueError) as err:
        raise ValueError(f"unsupported DAC config ({first_line(err)})") from err


def dac_from_hf(config: dict, state_dict: dict) -> DAC:
    """A ``DAC`` (eval mode) from the contents of a ``transformers`` ``DacModel`` directory.

    Args:
        config: ``config.json`` parsed (``model_type`` "dac").
        state_dict: ``model.safetensors`` loaded: transformers' key names; plain weights (as saved by
            ``save_pretrained``) or weight-normalised ones (``weight_g``/``weight_v`` or
            ``parametrizations.weight.original0/1``).

    Raises:
        ValueError: see `dac_config_from_hf`; weights that do not fit the config (first keys named).
    """
    dac_config = dac_config_from_hf(config, weight_norm=_has_weight_norm(state_dict))
    return dac_from_state_dict(state_dict, dac_config, layout="hf")


# ---------------------------------------------------------------------------------------------------
# Renaming
def _dac_module_pairs(config: DACConfig) -> Iterator[tuple[str, str]]:
    """(DAC's module path, ours) for every module holding parameters."""
    dec = len(config.decoder_rates)
    yield from dac_encoder_pairs(config)
    yield "decoder.model.0", "decoder.conv_in"
    for i in range(dec):
        src, ours = f"decoder.model.{i + 1}.block", f"decoder.blocks.{i}"
        yield f"{src}.0", f"{ours}.act"
        yield f"{src}.1", f"{ours}.up"
        yield from _unit_pairs([f"{src}.{j + 2}.block" for j in range(3)], ours)
    yield f"decoder.model.{dec + 1}", "decoder.act"
    yield f"decoder.model.{dec + 2}", "decoder.conv_out"
    yield from quantizer_pairs(config)


def dac_encoder_pairs(config: DACConfig) -> Iterator[tuple[str, str]]:
    """(DAC's module path, ours) for every encoder module holding parameters (LAC names them alike)."""
    enc = len(config.encoder_rates)
    yield "encoder.block.0", "encoder.conv_in"
    for i in range(enc):
        src, ours = f"encoder.block.{i + 1}.block", f"encoder.blocks.{i}"
        yield from _unit_pairs([f"{src}.{j}.block" for j in range(3)], ours)
        yield f"{src}.3", f"{ours}.act"
        yield f"{src}.4", f"{ours}.down"
    yield f"encoder.block.{enc + 1}", "encoder.act"
    yield f"encoder.block.{enc + 2}", "encoder.conv_out"


def _hf_module_pairs(config: DACConfig) -> Iterator[tuple[str, str]]:
    """(transformers' module path, ours) for every module holding parameters."""
    for part, rates in (("encoder", config.encoder_rates), ("decoder", config.decoder_rates)):
        yield f"{part}.conv1", f"{part}.conv_in"
        for i in range(len(rates)):
            src, ours = f"{part}.block.{i}", f"{part}.blocks.{i}"
            yield from _unit_pairs([f"{src}.res_unit{j + 1}" for j in range(3)], ours, ("snake1", "conv1",
                                                                                          "snake2", "conv2"))
            yield f"{src}.snake1", f"{ours}.act"
            yield (f"{src}.conv1", f"{ours}.down") if part == "encoder" else (f"{src}.conv_t1", f"{ours}.up")
        yield f"{part}.snake1", f"{part}.act"
        yield f"{part}.conv2", f"{part}.conv_out"
    yield from quantizer_pairs(config)


def _unit_pairs(sources: list[str], ours: str, names: tuple[str, ...] = ("0", "1", "2", "3"),
                ) -> Iterator[tuple[str, str]]:
    """The four layers (Snake, conv7, Snake, conv1) of the three residual units of a block."""
    for j, src in enumerate(sources):
        for name, layer in zip(names, ("act1", "conv1", "act2", "conv2")):
            yield f"{src}.{name}", f"{ours}.units.{j}.{layer}"


def quantizer_pairs(config: DACConfig) -> Iterator[tuple[str, str]]:
    """(DAC's module path, ours) for the projections and codebook of every quantizer (the same names)."""
    for k in range(config.n_codebooks):
        for layer in ("in_proj", "out_proj", "codebook"):
            yield f"quantizer.quantizers.{k}.{layer}", f"quantizer.quantizers.{k}.{layer}"


_PARAMETER_NAMES = {"weight_g": "parametrizations.weight.original0",
                    "weight_v": "parametrizations.weight.original1"}


def _has_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(key.endswith((".weight_g", ".parametrizations.weight.original0")) for key in state_dict)


def dac_from_state_dict(state_dict: Mapping[str, torch.Tensor], config: DACConfig,
                        layout: str = "dac") -> DAC:
    """A ``DAC`` of ``config`` (eval mode) holding ``state_dict``.

    Args:
        state_dict: DAC's keys (``layout="dac"``) or transformers' ``DacModel`` keys (``"hf"``), with
            ``weight_g``/``weight_v``, ``parametrizations.weight.original0/1`` or plain ``weight`` as
            ``config.weight_norm`` says.
        config: the architecture.
        layout: whose module names the keys use.

    Raises:
        ValueError: missing or unexpected keys, or wrong shapes (the first ones named).
    """
    pairs = {"dac": _dac_module_pairs, "hf": _hf_module_pairs}[layout](config)
    what = f"a DAC model of this config ({_short(config)})"
    return load_renamed(DAC(config), state_dict, dict(pairs), what)


def load_renamed(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], renames: Mapping[str, str],
                 what: str) -> torch.nn.Module:
    """``model`` (eval mode) holding ``state_dict`` with its module paths renamed by ``renames``.

    Weight norm's ``weight_g``/``weight_v`` become the parametrization's ``original0/1``.

    Raises:
        ValueError: missing or unexpected keys, or wrong shapes (the first ones named; ``what`` names the
            model).
    """
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        module, name = _split(key)
        if module not in renames:
            unexpected.append(key)
            continue
        converted[f"{renames[module]}.{_PARAMETER_NAMES.get(name, name)}"] = value
    return load_checked(model, converted, f"weights do not fit {what}", unexpected)


def _split(key: str) -> tuple[str, str]:
    """(module path, parameter name) of a state-dict key (a weight-norm parametrization's two parts
    are parameter names: ``conv.parametrizations.weight.original0`` → ``conv``)."""
    match = re.fullmatch(r"(.+?)\.(parametrizations\.weight\.original[01]|[^.]+)", key)
    return (match.group(1), match.group(2)) if match else ("", key)


def _short(config: DACConfig) -> str:
    return (f"{config.sample_rate} Hz, rates {list(config.encoder_rates)}, {config.n_codebooks} codebooks, "
            f"encoder_dim {config.encoder_dim}, decoder_dim {config.decoder_dim}")


# ---------------------------------------------------------------------------------------------------
def _describe(data: Any) -> str:
    if isinstance(data, dict):
        keys = list(data)[:3]
        return f"a dict with keys {keys}{' ...' if len(data) > 3 else ''}"
    return type(data).__name__

