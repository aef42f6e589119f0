"""Chosen metrics, models loaded once: ``Scorer(metrics).score_pair(ref, hyp, rate) -> {key: value}``.

Metric groups and the scores they give (all higher-is-better except ``mel_distance``):

========  =========================================================  ==========================
group     scores                                                     needs
========  =========================================================  ==========================
pesq      ``pesq`` (wide-band PESQ)                                  (base install)
stoi      ``stoi``                                                   (base install)
estoi     ``estoi``                                                  (base install)
mel       ``mel_distance`` (mean L1 log-mel distance)                (base install)
si_snr    ``si_snr`` (dB)                                            (base install)
dnsmos    ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``,           ``[eval]`` extra: speechmos,
          ``dnsmos_p808`` of the hypothesis (no reference needed)    onnxruntime, librosa
spk       ``spk_sim``: speaker similarity of hypothesis and          ``[eval]`` extra: resemblyzer
          reference (cosine of Resemblyzer d-vectors)
========  =========================================================  ==========================

``classic`` is the first five (the default of ``codec eval``), ``perceptual`` the last two, ``all`` all seven.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from ..audio.spectral import mel_distance
from .quality import channel_pairs, pesq_wb, si_snr, stoi

CLASSIC = ("pesq", "stoi", "estoi", "mel", "si_snr")
PERCEPTUAL = ("dnsmos", "spk")
GROUPS = CLASSIC + PERCEPTUAL
ALIASES = {"classic": CLASSIC, "perceptual": PERCEPTUAL, "all": GROUPS, "default": CLASSIC}
KEYS = {"pesq": ("pesq",), "stoi": ("stoi",), "estoi": ("estoi",), "mel": ("mel_distance",),
        "si_snr": ("si_snr",), "dnsmos": ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"),
        "spk": ("spk_sim",)}


def parse_metrics(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Metric groups from a comma-separated list (or a sequence) of group names and aliases, in table order.

    Raises:
        ValueError: an unknown name, or an empty list.
    """
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec)]
    chosen: set[str] = set()
    for name in filter(None, names):
        if name in ALIASES:
            chosen.update(ALIASES[name])
        elif name in GROUPS:
            chosen.add(name)
        else:
            known = ", ".join((*GROUPS, *ALIASES))
            raise ValueError(f"unknown metric {name!r} (known: {known})")
    if not chosen:
        raise ValueError("no metrics chosen")
    return tuple(g for g in GROUPS if g in chosen)


def average(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean that skips NaN entries (a key that is NaN everywhere stays NaN).

    Args:
        scores: score dicts with the same keys (at least one).
    """
    if not scores:
        raise ValueError("cannot average an empty list of scores")
    means = {}
    for key in scores[0]:
        finite = [float(s[key]) for s in scores if not math.isnan(float(s[key]))]
        means[key] = math.fsum(finite) / len(finite) if finite else math.nan
    return means


def _safe(fn, *args, **kwargs) -> float:  # noqa: ANN001 - a metric function of quality.py
    """PESQ/STOI of one channel; NaN where pystoi fails on a signal shorter than its frames."""
    try:
        return float(fn(*args, **kwargs))
    except (ValueError, IndexError):
        return math.nan


class Scorer:
    """Scores (reference, hypothesis) pairs with the chosen metric groups; each model is loaded once, here.

    Args:
        metrics: group names or aliases (see the module docstring), a list or a comma-separated string.

    Raises:
        ValueError: an unknown metric name.
        MissingExtraError: a perceptual metric whose package is not installed (the message names the extra).
    """

    def __init__(self, metrics: str | Iterable[str] = CLASSIC) -> None:
        self.groups = parse_metrics(metrics)
        self.keys = tuple(k for g in self.groups for k in KEYS[g])
        self.dnsmos = self.speaker = None
        if "dnsmos" in self.groups:
            from .dnsmos import Dnsmos

            self.dnsmos = Dnsmos()
        if "spk" in self.groups:
            from .speaker import SpeakerSimilarity

            self.speaker = SpeakerSimilarity()

    def score_pair(self, ref: torch.Tensor, hyp: torch.Tensor, sample_rate: int) -> dict[str, float]:
        """Every chosen score of ``hyp`` against ``ref``, in ``self.keys`` order.

        Multi-channel audio is scored per channel and averaged, skipping NaN channels (the mel distance is
        taken over [C, T], which is the channel mean). For the classic metrics the values equal
        ``funcodec_lite.metrics.score_pair``'s. NaN: a score that is undefined (PESQ or DNSMOS of silence,
        STOI of a signal shorter than its frames, speaker similarity where no voice is found).

        Args:
            ref (torch.Tensor): reference of shape [C, T] or [T].
            hyp (torch.Tensor): hypothesis, same shape as ``ref``.
            sample_rate: rate of both signals in Hz.

        Raises:
            ValueError: shapes that differ or are not [C, T] / [T].
        """
        r, h = channel_pairs(ref, hyp)
        channels: list[dict[str, float]] = [{} for _ in range(r.shape[0])]
        for scores, rc, hc in zip(channels, r, h):
            if "pesq" in self.groups:
                scores["pesq"] = _safe(pesq_wb, rc, hc, sample_rate)
            if "stoi" in self.groups:
                scores["stoi"] = _safe(stoi, rc, hc, sample_rate)
            if "estoi" in self.groups:
                scores["estoi"] = _safe(stoi, rc, hc, sample_rate, extended=True)
            if "si_snr" in self.groups:
                scores["si_snr"] = float(si_snr(rc, hc))
        if self.dnsmos is not None:
            for scores, d in zip(channels, self.dnsmos.score_many(list(h), sample_rate)):
                scores.update(dnsmos_sig=d.sig, dnsmos_bak=d.bak, dnsmos_ovrl=d.ovrl, dnsmos_p808=d.p808)
        if self.speaker is not None:
            for scores, s in zip(channels, self.speaker.similarity_many(list(zip(r, h)), sample_rate)):
                scores["spk_sim"] = s
        merged = average(channels) if channels[0] else {}
        if "mel" in self.groups:
            merged["mel_distance"] = float(mel_distance(r, h, sample_rate))
        return {key: merged[key] for key in self.keys}
