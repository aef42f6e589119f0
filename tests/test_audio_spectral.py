"""Tests for the shared STFT, mel spectrogram, multi-scale spectra, mel distance and loudness."""

import math

import pytest
import torch
from reference_libs import import_reference

from funcodec_lite.audio.levels import (
    k_weighting,
    loudness_lufs,
    loudness_normalize,
    peak,
    peak_normalize,
    rms_db,
)
from funcodec_lite.audio.spectral import (
    STFT,
    MelDistance,
    MelSpectrogram,
    MultiScaleSpectrogram,
    Resolution,
    STFTConfig,
    funcodec_resolutions,
    max_mel_bins,
    mel_distance,
    mel_filters,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _sine(freq: float, sr: int, length: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(length, dtype=torch.float64) / sr).float()


def test_config_properties_and_validation():
    cfg = STFTConfig()
    assert (cfg.n_fft, cfg.hop_length, cfg.window_length, cfg.freq_bins) == (512, 160, 512, 257)
    assert STFTConfig(n_fft=1024, win_length=800).window_length == 800
    assert cfg.num_frames(16000) == 101 and STFTConfig(center=False).num_frames(16000) == 97
    with pytest.raises(ValueError, match="unknown window"):
        STFTConfig(window="gauss")
    with pytest.raises(ValueError, match="win_length"):
        STFTConfig(n_fft=256, win_length=512)


@pytest.mark.parametrize("shape", [(4000,), (3, 4000), (2, 3, 4000)])
def test_stft_matches_torch_for_any_leading_dims(shape):
    x = _randn(*shape)
    stft = STFT(STFTConfig(n_fft=256, hop_length=64, win_length=200))
    spec = stft(x)
    assert spec.shape == (*shape[:-1], 129, 4000 // 64 + 1) and spec.is_complex()
    ref = torch.stft(x.reshape(-1, 4000), 256, 64, 200, torch.hann_window(200), return_complex=True)
    torch.testing.assert_close(spec.reshape(-1, *spec.shape[-2:]), ref)
    y = stft.inverse(spec, 4000)
    assert y.shape == shape
    assert ((y - x).norm() / x.norm()).item() < 1e-5


def test_window_is_a_non_persistent_buffer_that_follows_the_module():
    stft = STFT(STFTConfig(window="hamming"))
    assert "window" not in stft.state_dict()
    torch.testing.assert_close(stft.window, torch.hamming_window(512))
    stft = stft.to(torch.float64)
    assert stft.window.dtype == torch.float64
    assert stft(_randn(1000).double()).dtype == torch.complex128


def test_mel_matches_torchaudio():
    torchaudio = import_reference("torchaudio")
    x = _randn(2, 8000)
    cfg = STFTConfig(n_fft=1024, hop_length=256)
    ours = MelSpectrogram(16000, cfg, n_mels=80, f_min=20.0, f_max=7600.0, power=2.0, norm="slaney",
                          mel_scale="slaney")
    ref = torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, hop_length=256, f_min=20.0, f_max=7600.0,
                                               n_mels=80, power=2.0, norm="slaney", mel_scale="slaney")
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-6)
    assert "fbank" not in ours.state_dict()


def test_mel_magnitude_log_and_from_power():
    cfg = STFTConfig(n_fft=512, hop_length=128)
    mel = MelSpectrogram(16000, cfg, n_mels=40, log=True, log_floor=1e-5)
    x = _sine(1000.0, 16000, 8000)
    out = mel(x)
    assert out.shape == (40, 8000 // 128 + 1)
    # the loudest band is the one whose filter weighs the 1 kHz bin (bin 32) most
    assert int(out[:, 10:-10].mean(-1).argmax()) == int(mel.fbank[32].argmax())
    power = mel.stft(x).abs().square()
    torch.testing.assert_close(mel.from_power(power), out)
    linear = MelSpectrogram(16000, cfg, n_mels=40, power=1.0)
    torch.testing.assert_close(linear(x), (linear.stft(x).abs().T @ linear.fbank).T, rtol=1e-5, atol=1e-6)
    silence = mel(torch.zeros(2000))
    torch.testing.assert_close(silence, torch.full_like(silence, math.log(1e-5)))


def test_mel_gradient_is_finite_at_silence():
    x = torch.zeros(1, 4000, requires_grad=True)
    MelSpectrogram(16000, n_mels=64, log=True)(x).sum().backward()
    assert bool(torch.isfinite(x.grad).all())


def test_empty_mel_filters_are_rejected():
    with pytest.raises(ValueError, match=r"mel filters are empty.*n_mels <= 8"):
        MelSpectrogram(16000, STFTConfig(n_fft=32, hop_length=8), n_mels=64)
    with pytest.raises(ValueError, match="power"):
        MelSpectrogram(16000, power=3.0)


@pytest.mark.parametrize("sr, n_fft, expected", [(16000, 32, 8), (16000, 64, 15), (48000, 256, 29)])
def test_max_mel_bins_is_the_largest_count_without_empty_filters(sr, n_fft, expected):
    best = max_mel_bins(sr, n_fft)
    assert best == expected
    assert bool((mel_filters(sr, n_fft, best).amax(0) > 0).all())
    assert bool((mel_filters(sr, n_fft, best + 1).amax(0) == 0).any())


def test_funcodec_resolutions_have_no_empty_mel_filter():
    res = funcodec_resolutions(16000)
    assert [r.n_fft for r in res] == [32, 64, 128, 256, 512, 1024, 2048]
    assert [r.hop_length for r in res] == [8, 16, 32, 64, 128, 256, 512]
    assert [r.n_mels for r in res] == [8, 15, 29, 57, 64, 64, 64]
    for sr in (16000, 48000):
        mss = MultiScaleSpectrogram(sr, funcodec_resolutions(sr))
        for mel in mss.mels:
            assert float(mel.fbank.amax(0).min()) > 0.0


def test_multiscale_shares_one_stft_per_resolution(monkeypatch):
    res = [Resolution(256, 64, None, 32), Resolution(512, 128, 400, None), Resolution(1024, 256, None, 64)]
    mss = MultiScaleSpectrogram(16000, res, mel_log=True)
    calls = []
    real_stft = torch.stft

    def counting_stft(*args, **kwargs):
        calls.append(kwargs.get("n_fft"))
        return real_stft(*args, **kwargs)

    monkeypatch.setattr(torch, "stft", counting_stft)
    x = _randn(2, 3, 4000)
    out = mss(x)
    assert calls == [256, 512, 1024]
    monkeypatch.undo()
    assert [o.power.shape for o in out] == [(2, 3, 129, 63), (2, 3, 257, 32), (2, 3, 513, 16)]
    assert out[1].mel is None and out[0].mel.shape == (2, 3, 32, 63) and out[2].mel.shape == (2, 3, 64, 16)
    cfg = STFTConfig(n_fft=512, hop_length=128, win_length=400)
    torch.testing.assert_close(out[1].power, STFT(cfg)(x).abs().square(), rtol=1e-4, atol=1e-5)
    ref_mel = MelSpectrogram(16000, STFTConfig(n_fft=256, hop_length=64), 32, log=True)(x)
    torch.testing.assert_close(out[0].mel, ref_mel, rtol=1e-5, atol=1e-5)
    assert mss(x[:, 0])[2].mel.shape == (2, 64, 16)


def test_mel_distance_behaviour():
    ref = 0.3 * _randn(2, 8000, seed=1)
    noise = _randn(2, 8000, seed=2)
    metric = MelDistance(16000)
    assert mel_distance(ref, ref, 16000).item() == 0.0
    small = metric(ref, ref + 0.01 * noise).item()
    large = metric(ref, ref + 0.1 * noise).item()
    assert 0.0 < small < large
    assert mel_distance(ref + 0.1 * noise, ref, 16000).item() == pytest.approx(large, rel=1e-6)
    # a 6 dB gain change shifts every unfloored log-mel value by log(2)
    assert metric(ref, 2 * ref).item() == pytest.approx(math.log(2.0), rel=0.02)
    short = metric(ref[:, :700], 0.5 * ref[:, :700])  # shorter than half the largest window
    assert short.item() == pytest.approx(math.log(2.0), rel=0.05)
    with pytest.raises(ValueError, match="shapes differ"):
        metric(ref, ref[:, :100])


def test_mel_distance_scales_and_gradient():
    metric = MelDistance(16000)
    assert [r.n_fft for r in metric.spectra.resolutions] == [512, 1024, 2048]
    assert [r.n_mels for r in metric.spectra.resolutions] == [80, 80, 80]
    hyp = (0.1 * _randn(1, 8000, seed=3)).requires_grad_()
    metric(0.3 * _randn(1, 8000), hyp).backward()
    assert bool(torch.isfinite(hyp.grad).all()) and hyp.grad.abs().max().item() > 0.0



# --- levels and BS.1770 loudness (the K-weighting filters are frequency-domain weighting too) ---


def _full_scale_sine(sr: int, seconds: float = 3.0, freq: float = 997.0) -> torch.Tensor:
    return _sine(freq, sr, int(sr * seconds))[None]


def test_k_weighting_matches_the_bs1770_table_at_48k():
    (shelf_b, shelf_a), (hp_b, hp_a) = k_weighting(48000)
    torch.testing.assert_close(torch.tensor(shelf_b), torch.tensor([1.53512485958697, -2.69169618940638,
                                                                    1.19839281085285], dtype=torch.float64))
    torch.testing.assert_close(torch.tensor(shelf_a), torch.tensor([1.0, -1.69065929318241, 0.73248077421585],
                                                                   dtype=torch.float64))
    torch.testing.assert_close(torch.tensor(hp_b), torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(torch.tensor(hp_a), torch.tensor([1.0, -1.99004745483398, 0.99007225036621],
                                                                dtype=torch.float64))


@pytest.mark.parametrize("sr, tol", [(48000, 0.05), (44100, 0.05), (16000, 0.1)])
def test_full_scale_997hz_sine_is_minus_3_lufs(sr, tol):
    assert loudness_lufs(_full_scale_sine(sr), sr) == pytest.approx(-3.01, abs=tol)


def test_loudness_channels_gates_and_edge_cases():
    x = _full_scale_sine(48000)
    assert loudness_lufs(torch.cat([x, x]), 48000) == pytest.approx(0.0, abs=0.05)  # channels add power
    assert loudness_lufs(x[0], 48000) == pytest.approx(-3.01, abs=0.05)  # [T] is mono
    six = torch.zeros(6, x.shape[-1])
    six[3] = x[0]  # LFE does not count
    assert loudness_lufs(six, 48000) == -math.inf
    six[3], six[4] = 0.0, x[0]  # surrounds weigh 1.41
    assert loudness_lufs(six, 48000) == pytest.approx(-3.01 + 10 * math.log10(1.41), abs=0.05)
    assert loudness_lufs(torch.zeros(2, 48000), 48000) == -math.inf
    assert loudness_lufs(torch.zeros(1, 0), 48000) == -math.inf
    assert loudness_lufs(x[:, :9600], 48000) == pytest.approx(-3.01, abs=0.1)  # 200 ms: one block
    loud = 0.1 * _full_scale_sine(16000, 10.0)
    reference = loudness_lufs(loud, 16000)
    # -80 dBFS tail: below the absolute gate; 15 dB quieter tail: below the relative gate. Only the three
    # blocks straddling the change count partly (-0.07 dB); an ungated mean would be ~1.4 dB lower.
    for tail_gain in (1e-4, 0.1 * 10 ** (-15 / 20)):
        mixed = torch.cat([loud, tail_gain * _full_scale_sine(16000, 4.0)], dim=-1)
        assert loudness_lufs(mixed, 16000) == pytest.approx(reference, abs=0.1)
    ungated = torch.cat([loud, 0.1 * 10 ** (-8 / 20) * _full_scale_sine(16000, 10.0)], dim=-1)
    assert loudness_lufs(ungated, 16000) < reference - 2.0  # 8 dB quieter half passes both gates


def test_normalisation_and_levels():
    x = 0.5 * _full_scale_sine(16000)
    assert peak(x) == pytest.approx(0.5, abs=1e-6) and peak(torch.zeros(0)) == 0.0
    assert rms_db(_full_scale_sine(16000)) == pytest.approx(-3.0103, abs=1e-3)
    assert rms_db(torch.zeros(10)) == -math.inf
    assert peak(peak_normalize(x, -1.0)) == pytest.approx(10 ** (-1 / 20), rel=1e-6)
    y = loudness_normalize(x, 16000, -23.0)
    assert loudness_lufs(y, 16000) == pytest.approx(-23.0, abs=0.01)
    silence = torch.zeros(1, 1600)
    assert bool((loudness_normalize(silence, 16000) == 0).all())
    assert bool((peak_normalize(silence) == 0).all())
