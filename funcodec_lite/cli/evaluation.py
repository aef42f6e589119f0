"""``codec eval``: PESQ, STOI/ESTOI, mel distance, SI-SNR and (``--metrics``) DNSMOS and speaker similarity
of decoded audio against references."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from funcodec_lite.jobs.evaluate import collect_pairs, pairs_summary, pairs_table, score_files
from funcodec_lite.metrics import Scorer
from funcodec_lite.metrics.suite import ALIASES, GROUPS
from funcodec_lite.utils.atomic import write_json


def _check_json_path(path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; --json takes a file name")


def _write_json(path: Path, summary: dict) -> None:
    """Writes the summary atomically; a path that cannot be written is a ValueError naming it."""
    try:
        write_json(path, summary)
    except OSError as err:
        raise ValueError(f"{path}: cannot write ({err.strerror or err})") from err


def cmd_eval(args: argparse.Namespace) -> int:
    """Score hypothesis audio against references (files, directories or scp lists); print a table, and
    write the scores as JSON when --json is given."""
    if args.json is not None:
        _check_json_path(Path(args.json))  # before the scoring, which can take a while
    scorer = Scorer(args.metrics)  # unknown names and missing packages fail here, before any work
    pairs = collect_pairs(args.ref, args.hyp)
    results = [score_files(name, ref, hyp, scorer) for name, ref, hyp in pairs]
    single = len(pairs) == 1 and Path(args.ref).is_file() and Path(args.ref).suffix != ".scp"
    if single and results[0].error:
        raise ValueError(results[0].error)
    summary = pairs_summary(results)
    if args.json is not None:
        _write_json(Path(args.json), summary)
    print(pairs_table(results))
    wrote = f"; wrote {args.json}" if args.json is not None else ""
    print(f"codec eval: {summary['scored']} pair(s) scored, {summary['failed']} failed{wrote}")
    for result in results:
        if result.error:
            print(f"codec eval: error: {result.error}", file=sys.stderr)
    return 2 if summary["failed"] else 0


def register(commands: argparse._SubParsersAction) -> None:
    evaluation = commands.add_parser("eval", help="Score decoded audio against references (a table; JSON "
                                     "with --json).", description=cmd_eval.__doc__)
    evaluation.add_argument("--ref", required=True, help="reference audio: a file, a directory or a .scp")
    evaluation.add_argument("--hyp", required=True, help="decoded audio: same form as --ref")
    evaluation.add_argument("--json", metavar="PATH",
                            help="also write per-pair scores, their mean and the failures to this JSON file "
                                 "(default: nothing is written)")
    evaluation.add_argument("--metrics", default="classic", metavar="LIST",
                            help=f"comma-separated metrics: {', '.join(GROUPS)}, or {', '.join(ALIASES)} "
                                 "(default: classic = pesq,stoi,estoi,mel,si_snr); dnsmos and spk need "
                                 "pip install 'funcodec_lite[eval]' and are slower (docs/cli.md)")
    evaluation.set_defaults(func=cmd_eval)
