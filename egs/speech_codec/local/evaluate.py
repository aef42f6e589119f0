"""Recipe stage 3: decode the tokens at several n_q, score against the references, write results.md.

Token files are read and checked by funcodec_lite.inference.tokens (a file made by another model is an error).
"""

import argparse
from pathlib import Path

from funcodec_lite.codec.loading import load_model
from funcodec_lite.jobs.evaluate import evaluate_tokens, results_table

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--tokens", required=True)
parser.add_argument("--n-q", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
parser.add_argument("--out", required=True, help="results markdown file")
args = parser.parse_args()
codec = load_model(args.model)
n_qs = [n for n in args.n_q if n <= codec.n_q]
results = evaluate_tokens(codec, args.data, args.tokens, n_qs)
table = results_table(results, codec.frame_rate, codec.codebook_size)
text = (f"# {Path(args.model).parent.name}: {args.data}\n\n"
        f"{codec.sample_rate} Hz, {codec.frame_rate:g} frames/s, codebooks of {codec.codebook_size}.\n\n"
        f"{table}")
Path(args.out).write_text(text, encoding="utf-8")
print(text)
