"""``codec vamp`` and masked-model ``codec lm generate`` end to end on a tiny codec; bad input in one line."""

import numpy as np
import pytest
import soundfile as sf
import yaml
from tiny_models import save_codec, speechlike, tiny_config

from funcodec_lite.audio.io import save_audio
from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model

TRANSFORMER = {"dim": 32, "n_layers": 1, "n_heads": 2, "causal": False}
TRAIN = {"steps": 8, "batch_size": 4, "lr": 3e-3, "log_every": 4, "checkpoint_every": 8}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vamp")
    codec_dir = save_codec(root / "codec", tiny_config(), seed=0)
    (root / "audio").mkdir()
    lines = []
    for i in range(8):
        path = root / "audio" / f"u{i}.wav"
        save_audio(path, speechlike(0.6, 16000, seed=i), 16000)
        lines.append(f"u{i} {path}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    assert main(["tokenize", "--scp", str(root / "wav.scp"), "--out-dir", str(root / "tokens"),
                 "--model", str(codec_dir), "-q"]) == 0
    coarse = {"kind": "masked_lm", "transformer": TRANSFORMER}
    c2f = {"kind": "masked_lm", "n_conditioning": 2, "transformer": TRANSFORMER}
    for name, model, n_q in (("coarse", coarse, 2), ("c2f", c2f, 4)):
        (root / f"{name}.yaml").write_text(yaml.safe_dump({
            "model": model, "train": TRAIN, "data": {"n_q": n_q, "segment_frames": 16, "valid_every": 0}}))
        assert main(["lm", "train", "--config", str(root / f"{name}.yaml"), "--tokens", str(root / "tokens"),
                     "--codec", str(codec_dir), "--exp-dir", str(root / name)]) == 0
    stereo = root / "stereo.wav"
    left, right = (speechlike(0.7, 22050, seed=s).reshape(-1).numpy() for s in (20, 21))
    sf.write(stereo, np.stack([left, right], axis=1), 22050)
    return root, codec_dir, stereo


@pytest.mark.parametrize("spec", ["periodic:3,width:1 & upper:1", "inpaint:0.2,0.2", "beat-driven",
                                  "periodic-5"])
def test_vamp_keeps_length_rate_and_channels(models, tmp_path, spec, capsys):
    root, codec_dir, stereo = models
    out = tmp_path / "out.wav"
    assert main(["vamp", str(stereo), str(out), "--model", str(root / "coarse" / "model"), "--c2f",
                 str(root / "c2f" / "model"), "--mask", spec, "--steps", "4", "--window-seconds", "0.3"]) == 0
    info, source = sf.info(out), sf.info(stereo)
    assert (info.frames, info.samplerate, info.channels) == (source.frames, source.samplerate, 2)
    assert "tokens generated" in capsys.readouterr().out


def test_masked_model_generates_with_lm_generate(models, tmp_path):
    root, codec_dir, _ = models
    out = tmp_path / "gen.wav"
    assert main(["lm", "generate", str(out), "--model", str(root / "coarse" / "model"), "--nar",
                 str(root / "c2f" / "model"), "--seconds", "0.4", "--steps", "3"]) == 0
    codec = load_model(codec_dir)
    assert sf.info(out).frames == round(0.4 * codec.frame_rate) * codec.samples_per_frame


@pytest.mark.parametrize("case", ["spec", "audio", "codec", "c2f-as-model", "kind"])
def test_bad_input_is_one_line_and_no_output(models, tmp_path, capsys, case):
    root, codec_dir, stereo = models
    out = tmp_path / "out.wav"
    base = ["vamp", str(stereo), str(out), "--model", str(root / "coarse" / "model"), "--mask", "upper:1"]
    (tmp_path / "bad.wav").write_bytes(b"RIFF not audio")
    argv = {
        "spec": [*base[:-1], "periodic:x & upper:1"],
        "audio": ["vamp", str(tmp_path / "bad.wav"), str(out), "--model", str(root / "coarse" / "model"),
                  "--mask", "full"],
        "codec": [*base, "--codec", str(save_codec(tmp_path / "other", tiny_config(), seed=9))],
        "c2f-as-model": ["vamp", str(stereo), str(out), "--model", str(root / "c2f" / "model"),
                         "--mask", "full"],
        "kind": ["vamp", str(stereo), str(out), "--model", str(codec_dir), "--mask", "full"],
    }[case]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    expected = {"spec": "periodic:x", "audio": "bad.wav", "codec": "was trained on tokens of codec",
                "c2f-as-model": "coarse-to-fine", "kind": "not a masked token model"}[case]
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()
