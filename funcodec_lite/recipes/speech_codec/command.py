"""The speech codec recipe's command line: ``python -m funcodec_lite.recipes.speech_codec <stage> [options]``.

Stages: ``tokenize`` (stage 2: token files of a data dir, resumable) and ``evaluate`` (stage 3: results.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite.recipes.command import run_stage, stage_parser
from funcodec_lite.recipes.speech_codec.stages import stage_evaluate
from funcodec_lite.recipes.tokens import stage_tokens


def _tokenize(args: argparse.Namespace) -> int:
    summaries = stage_tokens(args.model, [(args.data, args.out)], n_q=args.n_q, device=args.device)
    return 2 if any(s.failed for s in summaries) else 0


def _evaluate(args: argparse.Namespace) -> int:
    print(stage_evaluate(args.model, args.data, args.tokens, args.n_q, args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The options of every stage."""
    parser, stages = stage_parser("python -m funcodec_lite.recipes.speech_codec", __doc__.split("\n")[0])
    tokenize = stages.add_parser(
        "tokenize", help="stage 2: encode every utterance of a data dir (token files of this model are kept, "
        "files of another model, such as an earlier checkpoint, are redone)")
    tokenize.add_argument("--model", required=True,
                          help="model directory (config.yaml + model.safetensors; 'default': the shipped "
                               "model)")
    tokenize.add_argument("--data", required=True, type=Path, help="data directory (wav.scp)")
    tokenize.add_argument("--out", required=True, type=Path,
                          help="token directory (OUT/<utt>.npz, docs/formats.md)")
    tokenize.add_argument("--n-q", type=int, help="codebooks to keep (default all)")
    tokenize.add_argument("--device", default="cpu")
    tokenize.set_defaults(run=_tokenize)
    evaluate = stages.add_parser(
        "evaluate", help="stage 3: decode the tokens at several n_q, score against the references, write "
        "results.md")
    evaluate.add_argument("--model", required=True, type=Path, help="model directory")
    evaluate.add_argument("--data", required=True, type=Path, help="data directory of the references")
    evaluate.add_argument("--tokens", required=True, type=Path, help="stage 2's token directory")
    evaluate.add_argument("--n-q", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                          help="codebook counts to decode with (those above the model's are left out)")
    evaluate.add_argument("--out", required=True, type=Path, help="results markdown file")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one stage; 0 on success, 2 (one line on stderr) on an error the user can fix."""
    return run_stage(build_parser(), argv)
