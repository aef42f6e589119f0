"""Tests for the Foley sound-class CNN: held-out accuracy on toy Foley clips, determinism, shapes."""

import numpy as np
import pytest
import torch

from funcodec_lite.audio.spectral import MelSpectrogram, STFTConfig
from funcodec_lite.foley.classifier import (
    ClassifierConfig,
    FoleyClassifier,
    _spec_augment,
    accuracy,
    embed_features,
    train_classifier,
)
from funcodec_lite.foley.toy_data import CLASSES, SAMPLE_RATE, synthesize_clip

SMALL = ClassifierConfig(channels=(8, 16, 32, 64), embed_dim=64, epochs=12, batch_size=8, lr=2e-3)


def _log_mel(split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ln(max(mel, 1e-5)) of toy clips: 80 bands, n_fft 1024, hop 256 at 22,050 Hz -> [7 count, 80, 345]."""
    mel = MelSpectrogram(SAMPLE_RATE, STFTConfig(n_fft=1024, hop_length=256), n_mels=80, log=True)
    feats, labels = [], []
    for label, name in enumerate(CLASSES):
        wavs = torch.from_numpy(np.stack([synthesize_clip(name, split, i, seed=0) for i in range(count)]))
        feats.append(mel(wavs))
        labels += [label] * count
    return torch.cat(feats), torch.tensor(labels)


@pytest.fixture(scope="module")
def data():
    return _log_mel("dev", 8), _log_mel("eval", 6)


def test_trained_classifier_generalises_to_held_out_clips(data):
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (56, 80, 345)
    model = train_classifier(x_train, y_train, SMALL, seed=0)
    assert not model.training
    assert accuracy(model, x_test, y_test) >= 0.8
    assert accuracy(model, x_train, y_train) >= 0.95
    torch.testing.assert_close(model.feature_mean, x_train.mean(dim=(0, 2)))
    emb = embed_features(model, x_test, batch_size=16)
    assert emb.shape == (42, 64)
    # the embedding separates the classes too: each test clip's nearest class centroid is mostly right
    centroids = torch.stack([emb[y_test == k].mean(0) for k in range(len(CLASSES))])
    assert (torch.cdist(emb, centroids).argmin(1) == y_test).float().mean().item() >= 0.8


def test_untrained_model_is_near_chance(data):
    _, (x_test, y_test) = data
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = FoleyClassifier(SMALL).eval()
    model.feature_mean.copy_(x_test.mean(dim=(0, 2)))
    assert accuracy(model, x_test, y_test) <= 0.4


def test_training_is_deterministic_and_leaves_the_global_rng_alone(data):
    (x_train, y_train), _ = data
    x, y = x_train[::4], y_train[::4]  # 14 clips, one short epoch
    config = ClassifierConfig(channels=(4, 8), embed_dim=8, epochs=1, batch_size=4)
    before = torch.get_rng_state()
    a = train_classifier(x, y, config, seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    b = train_classifier(x, y, config, seed=3).state_dict()
    c = train_classifier(x, y, config, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["output.weight"], c["output.weight"])


def test_shapes_any_frame_count_and_input_checks():
    config = ClassifierConfig(n_mels=40, channels=(4, 8), embed_dim=16)
    model = FoleyClassifier(config).eval()
    for frames in (9, 100, 345):
        x = torch.randn(3, 40, frames, generator=torch.Generator().manual_seed(frames))
        assert model(x).shape == (3, 7) and model.embed(x).shape == (3, 16)
    with pytest.raises(ValueError, match=r"expected features \[B, 40, frames\]"):
        model(torch.zeros(2, 80, 50))
    with pytest.raises(ValueError, match="labels must lie"):
        train_classifier(torch.zeros(4, 40, 20), torch.tensor([0, 1, 2, 7]), config)
    with pytest.raises(ValueError, match="channels"):
        ClassifierConfig(channels=())


def test_spec_augment_zeroes_one_bounded_band_and_frame_range_per_example():
    x = torch.ones(64, 20, 50)
    out = _spec_augment(x, freq_mask=5, time_mask=10, gen=torch.Generator().manual_seed(0))
    zero_bands = (out == 0).all(dim=2).sum(dim=1)  # bands masked over all frames
    zero_frames = (out == 0).all(dim=1).sum(dim=1)
    assert zero_bands.max().item() == 5 and zero_bands.min().item() == 0
    assert zero_frames.max().item() == 10 and zero_frames.min().item() == 0
    assert 0.1 < (out == 0).float().mean().item() < 0.35  # about 1/8 of bands plus 1/10 of frames
    assert torch.equal(_spec_augment(x, 0, 0, torch.Generator()), x)
