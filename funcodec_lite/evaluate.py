"""Corpus-level evaluation of a codec: tokenize a data directory, decode at several n_q, score, tabulate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funcodec_lite.codec import Codec
from funcodec_lite.data import AudioDataset, DataConfig
from funcodec_lite.metrics import QualityScores, average_scores, score_pair
from funcodec_lite.utils.atomic import atomic_path


def _dataset(codec: Codec, data_dir: str | Path, max_seconds: float | None) -> AudioDataset:
    config = DataConfig(sample_rate=codec.sample_rate, channels=codec.channels, max_seconds=max_seconds)
    return AudioDataset(data_dir, config, train=False)


@torch.no_grad()
def tokenize_dir(codec: Codec, data_dir: str | Path, out_dir: str | Path, n_q: int | None = None,
                 max_seconds: float | None = None) -> int:
    """Encodes every utterance of a data directory to ``out_dir/<utt>.npz`` (codes int16 [n_q, N]).

    Already written files are skipped, so an interrupted run resumes. Returns the number written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = _dataset(codec, data_dir, max_seconds)
    written = 0
    for index in tqdm(range(len(dataset)), desc="tokenize", dynamic_ncols=True):
        item = dataset[index]
        target = out_dir / f"{item.utt_id}.npz"
        if not hasattr(item, "wav") or target.exists():
            continue
        codes = codec.encode(item.wav[None, :, : item.length], n_q=n_q)[0]
        with atomic_path(target) as tmp:
            np.savez(tmp, codes=codes.cpu().numpy().astype(np.int16), num_samples=np.int64(item.length),
                     sample_rate=np.int64(codec.sample_rate))
        written += 1
    return written


@torch.no_grad()
def evaluate_tokens(codec: Codec, data_dir: str | Path, token_dir: str | Path,
                    n_qs: list[int]) -> dict[int, tuple[QualityScores, int]]:
    """Decodes the tokens of ``tokenize_dir`` with the first n codebooks, for each n in ``n_qs``.

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
        with np.load(path, allow_pickle=False) as archive:
            codes = torch.from_numpy(archive["codes"].astype(np.int64))
            length = int(archive["num_samples"])
        reference = item.wav[:, :length]
        for n_q in n_qs:
            if n_q > codes.shape[0]:
                continue
            decoded = codec.decode(codes[None, :n_q], length=length)[0].clamp(-1, 1)
            scores[n_q].append(score_pair(reference, decoded, codec.sample_rate))
    return {n: (average_scores(s), len(s)) for n, s in scores.items() if s}


def results_table(results: dict[int, tuple[QualityScores, int]], frame_rate: float,
                  codebook_size: int) -> str:
    """A markdown table: one row per n_q with bit rate, PESQ, STOI, ESTOI, mel distance, SI-SNR."""
    bits = math.log2(codebook_size)
    lines = ["| n_q | kbps | PESQ (wb) | STOI | ESTOI | mel distance | SI-SNR (dB) | utterances |",
             "|---|---|---|---|---|---|---|---|"]
    for n_q, (s, count) in sorted(results.items()):
        lines.append(f"| {n_q} | {n_q * bits * frame_rate / 1000:.2f} | {s.pesq:.3f} | {s.stoi:.3f} | "
                     f"{s.estoi:.3f} | {s.mel_distance:.3f} | {s.si_snr:.2f} | {count} |")
    return "\n".join(lines) + "\n"
