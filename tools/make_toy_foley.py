"""Writes a procedural toy Foley corpus in the DCASE 2023 Task 7 layout (dev and held-out eval splits)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from funcodec_lite.foley.toy_data import CLASSES, SPLIT_DIRS, ToyFoleyConfig, make_toy_foley

PROG = "make_toy_foley"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=f"Writes OUT/{SPLIT_DIRS['dev']}/<Class>/NNNN.wav and "
        f"OUT/{SPLIT_DIRS['eval']}/<Class>/NNNN.wav for the classes {', '.join(CLASSES)}: "
        "4 s mono 16-bit PCM at 22050 Hz. The audio depends only on the seed, not on --jobs.")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--clips-per-class", type=int, default=40, help="dev clips per class (default 40)")
    parser.add_argument("--eval-clips-per-class", type=int, default=10,
                        help="held-out eval clips per class (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed, >= 0 (default 0)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="worker processes (default: min(4, CPUs))")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the tool; returns the exit status (2 for a usage problem)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        config = ToyFoleyConfig(clips_per_class=args.clips_per_class,
                                eval_clips_per_class=args.eval_clips_per_class, seed=args.seed)
        total = (config.clips_per_class + config.eval_clips_per_class) * len(CLASSES)
        step = max(1, total // 10)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                print(f"{PROG}: wrote {done}/{total}", file=sys.stderr, flush=True)

        counts = make_toy_foley(args.out, config, jobs=args.jobs, progress=progress)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for split, count in counts.items():
        print(f"{PROG}: {args.out / SPLIT_DIRS[split]}: {count} clips ({count // len(CLASSES)} per class)")
    print(f"{PROG}: done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
