"""Onsets, tempo and beats on synthetic click tracks and drum loops at known tempi, and on silence."""

import numpy as np
import pytest
import torch

from funcodec_lite.audio.rhythm import default_hop, detect_onsets, estimate_tempo, onset_strength, track_beats

SR = 16000


def click_track(bpm: float, sr: int = SR, duration: float = 6.0, start: float = 0.31):
    """1 kHz clicks (20 ms, 3 ms decay) on every beat, downbeats louder. Returns (wav [T], beat times)."""
    beats = np.arange(start, duration - 0.1, 60 / bpm)
    wav = np.zeros(int(duration * sr))
    t = np.arange(int(0.02 * sr)) / sr
    click = np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.003)
    for i, b in enumerate(beats):
        n = round(b * sr)
        wav[n:n + click.size] += (1.0 if i % 4 == 0 else 0.6) * click[: wav.size - n]
    return torch.tensor(wav, dtype=torch.float32), beats


def drum_loop(bpm: float, sr: int = SR, duration: float = 6.0, start: float = 0.27, seed: int = 0):
    """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on the off-beat eighths, faint noise floor.

    Returns (wav [T], beat times, onset times).
    """
    rng = np.random.default_rng(seed)
    period = 60 / bpm
    beats = np.arange(start, duration - 0.1, period)
    wav = 1e-4 * rng.standard_normal(int(duration * sr))

    def add(time: float, sound: np.ndarray) -> None:
        n = round(time * sr)
        if n < wav.size:
            wav[n:n + sound.size] += sound[: wav.size - n]

    t = np.arange(int(0.3 * sr)) / sr
    kick = 0.9 * np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.02)) / sr) * np.exp(-t / 0.03)
    tone = np.sin(2 * np.pi * 200 * t)
    hat = np.exp(-t[: int(0.1 * sr)] / 0.01)
    onsets = []
    for i, b in enumerate(beats):
        if i % 2 == 0:
            add(b, kick)
        else:
            add(b, 0.5 * (0.7 * rng.standard_normal(t.size) + tone) * np.exp(-t / 0.03))
        onsets.append(b)
        if b + period / 2 < duration - 0.1:
            add(b + period / 2, 0.15 * rng.standard_normal(hat.size) * hat)
            onsets.append(b + period / 2)
    return torch.tensor(wav, dtype=torch.float32), beats, np.array(onsets)


def beat_hits(found: np.ndarray, truth: np.ndarray, tolerance: float = 0.07) -> float:
    """Fraction of true beats with a found beat within `tolerance` seconds."""
    if found.size == 0:
        return 0.0
    return float(np.mean([np.abs(found - t).min() <= tolerance for t in truth]))


def test_onset_strength_shape_and_peaks():
    wav, beats = click_track(120)
    hop = default_hop(SR)
    env = onset_strength(wav, SR, hop)
    assert env.shape == (wav.numel() // hop + 1,) and env.dtype == torch.float32 and (env >= 0).all()
    peaks = torch.topk(env, beats.size).indices.sort().values.numpy()
    assert np.abs(peaks - beats * SR / hop).max() <= 1


@pytest.mark.parametrize("bpm", [90, 120, 150])
@pytest.mark.parametrize("source", ["clicks", "drums"])
def test_onsets_tempo_and_beats_at_known_tempi(source, bpm):
    if source == "clicks":
        wav, beats = click_track(bpm)
        truth = beats
    else:
        wav, beats, truth = drum_loop(bpm, seed=bpm)
    hop_s = default_hop(SR) / SR
    onsets = detect_onsets(wav, SR).numpy()
    assert onsets.size == truth.size
    assert np.abs(onsets - truth).max() <= hop_s + 1e-9  # within one hop (10 ms)
    tempo = estimate_tempo(wav, SR)
    assert abs(tempo / bpm - 1) < 0.02
    found = track_beats(wav, SR).numpy()
    assert beat_hits(found, beats) >= 0.9
    assert beat_hits(beats, found) >= 0.9  # and few beats that are not there
    assert np.all(np.diff(found) > 0)


def test_onsets_within_a_hop_at_44k():
    wav, _, truth = drum_loop(100, sr=44100, duration=4.0, seed=1)
    onsets = detect_onsets(wav, 44100).numpy()
    assert onsets.size == truth.size
    assert np.abs(onsets - truth).max() <= default_hop(44100) / 44100 + 1e-9


def test_beats_with_a_given_tempo_and_a_late_start():
    wav, beats = click_track(110, duration=6.0, start=2.0)
    found = track_beats(wav, SR, bpm=110).numpy()
    assert found.min() > 1.93  # no beats invented in the silence before the music
    assert beat_hits(found, beats) >= 0.9 and beat_hits(beats, found) >= 0.9


@pytest.mark.parametrize("wav", [torch.zeros(3 * SR), torch.zeros(10), torch.zeros(0),
                                 1e-5 * torch.randn(2 * SR, generator=torch.Generator().manual_seed(0))],
                         ids=["zeros", "short", "empty", "faint-noise"])
def test_silence_has_no_onsets_or_beats(wav):
    assert detect_onsets(wav, SR).numel() == 0
    assert estimate_tempo(wav, SR) == 0.0
    assert track_beats(wav, SR).numel() == 0
    assert onset_strength(wav, SR).shape == (wav.numel() // default_hop(SR) + 1,)
