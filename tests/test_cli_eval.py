"""`codec eval`: scores of file pairs, directories and scp lists, as a table and (with --json) as JSON."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
from tiny_models import speechlike

from funcodec_lite.cli import main


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    clean = speechlike(1.0, 16000, seed=1)[0].numpy()
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(clean.size)
    (root / "ref" / "sub").mkdir(parents=True)
    (root / "hyp" / "sub").mkdir(parents=True)
    sf.write(root / "ref" / "a.wav", clean, 16000)
    sf.write(root / "ref" / "sub" / "b.flac", clean, 16000)
    sf.write(root / "ref" / "c.wav", clean, 16000)
    sf.write(root / "hyp" / "a.wav", noisy, 16000)
    sf.write(root / "hyp" / "sub" / "b.wav", clean[:-160], 16000, subtype="FLOAT")  # 10 ms short
    return root


def test_identical_files_score_perfectly(audio, tmp_path, capsys):
    ref = audio / "ref" / "a.wav"
    assert main(["eval", "--ref", str(ref), "--hyp", str(ref), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr()[0]
    assert "mean of 1" in out
    scores = json.loads((tmp_path / "s.json").read_text())["pairs"][0]["scores"]
    assert scores["pesq"] > 4.5 and scores["stoi"] > 0.999 and scores["estoi"] > 0.999
    assert scores["mel_distance"] == 0.0 and scores["si_snr"] > 100


def test_directories_pair_by_relative_path(audio, tmp_path, capsys):
    report = tmp_path / "r" / "scores.json"
    code = main(["eval", "--ref", str(audio / "ref"), "--hyp", str(audio / "hyp"), "--json", str(report)])
    assert code == 2
    out, err = capsys.readouterr()
    assert "2 pair(s) scored, 1 failed" in out and "no hypothesis for c" in err
    summary = json.loads(report.read_text())
    pairs = {p["name"]: p for p in summary["pairs"]}
    assert sorted(pairs) == ["a", "c", "sub/b"] and summary["scored"] == 2 and summary["failed"] == 1
    noisy = pairs["a"]["scores"]
    assert 10 < noisy["si_snr"] < 30 and 1.0 < noisy["pesq"] < 4.5 and noisy["mel_distance"] > 0.05
    assert pairs["sub/b"]["trimmed_samples"] == 160 and pairs["sub/b"]["scores"]["si_snr"] > 60
    assert pairs["c"]["scores"] is None and pairs["c"]["error"] == "no hypothesis for c"
    assert math.isclose(summary["mean"]["si_snr"], (noisy["si_snr"] + pairs["sub/b"]["scores"]["si_snr"]) / 2)


def test_scp_lists_pair_by_utterance_id(audio, tmp_path, capsys):
    (tmp_path / "ref.scp").write_text(f"x {audio / 'ref' / 'a.wav'}\ny {audio / 'ref' / 'c.wav'}\n")
    (tmp_path / "hyp.scp").write_text(f"y {audio / 'ref' / 'c.wav'}\nx {audio / 'hyp' / 'a.wav'}\n")
    assert main(["eval", "--ref", str(tmp_path / "ref.scp"), "--hyp", str(tmp_path / "hyp.scp"),
                 "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [p["name"] for p in summary["pairs"]] == ["x", "y"]
    assert summary["pairs"][1]["scores"]["si_snr"] > 100
    capsys.readouterr()


@pytest.mark.parametrize("case", ["missing", "random", "channels", "mixed"])
def test_bad_pairs_fail_cleanly(audio, tmp_path, capsys, case):
    ref = audio / "ref" / "a.wav"
    hyp = tmp_path / "h.wav"
    if case == "random":
        hyp.write_bytes(np.random.default_rng(3).integers(0, 256, 999, dtype=np.uint8).tobytes())
    elif case == "channels":
        sf.write(hyp, np.zeros((16000, 2)), 16000)
    elif case == "mixed":
        hyp = audio / "hyp"
    code = main(["eval", "--ref", str(ref), "--hyp", str(hyp), "--json", str(tmp_path / "s.json")])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(hyp) in err
    assert not (tmp_path / "s.json").exists()


def test_json_is_written_only_when_asked(audio, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ref = audio / "ref" / "a.wav"
    assert main(["eval", "--ref", str(ref), "--hyp", str(audio / "hyp" / "a.wav")]) == 0
    out, err = capsys.readouterr()
    assert out.rstrip().endswith("codec eval: 1 pair(s) scored, 0 failed") and err == ""
    assert "wrote" not in out and list(tmp_path.iterdir()) == []  # no eval.json in the working directory


def test_json_path_that_is_a_directory_fails_before_scoring(audio, tmp_path, capsys):
    ref = audio / "ref" / "a.wav"
    code = main(["eval", "--ref", str(ref), "--hyp", str(ref), "--json", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"codec eval: error: {tmp_path}: is a directory")
