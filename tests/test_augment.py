"""Training-crop augmentation: each effect against its definition, reproducibility, the dataset hook."""

import math

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from funcodec_lite.data import AudioDataset, DataConfig
from funcodec_lite.data.augment import (
    AugmentConfig,
    augment,
    coloured_noise,
    high_shelf_biquad,
    peaking_biquad,
    speed_perturb,
    synthetic_rir,
)

SR = 16000


def _gain_at(b, a, freq):
    _, h = signal.freqz(b, a, worN=[freq], fs=SR)
    return 20 * math.log10(abs(h[0]))


def test_peaking_and_shelf_filters_have_their_gains():
    b, a = peaking_biquad(1000.0, 6.0, 1.0, SR)
    assert _gain_at(b, a, 1000.0) == pytest.approx(6.0, abs=1e-6)
    assert abs(_gain_at(b, a, 50.0)) < 0.1 and abs(_gain_at(b, a, 7900.0)) < 0.2
    b, a = high_shelf_biquad(1000.0, -6.0, SR)
    assert _gain_at(b, a, 7000.0) == pytest.approx(-6.0, abs=0.1)
    assert abs(_gain_at(b, a, 30.0)) < 0.05


def test_rir_decays_by_60_db_over_rt60():
    rir = synthetic_rir(0.4, SR, np.random.default_rng(0))
    assert rir[0] == 1.0 and len(rir) == int(0.4 * SR)
    energy = np.cumsum(rir[::-1] ** 2)[::-1]  # Schroeder backward integral of the tail
    tail = energy[int(0.01 * SR)]
    later = energy[int(0.01 * SR) + int(0.2 * SR)]
    assert 10 * math.log10(tail / later) == pytest.approx(30.0, abs=4.0)  # half of RT60: -30 dB


@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_noise_colours_have_their_spectral_slopes(colour, slope):
    noise = coloured_noise((1, 1 << 16), colour, np.random.default_rng(1))
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-6)
    freqs, power = signal.welch(noise[0], fs=SR, nperseg=1024)
    low = power[(freqs > 200) & (freqs < 400)].mean()
    high = power[(freqs > 3200) & (freqs < 6400)].mean()
    per_octave = 10 * math.log10(high / low) / 4  # 300 Hz → 4.8 kHz is 4 octaves
    assert per_octave == pytest.approx(slope, abs=1.0)


def test_speed_perturb_changes_length_and_pitch():
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[None]
    fast = speed_perturb(tone, 1.1)
    assert fast.shape[-1] == pytest.approx(SR / 1.1, abs=2)
    spectrum = np.abs(np.fft.rfft(fast[0] * np.hanning(fast.shape[-1])))
    peak = np.argmax(spectrum) * SR / fast.shape[-1]
    assert peak == pytest.approx(484.0, abs=3.0)


def test_noise_is_added_at_the_drawn_snr():
    wav = (0.1 * np.sin(np.arange(SR) * 0.05)).astype(np.float32)[None]
    out = augment(wav, AugmentConfig(noise_prob=1.0, snr_db=(25.0, 25.0)), SR, np.random.default_rng(2))
    snr = 10 * math.log10(np.mean(wav ** 2) / np.mean((out - wav) ** 2))
    assert snr == pytest.approx(25.0, abs=0.01)


def test_augmentation_is_reproducible_and_off_by_default():
    wav = np.random.default_rng(3).standard_normal((1, 4000)).astype(np.float32) * 0.1
    config = AugmentConfig(speed_prob=1.0, eq_prob=1.0, reverb_prob=1.0, noise_prob=1.0)
    first = augment(wav, config, SR, np.random.default_rng(7))
    second = augment(wav, config, SR, np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and not np.allclose(first[:, :3000], wav[:, :3000])
    np.testing.assert_array_equal(augment(wav, AugmentConfig(), SR, np.random.default_rng(7)), wav)


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="noise_prob"):
        AugmentConfig(noise_prob=1.5)
    with pytest.raises(ValueError, match="snr_db"):
        AugmentConfig(snr_db=(40.0, 20.0))


def test_dataset_crops_keep_their_length_and_change_with_augmentation(tmp_path):
    wav = (0.1 * np.sin(np.arange(2 * SR) * 0.03)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, SR)
    (tmp_path / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\n")
    plain = AudioDataset(tmp_path, DataConfig(segment_seconds=0.5), train=True)[0]
    config = DataConfig(segment_seconds=0.5, augment=AugmentConfig(speed_prob=1.0, speed_range=(1.1, 1.1),
                                                                  reverb_prob=1.0))
    item = AudioDataset(tmp_path, config, train=True)[0]
    assert item.wav.shape == plain.wav.shape == (1, 8000)
    assert not np.allclose(item.wav.numpy(), plain.wav.numpy(), atol=1e-3)
