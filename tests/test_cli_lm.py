"""``codec lm train`` and ``codec lm generate`` end to end on a tiny codec, and their one-line errors."""

import json

import pytest
import soundfile as sf
import torch
import yaml
from tiny_models import save_codec, speechlike, tiny_config

from funcodec_lite.audio.io import save_audio
from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model
from funcodec_lite.inference.tokens import load_tokens

LM_CONFIG = {
    "model": {"kind": "codec_lm", "pattern": "delay", "cond_dropout": 0.2,
              "transformer": {"dim": 32, "n_layers": 2, "n_heads": 2}},
    "train": {"steps": 30, "batch_size": 4, "lr": 3e-3, "log_every": 10, "checkpoint_every": 15},
    "data": {"n_q": 4, "segment_frames": 20, "valid_every": 30, "valid_examples": 8},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    codec_dir = save_codec(root / "codec", tiny_config(), seed=0)
    audio = root / "audio"
    audio.mkdir()
    lines, labels = [], []
    for i in range(12):
        path = audio / f"utt{i:02d}.wav"
        save_audio(path, speechlike(0.5, 16000, seed=i), 16000)
        lines.append(f"utt{i:02d} {path}")
        labels.append(f"utt{i:02d} {'dog' if i % 2 else 'rain'}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    (root / "utt2class").write_text("\n".join(labels) + "\n")
    assert main(["tokenize", "--scp", str(root / "wav.scp"), "--out-dir", str(root / "tokens"),
                 "--model", str(codec_dir), "-q"]) == 0
    config = root / "lm.yaml"
    config.write_text(yaml.safe_dump(LM_CONFIG))
    exp = root / "exp"
    assert main(["lm", "train", "--config", str(config), "--tokens", str(root / "tokens"),
                 "--valid-tokens", str(root / "tokens"), "--labels", str(root / "utt2class"),
                 "--codec", str(codec_dir), "--exp-dir", str(exp)]) == 0
    return root, codec_dir, exp


def test_train_writes_a_model_directory_with_its_codec_and_classes(setup):
    root, codec_dir, exp = setup
    saved = yaml.safe_load((exp / "model" / "config.yaml").read_text())
    assert saved["kind"] == "codec_lm" and saved["n_classes"] == 2 and saved["card"] == 32
    provenance = json.loads((exp / "model" / "provenance.json").read_text())
    assert provenance["class_names"] == ["dog", "rain"] and provenance["steps"] == 30
    assert provenance["tokens"]["model_id"] == load_tokens(root / "tokens" / "utt00.npz").model_id
    valid = [json.loads(line) for line in (exp / "valid.jsonl").read_text().splitlines()]
    assert valid[-1]["step"] == 30 and len([k for k in valid[-1] if k.startswith("nll/cb")]) == 4
    train = [json.loads(line) for line in (exp / "train.jsonl").read_text().splitlines()]
    assert train[-1]["loss"] < train[0]["loss"]  # 32-code tokens: the loss starts near ln 33


def test_generate_class_and_prompt(setup, tmp_path, capsys):
    root, codec_dir, exp = setup
    out = tmp_path / "dog.wav"
    assert main(["lm", "generate", str(out), "--model", str(exp / "model"), "--seconds", "0.3",
                 "--class", "dog", "--seed", "1"]) == 0
    wav, rate = sf.read(out)
    codec = load_model(codec_dir)
    assert rate == 16000 and 0 < len(wav) <= round(0.3 * codec.frame_rate) * codec.samples_per_frame
    assert "stop:" in capsys.readouterr().out
    prompted = tmp_path / "prompted.wav"
    assert main(["lm", "generate", str(prompted), "--model", str(exp / "model"), "--seconds", "0.2",
                 "--prompt", str(root / "audio" / "utt03.wav"), "--class", "dog"]) == 0
    assert sf.info(prompted).frames > 0


@pytest.mark.parametrize("case", ["class", "text", "seconds", "kind", "codec", "tokens"])
def test_bad_input_is_one_line_and_no_output(setup, tmp_path, capsys, case):
    root, codec_dir, exp = setup
    out = tmp_path / "out.wav"
    base = ["lm", "generate", str(out), "--model", str(exp / "model"), "--seconds", "0.2"]
    other = save_codec(tmp_path / "other", tiny_config(), seed=9)
    argv = {
        "class": [*base, "--class", "cat"],
        "text": [*base, "--text", "  "],
        "seconds": [*base[:-1], "0"],
        "kind": ["lm", "generate", str(out), "--model", str(codec_dir), "--seconds", "0.2"],
        "codec": [*base, "--codec", str(other)],
    }.get(case)
    if case == "tokens":  # training on token files of two codecs
        assert main(["tokenize", "--scp", str(root / "wav.scp"), "--out-dir", str(tmp_path / "t"),
                     "--model", str(other), "-q"]) == 0
        argv = ["lm", "train", "--config", str(root / "lm.yaml"), "--tokens", str(root / "tokens"),
                "--valid-tokens", str(tmp_path / "t"), "--exp-dir", str(tmp_path / "exp")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    expected = {"class": "unknown class 'cat'; known: dog, rain", "text": "--text is empty",
                "seconds": "--seconds must be > 0", "kind": "a codec model directory, not",
                "codec": "was trained on tokens of codec", "tokens": "tokens of codec"}[case]
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "exp" / "model").exists()


@pytest.mark.parametrize("option", ["--seconds", "--window-seconds"])
@pytest.mark.parametrize("value", ["inf", "nan", "1e9", "3600.5"])
def test_lengths_must_be_finite_and_bounded(tmp_path, capsys, option, value):
    """Checked before any model is read: one line, exit 2 (``inf`` was an OverflowError, 1e9 a 400 GB
    allocation)."""
    argv = ["lm", "generate", str(tmp_path / "out.wav"), "--model", str(tmp_path / "none"), "--seconds", "1"]
    assert main([*argv, option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{option} must be > 0, finite and at most 3600, got {float(value):g}" in err and "\n" not in err


def test_embeddings_start_from_the_codecs_codebooks(setup, tmp_path):
    """data.init_from_codec: the embedding rows start as the codec's code vectors (scaled; the tiny codec's
    vectors have the LM's width here, so no projection), so their pairwise geometry is the codebook's."""
    root, codec_dir, _ = setup
    config = {**LM_CONFIG, "train": {**LM_CONFIG["train"], "steps": 0},
              "data": {**LM_CONFIG["data"], "init_from_codec": True}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(config))
    assert main(["lm", "train", "--config", str(tmp_path / "lm.yaml"), "--tokens", str(root / "tokens"),
                 "--codec", str(codec_dir), "--exp-dir", str(tmp_path / "exp")]) == 0
    from funcodec_lite import load_model_dir

    model = load_model_dir(tmp_path / "exp" / "model", "codec_lm")
    codec = load_model(codec_dir)
    for k in range(4):
        book = codec.quantizer.layers[k].embed
        table = model.embeddings[k].weight[: model.config.card]
        if book.shape[1] == table.shape[1]:
            torch.testing.assert_close(table / table.norm(), book / book.norm())
        else:  # projected: the Gram matrix is kept up to scale (a random projection keeps it roughly)
            gram_book = torch.corrcoef(book)
            gram_table = torch.corrcoef(table)
            assert torch.corrcoef(torch.stack([gram_book.flatten(), gram_table.flatten()]))[0, 1] > 0.6


def test_ar_codebook_0_then_nar_fill_with_a_prompt(setup, tmp_path):
    """VALL-E's pair from the command line: an AR model over codebook 0 continues the prompt's codebook 0,
    the NAR model (--nar) fills codebooks 1..3 reading the prompt's full codes; the decoded file has the
    generated frames' length."""
    root, codec_dir, _ = setup
    stack = {"dim": 16, "n_layers": 1, "n_heads": 2}
    ar = {"kind": "codec_lm", "pattern": "parallel", "transformer": stack}
    nar = {"kind": "nar_lm", "transformer": {**stack, "causal": False}}
    for name, model, n_q in (("ar", ar, 1), ("nar", nar, 4)):
        config = {"model": model, "train": {"steps": 3, "batch_size": 4, "log_every": 3},
                  "data": {"n_q": n_q, "segment_frames": 20, "valid_every": 0}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        assert main(["lm", "train", "--config", str(tmp_path / f"{name}.yaml"), "--tokens",
                     str(root / "tokens"), "--codec", str(codec_dir), "--exp-dir", str(tmp_path / name)]) == 0
    out = tmp_path / "speech.wav"
    assert main(["lm", "generate", str(out), "--model", str(tmp_path / "ar" / "model"), "--nar",
                 str(tmp_path / "nar" / "model"), "--prompt", str(root / "audio" / "utt01.wav"),
                 "--seconds", "0.2", "--seed", "2"]) == 0
    codec = load_model(codec_dir)
    assert sf.info(out).frames % codec.samples_per_frame == 0 and sf.info(out).frames > 0
