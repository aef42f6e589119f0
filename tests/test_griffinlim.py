"""Griffin-Lim vocoder: the torch implementation gives torchaudio's audio for the same random numbers, and
every mel length F >= 1 becomes F · hop samples."""

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
