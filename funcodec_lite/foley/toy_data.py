"""A procedural toy Foley corpus laid out and formatted like the DCASE 2023 Task 7 development set.

Seven classes, one synthesizer each, with random parameters per clip. Every clip is 4 s of mono 16-bit PCM
at 22,050 Hz (exactly 88,200 samples), written to ``<out>/<split dir>/<Class>/<NNNN>.wav``. A clip's audio
depends only on (class, split, index, seed), so the corpus is the same for any number of worker processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import signal

from funcodec_lite.audio.io import save_audio

CLASSES: tuple[str, ...] = (
    "DogBark", "Footstep", "GunShot", "Keyboard", "MovingMotorVehicle", "Rain", "Sneeze_Cough",
)
CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
SPLIT_DIRS: dict[str, str] = {
    "dev": "DCASEFoleySoundSynthesisDevSet",
    "eval": "DCASEFoleySoundSynthesisEvalSet",
}
SAMPLE_RATE = 22050
NUM_SAMPLES = 4 * SAMPLE_RATE  # 88,200
_SPLIT_IDS = {"dev": 0, "eval": 1}
_CLIP_NAME = re.compile(r"^\d{4}\.wav$")

Rng = np.random.Generator


# ------------------------------------------------------------------------------------------ helpers
def _filt(x: np.ndarray, btype: str, freq: float | tuple[float, float], order: int = 2) -> np.ndarray:
    """Butterworth filter (lowpass, highpass or bandpass) at SAMPLE_RATE; edges are kept below Nyquist."""
    nyq = SAMPLE_RATE / 2
    edges = np.clip(np.atleast_1d(np.asarray(freq, dtype=float)), 10.0, 0.95 * nyq)
    sos = signal.butter(order, edges if edges.size > 1 else edges[0], btype=btype, fs=SAMPLE_RATE,
                        output="sos")
    return signal.sosfilt(sos, x)


def _resonate(x: np.ndarray, freq: float, q: float) -> np.ndarray:
    """Second-order resonance (peaking band-pass) at `freq` Hz with quality factor `q`."""
    b, a = signal.iirpeak(min(freq, 0.45 * SAMPLE_RATE), q, fs=SAMPLE_RATE)
    return signal.lfilter(b, a, x)


def _decay(m: int, tau: float, attack: float = 0.0) -> np.ndarray:
    """Envelope of `m` samples: a linear attack of `attack` s, then exp(-t / tau)."""
    t = np.arange(m) / SAMPLE_RATE
    env = np.exp(-np.maximum(t - attack, 0.0) / tau)
    if attack > 0:
        env *= np.minimum(t / attack, 1.0)
    return env


def _pink(rng: Rng, n: int, exponent: float = 1.0) -> np.ndarray:
    """Unit-RMS noise with a 1/f**exponent power spectrum (exponent 0: white, 1: pink, 2: brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec *= np.maximum(freqs, 20.0) ** (-exponent / 2)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _add(out: np.ndarray, event: np.ndarray, start: int) -> None:
    """Adds `event` into `out` at sample `start`, cutting whatever falls outside the clip."""
    if start >= out.size or start + event.size <= 0:
        return
    lo = max(start, 0)
    hi = min(start + event.size, out.size)
    out[lo:hi] += event[lo - start:hi - start]


def _harmonics(f0: np.ndarray, rolloff: float, max_freq: float, max_count: int = 60) -> np.ndarray:
    """Sum of up to `max_count` harmonics k * f0(t) with amplitude k**-rolloff, muted above `max_freq`."""
    base = np.exp(2j * np.pi * np.cumsum(f0) / SAMPLE_RATE)
    power = base.copy()  # exp(i k phase), advanced by one harmonic per step
    x = np.zeros_like(f0)
    for k in range(1, min(int(max_freq / max(float(f0.min()), 1.0)), max_count) + 1):
        x += k**-rolloff * power.imag * (k * f0 < max_freq)
        power *= base
    return x


# -------------------------------------------------------------------------------- class synthesizers
def _dog_bark(rng: Rng, n: int) -> np.ndarray:
    """1-4 barks: harmonic bursts whose pitch falls, shaped by two formant resonances."""
    out = np.zeros(n)
    f_base = rng.uniform(280.0, 700.0)  # small dogs bark higher
    formants = (rng.uniform(500.0, 1100.0), rng.uniform(1400.0, 2800.0))
    bandwidth = rng.uniform(3000.0, 6000.0)
    t = rng.uniform(0.05, 0.8)
    for _ in range(int(rng.integers(1, 5))):
        dur = rng.uniform(0.12, 0.35)
        m = int(dur * SAMPLE_RATE)
        tt = np.arange(m) / SAMPLE_RATE
        f0 = f_base * rng.uniform(0.9, 1.1) * rng.uniform(0.55, 0.85) ** (tt / dur)
        f0 *= 1 + rng.uniform(0.1, 0.3) * np.exp(-tt / 0.02)  # the onset yelp
        voiced = _harmonics(f0, rng.uniform(0.6, 1.2), 8000.0)
        voiced *= 1 + 0.3 * _filt(rng.standard_normal(m), "lowpass", 80.0)  # growl roughness
        src = _filt(voiced + rng.uniform(0.05, 0.3) * rng.standard_normal(m), "lowpass", bandwidth)
        shaped = 0.3 * src + _resonate(src, formants[0], 3.0) + 0.7 * _resonate(src, formants[1], 4.0)
        _add(out, shaped * _decay(m, dur / 2.5, attack=0.012) * rng.uniform(0.6, 1.0), int(t * SAMPLE_RATE))
        t += dur + rng.uniform(0.1, 0.55)
    return out


def _unit_peak(x: np.ndarray) -> np.ndarray:
    return x / (np.abs(x).max() + 1e-12)


def _footstep(rng: Rng, n: int) -> np.ndarray:
    """Steps at a random tempo: a dominant low heel thump, then a quieter surface-dependent contact sound."""
    out = np.zeros(n)
    surface = int(rng.integers(3))  # 0 gravel, 1 wood, 2 hard floor
    tempo = rng.uniform(1.4, 2.8)
    thump_cut = rng.uniform(150.0, 450.0)
    contact_level = rng.uniform(0.1, 0.3)
    wood_freq = rng.uniform(250.0, 650.0)
    t = rng.uniform(0.0, 0.4)
    while t < 3.9:
        gain = rng.uniform(0.6, 1.0)
        m = int(rng.uniform(0.05, 0.1) * SAMPLE_RATE)
        thump = _filt(rng.standard_normal(m), "lowpass", thump_cut) * _decay(m, rng.uniform(0.012, 0.03),
                                                                             attack=0.003)
        if surface == 0:
            k = int(rng.uniform(0.06, 0.12) * SAMPLE_RATE)
            crackle = rng.standard_normal(k) * (rng.random(k) < 0.08)
            contact = _filt(crackle, "bandpass", (1000.0, 4000.0)) * _decay(k, 0.04)
        elif surface == 1:
            k = int(0.08 * SAMPLE_RATE)
            contact = _resonate(rng.standard_normal(k), wood_freq, 8.0) * _decay(k, 0.025, attack=0.002)
        else:
            k = int(0.03 * SAMPLE_RATE)
            contact = _filt(rng.standard_normal(k), "bandpass", (1500.0, 3500.0)) * _decay(k, 0.005)
        start = int(t * SAMPLE_RATE)
        contact = contact_level * gain * _unit_peak(contact)
        _add(out, gain * _unit_peak(thump), start)
        _add(out, contact, start + int(rng.uniform(0.0, 0.01) * SAMPLE_RATE))
        _add(out, 0.5 * contact, start + int(rng.uniform(0.04, 0.09) * SAMPLE_RATE))  # toe
        t += rng.uniform(0.9, 1.1) / tempo
    return out


def _gunshot(rng: Rng, n: int) -> np.ndarray:
    """1-3 shots: a broadband crack, a low boom and a long low-passed reverberant tail."""
    out = np.zeros(n)
    tail_tau = rng.uniform(0.4, 1.2)
    tail_cut = rng.uniform(1500.0, 5000.0)
    boom_freq = rng.uniform(40.0, 110.0)
    t = rng.uniform(0.05, 0.8)
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        start = int(t * SAMPLE_RATE)
        m = int(0.12 * SAMPLE_RATE)
        tt = np.arange(m) / SAMPLE_RATE
        crack = _filt(rng.standard_normal(m), "highpass", 200.0) * _decay(m, rng.uniform(0.004, 0.015))
        boom = np.sin(2 * np.pi * boom_freq * tt * (1 - 2 * tt)) * _decay(m, rng.uniform(0.03, 0.09))
        k = n - start
        tail = _filt(rng.standard_normal(k), "lowpass", tail_cut) * _decay(k, tail_tau, attack=0.01)
        _add(out, crack + rng.uniform(0.4, 1.0) * boom, start)
        _add(out, rng.uniform(0.15, 0.35) * tail, start)
        t += rng.uniform(0.25, 0.9)
    return out


def _keyboard(rng: Rng, n: int) -> np.ndarray:
    """Typing: many short bright clicks at random intervals, key releases and an occasional space bar."""
    out = np.zeros(n)
    rate = rng.uniform(5.0, 12.0)
    bright = rng.uniform(2000.0, 5000.0)
    body = rng.uniform(1000.0, 3500.0)
    t = rng.uniform(0.0, 0.3)
    while t < 3.95:
        space = rng.random() < 0.12
        m = int((0.03 if space else 0.012) * SAMPLE_RATE)
        noise = rng.standard_normal(m)
        click = _filt(noise, "highpass", bright) * _decay(m, rng.uniform(0.0015, 0.004))
        click += 0.3 * _resonate(noise, rng.uniform(300.0, 700.0) if space else body, 10.0) * _decay(m, 0.006)
        start = int(t * SAMPLE_RATE)
        gain = rng.uniform(0.5, 1.0)
        _add(out, gain * click, start)
        _add(out, rng.uniform(0.2, 0.5) * gain * click, start + int(rng.uniform(0.03, 0.08) * SAMPLE_RATE))
        t += rng.exponential(1.0 / rate) + 0.03 + (rng.uniform(0.3, 0.8) if rng.random() < 0.05 else 0.0)
    return out


def _smooth_walk(rng: Rng, n: int, max_hz: float) -> np.ndarray:
    """Slow random curve in about [-1, 1]: a few sinusoids below `max_hz` with random phases."""
    t = np.arange(n) / SAMPLE_RATE
    freqs, phases = rng.uniform(0.05, max_hz, 3), rng.uniform(0, 2 * np.pi, 3)
    return np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]).mean(axis=0)


def _vehicle(rng: Rng, n: int) -> np.ndarray:
    """A passing vehicle: low harmonic engine drone with slowly varying rpm, road noise, pass-by swell."""
    t = np.arange(n) / SAMPLE_RATE
    f_fire = rng.uniform(25.0, 60.0) * (1 + rng.uniform(0.1, 0.35) * _smooth_walk(rng, n, 0.5))
    centre, width = rng.uniform(0.8, 3.2), rng.uniform(0.8, 2.0)
    f_fire *= 1 - rng.uniform(0.0, 0.04) * np.tanh((t - centre) / 0.3)  # Doppler drop at the pass
    engine = _filt(_harmonics(f_fire, rng.uniform(0.5, 1.1), 4000.0), "lowpass", rng.uniform(700.0, 2500.0))
    engine = engine + 0.8 * _resonate(engine, rng.uniform(150.0, 600.0), 2.0)
    road = _filt(_pink(rng, n), "lowpass", rng.uniform(300.0, 1200.0))
    swell = rng.uniform(0.15, 0.5) + np.exp(-0.5 * ((t - centre) / width) ** 2)
    return swell * (engine / (np.abs(engine).max() + 1e-12) + rng.uniform(0.2, 0.6) * road / 4)


def _rain(rng: Rng, n: int) -> np.ndarray:
    """Rain: a filtered pink-noise bed plus dense droplet pings (short decaying chirps)."""
    bed = _filt(_pink(rng, n), "bandpass", (rng.uniform(400.0, 1500.0), rng.uniform(6000.0, 10000.0)))
    out = rng.uniform(0.1, 0.3) * bed * (1 + 0.2 * _smooth_walk(rng, n, 0.3))
    m = int(0.015 * SAMPLE_RATE)
    tt = np.arange(m) / SAMPLE_RATE
    count = rng.poisson(rng.uniform(80.0, 400.0) * n / SAMPLE_RATE)
    for start, freq, tau, amp in zip(rng.integers(0, n, count), rng.uniform(1500.0, 6000.0, count),
                                     rng.uniform(0.001, 0.005, count), rng.lognormal(-1.0, 0.6, count)):
        ping = np.sin(2 * np.pi * freq * tt * (1 + 20 * tt)) * np.exp(-tt / tau)
        _add(out, amp * ping, int(start))
    return out


def _sneeze_cough(rng: Rng, n: int) -> np.ndarray:
    """Either a sneeze (rising breath inhale, then an explosive noisy burst) or 1-4 voiced coughs."""
    out = np.zeros(n)
    t = rng.uniform(0.1, 1.0)
    bursts = 1 if rng.random() < 0.5 else int(rng.integers(1, 5))
    sneeze = bursts == 1 and rng.random() < 0.8
    for _ in range(bursts):
        inhale_dur = rng.uniform(0.3, 0.8) if sneeze else rng.uniform(0.08, 0.2)
        k = int(inhale_dur * SAMPLE_RATE)
        inhale = _filt(rng.standard_normal(k), "bandpass", (600.0, 2500.0)) * (np.arange(k) / k) ** 2
        _add(out, rng.uniform(0.1, 0.3) * inhale, int(t * SAMPLE_RATE))
        t += inhale_dur + rng.uniform(0.02, 0.1)
        dur = rng.uniform(0.25, 0.5) if sneeze else rng.uniform(0.15, 0.3)
        m = int(dur * SAMPLE_RATE)
        tt = np.arange(m) / SAMPLE_RATE
        f0 = rng.uniform(250.0, 500.0) if sneeze else rng.uniform(150.0, 300.0)
        voiced = _harmonics(f0 * (1 - 0.3 * tt / dur), 1.0, 4000.0)
        noise = rng.standard_normal(m)
        formant = rng.uniform(2000.0, 4000.0) if sneeze else rng.uniform(500.0, 900.0)
        src = _resonate(noise, formant, 2.0) + 0.4 * noise + rng.uniform(0.1, 0.4) * voiced
        if not sneeze:
            src = _filt(src, "lowpass", 3000.0)
        env = _decay(m, rng.uniform(0.08, 0.2) if sneeze else rng.uniform(0.04, 0.1), attack=0.006)
        _add(out, src * env, int(t * SAMPLE_RATE))
        t += dur + rng.uniform(0.15, 0.4)
    return out


_SYNTHESIZERS: dict[str, Callable[[Rng, int], np.ndarray]] = {
    "DogBark": _dog_bark,
    "Footstep": _footstep,
    "GunShot": _gunshot,
    "Keyboard": _keyboard,
    "MovingMotorVehicle": _vehicle,
    "Rain": _rain,
    "Sneeze_Cough": _sneeze_cough,
}


# ---------------------------------------------------------------------------------------- public API
@dataclass
class ToyFoleyConfig:
    """What `make_toy_foley` writes.

    Args:
        clips_per_class: clips per class in the development split.
        eval_clips_per_class: clips per class in the held-out evaluation split.
        seed: corpus seed (>= 0); the two splits never share a clip.
        peak_db: range (low, high) of the random per-clip peak level in dBFS (high < 0: no clipping).
    """

    clips_per_class: int = 40
    eval_clips_per_class: int = 10
    seed: int = 0
    peak_db: tuple[float, float] = (-9.0, -1.0)

    def __post_init__(self) -> None:
        if self.clips_per_class < 0 or self.eval_clips_per_class < 0:
            raise ValueError("clip counts must be >= 0")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        low, high = self.peak_db
        if not low <= high < 0:
            raise ValueError(f"peak_db must satisfy low <= high < 0 dBFS, got {self.peak_db}")


def synthesize_clip(
    class_name: str, split: str, index: int, seed: int, peak_db: tuple[float, float] = (-9.0, -1.0)
) -> np.ndarray:
    """One clip of a class: float32 audio of shape [88200] with its peak at a random level in `peak_db`.

    The result depends only on the arguments. A faint noise floor (50-70 dB under the peak) is added so
    that no clip contains digital silence.
    """
    if class_name not in CLASS_IDS:
        raise ValueError(f"unknown class {class_name!r}; choose from {list(CLASSES)}")
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLIT_DIRS)}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got {index}, {seed}")
    rng = np.random.default_rng([seed, CLASS_IDS[class_name], _SPLIT_IDS[split], index])
    x = _SYNTHESIZERS[class_name](rng, NUM_SAMPLES)
    x = x / (np.abs(x).max() + 1e-12)
    x = x + 10 ** (-rng.uniform(50.0, 70.0) / 20) * _pink(rng, NUM_SAMPLES, exponent=0.5)
    level = 10 ** (rng.uniform(*peak_db) / 20)
    return (x * (level / np.abs(x).max())).astype(np.float32)


def clip_path(root: str | os.PathLike, split: str, class_name: str, index: int) -> Path:
    """``root/<split dir>/<class_name>/<index:04d>.wav`` (index 0 is ``0000.wav``)."""
    return Path(root) / SPLIT_DIRS[split] / class_name / f"{index:04d}.wav"


def _jobs(config: ToyFoleyConfig) -> Iterator[tuple[str, str, int]]:
    for split, count in (("dev", config.clips_per_class), ("eval", config.eval_clips_per_class)):
        for name in CLASSES:
            for index in range(count):
                yield split, name, index


def _synthesize_job(job: tuple[str, str, int, int, tuple[float, float]]) -> np.ndarray:
    split, name, index, seed, peak_db = job
    return synthesize_clip(name, split, index, seed, peak_db)


def make_toy_foley(
    out: str | os.PathLike,
    config: ToyFoleyConfig | None = None,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Writes the toy corpus under `out` and returns the number of clips written per split.

    Files are written atomically and rewritten on a rerun; numbered clips left over from an earlier run
    with more clips per class (``NNNN.wav`` with an index >= the count) are deleted, so every class folder
    holds exactly the configured clips.

    Args:
        out: output root; ``DCASEFoleySoundSynthesisDevSet`` and ``...EvalSet`` are created in it.
        config: counts, seed and levels (defaults: 40 dev and 10 eval clips per class, seed 0).
        jobs: worker processes for the synthesis (the audio does not depend on it).
        progress: called as progress(done, total) after each clip.
    """
    config = config or ToyFoleyConfig()
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    root = Path(out)
    counts = {"dev": config.clips_per_class, "eval": config.eval_clips_per_class}
    for split, count in counts.items():
        for name in CLASSES:
            folder = root / SPLIT_DIRS[split] / name
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.iterdir():
                if _CLIP_NAME.match(stale.name) and int(stale.name[:4]) >= count:
                    stale.unlink()
    work = [(split, name, index, config.seed, tuple(config.peak_db)) for split, name, index in _jobs(config)]
    if jobs == 1 or len(work) < 2:
        clips: Iterator[np.ndarray] = map(_synthesize_job, work)
        return _write_all(root, work, clips, progress, counts)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return _write_all(root, work, pool.map(_synthesize_job, work, chunksize=4), progress, counts)


def _write_all(
    root: Path,
    work: list[tuple[str, str, int, int, tuple[float, float]]],
    clips: Iterator[np.ndarray],
    progress: Callable[[int, int], None] | None,
    counts: dict[str, int],
) -> dict[str, int]:
    for done, ((split, name, index, _, _), audio) in enumerate(zip(work, clips), start=1):
        save_audio(clip_path(root, split, name, index), torch.from_numpy(audio), SAMPLE_RATE, "PCM_16")
        if progress is not None:
            progress(done, len(work))
    return {split: count * len(CLASSES) for split, count in counts.items()}
