"""A sound-class judge computed from the waveform alone: MFCC and spectral statistics + logistic regression.

The Foley recipe's own classifier reads the same log-mel front end the generator was trained on (Slaney mel,
1024-point STFT, 80 bands up to 8 kHz), so it cannot hear what the vocoder does to the waveform (phase
texture, level, anything above 8 kHz). This judge shares nothing with the generator: its features come from
a 512-point STFT over the whole band, on an HTK mel scale, and it is fitted on real clips only.

Per clip (`clip_features`, [D] with D = `feature_names`): the mean and standard deviation over frames of
13 MFCCs (librosa's conventions: power mel on the HTK scale, dB with an 80 dB floor below the clip's
maximum, orthonormal DCT-II), the spectral centroid, 85 % roll-off, flatness, zero-crossing rate, frame
level and spectral flux; then the onset rate (flux peaks per second), the clip's peak and RMS level and the
fraction of frames within 30 dB of its loudest. Level features are in: a judge that hears the clip's level
counts a clip 10 dB too quiet as unlike its class, as a listener would.

`fit_judge` standardises the features of labelled real clips and fits a multinomial logistic regression
(L2, L-BFGS, deterministic); `WaveformJudge.predict` / `accuracy` judge other clips; `WaveformJudge.embed`
gives the standardised features, the space in which the recipe computes a second FAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import fft as sfft
from scipy import optimize

from funcodec_lite.audio.melscale import melscale_fbanks

MFCC_STATS = ("mean", "std")
FRAME_FEATURES = ("centroid_khz", "rolloff_khz", "log_flatness", "zcr", "level_db", "flux")
CLIP_FEATURES = ("onset_rate", "peak_db", "rms_db", "active_fraction")
ACTIVE_DB = 30.0  # a frame is active within this many dB of the clip's loudest frame


@dataclass
class JudgeFeatureConfig:
    """Args:
        sample_rate: Hz of the clips.
        n_fft: FFT size (and frame length) of the judge's STFT (Hann window, centred, zero-padded ends).
        hop_length: samples between frames.
        n_mels: HTK-scale mel bands under the MFCCs (0 Hz to sample_rate / 2, Slaney area norm).
        n_mfcc: cepstral coefficients kept.
        top_db: the mel dB values are floored this far below the clip's maximum.
        rolloff: the roll-off frequency holds this fraction of the frame's magnitude.
        onset_threshold: a flux peak counts as an onset above mean + this many standard deviations.
    """

    sample_rate: int = 22050
    n_fft: int = 512
    hop_length: int = 128
    n_mels: int = 40
    n_mfcc: int = 13
    top_db: float = 80.0
    rolloff: float = 0.85
    onset_threshold: float = 1.5


def feature_names(config: JudgeFeatureConfig | None = None) -> list[str]:
    """Names of the entries of `clip_features`, in order."""
    cfg = config or JudgeFeatureConfig()
    frame = [f"mfcc{k}" for k in range(cfg.n_mfcc)] + list(FRAME_FEATURES)
    return [f"{name}_{stat}" for stat in MFCC_STATS for name in frame] + list(CLIP_FEATURES)


def magnitude_frames(wav: np.ndarray, config: JudgeFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(|STFT| [n_fft // 2 + 1, N], time frames [N, n_fft]) of mono audio [T]: periodic Hann, centred with
    n_fft // 2 zeros on each side (librosa's ``stft(center=True, pad_mode="constant")``)."""
    n_fft, hop = config.n_fft, config.hop_length
    padded = np.pad(np.asarray(wav, dtype=np.float64), n_fft // 2)
    count = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:count]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(frames * window, axis=-1)).T, frames


def mfcc(magnitude: np.ndarray, config: JudgeFeatureConfig) -> np.ndarray:
    """MFCCs [n_mfcc, N] of a magnitude STFT [n_fft // 2 + 1, N] (librosa's ``feature.mfcc`` with
    ``htk=True``: power mel, 10 log10 with a 1e-10 floor, top_db below the maximum, orthonormal DCT-II)."""
    # librosa's filters.mel(htk=True): HTK scale, Slaney area norm, 0 Hz to sample_rate / 2
    filters = melscale_fbanks(config.n_fft // 2 + 1, 0.0, config.sample_rate / 2.0, config.n_mels,
                              config.sample_rate, norm="slaney", mel_scale="htk", dtype=torch.float64)
    mel = filters.numpy().T @ magnitude**2
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - config.top_db)
    return sfft.dct(db, type=2, axis=0, norm="ortho")[: config.n_mfcc]


def frame_features(magnitude: np.ndarray, frames: np.ndarray, config: JudgeFeatureConfig) -> np.ndarray:
    """[len(FRAME_FEATURES), N]: centroid and roll-off (kHz; librosa's definitions on the magnitude),
    ln flatness (geometric / arithmetic mean of the power, floored at 1e-10), zero-crossing rate
    (sign changes per sample in the frame), frame level (dB of the frame's mean square, floored at -100)
    and spectral flux (mean positive change of the 1e-10-floored power in dB, 0 for the first frame)."""
    freqs = np.linspace(0.0, config.sample_rate / 2.0, magnitude.shape[0])[:, None]
    total = magnitude.sum(axis=0)
    centroid = (freqs * magnitude).sum(axis=0) / np.maximum(total, 1e-10)
    cumulative = np.cumsum(magnitude, axis=0)
    rolloff = freqs[np.argmax(cumulative >= config.rolloff * cumulative[-1], axis=0), 0]
    power = np.maximum(magnitude**2, 1e-10)
    log_power = np.log(power)
    log_flatness = log_power.mean(axis=0) - np.log(power.mean(axis=0))
    signs = np.signbit(frames)
    zcr = (signs[:, 1:] != signs[:, :-1]).mean(axis=1)
    level = 10.0 * np.log10(np.maximum((frames**2).mean(axis=1), 1e-10))
    db = 10.0 / np.log(10.0) * log_power
    flux = np.concatenate([[0.0], np.maximum(np.diff(db, axis=1), 0.0).mean(axis=0)])
    return np.stack([centroid / 1000.0, rolloff / 1000.0, log_flatness, zcr, level, flux])


def clip_features(wav: np.ndarray, config: JudgeFeatureConfig | None = None) -> np.ndarray:
    """The judge's feature vector [D] (`feature_names`) of one mono clip [T] at ``config.sample_rate``."""
    cfg = config or JudgeFeatureConfig()
    wav = np.asarray(wav, dtype=np.float64)
    magnitude, frames = magnitude_frames(wav, cfg)
    per_frame = np.concatenate([mfcc(magnitude, cfg), frame_features(magnitude, frames, cfg)])
    level, flux = per_frame[-2], per_frame[-1]
    peaks = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:])
    peaks &= flux[1:-1] > flux.mean() + cfg.onset_threshold * flux.std()
    seconds = len(wav) / cfg.sample_rate
    peak = np.abs(wav).max(initial=0.0)
    rms_db = 10.0 * np.log10(max(float(np.mean(wav**2)), 1e-10))
    active = float(np.mean(level > level.max() - ACTIVE_DB))
    clip = [peaks.sum() / seconds, 20.0 * np.log10(max(peak, 1e-5)), rms_db, active]
    return np.concatenate([per_frame.mean(axis=1), per_frame.std(axis=1), clip])


def batch_features(wavs: np.ndarray, config: JudgeFeatureConfig | None = None) -> np.ndarray:
    """[N, D] features of clips [N, T] (a list of [T] arrays of any lengths works too)."""
    return np.stack([clip_features(w, config) for w in wavs])


@dataclass
class WaveformJudge:
    """A fitted judge: per-feature mean and std [D], logistic-regression weights [D, C] and bias [C]."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def embed(self, features: np.ndarray) -> np.ndarray:
        """Standardised features [N, D] (the FAD space)."""
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.std

    def logits(self, features: np.ndarray) -> np.ndarray:
        """[N, C] class scores of features [N, D]."""
        return self.embed(features) @ self.weights + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """[N] most likely class of features [N, D]."""
        return self.logits(features).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of clips [N, D] judged as their label [N]."""
        return float(np.mean(self.predict(features) == np.asarray(labels)))


def _loss_and_grad(params: np.ndarray, x: np.ndarray, onehot: np.ndarray,
                   l2: float) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy + l2/2 ||W||² and its gradient, params = [W (D x C) flattened, b (C)]."""
    n, d = x.shape
    c = onehot.shape[1]
    w, b = params[: d * c].reshape(d, c), params[d * c :]
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -(onehot * log_p).sum() / n + 0.5 * l2 * (w**2).sum()
    delta = (np.exp(log_p) - onehot) / n
    return loss, np.concatenate([(x.T @ delta + l2 * w).ravel(), delta.sum(axis=0)])


def fit_judge(features: np.ndarray, labels: np.ndarray, num_classes: int, l2: float = 1e-2) -> WaveformJudge:
    """A `WaveformJudge` fitted on features [N, D] of real clips with labels [N] in [0, num_classes).

    Features are standardised with the training set's mean and std (a constant feature keeps std 1);
    the weights minimise the mean cross-entropy + l2/2 ||W||² by L-BFGS from zeros (deterministic).
    """
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(labels) or len(x) < 2:
        raise ValueError(f"need features [N >= 2, D] and labels [N], got {x.shape} and {labels.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or Inf")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    judge = WaveformJudge(mean, std, np.zeros((x.shape[1], num_classes)), np.zeros(num_classes))
    onehot = np.eye(num_classes)[labels]
    start = np.zeros(x.shape[1] * num_classes + num_classes)
    result = optimize.minimize(_loss_and_grad, start, args=(judge.embed(x), onehot, l2), jac=True,
                               method="L-BFGS-B", options={"maxiter": 1000})
    d = x.shape[1]
    judge.weights = result.x[: d * num_classes].reshape(d, num_classes)
    judge.bias = result.x[d * num_classes :]
    return judge
