"""Tests for audio file loading, atomic saving and resampling."""

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from funcodec_lite.audio import AudioError, load_audio, resample, save_audio


def _noise(channels: int, length: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(channels, length, generator=gen)).clamp(-0.9, 0.9)


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


@pytest.mark.parametrize(
    "subtype, tol",
    [("PCM_16", 2.0**-15), ("PCM_24", 2.0**-23), ("PCM_32", 1e-7), ("FLOAT", 0.0), ("PCM_U8", 2.0**-7)],
)
def test_wav_subtypes_round_trip(tmp_path, subtype, tol):
    x = _noise(2, 4000)
    path = tmp_path / "a.wav"
    save_audio(path, x, 16000, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    y, sr = load_audio(path)
    assert sr == 16000 and y.dtype == torch.float32 and y.shape == (2, 4000)
    assert (y - x).abs().max().item() <= tol * 1.01


@pytest.mark.parametrize("subtype, tol", [(None, 2.0**-15), ("PCM_24", 2.0**-23)])
def test_flac_round_trip(tmp_path, subtype, tol):
    x = _noise(1, 3000)
    save_audio(tmp_path / "a.flac", x, 22050, subtype=subtype)
    y, sr = load_audio(tmp_path / "a.flac")
    assert sr == 22050
    assert (y - x).abs().max().item() <= tol * 1.01


def test_ogg_vorbis_sine_snr(tmp_path):
    x = _sine(440.0, 16000, 1.0)[None]
    save_audio(tmp_path / "a.ogg", x, 16000)
    assert sf.info(str(tmp_path / "a.ogg")).subtype == "VORBIS"
    y, sr = load_audio(tmp_path / "a.ogg")
    assert sr == 16000 and y.shape == x.shape
    snr = 10 * math.log10(x.square().sum() / (x - y).square().sum())
    assert snr > 15.0


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("sr", [8000, 22050, 44100, 96000])
def test_channels_and_rates(tmp_path, channels, sr):
    x = _noise(channels, sr // 10, seed=channels)
    save_audio(tmp_path / "a.flac", x, sr)
    y, got_sr = load_audio(tmp_path / "a.flac")
    assert got_sr == sr and y.shape == (channels, sr // 10)
    assert (y - x).abs().max().item() <= 2.0**-15 * 1.01


def test_mono_1d_input_and_clipping(tmp_path):
    x = torch.tensor([1.5, -2.0, 0.25, 0.0])
    save_audio(tmp_path / "a.wav", x, 8000)
    y, _ = load_audio(tmp_path / "a.wav")
    assert y.shape == (1, 4)
    assert y[0, 0].item() == pytest.approx(1.0, abs=2.0**-15) and y[0, 1].item() == -1.0
    assert y[0, 2].item() == 0.25
    save_audio(tmp_path / "f.wav", x, 8000, subtype="FLOAT")  # float files keep values beyond +-1
    assert load_audio(tmp_path / "f.wav")[0][0].tolist() == [1.5, -2.0, 0.25, 0.0]


def test_channel_conversion(tmp_path):
    stereo = torch.stack([torch.full((100,), 0.5), torch.full((100,), -0.25)])
    save_audio(tmp_path / "s.wav", stereo, 8000, subtype="FLOAT")
    mono, _ = load_audio(tmp_path / "s.wav", channels=1)
    assert mono.shape == (1, 100) and torch.allclose(mono, torch.full((1, 100), 0.125))
    save_audio(tmp_path / "m.wav", stereo[:1], 8000, subtype="FLOAT")
    six, _ = load_audio(tmp_path / "m.wav", channels=6)
    assert six.shape == (6, 100) and bool((six == 0.5).all())
    with pytest.raises(AudioError, match="s.wav.*2 channels to 3"):
        load_audio(tmp_path / "s.wav", channels=3)


def test_load_with_resampling(tmp_path):
    save_audio(tmp_path / "a.wav", _sine(1000.0, 16000, 0.5)[None], 16000)
    y, sr = load_audio(tmp_path / "a.wav", sample_rate=24000)
    assert sr == 24000 and y.shape == (1, 12000)


def test_resample_keeps_frequency_and_amplitude():
    x = _sine(1000.0, 16000, 1.0, amp=0.5)
    y = resample(x, 16000, 24000)
    assert y.shape == (24000,)
    spectrum = torch.fft.rfft(y.double()).abs()
    assert int(spectrum.argmax()) == 1000  # 1 Hz bins over one second
    mid = y[2400:-2400]  # skip the filter's edge transients
    amp = math.sqrt(2.0) * mid.double().square().mean().sqrt().item()
    assert amp == pytest.approx(0.5, rel=0.01)


def test_resample_identity_and_batch_dims():
    x = _noise(3, 1600).reshape(1, 3, 1600)
    assert resample(x, 16000, 16000) is x
    y = resample(x, 16000, 8000)
    assert y.shape == (1, 3, 800)
    with pytest.raises(ValueError):
        resample(x, 0, 8000)


def test_zero_length_audio_is_allowed(tmp_path):
    save_audio(tmp_path / "z.wav", torch.zeros(2, 0), 16000)
    y, sr = load_audio(tmp_path / "z.wav", sample_rate=8000)
    assert y.shape == (2, 0) and sr == 8000


def _truncated_wav(path):
    sf.write(str(path), np.zeros((1000, 2), np.float32), 16000)
    path.write_bytes(path.read_bytes()[:20])


def _non_finite(value):
    def make(path):
        data = np.zeros((100, 1), np.float32)
        data[50] = value
        sf.write(str(path), data, 16000, subtype="FLOAT")

    return make


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"this is plain text, not audio " * 20), "cannot decode"),
        (_truncated_wav, "cannot decode"),
        (_non_finite(np.nan), "NaN or Inf"),
        (_non_finite(np.inf), "NaN or Inf"),
    ],
    ids=["missing", "directory", "empty", "not-audio", "truncated", "nan", "inf"],
)
def test_load_errors_name_file_and_problem(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message
    assert isinstance(info.value, ValueError) and info.value.path == str(path)


@pytest.mark.parametrize(
    "name, wav, problem",
    [
        ("a.mp4", torch.zeros(1, 10), "unsupported extension"),
        ("missing/a.wav", torch.zeros(1, 10), "does not exist"),
        ("a.wav", torch.full((1, 10), float("nan")), "NaN or Inf"),
        ("a.wav", torch.zeros(1, 2, 10), "expected audio"),
    ],
)
def test_save_errors(tmp_path, name, wav, problem):
    with pytest.raises(AudioError, match=problem):
        save_audio(tmp_path / name, wav, 16000)
    assert list(tmp_path.iterdir()) == []


def test_save_bad_subtype_and_directory_destination(tmp_path):
    with pytest.raises(AudioError, match="VORBIS cannot be written as WAV"):
        save_audio(tmp_path / "a.wav", torch.zeros(1, 10), 16000, subtype="VORBIS")
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        save_audio(tmp_path / "d.wav", torch.zeros(1, 10), 16000)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_save_to_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(AudioError, match="cannot create"):
            save_audio(locked / "a.wav", torch.zeros(1, 10), 16000)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    dest = tmp_path / "a.wav"
    save_audio(dest, torch.full((1, 100), 0.5), 16000)
    before = dest.read_bytes()

    def failing_write(file, *args, **kwargs):
        file.write(b"RIFF partial")  # some bytes reach the temporary file, then the disk "fills up"
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", failing_write)
    with pytest.raises(AudioError, match="disk full"):
        save_audio(dest, torch.zeros(1, 100), 16000)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]

    def interrupted_write(file, *args, **kwargs):
        file.write(b"RIFF")
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        save_audio(tmp_path / "b.wav", torch.zeros(1, 100), 16000)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def test_save_overwrites_and_leaves_no_temporary_file(tmp_path):
    dest = tmp_path / "a.flac"
    save_audio(dest, torch.full((1, 50), 0.5), 16000)
    save_audio(dest, torch.full((2, 80), -0.5), 8000)
    y, sr = load_audio(dest)
    assert sr == 8000 and y.shape == (2, 80) and y[0, 0].item() == -0.5
    assert [p.name for p in tmp_path.iterdir()] == ["a.flac"]
