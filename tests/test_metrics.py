"""Tests for the objective quality metrics (SI-SNR, PESQ, STOI, score_pair) and spectrogram PNGs."""

import math
import struct

import pytest
import torch

from funcodec_lite.metrics import (
    QualityScores,
    average_scores,
    pesq_wb,
    save_spectrogram_png,
    score_pair,
    si_snr,
    stoi,
)

SR = 16000


def _speech_like(sr: int = SR, seconds: float = 2.0) -> torch.Tensor:
    """Voiced 'syllables': a gliding 100-160 Hz harmonic source with two formants, 4 bursts per second."""
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    f0 = 130 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    x = torch.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        amp = torch.exp(-(((fk - 500) / 300) ** 2)) + 0.5 * torch.exp(-(((fk - 1500) / 400) ** 2)) + 0.05
        x += amp * torch.sin(k * phase) * (fk < sr / 2)
    x = x * torch.sin(math.pi * 4 * t).clamp_min(0).sqrt()
    return (0.3 * x / x.abs().max()).float()


def _add_noise(x: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    """x plus zero-mean white noise scaled to exactly `snr_db` against x's energy."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    noise = noise - noise.mean(dim=-1, keepdim=True)
    noise = noise * (x.double().square().sum(-1, keepdim=True) / noise.square().sum(-1, keepdim=True)).sqrt()
    return (x.double() + noise * 10 ** (-snr_db / 20)).float()


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    return _speech_like()


def test_si_snr_of_identical_signals_is_large(speech):
    assert si_snr(speech, speech).item() > 100.0
    quiet = 1e-3 * speech  # -70 dBFS
    assert si_snr(quiet, quiet).item() > 100.0
    assert si_snr(speech.double(), speech.double()).dtype == torch.float64


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_si_snr_matches_known_snr(speech, snr_db):
    assert si_snr(speech, _add_noise(speech, snr_db)).item() == pytest.approx(snr_db, abs=0.1)


def test_si_snr_is_scale_and_offset_invariant_and_batched(speech):
    hyp = _add_noise(speech, 12.0)
    base = si_snr(speech, hyp).item()
    assert si_snr(speech, 7.5 * hyp).item() == pytest.approx(base, abs=1e-4)
    assert si_snr(0.01 * speech, hyp).item() == pytest.approx(base, abs=1e-4)
    assert si_snr(speech, hyp + 0.2).item() == pytest.approx(base, abs=1e-4)  # zero-mean first
    assert si_snr(speech, -hyp).item() == pytest.approx(base, abs=1e-4)  # sign is a scale too
    batch = si_snr(torch.stack([speech, speech]), torch.stack([hyp, speech]))
    assert batch.shape == (2,) and batch[0].item() == pytest.approx(base, abs=1e-4) and batch[1] > 100


def test_si_snr_is_finite_on_silence_and_differentiable(speech):
    silence = torch.zeros(SR)
    assert si_snr(silence, silence).item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(si_snr(silence, speech[:SR]).item()) and si_snr(silence, speech[:SR]).item() < -100
    hyp = _add_noise(speech, 5.0).requires_grad_(True)
    (-si_snr(speech, hyp)).backward()
    assert torch.isfinite(hyp.grad).all() and hyp.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shapes differ"):
        si_snr(speech, speech[:-1])


def test_pesq_ranks_clean_light_and_heavy_noise(speech):
    clean = pesq_wb(speech, speech, SR)
    light = pesq_wb(speech, _add_noise(speech, 50.0), SR)
    heavy = pesq_wb(speech, _add_noise(speech, 0.0), SR)
    assert clean > 4.0
    assert heavy < 2.5
    assert light > heavy + 1.0 and clean > light


def test_pesq_resamples_other_rates():
    x = _speech_like(sr=24000)
    assert pesq_wb(x, x, 24000) > 4.0
    assert pesq_wb(x, _add_noise(x, 0.0), 24000) < 2.5


@pytest.mark.parametrize(
    "ref, hyp",
    [
        (torch.zeros(SR), torch.zeros(SR)),  # no utterance in either
        (torch.zeros(2 * SR), _speech_like()),  # silent reference
        (_speech_like(), torch.zeros(2 * SR)),  # silent decode: the package fails on it
        (_speech_like()[:2000], _speech_like()[:2000]),  # 0.125 s, shorter than PESQ's 1/4 s
    ],
)
def test_pesq_returns_nan_when_it_cannot_score(ref, hyp):
    assert math.isnan(pesq_wb(ref, hyp, SR))


def test_pesq_rejects_bad_input(speech):
    with pytest.raises(ValueError, match="lengths differ"):
        pesq_wb(speech, speech[:-1], SR)
    with pytest.raises(ValueError, match="1-D"):
        pesq_wb(speech[None], speech[None], SR)
    bad = speech.clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pesq_wb(speech, bad, SR)


@pytest.mark.parametrize("extended", [False, True])
def test_stoi_identical_is_one_and_noise_lowers_it(speech, extended):
    assert stoi(speech, speech, SR, extended=extended) > 0.99
    light = stoi(speech, _add_noise(speech, 20.0), SR, extended=extended)
    heavy = stoi(speech, _add_noise(speech, 0.0), SR, extended=extended)
    assert heavy < light < 0.999
    assert heavy < (0.9 if not extended else 0.6)


def test_stoi_nan_for_silent_reference_or_too_short(speech):
    assert math.isnan(stoi(torch.zeros(SR), speech[:SR], SR))
    assert math.isnan(stoi(speech[:3000], speech[:3000], SR))  # < 30 frames at 10 kHz
    assert stoi(speech, torch.zeros_like(speech), SR) < 0.1  # a silent decode is scored, and scores low


def test_score_pair_mono_matches_the_reference_packages(speech):
    """Each score against its published implementation called directly (the `pesq` and `pystoi`
    packages on float64 numpy arrays), the known SNR of the noise, and an exact log-mel identity."""
    import pesq as pesq_package
    from pystoi import stoi as pystoi_stoi

    hyp = _add_noise(speech, 10.0)
    scores = score_pair(speech, hyp, SR)
    r, h = speech.double().numpy(), hyp.double().numpy()
    assert scores.pesq == pytest.approx(pesq_package.pesq(SR, r, h, "wb"), abs=1e-6)
    assert scores.stoi == pytest.approx(pystoi_stoi(r, h, SR, extended=False), abs=1e-9)
    assert scores.estoi == pytest.approx(pystoi_stoi(r, h, SR, extended=True), abs=1e-9)
    assert 1.0 < scores.pesq < 2.0 and 0.6 < scores.estoi < scores.stoi < 0.97  # measured 1.04, 0.65, 0.94
    assert scores.si_snr == pytest.approx(10.0, abs=0.1)
    assert scores.mel_distance > 0.5
    # doubling the amplitude doubles every mel magnitude: the natural-log distance is ln 2 in every bin
    assert score_pair(hyp, 2 * hyp, SR).mel_distance == pytest.approx(math.log(2.0), rel=1e-4)
    perfect = score_pair(speech[None], speech[None], SR)
    assert perfect.mel_distance == 0.0 and perfect.si_snr > 100 and perfect.pesq > 4.0


def test_score_pair_stereo_averages_channels(speech):
    left, right = _add_noise(speech, 20.0, seed=2), _add_noise(speech, 0.0, seed=3)
    ref = torch.stack([speech, speech])
    stereo = score_pair(ref, torch.stack([left, right]), SR)
    mono_l, mono_r = score_pair(speech, left, SR), score_pair(speech, right, SR)
    assert stereo.si_snr == pytest.approx((mono_l.si_snr + mono_r.si_snr) / 2, abs=1e-4)
    assert stereo.pesq == pytest.approx((mono_l.pesq + mono_r.pesq) / 2, abs=1e-6)
    assert stereo.stoi == pytest.approx((mono_l.stoi + mono_r.stoi) / 2, abs=1e-9)
    assert stereo.mel_distance == pytest.approx((mono_l.mel_distance + mono_r.mel_distance) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="shapes differ"):
        score_pair(ref, speech, SR)


def test_average_scores_skips_nan():
    a = QualityScores(pesq=3.0, stoi=0.9, estoi=0.8, mel_distance=1.0, si_snr=10.0)
    b = QualityScores(pesq=math.nan, stoi=0.7, estoi=0.6, mel_distance=3.0, si_snr=20.0)
    c = QualityScores(pesq=2.0, stoi=math.nan, estoi=math.nan, mel_distance=2.0, si_snr=math.nan)
    mean = average_scores([a, b, c])
    assert mean.pesq == pytest.approx(2.5) and mean.stoi == pytest.approx(0.8)
    assert mean.estoi == pytest.approx(0.7) and mean.mel_distance == pytest.approx(2.0)
    assert mean.si_snr == pytest.approx(15.0)
    assert math.isnan(average_scores([b]).pesq)
    with pytest.raises(ValueError, match="empty"):
        average_scores([])


def test_spectrogram_png_is_written_atomically(tmp_path, speech):
    pytest.importorskip("matplotlib")
    path = tmp_path / "spec.png"
    wavs = {"reference": speech, "n_q=2": _add_noise(speech, 5.0), "n_q=8": _add_noise(speech, 20.0)[:20000]}
    save_spectrogram_png(path, wavs, SR, dpi=50)
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 500 and height == pytest.approx(3 * 2.2 * 50, abs=2)  # 10 in x 2.2 in per panel
    assert [p.name for p in tmp_path.iterdir()] == ["spec.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="1-D|signal"):
        save_spectrogram_png(tmp_path / "bad.png", {"stereo": torch.stack([speech, speech])}, SR)
    with pytest.raises(ValueError, match="empty"):
        save_spectrogram_png(tmp_path / "none.png", {}, SR)
    assert [p.name for p in tmp_path.iterdir()] == ["spec.png"]
