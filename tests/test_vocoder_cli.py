"""``codec vocoder train|resynth`` on a Kaldi data directory, and the chunked vocoder data."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.cli import main
from funcodec_lite.utils.weights import read_provenance
from funcodec_lite.vocoders.data import load_vocoder_data

RATE = 22050


def _data_dir(root, seconds=(1.0, 0.7, 0.2)):
    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True)
    lines = []
    for i, length in enumerate(seconds):
        t = np.arange(int(length * RATE)) / RATE
        wav = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(root / f"u{i}.wav", wav.astype(np.float32), RATE, "PCM_16")
        lines.append(f"u{i} {root / f'u{i}.wav'}")
    (root / "data" / "wav.scp").write_text("\n".join(lines) + "\n")
    return root / "data"


def test_vocoder_data_chunks_are_aligned_and_the_short_tail_is_dropped(tmp_path):
    data = _data_dir(tmp_path)
    mel = FoleyMel(FoleyMelConfig(num_samples=None))
    mels, wavs = load_vocoder_data(data, mel, chunk_frames=16)
    chunk = 16 * 256
    # 1.0 s -> 5 chunks, 0.7 s -> 3, 0.2 s -> 1 (4,410 samples >= 4,096)
    assert mels.shape == (9, 80, 16) and wavs.shape == (9, chunk)
    first = torch.from_numpy(sf.read(tmp_path / "u1.wav", dtype="float32")[0])
    torch.testing.assert_close(wavs[5], first[:chunk])
    torch.testing.assert_close(mels[6], mel(first[None, chunk:2 * chunk])[0])


def test_codec_vocoder_train_then_resynth(tmp_path, capsys):
    data = _data_dir(tmp_path)
    exp = tmp_path / "exp"
    tiny_discriminator = "discriminator: {kinds: [mpd], mpd: {periods: [2], channels: [4, 4, 4, 4, 4]}}\n"
    (tmp_path / "loss.yaml").write_text(tiny_discriminator)
    (tmp_path / "train.yaml").write_text("segment_frames: 16\n")
    assert main(["vocoder", "train", "--kind", "hifigan", "--preset", "tiny", "--data-dir", str(data),
                 "--exp-dir", str(exp), "--steps", "2", "--batch-size", "2", "--chunk-frames", "32",
                 "--train-config", str(tmp_path / "train.yaml"),
                 "--loss-config", str(tmp_path / "loss.yaml")]) == 0
    provenance = read_provenance(exp / "model")
    assert provenance["kind"] == "hifigan" and provenance["steps"] == 2 and provenance["chunks"] == 3
    out = tmp_path / "out.wav"
    assert main(["vocoder", "resynth", "--model", str(exp / "model"), str(tmp_path / "u0.wav"),
                 str(out)]) == 0
    info = sf.info(out)
    assert (info.samplerate, info.frames) == (RATE, (RATE // 256) * 256)


def test_codec_vocoder_errors_are_one_line(tmp_path, capsys):
    data = _data_dir(tmp_path)
    code = main(["vocoder", "train", "--kind", "student", "--data-dir", str(data), "--exp-dir",
                 str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs --teacher" in err
    code = main(["vocoder", "train", "--kind", "melgan", "--data-dir", str(data), "--exp-dir",
                 str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code == 2 and "vocoder_kind must be one of" in err
    assert not (tmp_path / "exp").exists()
