"""Makes Kaldi data dirs of speech: synthesized with espeak-ng, or indexed from an existing corpus folder."""

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
from funcodec_lite.data.kaldi import write_data_dir

PROG = "make_speech_corpus"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Writes OUT/data/{train,dev,test} (wav.scp, utt2spk, spk2utt, text); "
        "synthesized audio goes to OUT/wavs. Dev and test speakers never occur in train.")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--from-corpus", type=Path, metavar="DIR",
                        help="index the wav/flac files under DIR (LibriTTS, VCTK, one folder per speaker) "
                        "instead of synthesizing")
    parser.add_argument("--num-utts", type=int, default=2000, help="utterances to synthesize (default 2000)")
    parser.add_argument("--num-voices", type=int, default=40, help="espeak-ng voices = speakers (default 40)")
    parser.add_argument("--dev-speakers", type=int, help="held-out dev speakers (default 10%%, at least 1)")
    parser.add_argument("--test-speakers", type=int, help="held-out test speakers (default 10%%, at least 1)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="rate of synthesized wavs (16000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sentences, voices and splits (0)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel espeak-ng processes")
    return parser


def _index(args: argparse.Namespace) -> dict[str, str]:
    splits, text = index_corpus(args.from_corpus, args.seed, args.dev_speakers, args.test_speakers)
    for split in SPLITS:
        chosen = {u.utt_id for u in splits[split]}
        write_data_dir(args.out / "data" / split, splits[split],
                       {k: v for k, v in text.items() if k in chosen} if text else None)
    return {split: f"{len(utts)} utterances, {len({u.speaker for u in utts})} speakers"
            for split, utts in splits.items()}


def _synthesize(args: argparse.Namespace, espeak: str) -> dict[str, str]:
    accents, variants = available_voices(espeak)
    plan = plan_corpus(args.num_utts, args.num_voices, args.seed, args.dev_speakers, args.test_speakers,
                       variants=variants, accents=accents)
    step = max(1, len(plan) // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"{PROG}: synthesized {done}/{total}", file=sys.stderr, flush=True)

    hours = synthesize_corpus(args.out, plan, args.sample_rate, args.jobs, espeak, progress)
    summary = {}
    for split in SPLITS:
        items = [p for p in plan if p.split == split]
        summary[split] = (f"{len(items)} utterances, {len({p.voice for p in items})} speakers, "
                          f"{hours[split]:.2f} h")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Runs the tool; returns the exit status (2 for a usage problem or a missing espeak-ng)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if args.from_corpus is not None:
            summary = _index(args)
        else:
            espeak = find_espeak()
            if espeak is None:
                print(f"{PROG}: error: {INSTALL_HINT}", file=sys.stderr)
                return 2
            summary = _synthesize(args, espeak)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for split, line in summary.items():
        print(f"{PROG}: {args.out / 'data' / split}: {line}")
    print(f"{PROG}: done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
