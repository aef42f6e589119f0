"""``codec convert``: released EnCodec or FunCodec checkpoints → a funcodec_lite model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import model_id
from funcodec_lite.codec.model import CONFIG_FILE, WEIGHTS_FILE
from funcodec_lite.utils.config import read_mapping_file
from funcodec_lite.utils.torch_files import read_torch_file, source_provenance, state_dict_in
from funcodec_lite.utils.weights import save_model_dir


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a PyTorch checkpoint, read with ``weights_only=True`` (no arbitrary pickles).

    Accepts a bare state dict or one wrapped under ``model`` / ``state_dict`` / ``best_state``.
    """
    return state_dict_in(read_torch_file(path), ("model", "state_dict", "best_state"), path)


def _convert_encodec(checkpoint: Path, args: argparse.Namespace) -> tuple[CompressionModel, dict, list[str]]:
    from funcodec_lite.convert.encodec import encodec_to_codec

    codec = encodec_to_codec(load_checkpoint(checkpoint))
    return codec, source_provenance(checkpoint, "encodec", preset="encodec_24khz"), []


def _convert_funcodec(checkpoint: Path, args: argparse.Namespace) -> tuple[CompressionModel, dict, list[str]]:
    """A time-domain FunCodec model as a ``Codec``, a ``freq_codec`` one as a ``FunCodecFreq``."""
    from funcodec_lite.convert.funcodec import funcodec_to_codec

    config_path = Path(args.config) if args.config else None
    if checkpoint.is_dir():
        config_path = config_path or checkpoint / "config.yaml"
        checkpoint = checkpoint / "model.pth"
    config_path = config_path or checkpoint.with_name("config.yaml")
    if not config_path.is_file():
        raise ValueError(f"{config_path}: no FunCodec config.yaml next to the checkpoint (give --config)")
    config = read_mapping_file(config_path, "YAML")
    model, normalize = funcodec_to_codec(load_checkpoint(checkpoint), config)
    notes = []
    semantic = getattr(model, "semantic", None)
    if semantic is not None:
        notes.append(f"this model conditions on phoneme ids (FunCodec's ppg: {semantic.config.vocab_size} "
                     f"classes, {semantic.config.rate} per code frame) beside the audio: pass them as "
                     "semantic= to Codec.encode and Codec.decode (codec encode/decode cannot)")
    if normalize:
        notes.append("this model was trained with audio_normalize: FunCodec scales each input to unit RMS "
                     "before encoding and funcodec_lite does not, so scale audio that way for codes "
                     "identical to FunCodec's (decoded audio then has unit RMS too)")
    provenance = source_provenance(checkpoint, "funcodec", config_file=str(config_path.resolve()),
                                   source_config=config)
    return model, provenance, notes


def _convert_dac(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.dac import convert_dac_file

    return *convert_dac_file(checkpoint), []


def _convert_lac(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.lac import convert_lac_file

    return *convert_lac_file(checkpoint), []


def _convert_snac(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.snac import convert_snac_release

    return *convert_snac_release(checkpoint), []


def _convert_mimi(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.mimi import convert_mimi_file

    return *convert_mimi_file(checkpoint, Path(args.config) if args.config else None), []


def _convert_hf(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.hf import convert_hf_dir

    return *convert_hf_dir(checkpoint), []


def _convert_vampnet(checkpoint: Path, args: argparse.Namespace) -> tuple[nn.Module, dict, list[str]]:
    from funcodec_lite.convert.vampnet import convert_vampnet_file

    if not args.codec:
        raise ValueError("--from vampnet needs --codec: the codec model directory its tokens come from "
                         "(VampNet's codec.pth: codec convert --from lac)")
    return *convert_vampnet_file(checkpoint, args.codec), []


# --from NAME -> the converter of one checkpoint: (model, provenance, notes to print)
CONVERTERS = {"encodec": _convert_encodec, "funcodec": _convert_funcodec, "dac": _convert_dac,
              "lac": _convert_lac, "mimi": _convert_mimi, "snac": _convert_snac, "hf": _convert_hf,
              "vampnet": _convert_vampnet}


def _write_model_dir(out: Path, model: nn.Module, provenance: dict) -> None:
    """``save_model_dir``, its OS errors as one line naming ``out``."""
    try:
        save_model_dir(out, model, provenance)
    except OSError as err:
        raise ValueError(f"{out}: cannot write the model ({err.strerror or err})") from err


def _convert_dcase_baseline(args: argparse.Namespace) -> int:
    """The DCASE 2023 Task 7 baseline's three checkpoints -> OUT_DIR/{vqvae,prior,vocoder}/model."""
    from funcodec_lite.convert.dcase_baseline import (
        MODEL_DIRS,
        BaselineRelease,
        convert_release,
        write_model_dirs,
    )

    files = {"--vqvae": args.vqvae, "--pixelsnail": args.pixelsnail, "--hifigan": args.hifigan}
    missing = [flag for flag, value in files.items() if not value]
    if args.checkpoint or missing:
        raise ValueError("--from dcase-baseline takes --vqvae, --pixelsnail and --hifigan and OUT_DIR "
                         f"({'no CHECKPOINT' if args.checkpoint else 'missing ' + ', '.join(missing)})")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if not args.force and any((out / sub / WEIGHTS_FILE).exists() for sub in MODEL_DIRS.values()):
        raise ValueError(f"{out}: already holds converted models (pass --force to replace them)")
    converted = convert_release(BaselineRelease(
        Path(args.vqvae), Path(args.pixelsnail), Path(args.hifigan),
        Path(args.hifigan_config) if args.hifigan_config else None))
    try:
        written = write_model_dirs(converted, out)
    except OSError as err:
        raise ValueError(f"{out}: cannot write the models ({err.strerror or err})") from err
    for part, directory in written.items():
        print(f"codec convert: dcase-baseline {part} -> {directory}")
    print(f"codec convert: the Foley recipe's stages 6-8 run on it: egs/dcase_foley/run.sh --config "
          f"conf/baseline_vq.yaml --exp {out.resolve()} --stage 6 (after stages 0-1 on the real data)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a released checkpoint (EnCodec 24 kHz, FunCodec, DAC, Mimi, SNAC, VampNet; a transformers
    directory; the DCASE 2023 Task 7 baseline's three models) to a model directory."""
    if args.source == "dcase-baseline":
        return _convert_dcase_baseline(args)
    if not args.checkpoint:
        raise ValueError(f"--from {args.source} needs a CHECKPOINT before OUT_DIR")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if not args.force and any((out / name).exists() for name in (CONFIG_FILE, WEIGHTS_FILE)):
        raise ValueError(f"{out}: already holds a model (pass --force to replace it)")
    checkpoint = Path(args.checkpoint)
    model, provenance, notes = CONVERTERS[args.source](checkpoint, args)
    _write_model_dir(out, model, provenance)
    if args.source == "vampnet":
        c = model.config
        role = f"coarse-to-fine ({c.n_conditioning} coarse codebooks given)" if c.n_conditioning else "coarse"
        print(f"codec convert: vampnet {checkpoint} -> {out} ({role}, {c.n_q} codebooks x {c.card}, "
              f"{c.n_layers} layers x {c.dim}; tokens of codec {provenance['tokens']['model_id']})")
        return 0
    print(f"codec convert: {args.source} {checkpoint} -> {out} (model id {model_id(model)}, "
          f"{model.sample_rate} Hz, {model.frame_rate:g} frames/s, {model.n_q} codebooks x "
          f"{model.codebook_size})")
    for note in notes:
        print(f"codec convert: note: {note}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    # options may follow CHECKPOINT (the optional positional would otherwise take OUT_DIR's place)
    convert = commands.add_parser("convert", help=cmd_convert.__doc__, description=cmd_convert.__doc__,
                                  intermixed=True)
    convert.add_argument("--from", dest="source", required=True,
                         choices=["encodec", "funcodec", "dac", "lac", "mimi", "snac", "hf", "vampnet",
                                  "dcase-baseline"],
                         help="encodec: an encodec_24khz .th state dict; funcodec: model.pth "
                         "(+ config.yaml); dac: a DAC release .pth (state_dict + metadata); lac: a LAC "
                         ".pth (VampNet's codec.pth); mimi: Kyutai's "
                         "Mimi safetensors (tokenizer-e351c8d8-checkpoint125); snac: a SNAC release dir "
                         "(config.json + pytorch_model.bin); hf: a directory saved by transformers' "
                         "save_pretrained (EncodecModel, DacModel, MimiModel); vampnet: VampNet's coarse.pth "
                         "or c2f.pth (with --codec); dcase-baseline: the DCASE 2023 Task 7 baseline's "
                         "models (--vqvae, --pixelsnail, --hifigan; no CHECKPOINT)")
    convert.add_argument("checkpoint", nargs="?",
                         help="checkpoint file (FunCodec: model.pth or the directory holding it)")
    convert.add_argument("out_dir", help="model directory to write (config.yaml + model.safetensors)")
    convert.add_argument("--config", help="FunCodec config.yaml (default: next to the checkpoint); mimi: "
                         "moshi's Mimi config as JSON/YAML (default: the released model's)")
    convert.add_argument("--codec", help="vampnet: the converted codec directory whose codebooks embed "
                         "the tokens (LAC for the release's codec.pth; or a DAC)")
    convert.add_argument("--force", action="store_true", help="replace a model already in OUT_DIR")
    baseline = convert.add_argument_group("--from dcase-baseline: writes OUT_DIR/{vqvae,prior,vocoder}/model")
    baseline.add_argument("--vqvae", help="the baseline's VQ-VAE state dict (vqvae.pth)")
    baseline.add_argument("--pixelsnail", help="its PixelSNAIL checkpoint (bottom_1400.pt)")
    baseline.add_argument("--hifigan", help="its HiFi-GAN generator (checkpoint/hifigan/g_00935000)")
    baseline.add_argument("--hifigan-config", help="the generator's hifigan_config.json (default: V1, the "
                          "baseline's)")
    convert.set_defaults(func=cmd_convert)
