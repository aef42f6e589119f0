"""The ``codec`` command line: ``encode``, ``decode``, ``tokenize``, ``eval``, ``info``, ``convert``,
``train``, ``demo``, ``presets``, ``lm train``, ``lm generate``, ``vamp``, ``generate``,
``vocoder train``, ``vocoder resynth``, ``listen``, ``serve``, ``export``.

Errors are one line on stderr (``codec <command>: error: <file>: <problem>``) with exit code 2 and no
traceback unless ``--debug``; nothing is left half-written (outputs are written atomically).
"""

from __future__ import annotations

import argparse
import os
import sys

from funcodec_lite.cli import (
    coding,
    convert,
    evaluation,
    export,
    generate,
    info,
    listen,
    lm,
    serve,
    tokenize,
    training,
    vamp,
    vocoder,
)
from funcodec_lite.cli.common import CommandParser, one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codec", description="funcodec_lite neural audio codec toolkit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for module in (coding, tokenize, evaluation, info, convert, training, lm, vamp, generate, vocoder, listen,
                   serve, export):
        module.register(commands)
    return parser


# oneDNN caches compiled convolution primitives per input shape (1024 by default). Inputs of many different
# lengths (a dataset, or the edges of long files) would grow the process by hundreds of MB for no gain
# measurable here (docs/benchmarks.md); a smaller cache keeps memory flat. An explicit setting wins.
ONEDNN_CACHE = "64"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (ValueError, OSError, RuntimeError) as error:
        if args.debug:
            raise
        print(f"codec {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"codec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if args.debug:
            raise
        print(f"codec {args.command}: unexpected error: {type(error).__name__}: {one_line(error)} "
              "(rerun with --debug for a traceback)", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
