"""``codec listen``: the MUSHRA page directory (trials, anchor, stimuli), and the aggregation of results
(post-screening, means with t intervals) on hand-computed numbers; bad input in one line."""

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_models import speechlike

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.cli import main
from funcodec_lite.jobs.listening import ANCHOR, HIDDEN_REFERENCE, RESULTS_FORMAT, build_test, lowpass_anchor
from funcodec_lite.jobs.listening_stats import Rating, read_all, screen, summarise

T_975_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables)


def _tone_db(x: np.ndarray, rate: int, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return 20 * np.log10(spectrum[int(round(hz * len(x) / rate))] + 1e-12)


def test_anchor_keeps_the_band_below_3k5_and_the_level():
    rate = 16000
    t = torch.arange(rate) / rate
    wav = (0.3 * torch.sin(2 * math.pi * 1000 * t) + 0.3 * torch.sin(2 * math.pi * 6000 * t))[None]
    anchor = lowpass_anchor(wav, rate)
    assert anchor.shape == wav.shape
    assert float(anchor.pow(2).mean().sqrt()) == pytest.approx(float(wav.pow(2).mean().sqrt()), rel=1e-5)
    x, y = wav[0].double().numpy(), anchor[0].double().numpy()
    # the 6 kHz tone is gone (> 80 dB down); 1 kHz carries all the energy, so it rises by 3 dB
    assert _tone_db(y, rate, 6000) - _tone_db(x, rate, 6000) < -80
    assert _tone_db(y, rate, 1000) - _tone_db(x, rate, 1000) == pytest.approx(20 * math.log10(math.sqrt(2)),
                                                                               abs=0.05)
    with pytest.raises(ValueError, match="above 7000"):
        lowpass_anchor(wav, 6000)


@pytest.fixture
def dirs(tmp_path):
    for name in ("ref", "a", "b"):
        (tmp_path / name).mkdir()
    for i in range(3):
        wav = speechlike(0.5, 16000, seed=i)
        save_audio(tmp_path / "ref" / f"u{i}.wav", wav, 16000)
        save_audio(tmp_path / "a" / f"u{i}.wav", wav * 0.5, 16000)
        save_audio(tmp_path / "b" / f"u{i}.flac", wav[:, :7000], 16000)  # shorter: padded to the reference
    save_audio(tmp_path / "ref" / "only_ref.wav", speechlike(0.2, 16000), 16000)
    return tmp_path


def test_page_directory(dirs, capsys):
    out = dirs / "test"
    assert main(["listen", "--ref", str(dirs / "ref"), "--cond", f"a={dirs / 'a'}", "--cond",
                 f"b={dirs / 'b'}", "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "3 trial(s) x 4 stimuli" in printed and "1 reference file(s) skipped" in printed
    page = (out / "index.html").read_text()
    assert "http" not in page.replace("http-equiv", "")  # no network link
    config = json.loads(page.split("const CONFIG = ", 1)[1].split(";</script>", 1)[0])
    assert [t["name"] for t in config["trials"]] == ["u0", "u1", "u2"]
    orders = [[s["key"] for s in t["stimuli"]] for t in config["trials"]]
    assert all(sorted(o) == sorted([HIDDEN_REFERENCE, ANCHOR, "a", "b"]) for o in orders)
    assert len({tuple(o) for o in orders}) > 1  # shuffled per trial
    ref, _ = load_audio(dirs / "ref" / "u1.wav")
    for stimulus in config["trials"][1]["stimuli"]:
        wav, rate = load_audio(out / stimulus["src"])
        assert rate == 16000 and wav.shape == ref.shape
        if stimulus["key"] == HIDDEN_REFERENCE:
            assert torch.equal(wav, ref)
        if stimulus["key"] == "a":
            assert torch.allclose(wav, ref * 0.5, atol=1 / 32768)
        if stimulus["key"] == "b":
            assert torch.equal(wav[:, 7000:], torch.zeros(1, ref.shape[-1] - 7000))
    # the same seed gives the same test; another seed another order
    again = build_test(dirs / "ref", {"a": dirs / "a", "b": dirs / "b"}, dirs / "again", seed=3)
    other = build_test(dirs / "ref", {"a": dirs / "a", "b": dirs / "b"}, dirs / "other", seed=4)
    assert again == config
    assert [[s["key"] for s in t["stimuli"]] for t in other["trials"]] != orders


@pytest.mark.parametrize("case", ["rate", "channels", "missing", "nomatch", "badname", "exists"])
def test_bad_test_input_is_one_line(dirs, capsys, case):
    cond = f"a={dirs / 'a'}"
    if case == "rate":
        save_audio(dirs / "a" / "u1.wav", speechlike(0.5, 22050), 22050)
    if case == "channels":
        sf.write(dirs / "a" / "u1.wav", np.zeros((8000, 2), dtype=np.float32), 16000)
    if case == "missing":
        cond = f"a={dirs / 'nowhere'}"
    if case == "nomatch":
        (dirs / "c").mkdir()
        save_audio(dirs / "c" / "other.wav", speechlike(0.2, 16000), 16000)
        cond = f"c={dirs / 'c'}"
    if case == "badname":
        cond = f"reference={dirs / 'a'}"
    if case == "exists":
        (dirs / "test").mkdir()
        (dirs / "test" / "keep.txt").write_text("x")
    assert main(["listen", "--ref", str(dirs / "ref"), "--cond", cond, "--out", str(dirs / "test")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("codec listen: error:"), err
    expected = {"rate": "sample rate 22050", "channels": "2 channel(s)", "missing": "no such directory",
                "nomatch": "no reference file", "badname": "reserved", "exists": "not an empty directory"}
    assert expected[case] in err
    leftovers = sorted(p.name for p in dirs.iterdir() if p.name.startswith(".test"))
    assert leftovers == []
    assert (dirs / "test" / "keep.txt").exists() if case == "exists" else not (dirs / "test").exists()


def _ratings(listener: str, reference: list[float], anchor: list[float], codec: list[float]) -> list[Rating]:
    rows = []
    for i, values in enumerate(zip(reference, anchor, codec)):
        for condition, value in zip((HIDDEN_REFERENCE, ANCHOR, "codec"), values):
            rows.append(Rating("t1", listener, f"u{i}", condition, value))
    return rows


def test_screening_and_t_intervals():
    ann = _ratings("ann", [100, 95, 100], [20, 30, 25], [60, 70, 80])
    bob = _ratings("bob", [100, 100, 100], [10, 20, 30], [50, 55, 60])
    eve = _ratings("eve", [100, 85, 100], [90, 90, 90], [100, 100, 100])  # 1 of 3 trials < 90: 33 % > 15 %
    assert screen(ann + bob + eve) == {"eve": pytest.approx(1 / 3)}
    summary = summarise(ann + bob + eve)
    assert summary.listeners == ["ann", "bob"] and list(summary.excluded) == ["eve"] and summary.trials == 3
    scores = {s.condition: s for s in summary.scores}
    assert [s.condition for s in summary.scores] == [HIDDEN_REFERENCE, ANCHOR, "codec"]
    codec = np.array([60, 70, 80, 50, 55, 60], dtype=float)
    t_5 = 2.5705818366147395  # t(0.975, 5)
    assert scores["codec"].n == 6 and scores["codec"].mean == pytest.approx(62.5)
    assert scores["codec"].ci95 == pytest.approx(t_5 * codec.std(ddof=1) / math.sqrt(6), rel=1e-9)
    assert scores["codec"].low == pytest.approx(62.5 - scores["codec"].ci95)
    # one listener, three trials: t with 2 degrees of freedom
    alone = {s.condition: s for s in summarise(ann).scores}
    assert alone[ANCHOR].ci95 == pytest.approx(T_975_2 * 5.0 / math.sqrt(3), rel=1e-9)
    # a reference below 90 in 1 of 7 trials (14 %) is allowed
    seven = _ratings("sam", [100] * 6 + [50], [20] * 7, [70] * 7)
    assert screen(seven) == {}
    assert summarise(eve, screening=False).listeners == ["eve"]
    with pytest.raises(ValueError, match="all 1 listener"):
        summarise(eve)


def _write_json(path, listener, rows, test="t1"):
    path.write_text(json.dumps({"format": RESULTS_FORMAT, "test": test, "listener": listener,
                                "ratings": [{"trial": r.trial, "condition": r.condition, "rating": r.rating}
                                            for r in rows]}))
    return path


def test_results_cli_reads_json_and_csv(tmp_path, capsys):
    a = _write_json(tmp_path / "ann.json", "ann", _ratings("ann", [100, 95, 100], [20, 30, 25], [60, 70, 80]))
    b = tmp_path / "bob.csv"
    with b.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test", "listener", "trial", "condition", "label", "rating"])
        for r in _ratings("bob", [100, 100, 100], [10, 20, 30], [50, 55, 60]):
            writer.writerow([r.test, r.listener, r.trial, r.condition, "A", r.rating])
    assert [r.listener for r in read_all([a, a])][-1] == "ann#2"
    assert main(["listen", "--results", str(a), str(b), "--out", str(tmp_path / "summary")]) == 0
    out = capsys.readouterr().out
    assert "codec                       6   62.5" in out
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert summary["listeners"] == ["ann", "bob"] and summary["scores"][2]["mean"] == 62.5
    assert (tmp_path / "summary" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert "| codec | 6 | 62.5 |" in (tmp_path / "summary" / "summary.md").read_text()


@pytest.mark.parametrize("case", ["notjson", "format", "rating", "twotests", "missing"])
def test_bad_results_are_one_line(tmp_path, capsys, case):
    rows = _ratings("ann", [100], [20], [60])
    path = _write_json(tmp_path / "r.json", "ann", rows)
    files = [path]
    if case == "notjson":
        path.write_text("{oops")
    if case == "format":
        path.write_text(json.dumps({"listener": "ann", "ratings": []}))
    if case == "rating":
        path.write_text(path.read_text().replace(": 60}", ": 160}"))
    if case == "twotests":
        files.append(_write_json(tmp_path / "s.json", "bob", rows, test="t2"))
    if case == "missing":
        files = [tmp_path / "nope.json"]
    assert main(["listen", "--results", *map(str, files)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("codec listen: error:"), err
