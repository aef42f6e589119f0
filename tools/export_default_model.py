"""Copies a trained codec into the package as the shipped default model (weight norm folded, float32).

Usage: python tools/export_default_model.py egs/speech_codec/exp/tiny_freq/model [--out DIR] [--name NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite import Codec

PACKAGE_DEFAULT = Path(__file__).resolve().parents[1] / "funcodec_lite" / "codec" / "pretrained" / "default"
MAX_BYTES = 10 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a directory written by Codec.save_pretrained")
    parser.add_argument("--out", type=Path, default=PACKAGE_DEFAULT)
    parser.add_argument("--name", default="speech_tiny_freq_16k", help="the name recorded in config.yaml")
    args = parser.parse_args()
    codec = Codec.from_pretrained(args.model)
    codec.fold_weight_norm()  # plain weights: faster, same outputs
    codec.config.name = args.name
    codec.save_pretrained(args.out)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out}: {size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        raise SystemExit(f"the default model must stay under 10 MB, got {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
