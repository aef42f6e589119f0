"""DTW against a brute-force search of every monotone path; MCD: zero for a signal with itself, small for
the same sound slowed down, large for another sound."""

import itertools
import math

import numpy as np
import pytest
import torch

from funcodec_lite.metrics.mcd import dtw, mel_cepstral_distortion


def _brute_force(cost: np.ndarray) -> float:
    """The cheapest path over all step sequences of (1,0), (0,1), (1,1) from (0,0) to the corner."""
    n, m = cost.shape
    best = math.inf

    def walk(i, j, total):
        nonlocal best
        total += cost[i, j]
        if (i, j) == (n - 1, m - 1):
            best = min(best, total)
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            if i + di < n and j + dj < m:
                walk(i + di, j + dj, total)

    walk(0, 0, 0.0)
    return best


@pytest.mark.parametrize("n,m,seed", [(1, 1, 0), (1, 4, 1), (4, 1, 2), (3, 5, 3), (5, 5, 4), (6, 4, 5)])
def test_dtw_finds_the_cheapest_path(n, m, seed):
    cost = np.random.default_rng(seed).random((n, m))
    total, path = dtw(cost)
    assert total == pytest.approx(_brute_force(cost))
    assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1)
    steps = {(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(path)}
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    assert sum(cost[i, j] for i, j in path) == pytest.approx(total)


def _vowel(seconds: float, f0: float, formants: tuple[float, ...], rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    harmonics = torch.arange(1, 40)[:, None]
    weights = sum(torch.exp(-((harmonics * f0 - f) / 120.0) ** 2) for f in formants)
    return (weights * torch.sin(2 * math.pi * harmonics * f0 * t)).sum(0) * 0.05


def test_mcd_zero_small_and_large():
    a = torch.cat([_vowel(0.3, 120, (700, 1200)), _vowel(0.3, 120, (300, 2300))])  # "a" then "i"
    slow = torch.cat([_vowel(0.45, 120, (700, 1200)), _vowel(0.45, 120, (300, 2300))])
    other = torch.cat([_vowel(0.3, 120, (300, 900)), _vowel(0.3, 120, (500, 1700))])  # "u" then "e"
    assert mel_cepstral_distortion(a, a, 16000) == pytest.approx(0.0, abs=1e-9)
    same, different = mel_cepstral_distortion(a, slow, 16000), mel_cepstral_distortion(a, other, 16000)
    assert same < 0.3 * different, (same, different)
