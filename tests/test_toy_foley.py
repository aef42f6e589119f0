"""Tests for the toy Foley corpus: DCASE 2023 Task 7 layout and format, determinism, class separability."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from funcodec_lite.audio.spectral import MelSpectrogram, STFTConfig
from funcodec_lite.foley.toy_data import (
    CLASSES,
    NUM_SAMPLES,
    SAMPLE_RATE,
    SPLIT_DIRS,
    ToyFoleyConfig,
    clip_path,
    make_toy_foley,
    synthesize_clip,
)

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("make_toy_foley", ROOT / "tools/make_toy_foley.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """2 dev and 1 eval clip per class, written by the CLI with one process."""
    out = tmp_path_factory.mktemp("toy_foley")
    argv = ["--out", str(out), "--clips-per-class", "2", "--eval-clips-per-class", "1", "--seed", "3",
            "--jobs", "1"]
    assert _tool().main(argv) == 0
    return out


def test_layout_matches_the_dcase_dev_set(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == sorted(SPLIT_DIRS.values())
    for split, count in (("dev", 2), ("eval", 1)):
        folder = corpus / SPLIT_DIRS[split]
        assert sorted(p.name for p in folder.iterdir()) == sorted(CLASSES)
        for name in CLASSES:
            assert sorted(p.name for p in (folder / name).iterdir()) == [f"{i:04d}.wav" for i in range(count)]
    assert clip_path(corpus, "eval", "Rain", 0) == corpus / "DCASEFoleySoundSynthesisEvalSet/Rain/0000.wav"
    assert len(CLASSES) == 7 and "Sneeze_Cough" in CLASSES and "MovingMotorVehicle" in CLASSES


def test_every_file_is_4s_mono_pcm16_at_22050_hz_without_clipping(corpus):
    files = sorted(corpus.rglob("*.wav"))
    assert len(files) == 21
    for path in files:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 1, 88200, "PCM_16")
        data, _ = sf.read(str(path), dtype="int16")
        peak = np.abs(data.astype(np.int32)).max()
        assert 32768 * 10 ** (-9.5 / 20) < peak < 32768 * 10 ** (-0.9 / 20)  # within the -9..-1 dBFS range
    assert SAMPLE_RATE == 22050 and NUM_SAMPLES == 88200


def test_clip_matches_synthesize_clip_and_reruns_remove_stale_clips(corpus, tmp_path):
    data, _ = sf.read(str(clip_path(corpus, "dev", "GunShot", 1)), dtype="float32")
    expected = synthesize_clip("GunShot", "dev", 1, seed=3)
    assert np.abs(data - expected).max() <= 1 / 32768 + 1e-6  # only 16-bit rounding
    make_toy_foley(tmp_path, ToyFoleyConfig(clips_per_class=2, eval_clips_per_class=0, seed=3))
    make_toy_foley(tmp_path, ToyFoleyConfig(clips_per_class=1, eval_clips_per_class=0, seed=3))
    assert sorted(p.name for p in (tmp_path / SPLIT_DIRS["dev"] / "Rain").iterdir()) == ["0000.wav"]


def test_corpus_does_not_depend_on_the_number_of_jobs(corpus, tmp_path):
    config = ToyFoleyConfig(clips_per_class=2, eval_clips_per_class=1, seed=3)
    counts = make_toy_foley(tmp_path, config, jobs=2)
    assert counts == {"dev": 14, "eval": 7}
    for path in sorted(corpus.rglob("*.wav")):
        assert path.read_bytes() == (tmp_path / path.relative_to(corpus)).read_bytes(), path


def test_clip_depends_only_on_class_split_index_and_seed():
    a = synthesize_clip("DogBark", "dev", 5, seed=1)
    assert a.shape == (NUM_SAMPLES,) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, synthesize_clip("DogBark", "dev", 5, seed=1))
    for other in (synthesize_clip("DogBark", "dev", 6, seed=1), synthesize_clip("DogBark", "eval", 5, seed=1),
                  synthesize_clip("DogBark", "dev", 5, seed=2)):
        corr = np.corrcoef(a, other)[0, 1]
        assert abs(corr) < 0.2, corr
    with pytest.raises(ValueError, match="unknown class"):
        synthesize_clip("Cat", "dev", 0, seed=0)
    with pytest.raises(ValueError, match="unknown split"):
        synthesize_clip("Rain", "test", 0, seed=0)
    with pytest.raises(ValueError, match="peak_db"):
        ToyFoleyConfig(peak_db=(-3.0, 0.5))


def _features(mel: torch.Tensor) -> np.ndarray:
    """Per clip: the mean log-mel of the loud frames (relative to its top band) and envelope statistics.

    Args:
        mel (torch.Tensor): natural-log mel spectrograms of shape [N, n_mels, frames].

    Returns:
        np.ndarray: features of shape [N, n_mels + 3].
    """
    env = torch.logsumexp(mel, dim=1)
    env = env - env.amax(dim=-1, keepdim=True)  # frame energy relative to the loudest frame, in nats
    loud = (env > -3.0).float()  # frames within 13 dB of the loudest
    spectrum = (mel * loud[:, None]).sum(-1) / loud.sum(-1, keepdim=True)
    spectrum = spectrum - spectrum.amax(dim=-1, keepdim=True)
    env = env.clamp_min(-9.0)
    stats = torch.stack([env.mean(-1), env.std(-1), env.diff(dim=-1).abs().mean(-1)], dim=1)
    return torch.cat([spectrum, stats], dim=1).numpy()


def _split_features(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    mel = MelSpectrogram(SAMPLE_RATE, STFTConfig(n_fft=1024, hop_length=256), n_mels=40, log=True)
    feats, labels = [], []
    for label, name in enumerate(CLASSES):
        wavs = torch.from_numpy(np.stack([synthesize_clip(name, split, i, seed=0) for i in range(count)]))
        feats.append(_features(mel(wavs)))
        labels += [label] * count
    return np.concatenate(feats), np.array(labels)


def test_classes_are_separable_by_simple_spectral_statistics():
    x_train, y_train = _split_features("dev", 10)
    x_test, y_test = _split_features("eval", 8)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    z_train, z_test = (x_train - mean) / std, (x_test - mean) / std
    dist = ((z_test[:, None] - z_train[None]) ** 2).sum(-1)  # [test, train]

    centroids = np.stack([z_train[y_train == k].mean(0) for k in range(len(CLASSES))])
    nearest_centroid = ((z_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest_centroid == y_test).mean() >= 0.85
    assert (y_train[dist.argmin(1)] == y_test).mean() >= 0.95  # 1-nearest neighbour

    # the same features with shuffled training labels are near chance (1/7): the classes carry the signal
    shuffled = np.random.default_rng(0).permutation(y_train)
    centroids = np.stack([z_train[shuffled == k].mean(0) for k in range(len(CLASSES))])
    assert (((z_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1) == y_test).mean() <= 0.4
