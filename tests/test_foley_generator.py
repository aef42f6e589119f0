"""The Foley generator model directory, ``codec generate``, DC removal and the Griffin-Lim vocoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.cli import main
from funcodec_lite.foley.generator import FoleyGenerator, remove_dc
from funcodec_lite.foley.vqvae import MelVQVAE, MelVQVAEConfig
from funcodec_lite.lm import PixelSNAIL, PixelSNAILConfig, sample_incremental
from funcodec_lite.utils.weights import load_model_dir, save_model_dir
from funcodec_lite.vocoders.griffinlim import GriffinLimConfig, GriffinLimVocoder
from funcodec_lite.vocoders.hifigan import HiFiGANConfig, HiFiGANGenerator

RATE, N_MELS, FRAMES, HOP = 8000, 16, 32, 64
CLASSES = ["DogBark", "Rain"]


def _parts(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    autoencoder = MelVQVAE(MelVQVAEConfig(strides=(2, 2), codebook_size=8, embed_dim=4, channel=8,
                                          n_res_block=1, n_res_channel=4, n_mels=N_MELS, n_frames=FRAMES))
    height, width = autoencoder.config.code_map_shape
    prior = PixelSNAIL(PixelSNAILConfig(height=height, width=width, n_codes=8, n_classes=len(CLASSES),
                                        channel=8, n_block=1, n_res_block=1, res_channel=8, n_head=2,
                                        class_dim=8))
    vocoder = HiFiGANGenerator(HiFiGANConfig(num_mels=N_MELS, upsample_rates=[8, 8],
                                             upsample_kernel_sizes=[16, 16], upsample_initial_channel=8,
                                             resblock="2", resblock_kernel_sizes=[3],
                                             resblock_dilation_sizes=[[1]]))
    return {"prior": prior.eval(), "autoencoder": autoencoder.eval(), "vocoder": vocoder.eval()}


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    model = FoleyGenerator.from_parts(CLASSES, "mel", _parts(), RATE, FRAMES * HOP, {"temperature": 1.0})
    directory = tmp_path_factory.mktemp("generator") / "generator"
    save_model_dir(directory, model)
    return directory


def test_generator_reproduces_its_parts_after_a_model_dir_round_trip(generator_dir):
    parts = _parts()
    labels = torch.tensor([0, 1, 1])
    maps = sample_incremental(parts["prior"], labels, torch.Generator().manual_seed(3))
    with torch.no_grad():
        mels = parts["autoencoder"].decode_codes(maps).reshape(3, N_MELS, FRAMES)
        expected = remove_dc(parts["vocoder"](mels)[:, 0], RATE).clamp(-1, 1)
    loaded = load_model_dir(generator_dir, "foley_generator").prepare_for_inference()
    got = loaded.generate(labels, torch.Generator().manual_seed(3))
    assert got.shape == (3, FRAMES * HOP)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)  # weight norm folded: float rounding only


def test_codec_generate_writes_challenge_clips_and_is_seeded(generator_dir, tmp_path):
    args = ["generate", "--model", str(generator_dir), "--class", "DogBark", "-n", "3", "--batch-size", "2"]
    assert main([*args, str(tmp_path / "a"), "--seed", "5"]) == 0
    assert main([*args, str(tmp_path / "b"), "--seed", "5"]) == 0
    assert main([*args, str(tmp_path / "c"), "--seed", "6"]) == 0
    clips = sorted((tmp_path / "a" / "dog_bark").glob("*.wav"))
    assert [p.name for p in clips] == ["000.wav", "001.wav", "002.wav"]
    assert not (tmp_path / "a" / "rain").exists()
    info = sf.info(clips[0])
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 1, FRAMES * HOP, "PCM_16")
    same = [sf.read(tmp_path / "b" / "dog_bark" / p.name)[0] for p in clips]
    other = [sf.read(tmp_path / "c" / "dog_bark" / p.name)[0] for p in clips]
    for path, b, c in zip(clips, same, other):
        a = sf.read(path)[0]
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_codec_generate_unknown_class_lists_the_known_ones(generator_dir, tmp_path, capsys):
    code = main(["generate", "--model", str(generator_dir), "--class", "Rain", "--class", "Cat", "-n", "1",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "unknown class 'Cat'" in err and "DogBark, Rain" in err
    assert not (tmp_path / "out").exists()


def test_codec_generate_sampling_overrides(generator_dir, tmp_path, capsys):
    args = ["generate", "--model", str(generator_dir), "--class", "Rain", "-n", "1"]
    assert main([*args, "--sampling", "temperature=0.5", str(tmp_path / "cold")]) == 0
    assert main([*args, str(tmp_path / "warm")]) == 0
    cold, warm = (sf.read(tmp_path / d / "rain" / "000.wav")[0] for d in ("cold", "warm"))
    assert not np.array_equal(cold, warm)
    assert main([*args, "--sampling", "steps=12", str(tmp_path / "bad")]) == 2
    assert "KEY one of temperature" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_codec_generate_refuses_another_model_kind(tmp_path, capsys):
    save_model_dir(tmp_path / "vocoder", GriffinLimVocoder())
    assert main(["generate", "--model", str(tmp_path / "vocoder"), str(tmp_path / "out")]) == 2
    assert "not a Foley generator" in capsys.readouterr().err


def test_remove_dc_removes_an_offset_and_keeps_the_signal():
    t = torch.arange(22050) / 22050
    tone = 0.3 * torch.sin(2 * math.pi * 1000 * t)
    out = remove_dc(tone + 0.0135, 22050)
    assert abs(float(out[2205:].mean())) < 1e-4  # the offset is gone after the filter's first 100 ms
    gain_db = 20 * math.log10(float(out[2205:].std() / tone[2205:].std()))
    assert abs(gain_db) < 0.05  # 1 kHz passes unchanged


def test_griffin_lim_inverts_the_front_end_closer_than_noise_with_the_same_envelope():
    config = FoleyMelConfig(sample_rate=RATE, n_fft=256, hop_length=HOP, win_length=256, n_mels=N_MELS,
                            fmax=4000.0, num_samples=None)
    mel = FoleyMel(config)
    t = torch.arange(FRAMES * HOP) / RATE
    hiss = 0.05 * torch.randn(len(t), generator=torch.Generator().manual_seed(2))
    wav = (0.4 * torch.sin(2 * math.pi * 440 * t) * torch.exp(-3 * t) + hiss)[None]
    target = mel(wav)
    vocoder = GriffinLimVocoder(GriffinLimConfig(sample_rate=RATE, n_fft=256, hop_length=HOP, win_length=256,
                                                 num_mels=N_MELS, fmax=4000.0, n_iter=64))
    out = vocoder.synthesize(target, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, FRAMES * HOP)
    again = vocoder.synthesize(target, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    error = float((mel(out[:, 0]) - target).abs().mean())
    noise = torch.randn(1, FRAMES * HOP, generator=torch.Generator().manual_seed(1)) * wav.std()
    assert error < 0.2 and float((mel(noise) - target).abs().mean()) > 1.0
