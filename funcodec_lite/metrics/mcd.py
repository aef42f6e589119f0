"""Mel-cepstral distortion after dynamic time warping: how far a synthesized utterance is from a reference
rendering of the same text, whatever their timing.

The cepstra are MFCCs (`funcodec_lite.audio.melscale.mfcc`: log mel energies, DCT-II) without c0, so level
differences do not count, rescaled to the coefficients of a log-amplitude cosine expansion, the scale of the
mel-cepstra (SPTK) that the classic MCD uses; the mel filter bank is not SPTK's frequency warping, so the
values are close to, not equal to, published MCDs: compare them with each other.
MCD = (10 / ln 10) · sqrt(2 · Σ_d (c_d − ĉ_d)²), averaged over the frame pairs of the DTW path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from funcodec_lite.audio.melscale import mfcc


def mel_cepstra(wav: torch.Tensor, sample_rate: int, n_ceps: int = 24, n_mels: int = 40) -> np.ndarray:
    """Cepstra c1..c_{n_ceps} of a mono signal [T] (25 ms windows, 10 ms hop) -> [N, n_ceps]."""
    coefficients = mfcc(wav.float().reshape(-1), sample_rate, n_ceps + 1, int(0.025 * sample_rate),
                        int(0.010 * sample_rate), n_mels)
    cepstra = coefficients[1:].T.double().numpy()
    # the MFCCs are an orthonormal DCT of log *power*; MCD's cepstra expand log *amplitude* as
    # c0 + 2 sum c_d cos(d w): halve for amplitude, and divide by sqrt(2 M) for the expansion's scale
    return cepstra / (2.0 * math.sqrt(2.0 * n_mels))


def dtw(cost: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Minimum-cost monotone alignment of a cost matrix [N, M] with steps (1, 0), (0, 1), (1, 1).

    Written here because none of the project's libraries has DTW (librosa's would add a dependency for one
    function); the accumulation runs over anti-diagonals, each one vectorised.

    Returns:
        (total cost along the path, the path as (i, j) pairs from (0, 0) to (N-1, M-1)).
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for d in range(2, n + m + 1):  # cells (i, j) with i + j = d, 1-based
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    path, i, j = [(n - 1, m - 1)], n, m
    while (i, j) != (1, 1):
        moves = [(acc[i - 1, j - 1], i - 1, j - 1), (acc[i - 1, j], i - 1, j), (acc[i, j - 1], i, j - 1)]
        _, i, j = min(moves, key=lambda move: move[0])
        path.append((i - 1, j - 1))
    return float(acc[n, m]), path[::-1]


def mel_cepstral_distortion(reference: torch.Tensor, synthesized: torch.Tensor, sample_rate: int,
                            n_ceps: int = 24) -> float:
    """MCD in dB between two mono signals [T] and [T'] after aligning their cepstra by DTW."""
    ref, syn = mel_cepstra(reference, sample_rate, n_ceps), mel_cepstra(synthesized, sample_rate, n_ceps)
    distances = np.sqrt(((ref[:, None, :] - syn[None, :, :]) ** 2).sum(axis=-1))  # [N, M]
    _, path = dtw(distances)
    rows, cols = np.array(path).T
    return float((10.0 / math.log(10.0)) * math.sqrt(2.0) * distances[rows, cols].mean())
