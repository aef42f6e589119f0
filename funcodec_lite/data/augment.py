"""Training-crop augmentation that moves clean synthetic speech toward real recordings.

The training corpora here are synthesized (espeak-ng formant voices, Festival diphone voices): dry,
noiseless, with the flat spectral tilt of their synthesizers.  Real recordings have rooms, background
noise and microphones.  A codec is an autoencoder, so an augmented crop is both its input and its
target: the augmentation widens the distribution of signals the codec learns to code.

Each effect is drawn per crop from the item's own random generator (worker-independent, reproducible):
- speed: resampling by a factor near 1 (pitch and tempo together, Kaldi's speed perturbation);
- eq: a few random peaking filters and a high shelf (RBJ biquads), as microphones and rooms do;
- reverb: a synthetic room impulse response (a direct path, then exponentially decaying noise with the
  drawn RT60), normalised to keep the direct path's level;
- noise: white, pink or brown noise at a drawn SNR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

NOISE_COLOURS = ("white", "pink", "brown")


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the effects (a probability of 0 turns an effect off).

    Args:
        speed_prob, speed_range: probability and (low, high) factor of speed perturbation.
        eq_prob, eq_bands, eq_gain_db, shelf_db: probability of random equalisation, number of peaking
            bands, their gain range in dB, and the gain range of a high shelf at 1 kHz (a spectral
            tilt; applied with the bands).
        reverb_prob, rt60: probability of reverberation and the RT60 range in seconds.
        noise_prob, snr_db: probability of added noise and its SNR range in dB.
    """

    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    eq_prob: float = 0.0
    eq_bands: int = 3
    eq_gain_db: tuple[float, float] = (-6.0, 6.0)
    shelf_db: tuple[float, float] = (-6.0, 6.0)
    reverb_prob: float = 0.0
    rt60: tuple[float, float] = (0.1, 0.6)
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (20.0, 40.0)

    def __post_init__(self) -> None:
        for name in ("speed_prob", "eq_prob", "reverb_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("speed_range", "eq_gain_db", "shelf_db", "rt60", "snr_db"):
            low, high = (float(v) for v in getattr(self, name))
            if low > high:
                raise ValueError(f"augment.{name} must be (low, high) with low <= high")
            setattr(self, name, (low, high))
        if self.speed_range[0] <= 0 or self.rt60[0] <= 0 or self.eq_bands < 0:
            raise ValueError("augment: speed factors and RT60 must be > 0, eq_bands >= 0")


def speed_perturb(wav: np.ndarray, factor: float) -> np.ndarray:
    """Plays ``wav`` [C, T] ``factor`` times faster: T / factor samples (resample_poly, ratio to 1/100)."""
    up = 100
    down = max(1, round(up * factor))
    divisor = math.gcd(up, down)
    return signal.resample_poly(wav, up // divisor, down // divisor, axis=-1).astype(wav.dtype)


def peaking_biquad(freq: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of the RBJ audio-EQ-cookbook peaking filter."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq / sample_rate
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp])
    return b / a[0], a / a[0]


def high_shelf_biquad(freq: float, gain_db: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of the RBJ audio-EQ-cookbook high shelf (shelf slope 1): a tilt of the spectrum."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * freq / sample_rate
    cos, alpha = math.cos(w0), math.sin(w0) / 2 * math.sqrt(2)
    root = 2 * math.sqrt(amp) * alpha
    b = np.array([amp * ((amp + 1) + (amp - 1) * cos + root), -2 * amp * ((amp - 1) + (amp + 1) * cos),
                  amp * ((amp + 1) + (amp - 1) * cos - root)])
    a = np.array([(amp + 1) - (amp - 1) * cos + root, 2 * ((amp - 1) - (amp + 1) * cos),
                  (amp + 1) - (amp - 1) * cos - root])
    return b / a[0], a / a[0]


def random_eq(wav: np.ndarray, config: AugmentConfig, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
    """Random peaking bands (log-uniform 100 Hz ... 0.8 Nyquist, Q 0.5-2) and a high shelf at 1 kHz."""
    out = wav.astype(np.float64)
    for _ in range(config.eq_bands):
        freq = math.exp(rng.uniform(math.log(100.0), math.log(0.4 * sample_rate)))
        b, a = peaking_biquad(freq, rng.uniform(*config.eq_gain_db), rng.uniform(0.5, 2.0), sample_rate)
        out = signal.lfilter(b, a, out, axis=-1)
    b, a = high_shelf_biquad(1000.0, rng.uniform(*config.shelf_db), sample_rate)
    out = signal.lfilter(b, a, out, axis=-1)
    return out.astype(wav.dtype)


def synthetic_rir(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: 1 at t = 0, then noise decaying by 60 dB over ``rt60`` s from 2.5 ms on.

    The tail's energy relative to the direct path is drawn so that the direct-to-reverberant ratio
    lies between 0 and 15 dB.
    """
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail[: int(0.0025 * sample_rate)] = 0.0
    drr_db = rng.uniform(0.0, 15.0)
    tail *= 10 ** (-drr_db / 20) / max(np.sqrt(np.sum(tail ** 2)), 1e-12)
    tail[0] = 1.0
    return tail


def coloured_noise(shape: tuple[int, ...], colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise [..., T] with a 1/f^k power spectrum: k = 0 white, 1 pink, 2 brown."""
    white = rng.standard_normal(shape)
    if colour != "white":
        spec = np.fft.rfft(white, axis=-1)
        freqs = np.maximum(np.fft.rfftfreq(shape[-1]), 1.0 / shape[-1])
        spec *= freqs ** (-0.5 * NOISE_COLOURS.index(colour))
        white = np.fft.irfft(spec, n=shape[-1], axis=-1)
    return white / max(float(np.sqrt(np.mean(white ** 2))), 1e-12)


def augment(wav: np.ndarray, config: AugmentConfig, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Applies the drawn effects to ``wav`` [C, T] (float32); the length changes only with speed."""
    if config.speed_prob and rng.random() < config.speed_prob:
        wav = speed_perturb(wav, rng.uniform(*config.speed_range))
    if config.eq_prob and rng.random() < config.eq_prob:
        wav = random_eq(wav, config, sample_rate, rng)
    if config.reverb_prob and rng.random() < config.reverb_prob:
        rir = synthetic_rir(rng.uniform(*config.rt60), sample_rate, rng)
        wav = signal.fftconvolve(wav, rir[None, :], axes=-1)[:, : wav.shape[-1]].astype(wav.dtype)
    if config.noise_prob and rng.random() < config.noise_prob:
        level = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if level > 0:
            colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
            noise = coloured_noise(wav.shape, colour, rng) * level * 10 ** (-rng.uniform(*config.snr_db) / 20)
            wav = (wav + noise).astype(wav.dtype)
    return wav
