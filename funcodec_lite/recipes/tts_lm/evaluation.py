"""Stage 6 of the TTS recipe: held-out token NLL against a unigram baseline, and the synthesized test
sentences against their reference renderings (durations, MCD after DTW per voice, spectrograms)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from funcodec_lite.audio.io import load_audio
from funcodec_lite.data.kaldi import read_scp
from funcodec_lite.lm.data import heldout_batches
from funcodec_lite.lm.examples import ExampleSet
from funcodec_lite.lm.training import heldout_nll
from funcodec_lite.lm.tts import compare_to_references, unigram_nll
from funcodec_lite.metrics import save_spectrogram_png
from funcodec_lite.recipes.tts_lm.stages import load_tts_models


def stage_evaluate(ar_dir: Path, nar_dir: Path | None, train_examples: Path, test_examples: Path,
                   test_data: Path, synth: Path, out: Path) -> dict:
    """Scores the models and stage 5's output; writes ``out/results.json`` and ``out/results.md`` (with
    spectrogram PNGs of the first two utterances, reference vs synthesized) and returns the results.

    Args:
        ar_dir, nar_dir: the AR model (codebook 0) and the NAR model (codebooks 1..K-1; None: none).
        train_examples, test_examples: stage 2's example sets (the unigram baseline counts the training
            codes; the NLL is the test set's, per codebook).
        test_data: ``data/test`` (the reference renderings, its ``wav.scp``).
        synth: stage 5's output directory (``<utt>.wav``).
        out: the output directory.

    Raises:
        ModelDirError, OSError, ValueError: missing or mismatched models and files.
    """
    ar, nar = load_tts_models(ar_dir, nar_dir)
    train, test = ExampleSet.load(train_examples), ExampleSet.load(test_examples)
    k = nar.config.n_q if nar is not None else ar.config.n_q
    baseline = unigram_nll(train.examples, test.examples, k, train.codebook_size)
    first_codebook = [replace(e, target=e.target[:1], prompt=None if e.prompt is None else e.prompt[:1])
                      for e in test.examples]
    nll = {0: heldout_nll(ar, heldout_batches(first_codebook, 8))["nll/cb0"]}
    if nar is not None:
        scores = heldout_nll(nar, heldout_batches(test.examples, 8))
        nll.update({q: scores[f"nll/cb{q}"] for q in range(1, k)})
    scp = dict(read_scp(test_data / "wav.scp"))
    rate = None
    synthesized, references = {}, {}
    for path in sorted(synth.glob("*.wav")):
        wav, rate = load_audio(path)
        synthesized[path.stem] = wav
        references[path.stem] = load_audio(scp[path.stem], rate, channels=wav.shape[0])[0]
    comparison = compare_to_references(synthesized, references, rate) if synthesized else {}
    results = {"nll": {f"cb{q}": v for q, v in nll.items()},
               "unigram_nll": {f"cb{q}": v for q, v in enumerate(baseline)}, **comparison}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = _nll_table(nll, baseline, k)
    if comparison:
        first = sorted(synthesized)[:2]
        for utt in first:
            save_spectrogram_png(out / f"{utt}.png", {"reference": references[utt][0],
                                                      "synthesized": synthesized[utt][0]}, rate)
        lines += _comparison_table(comparison, len(synthesized))
        lines += ["", "Spectrograms: " + ", ".join(f"{utt}.png" for utt in first)]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


def _nll_table(nll: dict[int, float], baseline: list[float], k: int) -> list[str]:
    lines = ["| codebook | model NLL | unigram NLL | below the baseline |", "|---|---|---|---|"]
    for q in range(k):
        if q in nll:
            below = "yes" if nll[q] < baseline[q] else "no"
            lines.append(f"| {q} | {nll[q]:.3f} | {baseline[q]:.3f} | {below} |")
    return lines


def _comparison_table(comparison: dict, count: int) -> list[str]:
    lines = ["", f"{count} synthesized test utterances; within 20 % of the reference duration: "
             f"{comparison['within_20_percent']:.0%}; mean MCD (DTW) {comparison['mcd_db_mean']:.2f} dB", "",
             "| voice | utterances | duration ratio (mean) | within 20 % | MCD (dB, DTW) |",
             "|---|---|---|---|---|"]
    for voice, row in comparison["voices"].items():
        lines.append(f"| {voice} | {row['utterances']} | {row['duration_ratio_mean']:.2f} | "
                     f"{row['within_20_percent']:.0%} | {row['mcd_db_mean']:.2f} |")
    return lines
