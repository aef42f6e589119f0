"""Griffin-Lim vocoder: the torch implementation gives torchaudio's audio for the same random numbers, and
every mel length F >= 1 becomes F · hop samples."""

import math

import pytest
import torch
from reference_libs import import_reference

from funcodec_lite.vocoders.griffinlim import GriffinLimConfig, GriffinLimVocoder


def _mel(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 80, frames, generator=torch.Generator().manual_seed(seed)) * 0.5 - 4.0


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 9])
def test_every_length_gives_frames_times_hop_samples(frames):
    vocoder = GriffinLimVocoder(GriffinLimConfig(n_iter=4))
    wav = vocoder.synthesize(_mel(frames), generator=torch.Generator().manual_seed(1))
    assert wav.shape == (2, 1, 256 * frames) and torch.isfinite(wav).all()
    assert wav.abs().amax() > 0  # not only the padding


def test_same_audio_as_torchaudio():
    """The max differences (float32, 8 iterations, 20 frames) are recorded in the assertions."""
    torchaudio = import_reference("torchaudio")
    config = GriffinLimConfig(n_iter=8)
    vocoder = GriffinLimVocoder(config)
    mel = _mel(20).exp()
    inverse = torchaudio.transforms.InverseMelScale(513, 80, 22050, 0.0, 8000.0, driver="gelsd")
    inverse.fb = vocoder.fb
    reference = inverse(mel)
    magnitude = vocoder.inverse_mel(mel)
    assert (magnitude - reference).abs().max() <= 1e-6 * reference.abs().max()
    griffin_lim = torchaudio.transforms.GriffinLim(1024, 8, 1024, 256, power=1.0, momentum=0.99)
    torch.manual_seed(3)
    expected = griffin_lim(reference)
    torch.manual_seed(3)
    ours = vocoder.griffin_lim(reference)
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() <= 1e-6


def _toy(split: str, count: int, seconds: float = 2.0):
    """Toy Foley clips (the recipe's stage-0 generator) cut to ``seconds``, their log-mels, labels."""
    import numpy as np

    from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
    from funcodec_lite.foley.toy_data import CLASSES, synthesize_clip

    length = int(seconds * 22050) // 256 * 256
    wavs = torch.from_numpy(np.stack([synthesize_clip(c, split, i, seed=2)[:length]
                                      for c in CLASSES for i in range(count)]))
    mels = FoleyMel(FoleyMelConfig(num_samples=None))(wavs)[..., : length // 256]
    return wavs, mels, torch.arange(len(CLASSES)).repeat_interleave(count)


def test_wideband_keeps_every_class_level_and_fills_the_band_above_fmax(tmp_path):
    """A fixed set (2 held-out toy clips per class, 2 s): per-class median loudness of the resynthesised
    clips within 1.5 dB of the real ones with the fitted band above 8 kHz; without it Keyboard (clicks) loses
    2.7 dB and the band is 31 dB under the real clips'. The fitted vocoder survives its model directory."""
    from funcodec_lite.audio.levels import loudness_lufs
    from funcodec_lite.utils.weights import load_model_dir, save_model_dir
    from funcodec_lite.vocoders.griffinlim import fit_griffinlim_high_band

    train_wavs, train_mels, _ = _toy("dev", 6)
    wavs, mels, labels = _toy("eval", 2)
    wideband = GriffinLimVocoder(GriffinLimConfig(high_band=True))
    assert wideband.first_high_bin == 372 and wideband.high_band.shape == (141, 81)
    fit_griffinlim_high_band(wideband, train_mels, train_wavs)
    save_model_dir(tmp_path / "vocoder", wideband)
    loaded = load_model_dir(tmp_path / "vocoder")
    assert torch.equal(loaded.high_band, wideband.high_band) and loaded.config.high_band

    def level_gaps(vocoder):
        out = vocoder.synthesize(mels, generator=torch.Generator().manual_seed(0))[:, 0]
        gaps = []
        for k in range(int(labels.max()) + 1):
            real = torch.tensor([loudness_lufs(w, 22050) for w in wavs[labels == k]]).median()
            ours = torch.tensor([loudness_lufs(w, 22050) for w in out[labels == k]]).median()
            gaps.append(float(ours - real))
        high = torch.stft(out, 1024, 256, window=torch.hann_window(1024), return_complex=True)[:, 380:]
        return gaps, float(high.abs().square().sum())

    narrow, narrow_high = level_gaps(GriffinLimVocoder())
    wide, wide_high = level_gaps(loaded)
    assert narrow[3] < -2.0, narrow  # Keyboard without the band above 8 kHz (measured -2.7 dB, GunShot -2.1)
    assert max(abs(g) for g in wide) < 1.5, wide  # measured: every class within 1.0 dB (Keyboard -0.2)
    real_high = torch.stft(wavs, 1024, 256, window=torch.hann_window(1024), return_complex=True)[:, 380:]
    real_db = 10 * torch.log10(real_high.abs().square().sum())
    assert abs(float(real_db) - 10 * math.log10(wide_high)) < 2.0  # energy above 8 kHz: measured 1.0 dB under
    assert float(real_db) - 10 * math.log10(narrow_high) > 20.0  # measured 31 dB under the real clips'


def test_the_recipe_fits_the_band_when_it_writes_the_vocoder(tmp_path):
    from funcodec_lite.vocoders.training import train_any_vocoder, vocoder_config

    wavs, mels, _ = _toy("dev", 1, seconds=1.0)
    model = train_any_vocoder("griffinlim", vocoder_config("griffinlim", "wideband"), mels, wavs, None,
                              tmp_path)
    assert model.high_band.abs().sum() > 0 and (tmp_path / "model" / "model.safetensors").is_file()
    plain = train_any_vocoder("griffinlim", vocoder_config("griffinlim", "default"), mels, wavs, None,
                              tmp_path)
    assert not hasattr(plain, "high_band")
