"""Stage 7's second opinion: the waveform-feature judge and the clips' levels, generated vs real, per class.

The recipe's classifier hears the generator's own log-mel front end; the judge
(`funcodec_lite.metrics.waveform_judge`) hears only the waveform, through features the generator never
trained on, and is fitted here on the real training clips (a second or two: it is not saved). Per class:
its accuracy on the generated clips, FAD in its standardised feature space, and the loudness (BS.1770
integrated, LUFS) and peak level (dBFS) of generated and real clips: median and interquartile range.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from funcodec_lite.audio.levels import loudness_lufs
from funcodec_lite.metrics.fad import fad_matrix
from funcodec_lite.metrics.waveform_judge import JudgeFeatureConfig, batch_features, fit_judge

LOUDNESS_FLOOR = -70.0  # LUFS given to a clip no block of which passes BS.1770's gates (silence)


def level_stats(wavs: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Loudness and peak of clips [N, T]: median, 25th and 75th percentile of each (LUFS, dBFS)."""
    lufs = [loudness_lufs(w, sample_rate) for w in wavs]
    lufs = np.array([v if math.isfinite(v) else LOUDNESS_FLOOR for v in lufs])
    peaks = 20 * np.log10(np.maximum(wavs.abs().amax(dim=-1).double().numpy(), 1e-5))
    stats = {}
    for key, values in (("lufs", lufs), ("peak_db", peaks)):
        low, median, high = np.percentile(values, [25, 50, 75])
        stats.update({f"{key}_median": float(median), f"{key}_p25": float(low), f"{key}_p75": float(high)})
    return stats


def judge_report(train_wavs: torch.Tensor, train_labels: torch.Tensor, reference_wavs: torch.Tensor,
                 reference_labels: torch.Tensor, generated: dict[str, torch.Tensor],
                 sample_rate: int) -> dict:
    """The judge fitted on real training clips [N, T] with labels [N]; its accuracy on the real reference
    clips [M, T] and on each class's generated clips ([G, T] per class name, in label order); FAD per
    class and the nearest-class check in its feature space; the levels (`level_stats`) of each class's
    real reference and generated clips.
    """
    names = list(generated)
    config = JudgeFeatureConfig(sample_rate=sample_rate)
    judge = fit_judge(batch_features(train_wavs.double().numpy(), config), train_labels.numpy(), len(names))
    reference = batch_features(reference_wavs.double().numpy(), config)
    fake = {name: batch_features(wavs.double().numpy(), config) for name, wavs in generated.items()}
    labels = reference_labels.numpy()
    verdicts = {name: judge.predict(fake[name]) for name in names}
    per_class = {name: float(np.mean(verdicts[name] == i)) for i, name in enumerate(names)}
    heard_as = {name: heard_as_counts(verdicts[name], names) for name in names}
    matrix = fad_matrix({name: judge.embed(reference[labels == i]) for i, name in enumerate(names)},
                        {name: judge.embed(fake[name]) for name in names})
    matched = matrix.matched_is_nearest()
    return {
        "features": "MFCC + spectral statistics of the waveform (funcodec_lite.metrics.waveform_judge)",
        "accuracy_real_heldout": judge.accuracy(reference, labels),
        "accuracy_generated": per_class,
        "accuracy_generated_mean": float(np.mean(list(per_class.values()))),
        "heard_as": heard_as,
        "fad": {name: matrix.get(name, name) for name in names},
        "fad_average": float(np.mean([matrix.get(name, name) for name in names])),
        "matched_is_nearest": matched,
        "classes_matched": int(sum(matched.values())),
        "levels": {name: {"real": level_stats(reference_wavs[reference_labels == i], sample_rate),
                          "generated": level_stats(generated[name], sample_rate)}
                   for i, name in enumerate(names)},
    }


def heard_as_counts(predictions: np.ndarray, names: list[str]) -> dict[str, int]:
    """How many clips the judge assigned to each class (class indices [G] -> ``{name: count}``), most
    frequent first, classes it never chose left out."""
    counts = np.bincount(predictions, minlength=len(names))
    return {names[k]: int(counts[k]) for k in np.argsort(-counts, kind="stable") if counts[k]}


def judge_table(judge: dict, names: list[str]) -> list[str]:
    """Markdown lines: per class the judge's accuracy, what it heard the clips as (reports from before
    it recorded that leave the column empty), its FAD, then loudness and peak generated vs real."""
    lines = [
        f"Independent judge ({judge['features']}): accuracy on real held-out clips "
        f"{judge['accuracy_real_heldout']:.2f}; levels: median [25th-75th percentile].",
        "",
        "| class | judge accuracy | heard as | judge FAD | nearest is own (judge) "
        "| loudness generated (LUFS) | loudness real (LUFS) | Δ median (dB) | peak generated (dBFS) "
        "| peak real (dBFS) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def spread(stats: dict, key: str) -> str:
        return f"{stats[key + '_median']:.1f} [{stats[key + '_p25']:.1f}, {stats[key + '_p75']:.1f}]"

    for name in names:
        gen, real = judge["levels"][name]["generated"], judge["levels"][name]["real"]
        lines.append(
            f"| {name} | {judge['accuracy_generated'][name]:.2f} | {heard_as_text(judge, name)} "
            f"| {judge['fad'][name]:.2f} "
            f"| {'yes' if judge['matched_is_nearest'][name] else 'no'} | {spread(gen, 'lufs')} "
            f"| {spread(real, 'lufs')} | {gen['lufs_median'] - real['lufs_median']:+.1f} "
            f"| {spread(gen, 'peak_db')} | {spread(real, 'peak_db')} |")
    lines.append(f"| **average** | {judge['accuracy_generated_mean']:.2f} | | {judge['fad_average']:.2f} "
                 f"| {judge['classes_matched']}/{len(names)} | | | | | |")
    return lines


def heard_as_text(judge: dict, name: str) -> str:
    """'DogBark 84, Keyboard 16': the judge's verdicts on one class's generated clips."""
    return ", ".join(f"{other} {count}" for other, count in judge.get("heard_as", {}).get(name, {}).items())
