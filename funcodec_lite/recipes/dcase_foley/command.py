"""The Foley recipe's command line: ``python -m funcodec_lite.recipes.dcase_foley <stage> [options]``.

Parses the options once into a `FoleyRun` and runs one stage on it; errors the user can fix are one line
on stderr and exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from funcodec_lite.data.kaldi import DataDirError
from funcodec_lite.foley.data import FoleyDataError
from funcodec_lite.recipes.dcase_foley import codec_path, evaluation, generation, report, stages
from funcodec_lite.recipes.dcase_foley.run import DataSource, FoleyRun, OfficialVocoder
from funcodec_lite.utils.config import ConfigError

STAGES: dict[str, Callable[[FoleyRun], None]] = {
    "data": stages.stage_data,
    "features": stages.stage_features,
    "vqvae": stages.stage_vqvae,
    "codes": stages.stage_codes,
    "prior": stages.stage_prior,
    "vocoder": stages.stage_vocoder,
    **codec_path.STAGES,
    "generate": generation.stage_generate,
    "generate_codec": generation.stage_generate_codec,
    "evaluate": evaluation.stage_evaluate,
    "plot": report.stage_plot,
    "dirs": stages.stage_dirs,
}


def build_parser() -> argparse.ArgumentParser:
    """The options of every stage."""
    parser = argparse.ArgumentParser(prog="python -m funcodec_lite.recipes.dcase_foley",
                                     description=__doc__.split("\n")[0])
    parser.add_argument(
        "stage", choices=list(STAGES),
        help="a stage, or dirs: print the keyed vocoder and classifier directories; codec, tokens, "
        "token_prior and generate_codec are the codec-token path's (recipes/dcase_foley/codec_path.py)",
    )
    parser.add_argument("--config", type=Path, help="conf/<run>.yaml")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--features", type=Path, default=Path("exp/features"))
    parser.add_argument("--exp", type=Path, help="exp/<run>")
    parser.add_argument(
        "--vocoder-exp", type=Path, help="default: exp/vocoder_<preset>_<hash of its settings and data>"
    )
    parser.add_argument(
        "--classifier-exp", type=Path, help="default: exp/classifier_<hash of its settings and data>"
    )
    parser.add_argument("--dev-root", type=Path, help="DCASEFoleySoundSynthesisDevSet folder")
    parser.add_argument("--eval-root", type=Path, help="evaluation set folder (<Class>/*.wav)")
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--official-checkpoint", type=Path, help="official HiFi-GAN g_XXXXXXXX to import instead of training"
    )
    parser.add_argument("--official-config", type=Path,
                        help="its config.json (default: the run's vocoder preset)")
    parser.add_argument("--vggish", help="VGGish weights (.pth/.safetensors) for challenge-style FAD")
    parser.add_argument("--resume", action="store_true",
                        help="training stages: continue from the newest checkpoint of the stage's exp dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def run_from_args(args: argparse.Namespace) -> FoleyRun:
    """The `FoleyRun` of parsed options (the one place a Namespace is read)."""
    official = None
    if args.official_checkpoint:
        official = OfficialVocoder(args.official_checkpoint, args.official_config)
    return FoleyRun(
        config_path=args.config, exp=args.exp, data=args.data, features=args.features,
        source=DataSource(args.dev_root, args.eval_root, args.valid_fraction, args.seed),
        resume=args.resume, official=official, vggish=args.vggish,
        vocoder_override=args.vocoder_exp, classifier_override=args.classifier_exp,
    )


def main(argv: list[str] | None = None) -> int:
    """Runs one stage; 0 on success, 2 (one line on stderr) on an error the user can fix."""
    args = build_parser().parse_args(argv)
    try:
        STAGES[args.stage](run_from_args(args))
    except (ConfigError, DataDirError, FoleyDataError, FileNotFoundError, ValueError) as error:
        if args.debug:
            raise
        print(f"{args.stage}: " + " ".join(str(error).split()), file=sys.stderr)  # one line
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
