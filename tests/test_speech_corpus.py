"""Tests for the speech corpus tool: espeak-ng synthesis, held-out voices, and indexing existing corpora."""

import importlib.util
import math
import subprocess
from pathlib import Path

import pytest
import torch

from funcodec_lite.audio import load_audio, rms_db, save_audio
from funcodec_lite.data import read_data_dir, validate_data_dir
from funcodec_lite.data.corpus import (
    available_voices,
    find_espeak,
    index_corpus,
    make_sentences,
    plan_corpus,
    speaker_of,
    synthesize_corpus,
)

ROOT = Path(__file__).resolve().parents[1]
ESPEAK = find_espeak()
NO_ESPEAK = "espeak-ng is not installed (apt-get install -y espeak-ng)"
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason=NO_ESPEAK)


def _tool():
    spec = importlib.util.spec_from_file_location("make_speech_corpus", ROOT / "tools/make_speech_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 utterances from 4 voices: 2 train, 1 dev, 1 test."""
    if ESPEAK is None:
        pytest.skip(NO_ESPEAK)
    out = tmp_path_factory.mktemp("corpus")
    accents, variants = available_voices(ESPEAK)
    plan = plan_corpus(12, 4, seed=7, dev_speakers=1, test_speakers=1, variants=variants, accents=accents)
    hours = synthesize_corpus(out, plan, sample_rate=16000, jobs=2, espeak=ESPEAK)
    return out, plan, hours


def test_sentences_are_distinct_and_seeded():
    sentences = make_sentences(500, seed=1)
    assert len(set(sentences)) == 500 and sentences == make_sentences(500, seed=1)
    assert len(set(sentences) & set(make_sentences(500, seed=2))) < 25
    words = [len(s.split()) for s in sentences]
    assert 6 <= min(words) and max(words) <= 16 and all(s[-1] in ".?!" for s in sentences)


def test_plan_is_deterministic_and_holds_out_voices():
    plan = plan_corpus(400, 20, seed=5)
    assert plan == plan_corpus(400, 20, seed=5) and plan != plan_corpus(400, 20, seed=6)
    voices = {split: {p.voice for p in plan if p.split == split} for split in ("train", "dev", "test")}
    assert [len(v) for v in voices.values()] == [16, 2, 2]
    variants = {split: {v.variant for v in vs} for split, vs in voices.items()}
    assert not variants["train"] & (variants["dev"] | variants["test"])
    assert not variants["dev"] & variants["test"]
    assert [sum(p.split == s for p in plan) for s in voices] == [320, 40, 40]
    assert all(135 <= p.rate <= 205 and 20 <= p.pitch <= 80 and -12 <= p.peak_db <= -1 for p in plan)
    with pytest.raises(ValueError, match="at least one each"):
        plan_corpus(10, 2, seed=0)


@needs_espeak
def test_synthesized_wavs_are_speech_like(corpus):
    out, plan, hours = corpus
    for item in plan:
        wav, sr = load_audio(out / "wavs" / item.voice.speaker / f"{item.utt_id}.wav")
        assert sr == 16000 and wav.shape[0] == 1
        assert 1.0 < wav.shape[-1] / sr < 10.0, item
        assert rms_db(wav) > -40.0, item
        peak_db = 20 * math.log10(wav.abs().max().item())
        assert peak_db == pytest.approx(item.peak_db, abs=0.1)
    assert 12 * 1.0 / 3600 < sum(hours.values()) < 12 * 10.0 / 3600


@needs_espeak
def test_data_dirs_validate_and_test_voices_are_unseen(corpus):
    out, plan, _ = corpus
    data = {split: read_data_dir(out / "data" / split) for split in ("train", "dev", "test")}
    for split in data:
        assert validate_data_dir(out / "data" / split) == []
    assert [len(d) for d in data.values()] == [6, 3, 3]
    assert [len(d.speakers()) for d in data.values()] == [2, 1, 1]
    assert not set(data["train"].speakers()) & set(data["test"].speakers() + data["dev"].speakers())
    texts = {k: v for d in data.values() for k, v in d.text.items()}
    assert texts == {p.utt_id: p.text for p in plan}
    synth = (out / "data/test/utt2synth").read_text().split()
    test_item = next(p for p in plan if p.split == "test")
    assert synth[:6] == [test_item.utt_id, test_item.voice.espeak_name, str(test_item.rate),
                         str(test_item.pitch), str(test_item.amplitude), f"{test_item.peak_db:g}"]


@needs_espeak
def test_audio_does_not_depend_on_jobs(corpus, tmp_path):
    out, plan, _ = corpus
    synthesize_corpus(tmp_path, plan[:2], sample_rate=16000, jobs=1, espeak=ESPEAK)
    for item in plan[:2]:
        name = Path("wavs") / item.voice.speaker / f"{item.utt_id}.wav"
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_missing_espeak_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _tool().main(["--out", str(tmp_path / "out"), "--num-utts", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install -y espeak-ng" in err
    assert not (tmp_path / "out").exists()


def _tone(seconds: float = 0.2, sr: int = 16000) -> torch.Tensor:
    return 0.3 * torch.sin(2 * math.pi * 220 * torch.arange(int(seconds * sr)) / sr)


def _fake_libritts(root: Path, speakers: list[str]) -> None:
    for spk in speakers:
        for chapter, sentence in ((100, 1), (100, 2), (200, 1)):
            folder = root / "train-clean-100" / spk / str(chapter)
            folder.mkdir(parents=True, exist_ok=True)
            stem = f"{spk}_{chapter}_000001_{sentence:06d}"
            save_audio(folder / f"{stem}.wav", _tone(), 24000)
            (folder / f"{stem}.normalized.txt").write_text(f"Sentence {sentence} of {spk}.\n")
            (folder / f"{stem}.original.txt").write_text("ignored\n")
    (root / "train-clean-100" / "._19_100_000001_000001.wav").write_bytes(b"hidden resource fork")


def test_speaker_rules():
    root = Path("/c")
    assert speaker_of(Path("/c/x/84/121123/84_121123_000007_000001.wav"), root) == "84"
    assert speaker_of(Path("/c/LibriSpeech/84/121123/84-121123-0001.flac"), root) == "84"
    assert speaker_of(Path("/c/wav48/p225/p225_001_mic1.flac"), root) == "p225"
    assert speaker_of(Path("/c/voices/anne marie/take-1.wav"), root) == "anne_marie"
    assert speaker_of(Path("/c/solo.wav"), root) == "c"


def test_from_corpus_splits_a_libritts_tree_by_speaker(tmp_path):
    speakers = ["19", "26", "32", "39", "40", "60", "78", "83", "87", "89"]
    _fake_libritts(tmp_path / "LibriTTS", speakers)
    tool = _tool()
    args = ["--from-corpus", str(tmp_path / "LibriTTS"), "--out", str(tmp_path / "out"), "--seed", "1"]
    assert tool.main(args) == 0
    data = {s: read_data_dir(tmp_path / "out/data" / s) for s in ("train", "dev", "test")}
    assert [len(d.speakers()) for d in data.values()] == [8, 1, 1]
    assert sorted(sum((d.speakers() for d in data.values()), [])) == speakers
    assert [len(d) for d in data.values()] == [24, 3, 3]
    assert all(validate_data_dir(tmp_path / "out/data" / s) == [] for s in data)
    train = data["train"]
    assert train.utterances[0].utt_id == f"{train.speakers()[0]}-100_000001_000001"
    assert train.text[train.utterances[0].utt_id] == f"Sentence 1 of {train.speakers()[0]}."
    assert all(Path(u.path).is_absolute() and Path(u.path).is_file() for u in train.utterances)
    splits, _ = index_corpus(tmp_path / "LibriTTS", seed=1)
    assert {s: [u.utt_id for u in utts] for s, utts in splits.items()} == {
        s: [u.utt_id for u in d.utterances] for s, d in data.items()}  # the same split for the same seed
    other, _ = index_corpus(tmp_path / "LibriTTS", seed=2, dev_speakers=2, test_speakers=3)
    assert [len({u.speaker for u in other[s]}) for s in ("train", "dev", "test")] == [5, 2, 3]


def test_from_corpus_vctk_and_plain_folders(tmp_path):
    for spk in ("p225", "p226", "p227"):
        (tmp_path / "vctk/wav48" / spk).mkdir(parents=True)
        (tmp_path / "vctk/txt" / spk).mkdir(parents=True)
        save_audio(tmp_path / "vctk/wav48" / spk / f"{spk}_001_mic1.flac", _tone(), 48000)
        save_audio(tmp_path / "vctk/wav48" / spk / f"{spk}_001_mic2.flac", _tone(), 48000)
        (tmp_path / "vctk/txt" / spk / f"{spk}_001.txt").write_text("Please call Stella.\n")
    splits, text = index_corpus(tmp_path / "vctk", dev_speakers=1, test_speakers=1)
    ids = sorted(u.utt_id for utts in splits.values() for u in utts)
    assert ids == [f"{s}-001_mic{m}" for s in ("p225", "p226", "p227") for m in (1, 2)]
    assert set(text.values()) == {"Please call Stella."} and len(text) == 6
    for folder in ("a/bob", "b/bob", "a/eve", "a/ann"):
        (tmp_path / "plain" / folder).mkdir(parents=True)
        save_audio(tmp_path / "plain" / folder / "take 1.wav", _tone(), 16000)
    splits, text = index_corpus(tmp_path / "plain")
    ids = sorted(u.utt_id for utts in splits.values() for u in utts)
    assert ids == ["ann-take_1", "bob-take_1", "bob-take_1_2", "eve-take_1"] and text == {}


def test_data_prep_script_wraps_from_corpus(tmp_path):
    _fake_libritts(tmp_path / "LibriTTS", ["1", "2", "3"])
    script = ROOT / "egs/speech_codec/local/data_prep.sh"
    command = ["bash", str(script), "--seed", "3", str(tmp_path / "LibriTTS"), str(tmp_path / "o")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 utterances, 1 speakers" in done.stdout
    assert [len(read_data_dir(tmp_path / "o/data" / s)) for s in ("train", "dev", "test")] == [3, 3, 3]
    bad = subprocess.run(["bash", str(script), "--bogus", "1", "a", "b"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr
