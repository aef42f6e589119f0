"""``codec info``: what a token file or a model directory holds."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from funcodec_lite import load_model_dir
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.kinds import is_codec_kind
from funcodec_lite.codec.loading import DEFAULT_MODEL, load_model, model_id, resolve_model_dir
from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.utils.profile import count_parameters
from funcodec_lite.utils.weights import read_model_config, read_provenance


def token_info(path: str | Path) -> dict:
    """Fields of a token file (validated) and what follows from them."""
    tokens = load_tokens(path)
    return {
        "file": str(path), "kind": "tokens", "model_id": tokens.model_id,
        "format_version": tokens.format_version, "sample_rate": tokens.sample_rate,
        "num_channels": tokens.num_channels, "num_samples": tokens.num_samples,
        "duration_s": round(tokens.duration, 3), "streams": tokens.streams, "n_q": tokens.n_q,
        "frames": tokens.frames, "frame_rate": tokens.frame_rate, "codebook_size": tokens.codebook_size,
        "kbps_per_stream": round(tokens.kbps, 3), "kbps_total": round(tokens.kbps * tokens.streams, 3),
        **({"codebook_sizes": list(tokens.codebook_sizes)} if tokens.codebook_sizes else {}),
        **({"codebook_strides": list(tokens.codebook_strides)} if tokens.codebook_strides else {}),
    }


def model_info(path: str | Path) -> dict:
    """Description of a model directory of any kind (loads the model on the CPU), with its provenance."""
    directory = resolve_model_dir(path) if str(path) == DEFAULT_MODEL else Path(path)
    kind, _ = read_model_config(directory)
    provenance = read_provenance(directory)
    made = {key: provenance[key] for key in ("steps", "train_minutes", "data", "code_version")
            if key in provenance}
    if not is_codec_kind(kind):
        model = load_model_dir(directory)
        return {"directory": str(directory), "kind": "model", "model_kind": kind,
                "parameters": count_parameters(model), **made}
    directory = resolve_model_dir(directory)
    codec = load_model(directory, fold=False)
    return {"directory": str(directory), "kind": "model", "model_kind": kind, "model_id": model_id(codec),
            **_codec_fields(codec), **made}


def _codec_fields(codec: CompressionModel) -> dict:
    """What ``codec info`` shows of a codec: the interface's numbers, and our ``Codec``'s architecture."""
    ours = codec if isinstance(codec, Codec) else None
    config = ours.config if ours is not None else None
    sizes, strides = list(codec.codebook_sizes), list(codec.codebook_strides)
    alike = len(set(sizes)) == 1 and set(strides) == {1}
    return {
        **({"name": config.name} if config is not None and config.name else {}),
        **({"arch": config.arch, "domain": config.domain} if config is not None else {}),
        "causal": bool(getattr(config.model, "causal", False)) if config is not None else codec.is_causal,
        "sample_rate": codec.sample_rate, "channels": codec.channels, "frame_rate": codec.frame_rate,
        "samples_per_frame": codec.samples_per_frame,
        "n_q": codec.n_q, "codebook_size": codec.codebook_size,
        **({} if alike else {"codebook_sizes": sizes, "codebook_strides": strides}),
        **({"kbps_per_codebook": round(math.log2(codec.codebook_size) * codec.frame_rate / 1000, 4)}
           if alike else {}),
        "kbps_max": round(codec.bandwidth(codec.n_q), 3),
        "parameters": (count_parameters(ours.encoder) + count_parameters(ours.decoder) if ours is not None
                       else count_parameters(codec)),
        **({"semantic_augmentation": ours.semantic is not None} if ours is not None else {}),
    }


def cmd_info(args: argparse.Namespace) -> int:
    """Show what a token file (.npz) or a model directory holds."""
    target = args.path
    if target != DEFAULT_MODEL and not Path(target).exists():
        raise ValueError(f"{target}: no such file or directory")
    if target == DEFAULT_MODEL or Path(target).is_dir():
        info = model_info(target)
    elif Path(target).suffix == ".npz":
        info = token_info(target)
    else:
        raise ValueError(f"{target}: not a token file (.npz) or a model directory")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(key) for key in info)
        for key, value in info.items():
            print(f"{key:{width}s}  {value}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help=cmd_info.__doc__, description=cmd_info.__doc__)
    info.add_argument("path", help="a .npz token file, a model directory, or 'default'")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)
