"""The VampNet recipe's command line: ``python -m funcodec_lite.recipes.vampnet <stage> [options]``.

Stages: ``presets`` (4: VampNet's demo presets and the compression table on held-out clips).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite.recipes.command import run_stage, stage_parser
from funcodec_lite.recipes.vampnet.presets import stage_presets


def _presets(args: argparse.Namespace) -> None:
    stage_presets(args.coarse, args.c2f, args.data, args.out, clips=args.clips, steps=args.steps,
                  mask_temperature=args.mask_temperature, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    """The options of every stage."""
    parser, stages = stage_parser("python -m funcodec_lite.recipes.vampnet", __doc__.split("\n")[0])
    presets = stages.add_parser("presets", help="stage 4: VampNet's demo presets and token-domain "
                                "compression (OUT/<preset>/<utt>.wav, OUT/<preset>.png, OUT/results.json, "
                                "OUT/results.md)")
    presets.add_argument("--coarse", required=True, type=Path, help="the coarse masked model's directory")
    presets.add_argument("--c2f", required=True, type=Path,
                         help="the coarse-to-fine masked model's directory")
    presets.add_argument("--data", required=True, type=Path, help="held-out data dir (wav.scp)")
    presets.add_argument("--clips", type=int, default=6, help="the first N utterances (6)")
    presets.add_argument("--steps", type=int, default=24, help="MaskGIT steps (24)")
    presets.add_argument("--mask-temperature", type=float, default=10.5)
    presets.add_argument("--seed", type=int, default=0)
    presets.add_argument("--out", required=True, type=Path)
    presets.set_defaults(run=_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one stage; 0 on success, 2 (one line on stderr) on an error the user can fix."""
    return run_stage(build_parser(), argv)
