"""DNSMOS and speaker similarity against the packages' own outputs (speechmos, resemblyzer), the metric
chooser (`Scorer`), and `codec eval --metrics`."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from funcodec_lite.audio import load_audio
from funcodec_lite.cli import main
from funcodec_lite.metrics import MissingExtraError, Scorer, parse_metrics, score_pair
from funcodec_lite.metrics.dnsmos import WINDOW, WINDOW_SECONDS, windows

pytest.importorskip("speechmos")
pytest.importorskip("onnxruntime")
pytest.importorskip("librosa")
SR = 16000
TEXT = "Please bring the blue umbrella to the station before noon."


def _espeak(tmp_path, voice: str, name: str) -> torch.Tensor:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path / f"{name}.wav"
    subprocess.run([espeak, "-v", voice, "-w", str(path), TEXT], check=True, capture_output=True)
    wav, _ = load_audio(path, sample_rate=SR, channels=1)
    return wav[0] / wav.abs().max() * 0.5


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """Two espeak-ng voices saying the same sentence (about 3 s each), and a noisy copy of the first."""
    root = tmp_path_factory.mktemp("voices")
    male, female = _espeak(root, "en-us+m3", "m"), _espeak(root, "en-us+f2", "f")
    noise = torch.randn(male.shape, generator=torch.Generator().manual_seed(0))
    noisy = (male + 0.003 * noise).clamp(-1, 1)  # about 30 dB SNR
    return male, female, noisy


@pytest.fixture(scope="module")
def scorer():
    try:
        return Scorer("all")
    except MissingExtraError as err:
        pytest.skip(str(err))


def test_windows_follow_speechmos_including_its_skipped_windows():
    # speechmos cuts audio[int(i * 16000):int((i + 9.01) * 16000)] and drops the windows that float rounding
    # makes one sample short (i = 7 to 23): 30 s of audio have 21 start times but only 7 windows
    audio = np.arange(30 * SR, dtype=np.float64)
    starts = (windows(audio)[:, 0].astype(np.float64) / SR).round().astype(int)
    expected = [i for i in range(int(30 - WINDOW_SECONDS) + 1)
                if int((i + WINDOW_SECONDS) * SR) - int(i * SR) >= WINDOW]
    assert starts.tolist() == expected == list(range(7))
    short = windows(np.ones(3 * SR, np.float32))  # repeated to 12 s: windows at 0, 1, 2 s
    assert short.shape == (3, WINDOW)


def test_dnsmos_equals_speechmos(voices, scorer):
    from speechmos import dnsmos

    male, female, noisy = voices
    clips = [noisy.numpy(), female[:int(2.4 * SR)].numpy()]  # 2 windows and 1, scored in one batch
    ours = scorer.dnsmos.score_many(clips, SR)
    for clip, score in zip(clips, ours):
        theirs = dnsmos.run(clip, SR)
        assert score.sig == pytest.approx(theirs["sig_mos"], abs=1e-4)
        assert score.bak == pytest.approx(theirs["bak_mos"], abs=1e-4)
        assert score.ovrl == pytest.approx(theirs["ovrl_mos"], abs=1e-4)
        assert score.p808 == pytest.approx(float(theirs["p808_mos"]), abs=1e-4)
        assert 1.0 < score.ovrl < 4.0
    assert math.isnan(scorer.dnsmos.score(np.zeros(0, np.float32), SR).ovrl)


def test_speaker_embeddings_equal_resemblyzer(voices, scorer):
    from funcodec_lite.metrics.speaker import import_resemblyzer

    resemblyzer = import_resemblyzer()
    encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
    male, female, noisy = voices
    ours = scorer.speaker.embed_many([male, female, noisy], SR)
    theirs = np.stack([encoder.embed_utterance(resemblyzer.preprocess_wav(w.numpy())) for w in voices])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_speaker_similarity_orders_voices(voices, scorer):
    male, female, noisy = voices
    pairs = [(male, male), (male, noisy), (male, female)]
    same, noisy_copy, other = scorer.speaker.similarity_many(pairs, SR)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert other < 0.8 < 0.95 < noisy_copy < same  # measured: 0.72 and 0.98
    assert math.isnan(scorer.speaker.similarity(male, torch.zeros_like(male), SR))


def test_scorer_classic_equals_score_pair_and_adds_perceptual_keys(voices, scorer):
    male, _, noisy = voices
    stereo_ref, stereo_hyp = torch.stack([male, male]), torch.stack([noisy, male])
    classic = Scorer().score_pair(stereo_ref, stereo_hyp, SR)
    assert classic == pytest.approx(vars(score_pair(stereo_ref, stereo_hyp, SR)), rel=1e-6)
    scores = scorer.score_pair(male, noisy, SR)
    assert list(scores) == ["pesq", "stoi", "estoi", "mel_distance", "si_snr", "dnsmos_sig", "dnsmos_bak",
                            "dnsmos_ovrl", "dnsmos_p808", "spk_sim"]
    assert scores["dnsmos_ovrl"] == pytest.approx(scorer.dnsmos.score(noisy, SR).ovrl, abs=1e-9)
    assert scores["spk_sim"] == pytest.approx(scorer.speaker.similarity(male, noisy, SR), abs=1e-6)


def test_parse_metrics():
    assert parse_metrics("classic") == ("pesq", "stoi", "estoi", "mel", "si_snr")
    assert parse_metrics("spk, PESQ,dnsmos") == ("pesq", "dnsmos", "spk")
    assert parse_metrics("all") == parse_metrics("classic,perceptual")
    with pytest.raises(ValueError, match="unknown metric 'bogus'"):
        parse_metrics("pesq,bogus")
    with pytest.raises(ValueError, match="no metrics"):
        parse_metrics(" , ")


@pytest.mark.parametrize("package, metric", [("speechmos", "dnsmos"), ("onnxruntime", "dnsmos"),
                                             ("resemblyzer", "spk")])
def test_missing_package_names_the_extra(monkeypatch, tmp_path, capsys, package, metric):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    with pytest.raises(MissingExtraError, match=rf"needs the {package} package.*funcodec_lite\[eval\]"):
        Scorer(metric)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(SR), SR)
    assert main(["eval", "--ref", str(wav), "--hyp", str(wav), "--metrics", f"pesq,{metric}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("codec eval: error: ") and "funcodec_lite[eval]" in err


def test_codec_eval_with_perceptual_metrics(voices, scorer, tmp_path, capsys):
    male, female, noisy = voices
    for side, clips in (("ref", (male, female)), ("hyp", (noisy, female))):
        (tmp_path / side).mkdir()
        for name, clip in zip("ab", clips):
            sf.write(tmp_path / side / f"{name}.wav", clip.numpy(), SR, subtype="FLOAT")
    report = tmp_path / "scores.json"
    assert main(["eval", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"),
                 "--metrics", "si_snr,dnsmos,spk", "--json", str(report)]) == 0
    out = capsys.readouterr()[0]
    assert out.splitlines()[0].split() == ["name", "SI-SNR", "SIG", "BAK", "OVRL", "P808", "spk"]
    summary = json.loads(report.read_text())
    a, b = (p["scores"] for p in summary["pairs"])
    assert list(a) == ["si_snr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "spk_sim"]
    assert a["spk_sim"] == pytest.approx(scorer.speaker.similarity(male, noisy, SR), abs=1e-5)
    assert b["spk_sim"] == pytest.approx(1.0, abs=1e-5) and a["spk_sim"] < b["spk_sim"]
    assert summary["mean"]["dnsmos_ovrl"] == pytest.approx((a["dnsmos_ovrl"] + b["dnsmos_ovrl"]) / 2)
