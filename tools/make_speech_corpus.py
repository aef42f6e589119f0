"""Makes Kaldi data dirs of speech: synthesized (espeak-ng, festival) or indexed from a corpus folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from funcodec_lite.data.corpus import (
    INSTALL_HINT,
    SPLITS,
    available_voices,
    find_espeak,
    index_corpus,
    plan_corpus,
    synthesize_corpus,
)
from funcodec_lite.data.festival import INSTALL_HINT as FESTIVAL_HINT
from funcodec_lite.data.festival import available_festival_voices, choose_voices, find_festival
from funcodec_lite.data.kaldi import write_data_dir

PROG = "make_speech_corpus"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Writes OUT/data/{train,dev,test} (wav.scp, utt2spk, spk2utt, text, "
        "utt2synth); synthesized audio goes to OUT/wavs. Dev and test speakers never occur in train. "
        "Speakers are espeak-ng voices (--num-voices) plus, with --festival, festival's voices of recorded "
        "speakers.")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--from-corpus", type=Path, metavar="DIR",
                        help="index the wav/flac files under DIR (LibriTTS, VCTK, one folder per speaker) "
                        "instead of synthesizing")
    parser.add_argument("--num-utts", type=int, default=2000, help="utterances to synthesize (default 2000)")
    parser.add_argument("--num-voices", type=int, default=40,
                        help="espeak-ng voices = speakers (default 40); festival speakers come on top")
    parser.add_argument("--dev-speakers", type=int,
                        help="held-out espeak-ng dev voices (default 10%%, at least 1)")
    parser.add_argument("--test-speakers", type=int,
                        help="held-out espeak-ng test voices (default 10%%, at least 1)")
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--festival", action="store_true",
                         help="add festival's voices of recorded speakers (every installed festvox voice "
                         "this tool knows, speakers kal and slt never) as extra speakers")
    engines.add_argument("--festival-only", action="store_true",
                         help="festival voices only: no espeak-ng needed, --num-voices is ignored")
    parser.add_argument("--festival-voices", metavar="NAMES",
                        help="comma-separated festival voices to use (e.g. ked_diphone,czech_ph; default "
                        "all); implies --festival")
    parser.add_argument("--festival-dev-speakers", type=int,
                        help="held-out festival dev speakers (default 10%%, at least 1)")
    parser.add_argument("--festival-test-speakers", type=int,
                        help="held-out festival test speakers (default 10%%, at least 1)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="rate of synthesized wavs (16000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sentences, voices and splits (0)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel espeak-ng / festival processes")
    return parser


def _index(args: argparse.Namespace) -> dict[str, str]:
    splits, text = index_corpus(args.from_corpus, args.seed, args.dev_speakers, args.test_speakers)
    for split in SPLITS:
        chosen = {u.utt_id for u in splits[split]}
        write_data_dir(args.out / "data" / split, splits[split],
                       {k: v for k, v in text.items() if k in chosen} if text else None)
    return {split: f"{len(utts)} utterances, {len({u.speaker for u in utts})} speakers"
            for split, utts in splits.items()}


def _synthesize(args: argparse.Namespace, espeak: str | None, festival: str | None) -> dict[str, str]:
    accents, variants = available_voices(espeak) if espeak else (None, None)
    voices = []
    if festival is not None:
        names = args.festival_voices.split(",") if args.festival_voices else None
        voices = choose_voices(names, available_festival_voices(festival))
        if not voices:
            raise ValueError("no festival voice installed; e.g. 'apt-get install -y festvox-kdlpc16k'")
    plan = plan_corpus(args.num_utts, 0 if args.festival_only else args.num_voices, args.seed,
                       args.dev_speakers, args.test_speakers, variants=variants, accents=accents,
                       festival_voices=voices, festival_dev=args.festival_dev_speakers,
                       festival_test=args.festival_test_speakers)
    step = max(1, len(plan) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"{PROG}: synthesized {done}/{total}", file=sys.stderr, flush=True)

    hours = synthesize_corpus(args.out, plan, args.sample_rate, args.jobs, espeak, progress, festival)
    summary = {}
    for split in SPLITS:
        items = [p for p in plan if p.split == split]
        speakers = sorted({p.voice.speaker for p in items})
        summary[split] = (f"{len(items)} utterances, {len(speakers)} speakers, {hours[split]:.2f} h: "
                          + " ".join(speakers))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Runs the tool; returns the exit status (2: a usage problem, a missing espeak-ng, festival or voice)."""
    args = build_parser().parse_args(argv)
    args.festival = args.festival or (args.festival_voices is not None and not args.festival_only)
    start = time.perf_counter()
    try:
        if args.from_corpus is not None:
            summary = _index(args)
        else:
            espeak = None if args.festival_only else find_espeak()
            if espeak is None and not args.festival_only:
                print(f"{PROG}: error: {INSTALL_HINT}", file=sys.stderr)
                return 2
            festival = find_festival() if args.festival or args.festival_only else None
            if festival is None and (args.festival or args.festival_only):
                print(f"{PROG}: error: {FESTIVAL_HINT}", file=sys.stderr)
                return 2
            summary = _synthesize(args, espeak, festival)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for split, line in summary.items():
        print(f"{PROG}: {args.out / 'data' / split}: {line}")
    print(f"{PROG}: done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
