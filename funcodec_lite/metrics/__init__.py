"""Evaluation: objective quality scores (PESQ, STOI, SI-SNR, mel distance), perceptual scores (DNSMOS, speaker
similarity; the ``eval`` extra) and spectrogram plots."""

from .extras import MissingExtraError
from .plots import log_mel_db, save_spectrogram_png
from .quality import QualityScores, average_scores, pesq_wb, score_pair, si_snr, stoi
from .suite import Scorer, average, parse_metrics

__all__ = [
    "MissingExtraError",
    "QualityScores",
    "Scorer",
    "average",
    "average_scores",
    "log_mel_db",
    "parse_metrics",
    "pesq_wb",
    "save_spectrogram_png",
    "score_pair",
    "si_snr",
    "stoi",
]
