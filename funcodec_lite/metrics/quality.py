"""Objective speech-quality metrics (SI-SNR, wide-band PESQ, STOI / ESTOI, mel distance) for codec outputs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pesq as _pesq
import torch
from pystoi import stoi as _pystoi

from ..audio.io import resample
from ..audio.spectral import mel_distance

PESQ_RATE = 16000


def si_snr(ref: torch.Tensor, hyp: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB (higher is better).

    Both signals are made zero-mean; `hyp` is split into its projection on `ref` (the target) and the
    rest (the error), and the result is 10 log10(|target|^2 / |error|^2). Rescaling either signal does
    not change it. The sums are taken in float64, so identical signals score 10 log10(|ref|^2 / eps),
    above 100 dB for any signal with sum(ref^2) > 1e-10, and `eps` keeps silence finite (silent ref
    and hyp: 0 dB). Differentiable.

    Args:
        ref (torch.Tensor): reference of shape [..., T].
        hyp (torch.Tensor): estimate, same shape as `ref`.
        eps: added to both energies (float64 arithmetic, so it can be tiny).

    Returns:
        torch.Tensor: SI-SNR of shape [...] in the dtype of `ref`.
    """
    if ref.shape != hyp.shape:
        raise ValueError(f"ref and hyp shapes differ: {tuple(ref.shape)} vs {tuple(hyp.shape)}")
    r = ref.double() - ref.double().mean(dim=-1, keepdim=True)
    h = hyp.double() - hyp.double().mean(dim=-1, keepdim=True)
    r_energy = r.square().sum(dim=-1, keepdim=True)
    target = (h * r).sum(dim=-1, keepdim=True) / (r_energy + eps) * r
    error = h - target
    ratio = (target.square().sum(dim=-1) + eps) / (error.square().sum(dim=-1) + eps)
    return (10 * torch.log10(ratio)).to(ref.dtype if ref.is_floating_point() else torch.float32)


def _to_numpy_1d(name: str, wav: torch.Tensor) -> np.ndarray:
    x = torch.as_tensor(wav)
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D [T], got shape {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf samples")
    return x.numpy()


def _check_pair(ref: torch.Tensor, hyp: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r, h = _to_numpy_1d("ref", ref), _to_numpy_1d("hyp", hyp)
    if r.shape != h.shape:
        raise ValueError(f"ref and hyp lengths differ: {r.shape[0]} vs {h.shape[0]}")
    return r, h


def pesq_wb(ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO from about 1.04 to 4.64) via the `pesq` package.

    Signals at other rates are resampled to 16 kHz first (8 kHz audio is therefore scored as wide-band
    audio with an empty upper band). Both signals are divided by their joint peak, so their relative
    level matters but the absolute level does not.

    Returns NaN instead of raising when PESQ cannot score the pair: a reference or degraded signal
    with no detectable speech (e.g. silence), a signal shorter than 1/4 s at 16 kHz, or any other
    error the package reports (`pesq.PesqError` or `ValueError`). Average such scores with a
    NaN-aware mean (`average_scores`) and report how many were NaN.

    Args:
        ref (torch.Tensor): clean reference of shape [T].
        hyp (torch.Tensor): degraded signal of shape [T].
        sample_rate: rate of both signals in Hz.

    Raises:
        ValueError: signals that are not 1-D, differ in length, or contain NaN/Inf samples.
    """
    r, h = _check_pair(ref, hyp)
    if sample_rate != PESQ_RATE and r.size:
        r = resample(torch.from_numpy(r), sample_rate, PESQ_RATE).numpy()
        h = resample(torch.from_numpy(h), sample_rate, PESQ_RATE).numpy()
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(_pesq.pesq(PESQ_RATE, r, h, "wb"))
    except (_pesq.PesqError, ValueError):
        return math.nan


def stoi(ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (0 to 1, higher is better) via `pystoi`.

    pystoi resamples to 10 kHz itself and drops frames more than 40 dB below the loudest one. Returns
    NaN when the score is undefined: a silent reference, or fewer than 30 speech frames (about 0.4 s)
    left after the silent frames are dropped (pystoi would return 1e-5 with a warning).

    Args:
        ref (torch.Tensor): clean reference of shape [T].
        hyp (torch.Tensor): degraded signal of shape [T].
        sample_rate: rate of both signals in Hz.
        extended: compute extended STOI (ESTOI, Jensen & Taal 2016) instead.

    Raises:
        ValueError: signals that are not 1-D, differ in length, or contain NaN/Inf samples.
    """
    r, h = _check_pair(ref, hyp)
    if not r.any():
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(_pystoi(r, h, sample_rate, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return math.nan
    return score


@dataclass
class QualityScores:
    """Objective scores of one decoded signal against its reference (NaN: could not be scored).

    Args:
        pesq: wide-band PESQ, MOS-LQO (higher is better).
        stoi: STOI in [0, 1] (higher is better).
        estoi: extended STOI (higher is better).
        mel_distance: mean L1 log-mel distance (lower is better, 0 for identical signals).
        si_snr: scale-invariant SNR in dB (higher is better).
    """

    pesq: float
    stoi: float
    estoi: float
    mel_distance: float
    si_snr: float


def channel_pairs(ref: torch.Tensor, hyp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ref`` and ``hyp`` ([C, T] or [T], same shape) as float32 CPU tensors [C, T]; ValueError otherwise."""
    if ref.shape != hyp.shape:
        raise ValueError(f"ref and hyp shapes differ: {tuple(ref.shape)} vs {tuple(hyp.shape)}")
    if ref.dim() not in (1, 2):
        raise ValueError(f"expected audio [C, T] or [T], got shape {tuple(ref.shape)}")
    return (ref.detach().to("cpu", torch.float32).reshape(-1, ref.shape[-1]),
            hyp.detach().to("cpu", torch.float32).reshape(-1, hyp.shape[-1]))


def score_pair(ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int) -> QualityScores:
    """All quality scores of `hyp` against `ref`; multi-channel audio is scored per channel and averaged.

    The per-channel average ignores NaN channels (e.g. a silent channel has no PESQ); a score is NaN
    only when no channel could be scored.

    Args:
        ref (torch.Tensor): reference of shape [C, T] or [T].
        hyp (torch.Tensor): decoded signal, same shape as `ref`.
        sample_rate: rate of both signals in Hz.
    """
    r, h = channel_pairs(ref, hyp)
    per_channel = [
        QualityScores(
            pesq=pesq_wb(rc, hc, sample_rate),
            stoi=stoi(rc, hc, sample_rate),
            estoi=stoi(rc, hc, sample_rate, extended=True),
            mel_distance=math.nan,
            si_snr=float(si_snr(rc, hc)),
        )
        for rc, hc in zip(r, h)
    ]
    scores = average_scores(per_channel)
    # every channel has the same frame count, so the distance over [C, T] is the channel mean
    scores.mel_distance = float(mel_distance(r, h, sample_rate))
    return scores


def average_scores(scores: Sequence[QualityScores]) -> QualityScores:
    """Field-wise mean that skips NaN entries (a field that is NaN everywhere stays NaN).

    Args:
        scores: scores of several signals or channels (at least one).
    """
    if not scores:
        raise ValueError("cannot average an empty list of scores")
    means = {}
    for f in fields(QualityScores):
        values = [float(getattr(s, f.name)) for s in scores]
        finite = [v for v in values if not math.isnan(v)]
        means[f.name] = math.fsum(finite) / len(finite) if finite else math.nan
    return QualityScores(**means)
