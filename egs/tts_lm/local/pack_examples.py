"""Recipe stage 2b: the TTS examples of each split in one file (OUT/<split>.npz, docs/formats.md): phonemes,
an acoustic prompt (the first --prompt-seconds of another utterance of the same speaker, chosen with
--seed; the pairs in OUT/<split>.utt2prompt) and the target codes; the id layout in OUT/layout.json."""

import argparse
import sys
from pathlib import Path

from funcodec_lite.data.kaldi import read_data_dir
from funcodec_lite.data.phonemes import PhonemeVocabulary, read_phonemes
from funcodec_lite.inference.tokens import TokenFileError
from funcodec_lite.lm.examples import build_tts_examples, choose_prompts, write_prompts
from funcodec_lite.lm.sequence import TaskVocabulary

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", nargs="+", required=True, type=Path, help="data dirs (data/<split>)")
parser.add_argument("--tokens", required=True, type=Path, help="token root: TOKENS/<split>/<utt>.npz")
parser.add_argument("--vocab", required=True, type=Path, help="phoneme vocabulary (JSON)")
parser.add_argument("--out", required=True, type=Path, help="output directory")
parser.add_argument("--seed", type=int, default=0, help="seed of the prompt choice (0)")
parser.add_argument("--prompt-seconds", type=float, default=3.0,
                    help="prompt length: the first seconds of the prompt utterance (3; 0: all of it)")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
vocab = PhonemeVocabulary.load(args.vocab)
layout = None
for data in args.data:
    split = data.name
    utt2spk = {u.utt_id: u.speaker for u in read_data_dir(data).utterances}
    prompts = choose_prompts(utt2spk, args.seed)
    try:
        examples = build_tts_examples(read_phonemes(data / "phonemes"), vocab, args.tokens / split, prompts,
                                      args.prompt_seconds)
    except (ValueError, TokenFileError) as err:
        sys.exit(f"pack_examples: error: {str(err).splitlines()[0]}")
    write_prompts(args.out / f"{split}.utt2prompt", prompts)
    examples.save(args.out / f"{split}.npz")
    if layout is None and len(examples):
        layout = TaskVocabulary(num_phonemes=len(vocab), num_codebooks=examples.num_codebooks,
                                codebook_size=examples.codebook_size)
        layout.save(args.out / "layout.json")
    frames = sum(e.target.shape[-1] for e in examples.examples)
    alone = sum(p is None for p in prompts.values())
    print(f"pack_examples: {args.out / (split + '.npz')}: {len(examples)} examples, {frames} frames, "
          f"{len(examples) - alone} with a prompt, {alone} without (the speaker's only utterance)")
if layout is not None:
    print(f"pack_examples: {args.out / 'layout.json'}: {layout.size} ids")
