"""``codec export``: a codec model directory → ONNX encoder and decoder graphs plus a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite.codec.loading import load_model, model_id, resolve_model_dir
from funcodec_lite.inference.export import DEFAULT_OPSET, EXPORT_FILES, FORMATS, STEP_FILES, export_onnx


def cmd_export(args: argparse.Namespace) -> int:
    """Export a codec to ONNX: encoder, decoder, manifest (and the streaming steps of causal codecs)."""
    directory = resolve_model_dir(args.model_dir)  # one line when missing or incomplete
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    existing = [name for name in EXPORT_FILES + STEP_FILES if (out / name).exists()]
    if existing and not args.force:
        raise ValueError(f"{out}: already holds {', '.join(existing)} (pass --force to replace)")
    if args.opset < 17:
        raise ValueError(f"--opset must be >= 17 (LayerNormalization), got {args.opset}")
    codec = load_model(directory)
    if args.n_q is not None and not 1 <= args.n_q <= codec.n_q:
        raise ValueError(f"--n-q must be in 1..{codec.n_q}, got {args.n_q}")
    manifest = export_onnx(codec, out, opset=args.opset, verify=not args.no_verify, model_id=model_id(codec),
                           n_q=args.n_q)
    checked = manifest["verified"]
    detail = (f"; onnxruntime: codes equal {checked['codes_equal']:.0%}, audio within "
              f"{checked['audio_max_abs_diff']:.1e}" if checked else "")
    files = EXPORT_FILES + (STEP_FILES if manifest["streaming"] else ())
    print(f"codec export: {directory} -> {out} ({', '.join(files)}; opset {args.opset}, "
          f"encoder {manifest['encoder_n_q']} of {manifest['n_q']} codebooks, "
          f"{manifest['samples_per_frame']} samples per frame{detail})")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help=cmd_export.__doc__, description=cmd_export.__doc__)
    export.add_argument("model_dir", help="model directory (config.yaml + model.safetensors), or 'default'")
    export.add_argument("out_dir", help="folder to write encoder.onnx, decoder.onnx and manifest.json to")
    export.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default onnx)")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    export.add_argument("--n-q", type=int, default=None,
                        help="codebooks the encoder emits (default all; the decoder takes up to all)")
    export.add_argument("--force", action="store_true", help="replace files already in OUT_DIR")
    export.add_argument("--no-verify", action="store_true",
                        help="skip running the graphs with onnxruntime against PyTorch")
    export.set_defaults(func=cmd_export)
