"""Evaluation of a codec: decode a data directory's tokens at several n_q, score file pairs, tabulate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funcodec_lite.audio.blocks import AUDIO_EXTENSIONS
from funcodec_lite.audio.io import load_audio, resample
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.data import AudioDataset, DataConfig
from funcodec_lite.inference.filecoding import check_tokens, model_length
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.metrics import QualityScores, Scorer, average, average_scores, score_pair


def _dataset(codec: CompressionModel, data_dir: str | Path, max_seconds: float | None) -> AudioDataset:
    config = DataConfig(sample_rate=codec.sample_rate, channels=codec.channels, max_seconds=max_seconds)
    return AudioDataset(data_dir, config, train=False)


@torch.no_grad()
def evaluate_tokens(codec: CompressionModel, data_dir: str | Path, token_dir: str | Path,
                    n_qs: list[int]) -> dict[int, tuple[QualityScores, int]]:
    """Decodes the token files of a data directory (``token_dir/<utt>.npz``, written by
    `funcodec_lite.jobs.tokenize`) with the first n codebooks, for each n in ``n_qs``.

    Raises:
        TokenFileError: a token file that is corrupt or was made by another model.

    Returns:
        ``{n_q: (average scores, number of utterances)}``.
    """
    dataset = _dataset(codec, data_dir, None)
    scores: dict[int, list[QualityScores]] = {n: [] for n in n_qs}
    for index in tqdm(range(len(dataset)), desc="evaluate", dynamic_ncols=True):
        item = dataset[index]
        path = Path(token_dir) / f"{item.utt_id}.npz"
        if not hasattr(item, "wav") or not path.exists():
            continue
        tokens = load_tokens(path)
        check_tokens(tokens, codec, path)
        codes = torch.from_numpy(tokens.codes.astype(np.int64))  # [streams, n_q, N]
        length = model_length(tokens.num_samples, tokens.sample_rate, codec.sample_rate)
        reference = item.wav[:, :length]
        for n_q in n_qs:
            if n_q > codes.shape[1]:
                continue
            decoded = codec.decode(codes[:, :n_q], length=reference.shape[-1]).clamp(-1, 1)
            decoded = decoded.reshape(-1, decoded.shape[-1])
            if decoded.shape[0] != reference.shape[0]:
                decoded = decoded.mean(dim=0, keepdim=True).expand_as(reference)
            scores[n_q].append(score_pair(reference, decoded, codec.sample_rate))
    return {n: (average_scores(s), len(s)) for n, s in scores.items() if s}


def results_table(results: dict[int, tuple[QualityScores, int]], bandwidth: Callable[[int], float]) -> str:
    """A markdown table: one row per n_q with bit rate, PESQ, STOI, ESTOI, mel distance, SI-SNR.

    Args:
        results: n_q -> (mean scores, utterances), as ``evaluate_codec`` returns them.
        bandwidth: kbps of the first n_q codebooks (``CompressionModel.bandwidth``: codebooks of several
            sizes or rates count as they are).
    """
    lines = ["| n_q | kbps | PESQ (wb) | STOI | ESTOI | mel distance | SI-SNR (dB) | utterances |",
             "|---|---|---|---|---|---|---|---|"]
    for n_q, (s, count) in sorted(results.items()):
        lines.append(f"| {n_q} | {bandwidth(n_q):.2f} | {s.pesq:.3f} | {s.stoi:.3f} | "
                     f"{s.estoi:.3f} | {s.mel_distance:.3f} | {s.si_snr:.2f} | {count} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Scoring pairs of files (`codec eval`)
@dataclass
class PairResult:
    """Scores of one (reference, hypothesis) pair (``{name: value}``, NaN where undefined), or why it could
    not be scored.

    ``trimmed`` counts the samples cut from the longer signal when the lengths differed.
    """

    name: str
    ref: str
    hyp: str
    scores: dict[str, float] | None = None
    error: str | None = None
    trimmed: int = 0


def _audio_files(directory: Path) -> dict[str, Path]:
    """Audio files under ``directory`` keyed by relative path without extension."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return {str(p.relative_to(directory).with_suffix("")): p for p in files}


def collect_pairs(ref: str | Path, hyp: str | Path) -> list[tuple[str, Path | None, Path | None]]:
    """Matches references with hypotheses: two files, two directories (same relative path, any audio
    extension) or two scp files (same utterance id; ``.scp`` files).

    Returns:
        ``(name, ref path or None, hyp path or None)`` for every name on either side, sorted.
    """
    from funcodec_lite.jobs.tokenize import read_scp

    ref, hyp = Path(ref), Path(hyp)
    for path in (ref, hyp):
        if not path.exists():
            raise ValueError(f"{path}: no such file or directory")
    if ref.is_dir() != hyp.is_dir() or (ref.suffix == ".scp") != (hyp.suffix == ".scp"):
        raise ValueError(f"--ref {ref} and --hyp {hyp} must both be files, directories or .scp lists")
    if ref.suffix == ".scp":
        left = {k: Path(v) for k, v in read_scp(ref)}
        right = {k: Path(v) for k, v in read_scp(hyp)}
    elif ref.is_dir():
        left, right = _audio_files(ref), _audio_files(hyp)
        if not left:
            raise ValueError(f"{ref}: no audio files in this directory")
    else:
        return [(ref.stem, ref, hyp)]
    return [(name, left.get(name), right.get(name)) for name in sorted(set(left) | set(right))]


def score_files(name: str, ref: Path | None, hyp: Path | None, scorer: Scorer | None = None) -> PairResult:
    """Scores ``hyp`` against ``ref`` at the reference's rate (the hypothesis is resampled to it).

    Lengths that differ are cut to the shorter (``trimmed`` says by how much); channel counts must agree.
    Problems (a missing partner, unreadable audio) become ``error`` instead of raising.

    Args:
        scorer: the metrics to compute, models loaded once for all pairs (default: the classic five).
    """
    result = PairResult(name, str(ref or ""), str(hyp or ""))
    if ref is None or hyp is None:
        result.error = f"no {'reference' if ref is None else 'hypothesis'} for {name}"
        return result
    try:
        r, rate = load_audio(ref)
        h, hyp_rate = load_audio(hyp)
        h = resample(h, hyp_rate, rate) if h.shape[-1] else h
        if r.shape[0] != h.shape[0]:
            raise ValueError(f"{hyp}: {h.shape[0]} channel(s), the reference has {r.shape[0]}")
        length = min(r.shape[-1], h.shape[-1])
        if length == 0:
            raise ValueError(f"{ref if r.shape[-1] == 0 else hyp}: no samples to score")
        result.trimmed = max(r.shape[-1], h.shape[-1]) - length
        result.scores = (scorer or Scorer()).score_pair(r[:, :length], h[:, :length], rate)
    except ValueError as err:
        result.error = str(err) if str(hyp) in str(err) or str(ref) in str(err) else f"{hyp}: {err}"
    return result


def pairs_summary(results: list[PairResult]) -> dict:
    """JSON-ready summary: per-pair scores (NaN as null), their NaN-aware mean, counts."""
    scored = [r.scores for r in results if r.scores is not None]
    mean = average(scored) if scored else None

    def clean(values: dict | None) -> dict | None:
        return None if values is None else {k: (None if math.isnan(v) else v) for k, v in values.items()}

    pairs = [{"name": r.name, "ref": r.ref, "hyp": r.hyp, "trimmed_samples": r.trimmed,
              "scores": clean(r.scores), "error": r.error} for r in results]
    return {"pairs": pairs, "mean": clean(mean), "scored": len(scored), "failed": len(results) - len(scored)}


# key: (title, width, decimals) of its table column
_COLUMNS = {"pesq": ("PESQ", 6, 3), "stoi": ("STOI", 6, 3), "estoi": ("ESTOI", 6, 3),
            "mel_distance": ("mel", 7, 3), "si_snr": ("SI-SNR", 8, 2), "dnsmos_sig": ("SIG", 5, 2),
            "dnsmos_bak": ("BAK", 5, 2), "dnsmos_ovrl": ("OVRL", 5, 2), "dnsmos_p808": ("P808", 5, 2),
            "spk_sim": ("spk", 6, 3)}


def pairs_table(results: list[PairResult], max_rows: int = 50) -> str:
    """A fixed-width table of the pairs (at most ``max_rows``) and their mean; one column per score."""
    scored = [r.scores for r in results if r.scores is not None]
    keys = list(scored[0]) if scored else list(_COLUMNS)[:5]
    columns = {k: _COLUMNS.get(k, (k, max(len(k), 7), 3)) for k in keys}
    header = f"{'name':30s} " + " ".join(f"{title:>{width}s}" for title, width, _ in columns.values())
    lines = [header, "-" * len(header)]

    def row(name: str, s: dict[str, float]) -> str:
        return f"{name[:30]:30s} " + " ".join(f"{s[k]:{w}.{d}f}" for k, (_, w, d) in columns.items())

    for r in results[:max_rows]:
        lines.append(row(r.name, r.scores) if r.scores else f"{r.name[:30]:30s} error: {r.error}")
    if len(results) > max_rows:
        lines.append(f"... {len(results) - max_rows} more pair(s) in the JSON file")
    if scored:
        lines += ["-" * len(header), row(f"mean of {len(scored)}", average(scored))]
    return "\n".join(lines)
