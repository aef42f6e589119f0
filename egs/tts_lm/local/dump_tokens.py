"""Recipe stage 2a: codec tokens of every utterance (TOKENS/<split>/<utt>.npz, docs/formats.md) with the
dataset tokenization job; token files of this model are kept, files of another model are redone."""

import argparse
import sys
from pathlib import Path

from funcodec_lite import Tokenizer
from funcodec_lite.jobs.tokenize import Shard, tokenize_scp

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--codec", default="default", help="model directory ('default': the shipped model)")
parser.add_argument("--data", nargs="+", required=True, type=Path, help="data dirs (data/<split>)")
parser.add_argument("--out", required=True, type=Path, help="token root: OUT/<split>/<utt>.npz")
parser.add_argument("--n-q", type=int, help="codebooks to keep (default: all of the model's)")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
try:
    tokenizer = Tokenizer.from_pretrained(args.codec, device=args.device)
except (OSError, ValueError) as err:
    sys.exit(f"tokenize: error: {str(err).splitlines()[0]}")
if args.n_q is not None and not 1 <= args.n_q <= tokenizer.total_codebooks:
    sys.exit(f"tokenize: error: --n-q must be in 1..{tokenizer.total_codebooks}, got {args.n_q}")
print(f"tokenize: model {tokenizer.model_id}: {args.n_q or tokenizer.total_codebooks} codebooks of "
      f"{tokenizer.codebook_size} at {tokenizer.frame_rate:g} frames/s")
failed = 0
for data in args.data:
    summary = tokenize_scp(tokenizer.codec, data / "wav.scp", args.out / data.name, n_q=args.n_q,
                           shard=Shard(0, 1), progress=False)
    failed += len(summary.failed)
    print(f"tokenize: {args.out / data.name}: {summary.ok} written ({summary.redone} redone), "
          f"{summary.skipped} kept, {len(summary.failed)} failed; log {summary.log}")
sys.exit(2 if failed else 0)
