"""Copies a trained codec into the package as the shipped default model (weight norm folded).

Usage: python tools/export_default_model.py egs/speech_codec/exp/tiny_vocos/model [--out DIR] [--name NAME]
           [--dtype float16]

``--dtype float16`` stores the weights and codebooks in half precision (half the bytes); the loader casts
them back to the model's float32, so the shipped model *is* the rounded one: evaluate it after export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from funcodec_lite import Codec

PACKAGE_DEFAULT = Path(__file__).resolve().parents[1] / "funcodec_lite" / "codec" / "pretrained" / "default"
# The frame-rate default (8 M parameters, matrix products at 50 Hz) is larger on disk than the 1.2 M
# parameter FreqCodec it replaced, though cheaper to run; stored in float16 it stays under this cap.
MAX_BYTES = 20 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a directory written by Codec.save_pretrained")
    parser.add_argument("--out", type=Path, default=PACKAGE_DEFAULT)
    parser.add_argument("--name", default="speech_tiny_vocos_16k", help="the name recorded in config.yaml")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="storage precision of the weights (the loader casts back to float32)")
    args = parser.parse_args()
    codec = Codec.from_pretrained(args.model)
    codec.fold_weight_norm()  # plain weights: faster, same outputs
    codec.config.name = args.name
    if args.dtype == "float16":
        codec.half()
    source = args.model / "provenance.json"
    provenance = json.loads(source.read_text()) if source.exists() else {}
    for key in ("kind", "code_version", "saved"):  # the new directory's own
        provenance.pop(key, None)
    codec.save_pretrained(args.out, {**provenance, "exported_from": str(args.model), "dtype": args.dtype})
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out}: {size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        raise SystemExit(f"the default model must stay under {MAX_BYTES / 2**20:.0f} MiB, "
                         f"got {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
