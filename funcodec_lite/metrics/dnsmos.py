"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS: Microsoft's ONNX models as shipped in `speechmos`, batched.

The scores equal ``speechmos.dnsmos.run(wav, 16000)`` (its algorithm, reimplemented so that all 9.01 s windows
of a clip, or of several clips, go through one ONNX call with a chosen thread count): a clip shorter than
9.01 s is repeated until it is long enough, windows of 9.01 s start every second, each window gets raw
SIG/BAK/OVRL from ``sig_bak_ovr.onnx`` (mapped to MOS by the models' calibration polynomials) and a P.808 MOS
from ``model_v8.onnx`` (on a 120-band log-mel spectrogram), and the clip's score is the mean over windows.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio.io import resample
from .extras import require

DNSMOS_RATE = 16000
WINDOW_SECONDS = 9.01
WINDOW = int(WINDOW_SECONDS * DNSMOS_RATE)  # 144160 samples
HOP = DNSMOS_RATE
# calibration polynomials (highest power first) of the P.835 model's raw outputs, from the DNSMOS release
_POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
_POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
_POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)


@dataclass
class DnsmosScores:
    """DNSMOS of one clip (MOS scale 1 to 5, higher is better; NaN: could not be scored).

    Args:
        sig: speech signal quality (P.835 SIG).
        bak: background noise quality (P.835 BAK).
        ovrl: overall quality (P.835 OVRL).
        p808: overall quality by the P.808 model.
    """

    sig: float
    bak: float
    ovrl: float
    p808: float


def speechmos_models() -> Path:
    """The folder of DNSMOS ONNX files inside the installed `speechmos` package (not imported).

    Raises:
        MissingExtraError: `speechmos` is not installed.
    """
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        require("DNSMOS", ["speechmos"])
    folder = Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"
    for name in ("sig_bak_ovr.onnx", "model_v8.onnx"):
        if not (folder / name).is_file():
            raise RuntimeError(f"{folder / name}: missing from the installed speechmos package")
    return folder


def windows(wav: np.ndarray) -> np.ndarray:
    """The 9.01 s analysis windows of one clip, as speechmos cuts them.

    Args:
        wav (np.ndarray): clip of shape [T] at 16 kHz, T > 0.

    Returns:
        np.ndarray: float32 windows of shape [W, 144160].
    """
    audio = np.asarray(wav)
    while len(audio) < WINDOW:  # speechmos repeats a short clip until it fills one window
        audio = np.append(audio, audio)
    count = int(np.floor(len(audio) / DNSMOS_RATE) - WINDOW_SECONDS) + 1
    # the reference code cuts audio[int(i * HOP):int((i + 9.01) * HOP)] and skips a window shorter than
    # 144160 samples; float rounding makes some of them 144159 long (i = 7 to 23, 119 to 122, ...), and they
    # are skipped too: kept here, so that the scores stay comparable with published DNSMOS figures
    spans = [(int(i * HOP), int((i + WINDOW_SECONDS) * HOP)) for i in range(count)]
    kept = [start for start, end in spans if len(audio[start:end]) >= WINDOW]
    return np.stack([audio[s:s + WINDOW] for s in kept]).astype(np.float32)


class Dnsmos:
    """DNSMOS P.835 and P.808 scorer; the two ONNX sessions are made once and reused.

    Args:
        threads: intra-op threads of the ONNX sessions (default: ``torch.get_num_threads()``).
        batch_windows: at most this many 9.01 s windows per ONNX call (bounds memory: 0.6 MB each).

    Raises:
        MissingExtraError: `speechmos`, `onnxruntime` or `librosa` is not installed.
    """

    def __init__(self, threads: int | None = None, batch_windows: int = 16) -> None:
        folder = speechmos_models()
        ort = require("DNSMOS", ["onnxruntime", "librosa"])[0]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.primary = ort.InferenceSession(str(folder / "sig_bak_ovr.onnx"), options, providers=providers)
        self.p808 = ort.InferenceSession(str(folder / "model_v8.onnx"), options, providers=providers)
        self.batch_windows = max(1, batch_windows)

    @staticmethod
    def _melspec(window: np.ndarray) -> np.ndarray:
        """P.808 input of one window: [900, 120] log-mel frames, 0 dB at the window's peak mapped to 1."""
        import librosa

        mel = librosa.feature.melspectrogram(y=window[:-160], sr=DNSMOS_RATE, n_fft=321, hop_length=160,
                                             n_mels=120)
        return ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated [SIG, BAK, OVRL, P808] of the windows ``batch`` [W, 144160]: shape [W, 4], float64."""
        raw = self.primary.run(None, {"input_1": batch})[0].astype(np.float64)  # [W, 3]
        mels = np.stack([self._melspec(w) for w in batch]).astype(np.float32)
        p808 = self.p808.run(None, {"input_1": mels})[0][:, 0].astype(np.float64)  # [W]
        polys = (_POLY_SIG, _POLY_BAK, _POLY_OVRL)
        calibrated = [np.polyval(poly, raw[:, i]) for i, poly in enumerate(polys)]
        return np.stack([*calibrated, p808], axis=1)

    def score_many(self, wavs: Sequence[torch.Tensor | np.ndarray], sample_rate: int) -> list[DnsmosScores]:
        """DNSMOS of several clips; all their windows go through the models in batches.

        Args:
            wavs: clips of shape [T] at ``sample_rate`` (resampled to 16 kHz here, then clipped to [-1, 1]).
            sample_rate: rate of every clip in Hz.

        Returns:
            One score per clip; an empty clip, or one with NaN/Inf samples, scores NaN.
        """
        clips, valid = [], []
        for wav in wavs:
            x = torch.as_tensor(wav).detach().to("cpu", torch.float32).reshape(-1)
            ok = x.numel() > 0 and bool(torch.isfinite(x).all())
            if ok and sample_rate != DNSMOS_RATE:
                x = resample(x, sample_rate, DNSMOS_RATE)
            clips.append(np.clip(x.numpy(), -1.0, 1.0))
            valid.append(ok)
        per_clip = [windows(c) if ok else np.zeros((0, WINDOW), np.float32) for c, ok in zip(clips, valid)]
        stacked = np.concatenate(per_clip) if per_clip else np.zeros((0, WINDOW), np.float32)
        results = [self._run(stacked[i:i + self.batch_windows])
                   for i in range(0, len(stacked), self.batch_windows)]
        values = np.concatenate(results) if results else np.zeros((0, 4))
        out, start = [], 0
        for w in per_clip:
            means = values[start:start + len(w)].mean(axis=0) if len(w) else [math.nan] * 4
            out.append(DnsmosScores(*(float(m) for m in means)))
            start += len(w)
        return out

    def score(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> DnsmosScores:
        """DNSMOS of one clip.

        Args:
            wav: clip of shape [T] at ``sample_rate``.
            sample_rate: its rate in Hz.
        """
        return self.score_many([wav], sample_rate)[0]
