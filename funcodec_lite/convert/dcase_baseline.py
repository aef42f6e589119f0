"""The DCASE 2023 Task 7 baseline's released checkpoints -> the Foley recipe's model directories.

The baseline (github.com/DCASE2023-Task7-Foley-Sound-Synthesis/dcase2023_task7_baseline, commit
``REFERENCE_COMMIT``) is a mel VQ-VAE, a class-conditional PixelSNAIL over its 20 x 86 code maps and a
HiFi-GAN V1 generator. Its files:

- VQ-VAE: ``torch.save(model.state_dict())`` (``vqvae.pth``) -> `MelVQVAE` (kind ``mel_vqvae``);
- PixelSNAIL: ``{"model": state_dict, "args": argparse.Namespace}`` (``bottom_1400.pt``) -> `PixelSNAIL`
  with the baseline's conditioning (``class_dim=0, class_map=True, shifted_stems=True``): its ``embedNet``
  (one-hot class -> four linear layers, no activation -> a 20 x 86 map) is evaluated once per class into
  our per-class map; its ``cond_resnet`` is built but never called by its forward, so it is dropped;
- HiFi-GAN: ``{"generator": state_dict}`` (``g_00935000``) with its ``hifigan_config.json`` ->
  `HiFiGANGenerator` (weight norm kept as trained; stage 6 folds it, as the baseline's wrapper does).

Every file is read with ``torch.load(weights_only=True)``; the prior's ``args`` need one more allowed type,
``argparse.Namespace`` (``torch.serialization.safe_globals``), whose fields are plain values.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from funcodec_lite.convert.checked_load import load_checked
from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.lm.pixelsnail import PixelSNAIL, PixelSNAILConfig
from funcodec_lite.utils.torch_files import read_torch_file, source_provenance
from funcodec_lite.utils.weights import save_model_dir
from funcodec_lite.vocoders.hifigan import (
    HiFiGANConfig,
    HiFiGANGenerator,
    convert_official_state_dict,
    hifigan_v1,
)

REFERENCE = "DCASE2023-Task7-Foley-Sound-Synthesis/dcase2023_task7_baseline"
REFERENCE_COMMIT = "411ab9ecdb5880223a934666c4d294a4aa7062bc"
# inference.py's class ids 0..6 (the dev set's folder names, sorted: the recipe's label order too)
CLASS_NAMES = ["DogBark", "Footstep", "GunShot", "Keyboard", "MovingMotorVehicle", "Rain", "Sneeze_Cough"]
# where the Foley recipe looks for each model (`funcodec_lite.recipes.dcase_foley.run.FoleyRun`)
MODEL_DIRS = {"vqvae": Path("vqvae/model"), "prior": Path("prior/model"), "vocoder": Path("vocoder/model")}
ATTENTION_HEADS = 8  # the baseline's CausalAttention default, not stored in the checkpoint
CONDITION_SHAPE = (20, 86)  # the baseline's embedNet output, reshaped to this map whatever the prior's shape


def read_checkpoint(path: str | Path) -> Any:
    """A baseline checkpoint, read with ``weights_only=True`` (plus ``argparse.Namespace``, the prior's args).

    Raises:
        ValueError: no such file, or not a readable PyTorch checkpoint (e.g. truncated), in one line.
    """
    return read_torch_file(path, [argparse.Namespace])


def _state_dict(data: Any, wrapper: str | None, what: str) -> dict[str, torch.Tensor]:
    """The tensors of ``data`` (or of ``data[wrapper]``), without a DataParallel ``module.`` prefix."""
    if wrapper is not None:
        if not isinstance(data, dict) or not isinstance(data.get(wrapper), dict):
            found = sorted(map(str, data))[:4] if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a {what} checkpoint (expected a dict with {wrapper!r}, found {found})")
        data = data[wrapper]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        found = sorted(map(str, data))[:4] if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not a {what} checkpoint (expected a state dict of tensors, found {found})")
    if all(key.startswith("module.") for key in data):
        data = {key[len("module."):]: value for key, value in data.items()}
    return data


def _require(state: dict[str, torch.Tensor], keys: list[str], what: str) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(f"not a {what} checkpoint (no {missing[0]!r}; it has {sorted(state)[:3]} ...)")


def _count(state: dict[str, torch.Tensor], pattern: str, start: int = 0) -> int:
    """How many consecutive i from ``start`` make ``pattern.format(i)`` a key."""
    n = 0
    while pattern.format(start + n) in state:
        n += 1
    return n


def _load_exact(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Loads ``tensors`` into ``model`` if keys and shapes match one to one (else one line naming one)."""
    load_checked(model, tensors, f"not a {what} checkpoint of the baseline's layout (converted)")


# --- VQ-VAE --------------------------------------------------------------------------------------------

_VQVAE_RENAMES = [
    (r"^enc_b\.blocks_([1-4])\.", lambda m: f"encoder.branches.{int(m.group(1)) - 1}."),
    (r"^dec\.blocks\.", "decoder."),
    (r"\.(\d+)\.conv\.1\.", r".\1.conv1."),  # ResBlock: Sequential(ReLU, Conv 3x3, ReLU, Conv 1x1)
    (r"\.(\d+)\.conv\.3\.", r".\1.conv2."),
    (r"^quantize_conv_b\.", "pre_quant."),
]


def vqvae_from_state(state: dict[str, torch.Tensor]) -> MelVQVAE:
    """The baseline's ``VQVAE`` state dict -> `MelVQVAE` (the 80 x 344 mel image of the baseline's clips).

    Its sizes (channel, residual blocks and width, latent dimension, codebook size) come from the shapes;
    the codebook ``embed`` [D, K] and ``embed_avg`` [D, K] are stored transposed, as [K, D].
    """
    what = "DCASE baseline VQ-VAE"
    _require(state, ["enc_b.blocks_1.0.weight", "enc_b.blocks_1.2.weight", "quantize_conv_b.weight",
                     "quantize_b.embed", "dec.blocks.0.weight"], what)
    embed = state["quantize_b.embed"]
    n_res_block = _count(state, "enc_b.blocks_1.{}.conv.1.weight", start=5)  # after conv, conv, conv 3x3
    if state["enc_b.blocks_1.0.weight"].shape[1] != 1 or embed.dim() != 2:
        raise ValueError(f"not a {what} checkpoint (expects a one-channel mel image and a [D, K] codebook)")
    config = MelVQVAEConfig(
        channel=state["enc_b.blocks_1.2.weight"].shape[0], n_res_block=n_res_block,
        n_res_channel=state["enc_b.blocks_1.5.conv.1.weight"].shape[0] if n_res_block else 32,
        embed_dim=embed.shape[0], codebook_size=embed.shape[1],
    )
    model = MelVQVAE(config)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("quantize_b."):
            if key not in ("quantize_b.embed", "quantize_b.embed_avg", "quantize_b.cluster_size"):
                raise ValueError(f"not a {what} checkpoint (unexpected {key!r})")
            continue
        for pattern, replacement in _VQVAE_RENAMES:
            key = re.sub(pattern, replacement, key)
        tensors[key] = value
    codebook = "quantizer.layers.0."
    tensors[codebook + "embed"] = embed.t().contiguous()
    tensors[codebook + "embed_avg"] = state.get("quantize_b.embed_avg", embed).t().contiguous()
    tensors[codebook + "cluster_size"] = state.get("quantize_b.cluster_size", torch.zeros(embed.shape[1]))
    tensors[codebook + "inited"] = torch.ones(1)
    tensors["quantizer.step"] = torch.zeros((), dtype=torch.long)
    _load_exact(model, tensors, what)
    return model.eval()


def vqvae_from_checkpoint(data: Any) -> MelVQVAE:
    """`vqvae_from_state` of a loaded ``vqvae.pth`` (a state dict, optionally with DataParallel's prefix)."""
    return vqvae_from_state(_state_dict(data, None, "DCASE baseline VQ-VAE"))


# --- PixelSNAIL ----------------------------------------------------------------------------------------

_PRIOR_RENAMES = [
    (r"^horizontal\.conv\.conv\.", "stem_above."),
    (r"^vertical\.conv\.conv\.", "stem_left."),
    (r"\.resblocks\.(\d+)\.condition\.conv\.", r".res_blocks.\1.map_proj."),
    (r"\.resblocks\.", ".res_blocks."),
    (r"\.key_resblock\.", ".key_block."),
    (r"\.query_resblock\.", ".query_block."),
    (r"\.out_resblock\.", ".out_block."),
    (r"\.causal_attention\.", ".attention."),
    (r"\.(conv1|conv2|aux_conv)\.conv\.conv\.", r".\1."),  # CausalConv2d -> WNConv2d -> Conv2d
    (r"\.(conv1|conv2|aux_conv)\.conv\.", r".\1."),  # WNConv2d -> Conv2d
    (r"^blocks\.(\d+)\.out\.conv\.", r"blocks.\1.out_conv."),
    (r"^out\.(\d+)\.(conv1|conv2)\.", r"out_blocks.\1.\2."),
]


def _prior_config(state: dict[str, torch.Tensor], args: dict[str, Any]) -> PixelSNAILConfig:
    """Our config of a baseline PixelSNAIL, from its tensors' shapes (and ``dropout`` from its args)."""
    what = "DCASE baseline PixelSNAIL"
    stem = state["horizontal.conv.conv.weight_v"]  # [C, n_codes, k // 2, k]
    block = state["blocks.0.resblocks.0.conv1.conv.conv.weight_v"]  # [res_channel, C, k, k]
    height, width = state["background"].shape[-2:]
    kernel = block.shape[-1]
    if stem.shape[-1] != kernel or kernel % 2 == 0:
        raise ValueError(f"not a {what} checkpoint (stem kernel {stem.shape[-1]}, block kernel {kernel}: "
                         "expected one odd kernel size)")
    if state["blocks.0.resblocks.0.condition.conv.weight_v"].shape[1] != 1:
        raise ValueError(f"not a {what} checkpoint (the class condition must be one map: "
                         "cond_embed_channel 1)")
    if (height, width) != CONDITION_SHAPE or state["embedNet.blocks.3.weight"].shape[0] != height * width:
        raise ValueError(f"not a {what} checkpoint (code maps {height} x {width} and embedNet maps of "
                         f"{state['embedNet.blocks.3.weight'].shape[0]}: the baseline's are 20 x 86)")
    return PixelSNAILConfig(
        height=height, width=width, n_codes=stem.shape[1],
        n_classes=state["embedNet.blocks.0.weight"].shape[1], channel=stem.shape[0], kernel_size=kernel,
        n_block=_count(state, "blocks.{}.resblocks.0.conv1.conv.conv.bias"),
        n_res_block=_count(state, "blocks.0.resblocks.{}.conv1.conv.conv.bias"), res_channel=block.shape[0],
        attention="blocks.0.key_resblock.conv1.conv.weight_v" in state, n_head=ATTENTION_HEADS,
        dropout=float(args.get("dropout", 0.1)), n_out_res_block=_count(state, "out.{}.conv1.conv.weight_v"),
        n_cond_res_block=0, class_dim=0, class_map=True, shifted_stems=True,
    )


def class_maps(state: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """The baseline's ``embedNet`` (four linear layers, no activation) on each class's one-hot, in float64:
    [n_classes, height, width] float32."""
    x = torch.eye(state["embedNet.blocks.0.weight"].shape[1], dtype=torch.float64)
    for i in range(4):
        x = torch.nn.functional.linear(x, state[f"embedNet.blocks.{i}.weight"].double(),
                                       state[f"embedNet.blocks.{i}.bias"].double())
    return x.reshape(-1, height, width).float()


def pixelsnail_from_checkpoint(data: Any) -> tuple[PixelSNAIL, dict[str, Any]]:
    """The baseline's prior checkpoint ``{"model": state_dict, "args": Namespace}`` -> (`PixelSNAIL`, notes).

    Weight-norm pairs keep their ``weight_g``/``weight_v`` (g reshaped to [C_out], the attention's linear
    ``v`` to [C_out, C_in, 1, 1]); the causal convs' hidden taps, which the baseline zeroes in ``weight_v``
    at every forward, are masked by ours the same way (before the norm).

    Returns:
        The model in eval mode, and notes for the provenance: its training args (plain values) and what
        was dropped.
    """
    what = "DCASE baseline PixelSNAIL"
    state = _state_dict(data, "model", what)
    namespace = data.get("args") if isinstance(data, dict) else None
    args = {k: v for k, v in vars(namespace).items() if isinstance(v, (bool, int, float, str, type(None)))} \
        if isinstance(namespace, argparse.Namespace) else {}
    _require(state, ["horizontal.conv.conv.weight_v", "vertical.conv.conv.weight_v", "background",
                     "blocks.0.resblocks.0.conv1.conv.conv.weight_v",
                     "blocks.0.resblocks.0.condition.conv.weight_v",
                     *(f"embedNet.blocks.{i}.{p}" for i in range(4) for p in ("weight", "bias"))], what)
    config = _prior_config(state, args)
    model = PixelSNAIL(config)
    if not torch.allclose(state["background"].float(), model.background, atol=1e-6):
        raise ValueError(f"not a {what} checkpoint (its background is not the baseline's coordinate maps)")
    head = f"out.{config.n_out_res_block + 1}.conv."  # out = [gated blocks..., ELU, WNConv2d]
    tensors: dict[str, torch.Tensor] = {"class_map": class_maps(state, config.height, config.width)}
    dropped = sorted({key.split(".")[0] for key in state if key.startswith(("cond_resnet.", "embedNet."))})
    for key, value in state.items():
        if key == "background" or key.startswith(("cond_resnet.", "embedNet.")):
            continue
        name = "head." + key[len(head):] if key.startswith(head) else key
        for pattern, replacement in _PRIOR_RENAMES:
            name = re.sub(pattern, replacement, name)
        if name.endswith(".weight_g"):
            value = value.reshape(-1)
        elif name.endswith(".weight_v") and value.dim() == 2:  # wn_linear [out, in] -> 1 x 1 conv
            value = value[:, :, None, None]
        tensors[name] = value
    _load_exact(model, tensors, what)
    notes = {"training_args": args, "dropped": dropped,
             "dropped_why": "cond_resnet is built but never called by the baseline's forward; embedNet is "
                            "evaluated per class into class_map"}
    return model.eval(), notes


# --- HiFi-GAN ------------------------------------------------------------------------------------------

def hifigan_from_checkpoint(data: Any, config: HiFiGANConfig | None = None) -> HiFiGANGenerator:
    """``{"generator": state_dict}`` (jik876/hifi-gan's ``g_XXXXXXXX``, the baseline's vocoder) ->
    `HiFiGANGenerator` of ``config`` (None: V1, the baseline's ``hifigan_config.json``), weight norm kept
    (a checkpoint saved after ``remove_weight_norm`` is re-parametrised with g = ||w||)."""
    what = "HiFi-GAN generator"
    config = config or hifigan_v1()
    state = _state_dict(data, "generator", what)
    try:
        converted = convert_official_state_dict(state, config)
    except KeyError as err:
        raise ValueError(f"not a {what} checkpoint for this config ({err.args[0]})") from err
    model = HiFiGANGenerator(config)
    folded = not any(".parametrizations." in key for key in converted)
    if folded:
        model.remove_weight_norm()
    _load_exact(model, converted, what)
    if folded:
        model.restore_weight_norm()
    return model.eval()


def read_hifigan_config(path: str | Path | None) -> HiFiGANConfig:
    """The generator settings of an official ``config.json`` (None: V1, the baseline's).

    Raises:
        ValueError: unreadable JSON or bad settings, in one line.
    """
    if path is None:
        return hifigan_v1()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return HiFiGANConfig.from_official(data)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a HiFi-GAN config.json ({str(err).splitlines()[0][:160]})") from err


# --- the release as the recipe's model directories -----------------------------------------------------

@dataclass
class BaselineRelease:
    """The baseline's three checkpoint files (and the vocoder's config.json; None: V1)."""

    vqvae: Path
    pixelsnail: Path
    hifigan: Path
    hifigan_config: Path | None = None


@dataclass
class ConvertedBaseline:
    """The converted models and what each model directory's provenance records."""

    vqvae: MelVQVAE
    prior: PixelSNAIL
    vocoder: HiFiGANGenerator
    provenance: dict[str, dict[str, Any]]


def _load(path: Path, convert: Callable[[Any], Any]) -> Any:
    """``convert`` of the checkpoint at ``path``; its errors are prefixed with the path."""
    try:
        return convert(read_checkpoint(path))
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from err


def convert_release(release: BaselineRelease) -> ConvertedBaseline:
    """Converts the three files and checks they fit together (codebook size, code map, mel bands).

    Raises:
        ValueError: a file that is not the expected model, unreadable, or models that do not fit (one line).
    """
    vqvae = _load(release.vqvae, vqvae_from_checkpoint)
    prior, notes = _load(release.pixelsnail, pixelsnail_from_checkpoint)
    vocoder_config = read_hifigan_config(release.hifigan_config)
    vocoder = _load(release.hifigan, lambda data: hifigan_from_checkpoint(data, vocoder_config))
    shape, codes = (prior.config.height, prior.config.width), prior.config.n_codes
    if codes != vqvae.config.codebook_size or shape != vqvae.code_map_shape:
        raise ValueError(f"{release.pixelsnail}: a prior over {shape[0]} x {shape[1]} maps of {codes} codes "
                         f"does not fit {release.vqvae} (its maps: {vqvae.code_map_shape}, "
                         f"{vqvae.config.codebook_size} codes)")
    if vocoder.config.num_mels != vqvae.config.n_mels:
        raise ValueError(f"{release.hifigan}: a vocoder of {vocoder.config.num_mels} mel bands for "
                         f"{vqvae.config.n_mels}-band mels")

    def source(path: Path) -> dict[str, str]:
        return source_provenance(path, "dcase2023_task7_baseline", reference=REFERENCE,
                                 reference_commit=REFERENCE_COMMIT)

    provenance = {
        "vqvae": source(release.vqvae),
        "prior": {**source(release.pixelsnail), "class_names": class_names(prior.config.n_classes), **notes},
        "vocoder": {**source(release.hifigan), "imported_from": str(release.hifigan),
                    **({"config_file": str(release.hifigan_config)} if release.hifigan_config else {})},
    }
    return ConvertedBaseline(vqvae, prior, vocoder, provenance)


def class_names(n_classes: int) -> list[str]:
    """The baseline's class names for its labels 0..n_classes - 1 (``class_<i>`` beyond its seven)."""
    if n_classes <= len(CLASS_NAMES):
        return CLASS_NAMES[:n_classes]
    return [f"class_{i}" for i in range(n_classes)]


def write_model_dirs(converted: ConvertedBaseline, out_dir: str | Path) -> dict[str, Path]:
    """Writes ``out_dir/{vqvae,prior,vocoder}/model``: the layout of a Foley run's directory, so that the
    recipe's stages 6-8 run on it (``egs/dcase_foley/run.sh --exp out_dir --stage 6``). Returns the dirs."""
    out_dir = Path(out_dir)
    models = {"vqvae": converted.vqvae, "prior": converted.prior, "vocoder": converted.vocoder}
    written = {}
    for part, model in models.items():
        directory = out_dir / MODEL_DIRS[part]
        save_model_dir(directory, model, converted.provenance[part])
        written[part] = directory
    return written
