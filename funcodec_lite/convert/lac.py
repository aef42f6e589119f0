"""LAC release files (VampNet's ``codec.pth``) → a funcodec_lite ``LAC`` model (kind ``lac``).

LAC (github.com/hugofloresgarcia/lac) saves its generator with audiotools' ``BaseModel.save(...,
package=False)``, as DAC does: ``{"state_dict": ..., "metadata": {"kwargs": LAC's arguments}}``, weight norm
kept (``weight_g`` / ``weight_v``). The file is read by `funcodec_lite.convert.dac.read_dac_file`
(``torch.load(weights_only=True)``; numpy scalars, and nothing else, allowed); a
``torch.package`` file (audiotools' ``package.pth``, a pickled model with its code) is refused.

The encoder and quantizer are named as DAC's; the decoder's stages are ``decoder.model.{i}.block`` =
(Snake, transposed conv, ``MRFBlock`` with ``mrf_blocks.{m}.block.{l}.layer`` = Snake, conv, Snake, conv).
LAC's ``load`` drops unknown keyword arguments and loads with ``strict=False``; here an unknown option or a
weight that is missing or left over refuses the file (one line naming it), as does a DAC file (which
converts with ``--from dac``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from funcodec_lite.codec.families.lac import LAC, LACConfig
from funcodec_lite.convert.dac import (
    _has_weight_norm,
    _short,
    config_from_kwargs,
    dac_encoder_pairs,
    load_renamed,
    quantizer_pairs,
    read_dac_file,
)
from funcodec_lite.modules.lac_blocks import MRF_DILATIONS, MRF_KERNELS
from funcodec_lite.utils.torch_files import source_provenance

REFERENCE = "github.com/hugofloresgarcia/lac@7761206878d1fba79aad314a38f975e9589af0a4 (lac/model/lac.py)"
# the keyword arguments of LAC's LAC class -> LACConfig fields (same names), with LAC's defaults
LAC_DEFAULTS: dict[str, Any] = {"sample_rate": 44100, "encoder_dim": 64, "encoder_rates": [2, 4, 8, 8],
                                "decoder_dim": 512, "decoder_rates": [4, 4, 4, 2, 2, 2], "n_codebooks": 9,
                                "codebook_size": 1024, "codebook_dim": 8}
PACKAGE_MESSAGE = ("a torch.package archive (audiotools' package.pth: a pickled model with its code), not "
                   "loaded for safety; convert a weights file (LAC.load(path).save(out, package=False) "
                   "writes one)")


def lac_config_from_kwargs(kwargs: Mapping[str, Any], weight_norm: bool = True) -> LACConfig:
    """The ``LACConfig`` of LAC's ``metadata['kwargs']`` (missing keys take LAC's defaults).

    Raises:
        ValueError: an option LAC's model does not have (named), or a value it cannot take.
    """
    return config_from_kwargs(kwargs, LAC_DEFAULTS, LACConfig, "LAC", weight_norm)


def lac_module_pairs(config: LACConfig) -> Iterator[tuple[str, str]]:
    """(LAC's module path, ours) for every module holding parameters."""
    yield from dac_encoder_pairs(config)
    n = len(config.decoder_rates)
    yield "decoder.model.0", "decoder.conv_in"
    for i in range(n):
        src, ours = f"decoder.model.{i + 1}.block", f"decoder.blocks.{i}"
        yield f"{src}.0", f"{ours}.act"
        yield f"{src}.1", f"{ours}.up"
        for m in range(len(MRF_KERNELS)):
            for j in range(len(MRF_DILATIONS)):
                for index, layer in enumerate(("act1", "conv1", "act2", "conv2")):
                    yield (f"{src}.2.mrf_blocks.{m}.block.{j}.layer.{index}",
                           f"{ours}.mrf.stacks.{m}.{j}.{layer}")
    yield f"decoder.model.{n + 1}", "decoder.act"
    yield f"decoder.model.{n + 2}", "decoder.conv_out"
    yield from quantizer_pairs(config)


def lac_from_state_dict(state_dict: Mapping[str, Any], config: LACConfig) -> LAC:
    """A ``LAC`` of ``config`` (eval mode) holding LAC's state dict.

    Raises:
        ValueError: missing or unexpected keys, or wrong shapes (the first ones named).
    """
    what = f"a LAC model of this config ({_short(config)})"
    return load_renamed(LAC(config), state_dict, dict(lac_module_pairs(config)), what)


def convert_lac_file(path: str | Path) -> tuple[LAC, dict[str, Any]]:
    """A LAC release file → (model in eval mode, provenance: source file, its sha256, its kwargs).

    Raises:
        ValueError: one line: no such file, a torch.package, an unreadable file or unsafe objects, a file
            that is not LAC's (DAC's is named as such), an unsupported option, weights that do not fit.
    """
    path = Path(path)
    state, kwargs = read_dac_file(path, family="LAC", package_message=PACKAGE_MESSAGE)
    if not any(".mrf_blocks." in key for key in state):
        hint = ("a DAC checkpoint: convert it with --from dac" if any(
            key.startswith("decoder.model.1.block.2.block.") for key in state) else "no MRF decoder weights")
        raise ValueError(f"{path}: not a LAC checkpoint ({hint})")
    config = lac_config_from_kwargs(kwargs, weight_norm=_has_weight_norm(state))
    try:
        model = lac_from_state_dict(state, config)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return model, source_provenance(path, "lac", reference=REFERENCE, source_config=kwargs)
