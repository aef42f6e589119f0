"""``codec eval``: PESQ, STOI/ESTOI, mel distance and SI-SNR of decoded audio against references."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from funcodec_lite.jobs.evaluate import collect_pairs, pairs_summary, pairs_table, score_files
from funcodec_lite.utils.atomic import atomic_path


def cmd_eval(args: argparse.Namespace) -> int:
    """Score hypothesis audio against references (files, directories or scp lists); print a table,
    write JSON."""
    pairs = collect_pairs(args.ref, args.hyp)
    results = [score_files(name, ref, hyp) for name, ref, hyp in pairs]
    single = len(pairs) == 1 and Path(args.ref).is_file() and Path(args.ref).suffix != ".scp"
    if single and results[0].error:
        raise ValueError(results[0].error)
    summary = pairs_summary(results)
    out = Path(args.json)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{out}: cannot write ({err.strerror or err})") from err
    print(pairs_table(results))
    print(f"codec eval: {summary['scored']} pair(s) scored, {summary['failed']} failed; wrote {out}")
    for result in results:
        if result.error:
            print(f"codec eval: error: {result.error}", file=sys.stderr)
    return 2 if summary["failed"] else 0


def register(commands: argparse._SubParsersAction) -> None:
    evaluation = commands.add_parser("eval", help="Score decoded audio against references (table and JSON).",
                                     description=cmd_eval.__doc__)
    evaluation.add_argument("--ref", required=True, help="reference audio: a file, a directory or a .scp")
    evaluation.add_argument("--hyp", required=True, help="decoded audio: same form as --ref")
    evaluation.add_argument("--json", default="eval.json",
                            help="where to write the scores (default %(default)s)")
    evaluation.set_defaults(func=cmd_eval)
