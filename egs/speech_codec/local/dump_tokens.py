"""Recipe stage 2: encode every utterance of a data directory with a trained model (resumable)."""

import argparse

from funcodec_lite import Codec
from funcodec_lite.evaluate import tokenize_dir

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", required=True, help="model directory (config.yaml + model.safetensors)")
parser.add_argument("--data", required=True, help="data directory")
parser.add_argument("--out", required=True, help="token directory")
parser.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default all)")
args = parser.parse_args()
codec = Codec.from_pretrained(args.model)
print(f"wrote {tokenize_dir(codec, args.data, args.out, n_q=args.n_q)} token files to {args.out}")
