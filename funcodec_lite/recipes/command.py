"""The command line of a recipe with one subcommand per stage (speech_codec, tts_lm, vampnet):
``python -m funcodec_lite.recipes.<name> <stage> [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# Errors a user can fix (bad options, missing or mismatched files): one line on stderr, exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def stage_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The recipe's parser (with ``--debug``) and its stage subparsers; each stage sets ``run`` (a function
    of the parsed options that calls the stage with typed arguments and returns the exit status)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser, parser.add_subparsers(dest="stage", required=True, metavar="STAGE")


def run_stage(parser: argparse.ArgumentParser, argv: list[str] | None,
              errors: tuple[type[BaseException], ...] = USER_ERRORS) -> int:
    """Parses ``argv`` and runs its stage: its exit status, or 2 with ``<stage>: error: <message>`` on
    stderr for one of ``errors`` (``--debug`` raises instead)."""
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        return run(args) or 0
    except errors as error:
        if args.debug:
            raise
        print(f"{args.stage}: error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
