"""Recipe stage 6: held-out token NLL per codebook (AR: codebook 0, NAR: 1..K-1) against a unigram baseline,
synthesized durations against the reference renderings', MCD after DTW per voice, and a spectrogram PNG of
reference vs synthesized. Writes OUT/results.json and OUT/results.md."""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from funcodec_lite import load_model_dir
from funcodec_lite.audio.io import load_audio
from funcodec_lite.lm.data import heldout_batches
from funcodec_lite.lm.examples import ExampleSet
from funcodec_lite.lm.training import heldout_nll
from funcodec_lite.lm.tts import compare_to_references, unigram_nll
from funcodec_lite.metrics import save_spectrogram_png
from funcodec_lite.utils.weights import ModelDirError

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--ar", required=True, type=Path)
parser.add_argument("--nar", type=Path)
parser.add_argument("--train-examples", required=True, type=Path)
parser.add_argument("--test-examples", required=True, type=Path)
parser.add_argument("--test-data", required=True, type=Path, help="data/test (the reference renderings)")
parser.add_argument("--synth", required=True, type=Path, help="stage 5's output directory")
parser.add_argument("--out", required=True, type=Path)
args = parser.parse_args()
try:
    ar = load_model_dir(args.ar, "codec_lm")
    nar = load_model_dir(args.nar, "nar_lm") if args.nar else None
    train, test = ExampleSet.load(args.train_examples), ExampleSet.load(args.test_examples)
except (ModelDirError, OSError, ValueError) as err:
    sys.exit(f"evaluate: error: {str(err).splitlines()[0]}")
k = nar.config.n_q if nar is not None else ar.config.n_q
baseline = unigram_nll(train.examples, test.examples, k, train.codebook_size)
first_codebook = [replace(e, target=e.target[:1], prompt=None if e.prompt is None else e.prompt[:1])
                  for e in test.examples]
nll = {0: heldout_nll(ar, heldout_batches(first_codebook, 8))["nll/cb0"]}
if nar is not None:
    scores = heldout_nll(nar, heldout_batches(test.examples, 8))
    nll.update({q: scores[f"nll/cb{q}"] for q in range(1, k)})
scp = dict(line.split(maxsplit=1) for line in (args.test_data / "wav.scp").read_text().splitlines() if line)
rate = None
synthesized, references = {}, {}
for path in sorted(args.synth.glob("*.wav")):
    wav, rate = load_audio(path)
    synthesized[path.stem] = wav
    references[path.stem] = load_audio(scp[path.stem], rate, channels=wav.shape[0])[0]
comparison = compare_to_references(synthesized, references, rate) if synthesized else {}
results = {"nll": {f"cb{q}": v for q, v in nll.items()},
           "unigram_nll": {f"cb{q}": v for q, v in enumerate(baseline)}, **comparison}
args.out.mkdir(parents=True, exist_ok=True)
(args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
lines = ["| codebook | model NLL | unigram NLL | below the baseline |", "|---|---|---|---|"]
for q in range(k):
    if q in nll:
        below = "yes" if nll[q] < baseline[q] else "no"
        lines.append(f"| {q} | {nll[q]:.3f} | {baseline[q]:.3f} | {below} |")
if comparison:
    lines += ["", f"{len(synthesized)} synthesized test utterances; within 20 % of the reference duration: "
              f"{comparison['within_20_percent']:.0%}; mean MCD (DTW) {comparison['mcd_db_mean']:.2f} dB", "",
              "| voice | utterances | duration ratio (mean) | within 20 % | MCD (dB, DTW) |",
              "|---|---|---|---|---|"]
    for voice, row in comparison["voices"].items():
        lines.append(f"| {voice} | {row['utterances']} | {row['duration_ratio_mean']:.2f} | "
                     f"{row['within_20_percent']:.0%} | {row['mcd_db_mean']:.2f} |")
    first = sorted(synthesized)[:2]
    for utt in first:
        save_spectrogram_png(args.out / f"{utt}.png", {"reference": references[utt][0],
                                                       "synthesized": synthesized[utt][0]}, rate)
    lines += ["", "Spectrograms: " + ", ".join(f"{utt}.png" for utt in first)]
(args.out / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
