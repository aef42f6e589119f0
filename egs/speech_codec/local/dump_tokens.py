"""Recipe stage 2: encode every utterance of a data directory with a trained model (resumable; token
files of another model, such as an earlier checkpoint, are redone).

Writes one token file per utterance (format: docs/formats.md, read back with funcodec_lite.inference.tokens).
"""

import argparse
import sys

from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.jobs.evaluate import tokenize_dir

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", required=True, help="model directory (config.yaml + model.safetensors)")
parser.add_argument("--data", required=True, help="data directory")
parser.add_argument("--out", required=True, help="token directory")
parser.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default all)")
args = parser.parse_args()
codec = load_model(args.model)
try:
    written = tokenize_dir(codec, args.data, args.out, n_q=args.n_q)
except ValueError as error:
    sys.exit(f"dump_tokens: {error}")
print(f"wrote {written} token files to {args.out} (model {model_id(codec)})")
