"""``codec generate``: clips of a class from a trained Foley run's generator (its one model directory).

``codec generate --model egs/dcase_foley/exp/tiny_vq/generator --class DogBark -n 10 out/ [--seed S]`` writes
``out/dog_bark/000.wav`` ... in the challenge's format (the run's rate and length, mono 16-bit PCM).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from funcodec_lite.cli.common import UsageError, pick_device


def load_generator(model_dir: str, device: torch.device):
    """The `FoleyGenerator` of a model directory, ready to sample; one-line errors for other kinds."""
    from funcodec_lite import load_model_dir
    from funcodec_lite.utils.weights import read_model_config

    kind, _ = read_model_config(model_dir)
    if kind != "foley_generator":
        raise UsageError(f"{model_dir}: a {kind} model directory, not a Foley generator (a run's "
                         "exp/<run>/generator)")
    return load_model_dir(model_dir, kind).prepare_for_inference().to(device)


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate clips of one or more classes with a trained Foley generator."""
    from funcodec_lite.foley.generator import write_clips

    if args.n < 1 or args.batch_size < 1:
        raise UsageError(f"-n and --batch-size must be >= 1, got {args.n} and {args.batch_size}")
    device = pick_device(args.device)
    model = load_generator(args.model, device)
    classes = args.class_name or model.config.class_names
    for name in classes:  # every class checked before anything is written
        try:
            model.label(name)
        except KeyError as error:
            raise UsageError(error.args[0]) from None
    if args.temperature is not None:
        model.config.sampling["temperature"] = args.temperature
    known = ", ".join(sorted(model.config.sampling)) or "none (this model has no settings)"
    for setting in args.sampling or []:
        key, equals, value = setting.partition("=")
        if not equals or key not in model.config.sampling:
            raise UsageError(f"--sampling {setting}: give KEY=VALUE with KEY one of {known}")
        model.config.sampling[key] = type(model.config.sampling[key])(value)
    start = time.perf_counter()
    write_clips(model, Path(args.output), args.n, args.batch_size, args.seed, classes)
    print(f"codec generate: {args.n * len(classes)} clips in {time.perf_counter() - start:.1f} s -> "
          f"{args.output}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("generate", help=cmd_generate.__doc__, description=__doc__.split("\n")[0])
    command.add_argument("output", help="output folder (one challenge-style sub-folder per class)")
    command.add_argument("--model", required=True, help="the run's generator directory (exp/<run>/generator)")
    command.add_argument("--class", dest="class_name", action="append",
                         help="class to generate (repeatable; default: every class)")
    command.add_argument("-n", type=int, default=10, help="clips per class")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--temperature", type=float, help="sampling temperature (default: the run's)")
    command.add_argument("--sampling", action="append", metavar="KEY=VALUE",
                         help="override a sampling setting of the run (e.g. steps=12 for a masked prior)")
    command.add_argument("--batch-size", type=int, default=25)
    command.add_argument("--device", help="cpu, cuda or cuda:N")
    command.set_defaults(func=cmd_generate)
