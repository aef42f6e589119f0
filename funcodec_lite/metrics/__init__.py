"""Evaluation: objective quality scores (PESQ, STOI, SI-SNR, mel distance) and spectrogram plots."""

from .plots import log_mel_db, save_spectrogram_png
from .quality import QualityScores, average_scores, pesq_wb, score_pair, si_snr, stoi

__all__ = [
    "QualityScores",
    "average_scores",
    "log_mel_db",
    "pesq_wb",
    "save_spectrogram_png",
    "score_pair",
    "si_snr",
    "stoi",
]
