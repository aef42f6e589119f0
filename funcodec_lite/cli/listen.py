"""``codec listen``: write a MUSHRA-style listening test page, or aggregate its exported results."""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite.cli.common import UsageError


def cmd_listen(args: argparse.Namespace) -> int:
    """Build a MUSHRA test (--ref DIR --cond NAME=DIR ... --out DIR), or aggregate results
    (--results FILE...): means with 95 % confidence intervals per condition after BS.1534 post-screening."""
    if args.results:
        if args.ref or args.cond:
            raise UsageError("--results aggregates; --ref/--cond build a test: give one or the other")
        return _aggregate(args)
    if not args.ref or not args.cond or not args.out:
        raise UsageError("building a test needs --ref DIR, at least one --cond NAME=DIR and --out DIR "
                         "(or --results FILE... to aggregate)")
    from funcodec_lite.jobs.listening import build_test, collect_trials, parse_conditions

    conditions = parse_conditions(args.cond)
    _, skipped = collect_trials(args.ref, conditions)
    config = build_test(args.ref, conditions, args.out, seed=args.seed, title=args.title)
    trials = config["trials"]
    print(f"codec listen: {len(trials)} trial(s) x {len(trials[0]['stimuli'])} stimuli (hidden reference, "
          f"3.5 kHz anchor, {len(conditions)} condition(s)); test {config['id']} -> "
          f"{Path(args.out) / 'index.html'}")
    if skipped:
        print(f"codec listen: {len(skipped)} reference file(s) skipped, missing in some condition: "
              f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from funcodec_lite.jobs.listening_stats import read_all, summarise, summary_table, write_summary

    summary = summarise(read_all(args.results), screening=not args.keep_all)
    print(summary_table(summary))
    excluded = "".join(f"\nexcluded {name}: hidden reference below 90 in {fraction:.0%} of the trials"
                       for name, fraction in summary.excluded.items())
    print(f"{len(summary.listeners)} listener(s) kept, {len(summary.excluded)} excluded{excluded}")
    if args.out:
        paths = write_summary(summary, Path(args.out))
        print(f"codec listen: wrote {', '.join(str(p) for p in paths)}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    listen = commands.add_parser("listen", description=cmd_listen.__doc__,
                                 help="MUSHRA listening test: build the page, or aggregate results.")
    listen.add_argument("--ref", metavar="DIR", help="reference audio directory (one trial per file)")
    listen.add_argument("--cond", action="append", metavar="NAME=DIR",
                        help="a condition: its name and a directory with files named as the references "
                             "(repeat)")
    listen.add_argument("--out", metavar="DIR", help="the test page directory to write (new or empty); with "
                        "--results: where to write summary.json, summary.md and scores.png")
    listen.add_argument("--seed", type=int, default=0, help="seed of the stimulus order (default 0)")
    listen.add_argument("--title", default="Listening test", help="page title")
    listen.add_argument("--results", nargs="+", metavar="FILE",
                        help="aggregate these exported results (.json or .csv, one listener each)")
    listen.add_argument("--keep-all", action="store_true",
                        help="with --results: no post-screening (keep every listener)")
    listen.set_defaults(func=cmd_listen)
