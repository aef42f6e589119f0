"""Every command on every supported kind of audio, and clean failures on every kind of bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_models import save_codec, tiny_config

from funcodec_lite.cli import main
from funcodec_lite.codec.model import CONFIG_FILE, WEIGHTS_FILE, Codec
from funcodec_lite.inference.tokens import TokenFile, load_tokens, save_tokens

SECONDS = 0.3
# name: (sample rate, channels, subtype, signal kind)
GOOD = {
    "pcm_u8.wav": (16000, 1, "PCM_U8", "tone"),
    "pcm16.wav": (16000, 1, "PCM_16", "tone"),
    "pcm24_stereo.wav": (22050, 2, "PCM_24", "tone"),
    "pcm32.wav": (48000, 1, "PCM_32", "tone"),
    "float_stereo.wav": (44100, 2, "FLOAT", "tone"),
    "double_8k.wav": (8000, 1, "DOUBLE", "tone"),
    "hires_96k.flac": (96000, 1, "PCM_24", "tone"),
    "stereo.ogg": (32000, 2, "VORBIS", "tone"),
    "six_channels.wav": (16000, 6, "PCM_16", "tone"),
    "shorter_than_a_frame.wav": (16000, 1, "PCM_16", "five"),
    "one_sample_44k.wav": (44100, 1, "PCM_16", "one"),
    "no_samples.wav": (16000, 1, "PCM_16", "none"),
    "silence.wav": (16000, 2, "PCM_16", "silence"),
    "clipped.wav": (16000, 1, "PCM_16", "square"),
    "over_full_scale.wav": (24000, 1, "FLOAT", "loud"),
}


def _signal(rate: int, channels: int, kind: str) -> np.ndarray:
    n = {"five": 5, "one": 1, "none": 0}.get(kind, int(SECONDS * rate))
    t = np.arange(n) / rate
    base = 0.5 * np.sin(2 * np.pi * 330 * t) + 0.05 * np.random.default_rng(0).standard_normal(n)
    if kind == "silence":
        base = np.zeros(n)
    elif kind == "square":
        base = np.sign(np.sin(2 * np.pi * 200 * t)) * 1.0
    elif kind == "loud":
        base = 1.5 * np.sin(2 * np.pi * 200 * t)
    return np.stack([base * (1 - 0.2 * c) for c in range(channels)], axis=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = save_codec(root / "model", tiny_config(n_q=4))
    other = save_codec(root / "other", tiny_config(n_q=4), seed=3)
    save_codec(root / "causal", tiny_config(causal=True, lstm=1))
    inputs = root / "in"
    inputs.mkdir()
    for name, (rate, channels, subtype, kind) in GOOD.items():
        sf.write(inputs / name, _signal(rate, channels, kind), rate, subtype=subtype)
    return root, model, other, inputs


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["noncausal", "causal"])
@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_inputs_round_trip(setup, tmp_path, capsys, name, kind):
    root, model, _, inputs = setup
    model = model if kind == "noncausal" else root / "causal"
    src = inputs / name
    info = sf.info(src)
    code, out, err = run(capsys, "encode", src, tmp_path / "t.npz", "--model", model)
    assert (code, err) == (0, "") and "t.npz" in out
    tokens = load_tokens(tmp_path / "t.npz")
    assert (tokens.sample_rate, tokens.num_channels, tokens.num_samples) == (info.samplerate, info.channels,
                                                                            info.frames)
    expected_frames = -(-int(np.ceil(info.frames * 16000 / info.samplerate)) // 16)
    assert tokens.codes.shape == (info.channels, 4, expected_frames)
    assert run(capsys, "info", tmp_path / "t.npz")[0] == 0
    code, _, err = run(capsys, "decode", tmp_path / "t.npz", tmp_path / "back.wav", "--model", model)
    assert (code, err) == (0, "")
    back = sf.info(tmp_path / "back.wav")
    assert (back.samplerate, back.channels, back.frames) == (info.samplerate, info.channels, info.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.wav", "t.npz"]


def test_cli_codes_equal_the_models_codes(setup, tmp_path, capsys):
    _, model, _, inputs = setup
    src = inputs / "pcm16.wav"
    assert run(capsys, "encode", src, tmp_path / "a.npz", "--model", model, "--n-q", 3)[0] == 0
    wav, _ = sf.read(inputs / "pcm16.wav", dtype="float32")
    codec = Codec.from_pretrained(model)
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(wav)[None, None], n_q=3)
    tokens = load_tokens(tmp_path / "a.npz")
    assert tokens.n_q == 3 and np.array_equal(tokens.codes, codes.numpy().astype(np.int16))
    for name, code in (("a.flac", 2), ("a.wav", 0)):  # FLAC has no float samples
        assert run(capsys, "decode", tmp_path / "a.npz", tmp_path / name, "--model", model,
                   "--subtype", "FLOAT")[0] == code
    decoded, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    with torch.no_grad():
        direct = codec.decode(codes, length=wav.shape[0])[0, 0].numpy()
    assert rate == 16000 and np.abs(decoded - direct).max() < 1e-5
    # --bandwidth picks n_q: 32 codes = 5 bits per code, 1000 frames/s: 5 kbps per codebook
    assert run(capsys, "encode", src, tmp_path / "b.npz", "--model", model, "--bandwidth", 10.9)[0] == 0
    assert load_tokens(tmp_path / "b.npz").n_q == 2


def test_directories_and_scp_mirror_their_inputs(setup, tmp_path, capsys):
    _, model, _, inputs = setup
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for name in ("pcm16.wav", "stereo.ogg"):
        (tree / "sub" / name).write_bytes((inputs / name).read_bytes())
    (tree / "top.flac").write_bytes((inputs / "hires_96k.flac").read_bytes())
    (tree / "notes.txt").write_text("not audio, not listed")
    code, out, _ = run(capsys, "encode", tree, tmp_path / "tok", "--model", model)
    assert code == 0 and "3 of 3 file(s) done, 0 failed" in out
    made = sorted(str(p.relative_to(tmp_path / "tok")) for p in (tmp_path / "tok").rglob("*.npz"))
    assert made == ["sub/pcm16.npz", "sub/stereo.npz", "top.npz"]
    assert run(capsys, "decode", tmp_path / "tok", tmp_path / "wav", "--model", model, "--format",
               "flac")[0] == 0
    assert sorted(str(p.relative_to(tmp_path / "wav")) for p in (tmp_path / "wav").rglob("*")
                  if p.is_file()) == ["sub/pcm16.flac", "sub/stereo.flac", "top.flac"]
    assert sf.info(tmp_path / "wav" / "top.flac").samplerate == 96000
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt2 {tree / 'sub' / 'pcm16.wav'}\nutt1 {tree / 'top.flac'}\n")
    assert run(capsys, "encode", "--scp", scp, "--out-dir", tmp_path / "s", "--model", model)[0] == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["utt1.npz", "utt2.npz"]
    token_scp = tmp_path / "tokens.scp"
    token_scp.write_text(f"utt1 {tmp_path / 's' / 'utt1.npz'}\n")
    assert run(capsys, "decode", "--scp", token_scp, "--out-dir", tmp_path / "d", "--model", model)[0] == 0
    assert (tmp_path / "d" / "utt1.wav").exists()


def test_decode_refuses_another_models_tokens_unless_forced(setup, tmp_path, capsys):
    _, model, other, inputs = setup
    run(capsys, "encode", inputs / "pcm16.wav", tmp_path / "t.npz", "--model", model)
    ours = load_tokens(tmp_path / "t.npz").model_id
    code, _, err = run(capsys, "decode", tmp_path / "t.npz", tmp_path / "x.wav", "--model", other)
    assert code == 2 and err.count("\n") == 1
    assert f"made by model {ours}, but this model is" in err and "--force" in err
    assert not (tmp_path / "x.wav").exists()
    assert run(capsys, "decode", tmp_path / "t.npz", tmp_path / "x.wav", "--model", other, "--force")[0] == 0
    assert sf.info(tmp_path / "x.wav").frames == int(SECONDS * 16000)


def _bad_audio(path, kind):
    rng = np.random.default_rng(len(kind))
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "truncated_header":
        sf.write(path, np.zeros(1000), 16000)
        path.write_bytes(path.read_bytes()[:30])
    elif kind in ("nan", "inf"):
        data = np.zeros(2000, np.float32)
        data[1500] = np.nan if kind == "nan" else np.inf
        sf.write(path, data, 16000, subtype="FLOAT")
    elif kind.startswith("random"):
        path.write_bytes(rng.integers(0, 256, int(kind.split("_")[1]), dtype=np.uint8).tobytes())
    elif kind == "directory":
        path.mkdir()
        (path / "inner.wav").write_bytes(b"")


BAD_AUDIO = [
    ("missing", "x.wav", "no such file"),
    ("empty", "x.wav", "empty"),
    ("text", "x.wav", "cannot decode"),
    ("truncated_header", "x.wav", "cannot decode"),
    ("nan", "x.wav", "NaN or Inf samples"),
    ("inf", "x.wav", "NaN or Inf samples"),
    ("random_1", "x.wav", "cannot decode"),
    ("random_100", "x.flac", "cannot decode"),
    ("random_5000", "x.ogg", "cannot decode"),
    ("random_70000", "x.mp3", "cannot decode"),
]


@pytest.mark.parametrize("kind,name,message", BAD_AUDIO)
def test_bad_audio_fails_cleanly(setup, tmp_path, capsys, kind, name, message):
    _, model, _, _ = setup
    src = tmp_path / "in" / name
    src.parent.mkdir()
    if kind != "missing":
        _bad_audio(src, kind)
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "encode", src, out_dir / "t.npz", "--model", model)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(src) in err and message in err and "Traceback" not in err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_batch_mode_reports_each_bad_file_and_goes_on(setup, tmp_path, capsys):
    _, model, _, inputs = setup
    (tmp_path / "a_dir.wav").mkdir()  # a directory where a file is expected
    _bad_audio(tmp_path / "b.wav", "nan")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"a {tmp_path / 'a_dir.wav'}\nb {tmp_path / 'b.wav'}\nc {inputs / 'pcm16.wav'}\n"
                   f"d {tmp_path / 'no.wav'}\n")
    code, out, err = run(capsys, "encode", "--scp", scp, "--out-dir", tmp_path / "o", "--model", model)
    assert code == 2 and "1 of 4 file(s) done, 3 failed" in out
    lines = err.strip().splitlines()
    assert len(lines) == 3 and "is a directory" in lines[0] and "NaN" in lines[1]
    assert "no such file" in lines[2]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["c.npz"]


def _bad_tokens(path, kind, good: TokenFile):
    fields = {"codes": good.codes, "sample_rate": np.int64(good.sample_rate),
              "num_samples": np.int64(good.num_samples),
              "num_channels": np.int64(1), "frame_rate": np.float64(good.frame_rate),
              "codebook_size": np.int64(good.codebook_size), "model_id": np.array(good.model_id),
              "format_version": np.int64(1)}
    if kind == "corrupt":
        np.savez(path, **fields)
        path.write_bytes(path.read_bytes()[:-100])
    elif kind == "foreign":
        np.savez(path, x=np.zeros(3))
    elif kind == "object":
        np.savez(path, **{**fields, "codes": np.array([good.codes, 1], dtype=object)})
    elif kind == "out_of_range_for_file":
        np.savez(path, **{**fields, "codes": good.codes + np.int16(good.codebook_size)})
    elif kind == "out_of_range_for_model":
        save_tokens(path, TokenFile(**{**good.__dict__, "codes": good.codes + np.int16(40),
                                       "codebook_size": 128}))
    elif kind == "truncated_codes":
        save_tokens(path, TokenFile(**{**good.__dict__, "codes": good.codes[..., :10]}))
    elif kind == "text":
        path.write_text("hello")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind.startswith("random"):
        size = int(kind.split("_")[1])
        path.write_bytes(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes())


BAD_TOKENS = [("missing", "no such file"), ("empty", "empty"), ("text", "not a token file"),
              ("corrupt", "npz"), ("foreign", "missing field(s) codes"), ("object", "corrupt token file"),
              ("out_of_range_for_file", "codes out of range: found"),
              ("out_of_range_for_model", "codes out of range for the model"),
              ("truncated_codes", "holds 10 frames"), ("random_64", "not a token file"),
              ("random_4000", "not a token file")]


@pytest.mark.parametrize("kind,message", BAD_TOKENS)
def test_bad_token_files_fail_cleanly(setup, tmp_path, capsys, kind, message):
    _, model, _, inputs = setup
    run(capsys, "encode", inputs / "pcm16.wav", tmp_path / "good.npz", "--model", model)
    good = load_tokens(tmp_path / "good.npz")
    src = tmp_path / "bad.npz"
    if kind != "missing":
        _bad_tokens(src, kind, good)
    if kind == "out_of_range_for_model":  # the model check runs even with --force
        code, out, err = run(capsys, "decode", src, tmp_path / "o" / "x.wav", "--model", model, "--force")
    else:
        code, out, err = run(capsys, "decode", src, tmp_path / "o" / "x.wav", "--model", model)
    assert code == 2 and err.count("\n") == 1 and "bad.npz" in err and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []
    if kind not in ("out_of_range_for_model", "truncated_codes"):
        assert run(capsys, "info", src)[0] == 2


def test_unwritable_outputs_fail_cleanly(setup, tmp_path, capsys):
    _, model, _, inputs = setup
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run(capsys, "encode", inputs / "pcm16.wav", blocker / "t.npz", "--model", model)
    assert code == 2 and "a_file" in err and "cannot create its directory" in err and err.count("\n") == 1
    run(capsys, "encode", inputs / "pcm16.wav", tmp_path / "t.npz", "--model", model)
    code, _, err = run(capsys, "decode", tmp_path / "t.npz", blocker / "x.wav", "--model", model)
    assert code == 2 and "a_file" in err and err.count("\n") == 1
    code, _, err = run(capsys, "decode", tmp_path / "t.npz", tmp_path / "x.mp4", "--model", model)
    assert code == 2 and "x.mp4" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "t.npz"]
    (tmp_path / "into").mkdir()  # an existing directory as OUT: the file goes inside, named after IN
    assert run(capsys, "decode", tmp_path / "t.npz", tmp_path / "into", "--model", model)[0] == 0
    assert [p.name for p in (tmp_path / "into").iterdir()] == ["t.wav"]


@pytest.mark.parametrize("case", ["missing_config", "missing_weights", "corrupt_weights", "random_config",
                                  "file"])
def test_bad_model_directories_fail_cleanly(setup, tmp_path, capsys, case):
    _, model, _, inputs = setup
    target = tmp_path / "m"
    if case == "file":
        target.write_text("x")
    else:
        target.mkdir()
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            (target / name).write_bytes((model / name).read_bytes())
        if case == "missing_config":
            (target / CONFIG_FILE).unlink()
        elif case == "missing_weights":
            (target / WEIGHTS_FILE).unlink()
        elif case == "corrupt_weights":
            (target / WEIGHTS_FILE).write_bytes((model / WEIGHTS_FILE).read_bytes()[:-64])
        else:
            noise = np.random.default_rng(1).integers(0, 256, 300, np.uint8)
            (target / CONFIG_FILE).write_bytes(noise.tobytes())
    for argv in (["encode", inputs / "pcm16.wav", tmp_path / "t.npz"], ["info", target]):
        code, _, err = run(capsys, *argv, *(["--model", target] if argv[0] == "encode" else []))
        assert code == 2 and str(target) in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "t.npz").exists()


def test_usage_errors(setup, tmp_path, capsys):
    _, model, _, inputs = setup
    assert run(capsys, "encode", inputs / "pcm16.wav", tmp_path / "t.wav", "--model", model)[0] == 2
    assert run(capsys, "encode", "--model", model)[0] == 2
    code, _, err = run(capsys, "encode", inputs / "pcm16.wav", tmp_path / "t.npz", "--model", model,
                       "--n-q", 9)
    assert code == 2 and "--n-q must be in 1..4" in err
    assert run(capsys, "info", tmp_path / "nothing")[0] == 2
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = run(capsys, "info", tmp_path / "notes.txt")
    assert code == 2 and "not a token file (.npz) or a model directory" in err


def test_failures_in_a_real_process_are_one_line(setup, tmp_path):
    _, model, _, _ = setup
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    argv = ["decode", str(tmp_path / "bad.npz"), str(tmp_path / "t.wav"), "--model", str(model)]
    result = subprocess.run([sys.executable, "-m", "funcodec_lite.cli", *argv], capture_output=True,
                            text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "bad.npz" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_tokenize_and_eval_on_every_input(setup, tmp_path, capsys):
    """The dataset and scoring commands on the same good and bad inputs: good ones succeed, each bad one is
    one failed line with its reason, and nothing stops the run."""
    _, model, _, inputs = setup
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    lines = [f"good_{Path(name).stem} {inputs / name}" for name in sorted(GOOD)]
    for kind, name, _ in BAD_AUDIO:
        path = bad_dir / f"{kind}{Path(name).suffix}"
        if kind != "missing":
            _bad_audio(path, kind)
        lines.append(f"bad_{kind} {path}")
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    out = tmp_path / "tokens"
    code, stdout, stderr = run(capsys, "tokenize", "--scp", tmp_path / "wav.scp", "--out-dir", out,
                               "--model", model, "-q")
    assert code == 2 and f"{len(GOOD)} ok, 0 skipped, {len(BAD_AUDIO)} failed" in stdout
    log = (out / "log" / "tokenize.log").read_text().splitlines()
    statuses = {line.split("\t")[0]: line.split("\t")[1] for line in log if not line.startswith("#")}
    assert all(status == "ok" for utt, status in statuses.items() if utt.startswith("good_"))
    assert all(status == "failed" for utt, status in statuses.items() if utt.startswith("bad_"))
    assert len(statuses) == len(lines) and "Traceback" not in stderr
    decoded, report = tmp_path / "decoded", tmp_path / "scores.json"
    assert run(capsys, "decode", out, decoded, "--model", model, "-q")[0] == 0
    for name in sorted(GOOD):  # each good input against its own decoding: scored, or "no samples"
        hyp = decoded / f"good_{Path(name).stem}.wav"
        code, _, err = run(capsys, "eval", "--ref", inputs / name, "--hyp", hyp, "--json", report)
        assert (code, err) == ((2, err) if name == "no_samples.wav" else (0, ""))
        if name == "no_samples.wav":
            assert err.count("\n") == 1 and "no samples to score" in err
    for kind, name, _ in BAD_AUDIO:
        src = bad_dir / f"{kind}{Path(name).suffix}"
        code, _, err = run(capsys, "eval", "--ref", inputs / "pcm16.wav", "--hyp", src, "--json", report)
        assert code == 2 and err.count("\n") == 1 and str(src) in err and "Traceback" not in err
