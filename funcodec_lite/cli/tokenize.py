"""``codec tokenize``: token extraction for a whole dataset (resumable, sharded across processes)."""

from __future__ import annotations

import argparse
import sys

from funcodec_lite.cli.common import (
    UsageError,
    add_chunk_args,
    add_model_args,
    check_n_q,
    chunk_config,
    load_from_args,
)
from funcodec_lite.jobs.tokenize import Shard, tokenize_scp


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Encode every utterance of a wav.scp to OUT_DIR/<utt-id>.npz; rerun to resume, launch with
    `accelerate launch` (or --shard i/n) to split the work."""
    if args.num_workers < 0:
        raise UsageError(f"--num-workers must be >= 0, got {args.num_workers}")
    shard = Shard.parse(args.shard) if args.shard else Shard.from_env()
    codec = load_from_args(args)
    check_n_q(args.n_q, codec)
    summary = tokenize_scp(codec, args.scp, args.out_dir, n_q=args.n_q, num_workers=args.num_workers,
                           shard=shard, chunk=chunk_config(args), progress=None if not args.quiet else False)
    redone = f", {summary.redone} redone (token files of another model)" if summary.redone else ""
    speed = summary.audio_seconds / summary.seconds if summary.seconds > 0 else 0.0
    print(f"codec tokenize: shard {shard.rank}/{shard.world}: {summary.ok} ok, {summary.skipped} skipped, "
          f"{len(summary.failed)} failed in {summary.seconds:.1f} s ({speed:.1f}x real time)"
          f"{redone}; "
          f"log {summary.log}")
    for utt, reason in list(summary.failed.items())[:10]:
        print(f"codec tokenize: failed: {utt}: {reason}", file=sys.stderr)
    if len(summary.failed) > 10:
        print(f"codec tokenize: ... and {len(summary.failed) - 10} more failures (see {summary.log})",
              file=sys.stderr)
    return 2 if summary.failed else 0


def register(commands: argparse._SubParsersAction) -> None:
    tokenize = commands.add_parser("tokenize", help="Encode a whole wav.scp (resumable, sharded, logged).",
                                   description=cmd_tokenize.__doc__)
    tokenize.add_argument("--scp", required=True, help="wav.scp: utt-id path per line")
    tokenize.add_argument("--out-dir", required=True,
                          help="token directory (OUT_DIR/<utt-id>.npz, OUT_DIR/log/)")
    tokenize.add_argument("--n-q", type=int, help="codebooks to keep (default: all)")
    tokenize.add_argument("--num-workers", type=int, default=0,
                          help="processes reading and resampling audio (default 0: in the main process)")
    tokenize.add_argument("--shard", metavar="I/N",
                          help="take every N-th utterance from the I-th (default: RANK/WORLD_SIZE of "
                               "accelerate launch or torchrun, else all)")
    add_model_args(tokenize)
    add_chunk_args(tokenize)
    tokenize.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tokenize.set_defaults(func=cmd_tokenize)
