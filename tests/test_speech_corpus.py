"""Tests for the speech corpus tool: espeak-ng and festival synthesis, held-out voices, indexing corpora."""

import dataclasses
import hashlib
import importlib.util
import math
import re
import subprocess
import sys
from collections import Counter
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
from funcodec_lite.data.festival import (
    EXCLUDED_VOICES,
    FESTIVAL_VOICES,
    LANGUAGES,
    FestivalUtterance,
    available_festival_voices,
    check_not_excluded,
    choose_voices,
    find_festival,
    make_sentences_in,
)
from funcodec_lite.data.festival import synthesize as festival_synthesize

ROOT = Path(__file__).resolve().parents[1]
ESPEAK = find_espeak()
NO_ESPEAK = "espeak-ng is not installed (apt-get install -y espeak-ng)"
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason=NO_ESPEAK)
FESTIVAL = find_festival()
NO_FESTIVAL = ("festival is not installed (apt-get install -y --no-install-recommends festival "
               "festvox-kdlpc16k)")
needs_festival = pytest.mark.skipif(FESTIVAL is None, reason=NO_FESTIVAL)
VOICE = {v.name: v for v in FESTIVAL_VOICES}


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
    item = next(p for p in plan if p.split == "test")
    assert synth[:7] == [item.utt_id, "espeak-ng", item.voice.espeak_name, f"rate={item.rate}",
                         f"pitch={item.pitch}", f"amplitude={item.amplitude}", f"peak_db={item.peak_db:g}"]


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


def _digest(plan) -> str:
    fields = [(p.utt_id, p.split, p.voice.espeak_name, p.text, p.rate, p.pitch, p.amplitude, p.peak_db)
              for p in plan]
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


def test_espeak_plans_are_unchanged_by_festival_support():
    assert _digest(plan_corpus(400, 20, seed=5)) == "18410d304acbc7f4"  # the digest before festival existed


def test_festival_sentences_are_seeded_and_in_each_voices_script():
    assert {v.language for v in FESTIVAL_VOICES} == set(LANGUAGES) | {"en"}
    scripts = {"ru": "[а-яё]", "hi": "[\u0900-\u097f]", "mr": "[\u0900-\u097f]", "te": "[\u0c00-\u0c7f]"}
    for language in LANGUAGES:
        sentences = make_sentences_in(language, 300, seed=1)
        assert len(set(sentences)) == 300 and sentences == make_sentences_in(language, 300, seed=1)
        assert len(set(sentences) & set(make_sentences_in(language, 300, seed=2))) < 30
        words = [len(s.split()) for s in sentences]
        assert 4 <= min(words) and max(words) <= 16 and all(s[-1] in ".?!।" for s in sentences)
        pattern = scripts.get(language, "^[A-Za-z'.,?! \u00c0-\u017e-]+$")
        assert all(re.search(pattern, s.lower()) for s in sentences), language
        for voice in (v for v in FESTIVAL_VOICES if v.language == language):
            assert all(s.encode(voice.encoding) for s in sentences)  # the voice's own encoding holds them
    czech = " ".join(make_sentences_in("cs", 1000, seed=0))
    assert not re.search(r"\b(Eva|Jana|Marie|Hana) (koupil|našel|viděl|opravil) ", czech)  # agreement
    assert not re.search(r"\b(Jan|Petr|Pavel|Karel) (koupila|našla|viděla|opravila) ", czech)
    assert re.search(r"\b(Eva|Jana|Marie|Lucie|Tereza|Petra|Hana|Klára) \w+la ", czech)
    russian = " ".join(make_sentences_in("ru", 1000, seed=0))
    assert not re.search(r"\b(Анна|Мария|Ольга) (купил|нашёл|увидел) ", russian)


def test_plan_with_festival_keeps_speakers_apart_and_languages_trained():
    plan = plan_corpus(600, 30, seed=0, festival_voices=FESTIVAL_VOICES)
    assert plan == plan_corpus(600, 30, seed=0, festival_voices=FESTIVAL_VOICES)
    split_of = {}
    for item in plan:
        assert split_of.setdefault(item.voice.speaker, item.split) == item.split  # never across splits
    per_speaker = Counter(p.voice.speaker for p in plan)
    assert len(per_speaker) == 30 + 12 and max(per_speaker.values()) - min(per_speaker.values()) <= 1
    festival = [p for p in plan if isinstance(p, FestivalUtterance)]
    held = {s: sp for s, sp in split_of.items() if s.startswith("fest_")}
    assert sorted(held.values()) == ["dev"] + ["test"] + ["train"] * 10
    assert held["fest_ked"] == held["fest_nsk"] == held["fest_nsh"] == held["fest_ona"] == "train"
    assert {p.voice.language for p in festival if p.split == "train"} == set(LANGUAGES) | {"en"}
    assert {p.voice.name for p in festival if p.voice.speaker == "fest_nsk"} == {
        "hindi_NSK_diphone", "marathi_NSK_diphone", "telugu_NSK_diphone"}
    assert all(re.search("[а-я]", p.text.lower()) for p in festival if p.voice.language == "ru")
    assert len({p.text for p in plan}) == 600
    assert all(0.85 <= p.stretch <= 1.2 and -12 <= p.peak_db <= -1 for p in festival)
    assert all(p.stretch == 1.0 for p in festival if p.voice.engine == "clunits")
    assert len({p.stretch for p in festival}) > 10
    choices = set()
    for seed in range(8):
        split = {p.voice.speaker: p.split for p in plan_corpus(60, 0, seed, festival_voices=FESTIVAL_VOICES)}
        held_out = tuple(sorted((sp, s) for s, sp in split.items() if sp != "train"))
        assert {s for _, s in held_out} <= {f"fest_{p}" for p in "lp pc dita krb machac ph lj mv".split()}
        languages = {sp: {v.language for v in FESTIVAL_VOICES if v.speaker == s} for sp, s in held_out}
        assert languages["dev"] != languages["test"]  # held-out languages differ where they can
        choices.add(held_out)
    assert len(choices) > 2
    three = [VOICE["ked_diphone"], VOICE["upc_ca_ona_hts"], VOICE["msu_ru_nsh_clunits"]]
    with pytest.raises(ValueError, match="cannot hold out 1 dev and 1 test festival speakers"):
        plan_corpus(30, 0, seed=0, festival_voices=three)


def _fake_festival(folder: Path, voices: str) -> Path:
    """A `festival` on PATH whose voice.list is `voices`."""
    script = folder / "festival"
    script.write_text(f"#!/bin/sh\necho '({voices})'\n")
    script.chmod(0o755)
    return script


def test_held_out_festival_speakers_are_refused(tmp_path):
    for name in EXCLUDED_VOICES + ("kal_diphone", "cmu_us_slt_arctic_hts", "cmu_us_kal16_diphone"):
        with pytest.raises(ValueError, match="held out"):
            check_not_excluded(name)
        with pytest.raises(ValueError, match="held out"):
            choose_voices([name], list(FESTIVAL_VOICES))
    assert not [v for v in FESTIVAL_VOICES if v.person in ("kal", "slt") or re.search("kal|slt", v.name)]
    kal = dataclasses.replace(VOICE["ked_diphone"], name="kal_diphone", person="kal")
    with pytest.raises(ValueError, match="held out"):
        festival_synthesize(kal, "Hello.", tmp_path / "kal.wav", 16000, festival=str(tmp_path / "none"))
    festival = _fake_festival(tmp_path, "kal_diphone cmu_us_slt_arctic_hts ked_diphone")
    assert available_festival_voices(str(festival)) == [VOICE["ked_diphone"]]
    with pytest.raises(ValueError, match=r"^festival voice czech_ph is not installed \(apt-get install -y "
                       r"festvox-czech-ph\)$"):
        choose_voices(["czech_ph"], [VOICE["ked_diphone"]])
    with pytest.raises(ValueError, match="unknown festival voice nobody"):
        choose_voices(["nobody"], [VOICE["ked_diphone"]])


def test_missing_festival_or_voice_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    tool = _tool()
    args = ["--out", str(tmp_path / "out"), "--num-utts", "4", "--festival-only"]
    assert tool.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install -y --no-install-recommends festival festvox-kdlpc16k" in err
    _fake_festival(tmp_path, "ked_diphone")
    for voices, message in (("czech_ph", "festival voice czech_ph is not installed (apt-get install -y "
                             "festvox-czech-ph)"), ("kal_diphone", "refused")):
        assert tool.main(args + ["--festival-voices", voices]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


def _wrapping_festival(folder: Path, loudness: float) -> Path:
    """A `festival` writing a 200 Hz tone of `loudness` x the residual gain, wrapped to int16 as LPC does."""
    script = folder / "festival"
    script.write_text(f"""#!{sys.executable}
import re, sys
import numpy as np, soundfile as sf
text = sys.stdin.buffer.read()
open({str(folder / 'stdin')!r}, 'ab').write(text)
gain = float(re.search(rb"[(][*] ([0-9.]+) [(]if [(]item.feat.present", text).group(1))
path = re.search(rb'utt.save.wave fcl_utt "(.*)" .riff', text).group(1).decode()
tone = {loudness} * gain * np.sin(2 * np.pi * 200 * np.arange(8000) / 16000)
sf.write(path, ((np.round(tone * 32768) + 32768) % 65536 - 32768).astype(np.int16), 16000)
""")
    script.chmod(0o755)
    return script


def test_festival_overflow_is_retried_quieter_or_refused(tmp_path):
    voice = VOICE["czech_ph"]
    festival = str(_wrapping_festival(tmp_path, loudness=2.4))  # wraps at gain 0.5, clean at 0.25
    wav = festival_synthesize(voice, "Starý rybář šel.", tmp_path / "a.wav", 16000, 1.1, -6.0, festival)
    sent = (tmp_path / "stdin").read_bytes()
    assert sent.count(b"(voice_czech_ph)") == 2 and "Starý rybář".encode("iso-8859-2") in sent
    assert b"(* 1.1 (if d d 1.0))" in sent  # the duration stretch
    assert (wav[:, 1:] - wav[:, :-1]).abs().max() < 0.1  # the clean tone, not the wrapped one
    assert 20 * math.log10(wav.abs().max().item()) == pytest.approx(-6.0, abs=0.01)
    festival = str(_wrapping_festival(tmp_path, loudness=40.0))  # wraps at every gain
    with pytest.raises(RuntimeError, match="overflowed its int16 output"):
        festival_synthesize(voice, "Starý rybář.", tmp_path / "b.wav", 16000, festival=festival)
    assert not (tmp_path / "b.wav").exists() and not list(tmp_path.glob(".*.wav"))


def _installed(*names: str) -> list:
    have = [v.name for v in available_festival_voices(FESTIVAL)] if FESTIVAL else []
    if any(name not in have for name in names):
        pytest.skip(f"festival voices {', '.join(names)} are not all installed")
    return [VOICE[name] for name in names]


@needs_festival
def test_festival_speech_is_speech_like(tmp_path):
    (ked,) = _installed("ked_diphone")
    text = "The little boat sailed across the quiet river."
    plan = [FestivalUtterance("fest_ked-000000", "train", ked, text, 0.9, -3.0),
            FestivalUtterance("fest_ked-000001", "train", ked, text, 1.2, -6.0)]
    hours = synthesize_corpus(tmp_path, plan, sample_rate=16000, jobs=2, espeak=None, festival=FESTIVAL)
    seconds = []
    for item in plan:
        wav, sr = load_audio(tmp_path / "wavs/fest_ked" / f"{item.utt_id}.wav")
        assert sr == 16000 and wav.shape[0] == 1
        seconds.append(wav.shape[-1] / sr)
        assert 1.0 < seconds[-1] < 8.0
        assert item.peak_db - 26 < rms_db(wav) < item.peak_db - 10  # a speech-like crest factor
        assert 20 * math.log10(wav.abs().max().item()) == pytest.approx(item.peak_db, abs=0.1)
        frames = wav[0, : wav.shape[-1] // 320 * 320].reshape(-1, 320).square().mean(1)  # 20 ms frames
        levels = 10 * frames.clamp_min(1e-10).log10()
        assert levels.quantile(0.9) - levels.quantile(0.2) > 20  # syllables and pauses, not a drone
        spectrum = torch.fft.rfft(wav[0]).abs().square()
        assert spectrum[: len(spectrum) // 2].sum() > 0.9 * spectrum.sum()  # most energy below 4 kHz
    assert 1.2 < seconds[1] / seconds[0] < 1.45  # the duration stretch applies (1.2 / 0.9 = 1.33)
    assert sum(hours.values()) == pytest.approx(sum(seconds) / 3600)
    assert validate_data_dir(tmp_path / "data/train") == []
    assert (tmp_path / "data/train/utt2synth").read_text().splitlines()[0] == (
        "fest_ked-000000 festival ked_diphone language=en stretch=0.9 peak_db=-3")
    festival_synthesize(ked, text, tmp_path / "again.wav", 16000, 0.9, -3.0, FESTIVAL)
    first = tmp_path / "wavs/fest_ked/fest_ked-000000.wav"
    assert (tmp_path / "again.wav").read_bytes() == first.read_bytes()  # festival is deterministic


@needs_festival
def test_festival_only_corpus_from_the_tool(tmp_path, capsys):
    _installed("lp_diphone", "pc_diphone", "czech_dita", "czech_krb")
    args = ["--out", str(tmp_path), "--num-utts", "4", "--festival-only", "--seed", "1", "--jobs", "2",
            "--festival-voices", "lp_diphone,pc_diphone,czech_dita,czech_krb"]
    assert _tool().main(args) == 0
    data = {s: read_data_dir(tmp_path / "data" / s) for s in ("train", "dev", "test")}
    assert [len(d.speakers()) for d in data.values()] == [2, 1, 1]
    assert all(validate_data_dir(tmp_path / "data" / s) == [] for s in data)
    synth = {s: (tmp_path / "data" / s / "utt2synth").read_text().splitlines() for s in data}
    assert {line.split()[3] for line in synth["train"]} == {"language=it", "language=cs"}  # held-out ones too
    out = capsys.readouterr().out.splitlines()
    for split, d in data.items():  # the summary names each split's speakers
        assert [line for line in out if f"/data/{split}:" in line][0].endswith(" ".join(d.speakers()))


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
