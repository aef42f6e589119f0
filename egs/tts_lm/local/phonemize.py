"""Recipe stage 1: phonemes of every data dir's text (data/<split>/phonemes) and the vocabulary of the first
(the training split) as JSON. Each utterance is phonemized in its voice's language (utt2synth), else in
--language."""

import argparse
import sys
from pathlib import Path

from funcodec_lite.data.kaldi import DataDirError
from funcodec_lite.data.phonemes import (
    DEFAULT_LANGUAGE,
    PhonemeVocabulary,
    PhonemizerError,
    phonemize_data_dir,
    write_phonemes,
)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", nargs="+", required=True, type=Path, help="data dirs, the training split first")
parser.add_argument("--vocab", required=True, type=Path, help="vocabulary to write (JSON)")
parser.add_argument("--language", default=DEFAULT_LANGUAGE,
                    help=f"espeak-ng voice for utterances without utt2synth (default {DEFAULT_LANGUAGE})")
parser.add_argument("--no-stress", action="store_true", help="leave out the stress marks")
parser.add_argument("--no-punctuation", action="store_true", help="leave out clause punctuation")
args = parser.parse_args()
vocab = None
for data in args.data:
    try:
        phonemes = phonemize_data_dir(data, args.language, stress=not args.no_stress,
                                      punctuation=not args.no_punctuation)
    except (PhonemizerError, DataDirError, ValueError) as err:
        sys.exit(f"phonemize: error: {str(err).splitlines()[0]}")
    write_phonemes(data / "phonemes", phonemes)
    if vocab is None:
        vocab = PhonemeVocabulary.build(phonemes.values())
        args.vocab.parent.mkdir(parents=True, exist_ok=True)
        vocab.save(args.vocab)
        print(f"phonemize: {args.vocab}: {len(vocab)} symbols")
    tokens = sum(len(p) for p in phonemes.values())
    unknown = sum(t not in vocab for p in phonemes.values() for t in p)
    print(f"phonemize: {data / 'phonemes'}: {len(phonemes)} utterances, {tokens} tokens, "
          f"{unknown} not in the vocabulary")
