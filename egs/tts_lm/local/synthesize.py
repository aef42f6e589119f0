"""Recipe stage 5: speak every test sentence in its held-out voice (the AR model continues the prompt's
codebook 0 under the phonemes, the NAR model fills codebooks 1..K-1, the Tokenizer decodes).

Writes OUT/<utt>.wav and OUT/synthesis.jsonl (frames, stop reason, seconds per utterance)."""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from funcodec_lite import Tokenizer, load_model_dir
from funcodec_lite.audio.io import save_audio
from funcodec_lite.lm.examples import ExampleSet
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.lm.tts import synthesize
from funcodec_lite.utils.weights import ModelDirError

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--ar", required=True, type=Path, help="AR model directory (codebook 0)")
parser.add_argument("--nar", type=Path, help="NAR model directory (codebooks 1..K-1)")
parser.add_argument("--examples", required=True, type=Path, help="the test split's task examples (.npz)")
parser.add_argument("--codec", default="default", help="the codec of the tokens")
parser.add_argument("--out", required=True, type=Path)
parser.add_argument("--top-k", type=int, default=50)
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--min-frames-per-phoneme", type=float, default=1.0,
                    help="no EOS before this many frames per phoneme (0: EOS allowed at once)")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
try:
    ar = load_model_dir(args.ar, "codec_lm")
    nar = load_model_dir(args.nar, "nar_lm") if args.nar else None
    examples = ExampleSet.load(args.examples)
    tokenizer = Tokenizer.from_pretrained(args.codec)
except (ModelDirError, OSError, ValueError) as err:
    sys.exit(f"synthesize: error: {str(err).splitlines()[0]}")
if tokenizer.model_id != examples.model_id:
    sys.exit(f"synthesize: error: {args.examples} holds tokens of codec {examples.model_id}, --codec is "
             f"{tokenizer.model_id}")
torch.set_num_threads(1)  # one position per step: more threads only add synchronisation
args.out.mkdir(parents=True, exist_ok=True)
sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k)
records = []
for index, example in enumerate(examples.examples):
    start = time.perf_counter()
    result = synthesize(ar, nar, example, tokenizer, sampling,
                        min_frames_per_phoneme=args.min_frames_per_phoneme,
                        generator=torch.Generator().manual_seed(args.seed * 100_003 + index))
    if result.wav.shape[-1]:
        save_audio(args.out / f"{example.utt_id}.wav", result.wav, tokenizer.sample_rate)
    records.append({"utt": example.utt_id, "prompt": example.prompt_id, "frames": result.codes.shape[-1],
                    "reference_frames": example.target.shape[-1], "stop": result.reason,
                    "seconds": round(time.perf_counter() - start, 3)})
    print(json.dumps(records[-1]), flush=True)
(args.out / "synthesis.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
