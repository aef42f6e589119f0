"""The TTS recipe's command line: ``python -m funcodec_lite.recipes.tts_lm <stage> [options]``.

Stages: ``phonemize`` (1), ``tokenize`` and ``pack`` (2), ``synthesize`` (5), ``evaluate`` (6).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funcodec_lite.data.phonemes import DEFAULT_LANGUAGE, PhonemizerError
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.recipes.command import USER_ERRORS, run_stage, stage_parser
from funcodec_lite.recipes.tokens import stage_tokens
from funcodec_lite.recipes.tts_lm.evaluation import stage_evaluate
from funcodec_lite.recipes.tts_lm.stages import stage_pack, stage_phonemize, stage_synthesize

DATA_HELP = "data dirs (data/<split>), the training split first"


def _phonemize(args: argparse.Namespace) -> None:
    stage_phonemize(args.data, args.vocab, args.language, stress=not args.no_stress,
                    punctuation=not args.no_punctuation)


def _tokenize(args: argparse.Namespace) -> int:
    summaries = stage_tokens(args.codec, [(data, args.out / data.name) for data in args.data], n_q=args.n_q,
                             device=args.device)
    return 2 if any(s.failed for s in summaries) else 0


def _pack(args: argparse.Namespace) -> None:
    stage_pack(args.data, args.tokens, args.vocab, args.out, seed=args.seed,
               prompt_seconds=args.prompt_seconds)


def _synthesize(args: argparse.Namespace) -> None:
    stage_synthesize(args.ar, args.nar, args.examples, args.codec, args.out,
                     SamplingConfig(temperature=args.temperature, top_k=args.top_k),
                     min_frames_per_phoneme=args.min_frames_per_phoneme, seed=args.seed)


def _evaluate(args: argparse.Namespace) -> None:
    stage_evaluate(args.ar, args.nar, args.train_examples, args.test_examples, args.test_data, args.synth,
                   args.out)


def _add_stages(stages: argparse._SubParsersAction) -> None:
    phonemize = stages.add_parser("phonemize", help="stage 1: data/<split>/phonemes and the training split's "
                                  "vocabulary (JSON)")
    phonemize.add_argument("--data", nargs="+", required=True, type=Path, help=DATA_HELP)
    phonemize.add_argument("--vocab", required=True, type=Path, help="vocabulary to write (JSON)")
    phonemize.add_argument("--language", default=DEFAULT_LANGUAGE,
                           help="espeak-ng voice for utterances without utt2synth "
                                f"(default {DEFAULT_LANGUAGE})")
    phonemize.add_argument("--no-stress", action="store_true", help="leave out the stress marks")
    phonemize.add_argument("--no-punctuation", action="store_true", help="leave out clause punctuation")
    phonemize.set_defaults(run=_phonemize)

    tokenize = stages.add_parser("tokenize", help="stage 2a: codec tokens OUT/<split>/<utt>.npz (token files "
                                 "of this model are kept, files of another model are redone)")
    tokenize.add_argument("--codec", default="default", help="model directory ('default': the shipped model)")
    tokenize.add_argument("--data", nargs="+", required=True, type=Path, help="data dirs (data/<split>)")
    tokenize.add_argument("--out", required=True, type=Path, help="token root: OUT/<split>/<utt>.npz")
    tokenize.add_argument("--n-q", type=int, help="codebooks to keep (default: all of the model's)")
    tokenize.add_argument("--device", default="cpu")
    tokenize.set_defaults(run=_tokenize)

    pack = stages.add_parser("pack", help="stage 2b: the TTS examples of each split (OUT/<split>.npz), their "
                             "prompt pairs and the id layout")
    pack.add_argument("--data", nargs="+", required=True, type=Path, help="data dirs (data/<split>)")
    pack.add_argument("--tokens", required=True, type=Path, help="token root: TOKENS/<split>/<utt>.npz")
    pack.add_argument("--vocab", required=True, type=Path, help="phoneme vocabulary (JSON)")
    pack.add_argument("--out", required=True, type=Path, help="output directory")
    pack.add_argument("--seed", type=int, default=0, help="seed of the prompt choice (0)")
    pack.add_argument("--prompt-seconds", type=float, default=3.0,
                      help="prompt length: the first seconds of the prompt utterance (3; 0: all of it)")
    pack.set_defaults(run=_pack)

    synth = stages.add_parser("synthesize", help="stage 5: speak every test sentence in its held-out voice "
                              "(OUT/<utt>.wav, OUT/synthesis.jsonl)")
    synth.add_argument("--ar", required=True, type=Path, help="AR model directory (codebook 0)")
    synth.add_argument("--nar", type=Path, help="NAR model directory (codebooks 1..K-1)")
    synth.add_argument("--examples", required=True, type=Path, help="the test split's task examples (.npz)")
    synth.add_argument("--codec", default="default", help="the codec of the tokens")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--top-k", type=int, default=50)
    synth.add_argument("--temperature", type=float, default=1.0)
    synth.add_argument("--min-frames-per-phoneme", type=float, default=1.0,
                       help="no EOS before this many frames per phoneme (0: EOS allowed at once)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=_synthesize)

    evaluate = stages.add_parser("evaluate", help="stage 6: token NLL vs a unigram baseline, durations, MCD "
                                 "after DTW per voice, spectrograms (OUT/results.json, OUT/results.md)")
    evaluate.add_argument("--ar", required=True, type=Path)
    evaluate.add_argument("--nar", type=Path)
    evaluate.add_argument("--train-examples", required=True, type=Path)
    evaluate.add_argument("--test-examples", required=True, type=Path)
    evaluate.add_argument("--test-data", required=True, type=Path,
                          help="data/test (the reference renderings)")
    evaluate.add_argument("--synth", required=True, type=Path, help="stage 5's output directory")
    evaluate.add_argument("--out", required=True, type=Path)
    evaluate.set_defaults(run=_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The options of every stage."""
    parser, stages = stage_parser("python -m funcodec_lite.recipes.tts_lm", __doc__.split("\n")[0])
    _add_stages(stages)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one stage; 0 on success, 2 (one line on stderr) on an error the user can fix (espeak-ng
    missing or failing included)."""
    return run_stage(build_parser(), argv, USER_ERRORS + (PhonemizerError,))
