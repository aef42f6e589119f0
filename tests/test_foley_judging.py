"""Stage 7's waveform judge and level table: loudness as pyloudnorm measures it, real clips judged as real
clips, clips 10 dB too quiet show as 10 dB quieter in the table."""

import numpy as np
import pytest
import torch

from funcodec_lite.foley.toy_data import CLASSES, synthesize_clip
from funcodec_lite.recipes.dcase_foley.judging import judge_report, judge_table, level_stats

SR = 22050


def _clips(split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    wavs = [synthesize_clip(c, split, i, seed=1) for c in CLASSES for i in range(count)]
    return torch.from_numpy(np.stack(wavs)), torch.arange(len(CLASSES)).repeat_interleave(count)


def test_level_stats_match_pyloudnorm_and_the_peaks():
    pyloudnorm = pytest.importorskip("pyloudnorm")
    t = torch.arange(2 * SR) / SR
    wavs = torch.stack([a * torch.sin(2 * torch.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
                        for a in (0.05, 0.1, 0.2, 0.4)]).double()
    stats = level_stats(wavs, SR)
    meter = pyloudnorm.Meter(SR)
    expected = np.percentile([meter.integrated_loudness(w.numpy()) for w in wavs], [25, 50, 75])
    assert stats["lufs_median"] == pytest.approx(expected[1], abs=0.05)
    assert (stats["lufs_p25"], stats["lufs_p75"]) == pytest.approx((expected[0], expected[2]), abs=0.05)
    peaks = 20 * np.log10(wavs.abs().amax(1).numpy())
    assert stats["peak_db_median"] == pytest.approx(np.median(peaks), abs=1e-9)
    silent = level_stats(torch.zeros(2, SR), SR)
    assert silent["lufs_median"] == -70.0 and silent["peak_db_median"] == -100.0


def test_real_clips_as_generated_and_ten_db_quieter():
    train, train_labels = _clips("dev", 8)
    reference, labels = _clips("eval", 4)
    names = list(CLASSES)
    as_generated = {name: reference[labels == i] for i, name in enumerate(names)}
    report = judge_report(train, train_labels, reference, labels, as_generated, SR)
    assert report["accuracy_real_heldout"] >= 0.9  # measured 1.00 (28 clips)
    held_out = np.mean([report["accuracy_generated"][n] * 4 for n in names]) / 4
    assert held_out == pytest.approx(report["accuracy_real_heldout"])
    assert max(report["fad"].values()) < 1e-3 and report["classes_matched"] == len(names)
    for name in names:  # what the judge heard each class as: its own class for the right share, 4 in all
        heard = report["heard_as"][name]
        assert sum(heard.values()) == 4 and list(heard.values()) == sorted(heard.values(), reverse=True)
        assert heard.get(name, 0) == round(4 * report["accuracy_generated"][name])
    swapped = judge_report(train, train_labels, reference, labels,
                           {names[0]: as_generated[names[1]], **{n: as_generated[n] for n in names[1:]}}, SR)
    assert swapped["accuracy_generated"][names[0]] == 0.0
    assert swapped["heard_as"][names[0]] == report["heard_as"][names[1]]
    table = {line.split(" | ")[0][2:]: line.split(" | ") for line in judge_table(swapped, names)}
    assert table[names[0]][2] == ", ".join(f"{n} {c}" for n, c in swapped["heard_as"][names[0]].items())
    for name in names:
        levels = report["levels"][name]
        assert levels["generated"] == pytest.approx(levels["real"], abs=1e-9)

    quiet = judge_report(train, train_labels, reference, labels,
                         {n: w * 10 ** (-10 / 20) for n, w in as_generated.items()}, SR)
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in judge_table(quiet, names)
            if line.startswith("| ") and line.split(" | ")[0][2:] in names}
    for name in names:
        levels = quiet["levels"][name]
        shift = levels["generated"]["lufs_median"] - levels["real"]["lufs_median"]
        assert shift == pytest.approx(-10, abs=0.5)  # -9.7 to -10: the -70 LUFS gate drops quiet blocks
        assert levels["generated"]["peak_db_median"] - levels["real"]["peak_db_median"] == pytest.approx(-10)
        assert rows[name][7] == f"{shift:+.1f}"
        assert float(rows[name][1]) == pytest.approx(quiet["accuracy_generated"][name], abs=5e-3)
    assert min(quiet["fad"].values()) > 1.0 > max(report["fad"].values())  # its FAD hears the level
