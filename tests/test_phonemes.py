"""Phonemes by espeak-ng: known IPA of English words, batching equals one call per text, languages from
utt2synth, the vocabulary's JSON round trip and unknown symbols, one-line errors."""

import json
import shutil

import pytest
import torch

from funcodec_lite.data import phonemes as ph
from funcodec_lite.data.kaldi import Utterance, write_data_dir
from funcodec_lite.data.phonemes import (
    SPECIAL_TOKENS,
    WORD_BOUNDARY,
    PhonemeVocabulary,
    PhonemizerError,
    VocabularyError,
    language_of,
    parse_ipa_line,
    phonemize,
    phonemize_data_dir,
    read_phonemes,
    split_clauses,
    write_phonemes,
)

espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _words(tokens: list[str]) -> list[str]:
    """Tokens joined per word, stress marks and punctuation dropped: 'k ˈ æ t' -> 'kæt'."""
    words, current = [], ""
    for token in tokens + [WORD_BOUNDARY]:
        if token == WORD_BOUNDARY:
            words.append(current)
            current = ""
        elif token not in ph.STRESS_MARKS + ph.PUNCTUATION:
            current += token
    return words


@espeak
def test_english_words_have_their_ipa_phones():
    us, gb = phonemize(["The cat sat on a mat.", "The cat sat on a mat."], ["en-us", "en-gb"])
    assert us[:9] == ["ð", "ə", WORD_BOUNDARY, "k", "ˈ", "æ", "t", WORD_BOUNDARY, "s"]
    assert us[-1] == "." and us.count(".") == 1
    assert "kæt" in _words(us) and "mæt" in _words(us)
    assert "kat" in _words(gb)  # British English: the TRAP vowel is /a/
    juice = phonemize(["I chose orange juice"], "en-us")[0]
    # one symbol per phone: affricates and diphthongs are single tokens, length marks stay on their vowel
    assert {"tʃ", "dʒ", "aɪ", "oʊ", "uː"} <= set(juice)
    assert _words(juice) == ["aɪ", "tʃoʊz", "ɔɹɪndʒ", "dʒuːs"]


@espeak
def test_stress_and_punctuation_are_tokens_or_left_out():
    with_all = phonemize(["Hello, world!"], "en-us")[0]
    assert with_all == ["h", "ə", "l", "ˈ", "oʊ", ",", WORD_BOUNDARY, "w", "ˈ", "ɜː", "l", "d", "!"]
    bare = phonemize(["Hello, world!"], "en-us", stress=False, punctuation=False)[0]
    assert bare == ["h", "ə", "l", "oʊ", WORD_BOUNDARY, "w", "ɜː", "l", "d"]


@espeak
def test_one_batch_equals_one_call_per_text(monkeypatch):
    texts = ["The cat sat on a mat.", "", "...", 'He said "yes" (twice) - really?',
             " ".join(["elephant"] * 70) + ".", "Why, then, did Alice buy 42 apples?"]
    calls = []
    run = ph._run
    monkeypatch.setattr(ph, "_run", lambda *args: calls.append(args) or run(*args))
    batched = phonemize(texts, "en-us")
    assert len(calls) == 1  # one espeak-ng process for all texts
    assert batched == [phonemize([text], "en-us")[0] for text in texts]
    assert batched[1] == [] and batched[2] == []
    assert _words(batched[4]) == ["ɛlɪfənt"] * 70  # cut into pieces espeak-ng reads whole
    calls.clear()
    # espeak-ng breaks 'a…b' (no space) into two lines itself: the batch is redone one line per process
    tricky = phonemize(["a…b c", "The cat."], "en-us")
    assert len(calls) == 3 and tricky == [phonemize(["a…b c"], "en-us")[0], phonemize(["The cat."])[0]]
    assert tricky[0][:4] == ["ˈ", "eɪ", WORD_BOUNDARY, "b"]  # the two lines joined


@espeak
def test_each_utterance_in_its_voice_language(tmp_path):
    data = tmp_path / "data"
    utts = [Utterance("s1-000001", str(tmp_path / "a.wav"), "s1"),
            Utterance("s2-000002", str(tmp_path / "b.wav"), "s2"),
            Utterance("s3-000003", str(tmp_path / "c.wav"), "s3")]
    write_data_dir(data, utts, {"s1-000001": "cat", "s2-000002": "cat", "s3-000003": "Počítač."})
    (data / "utt2synth").write_text(
        "s1-000001 espeak-ng en-gb+f5 rate=150 pitch=50 amplitude=50 peak_db=-3\n"
        "s3-000003 festival czech_ph language=cs stretch=1 peak_db=-3\n", encoding="utf-8")
    tokens = phonemize_data_dir(data, language="en-us")
    assert _words(tokens["s1-000001"]) == ["kat"]  # en-gb from utt2synth
    assert _words(tokens["s2-000002"]) == ["kæt"]  # not listed: the default
    assert tokens["s3-000003"] == phonemize(["Počítač."], "cs")[0] != phonemize(["Počítač."], "en-us")[0]
    write_phonemes(data / "phonemes", tokens)
    lines = (data / "phonemes").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "s1-000001 k ˈ a t" and len(lines) == 3
    assert read_phonemes(data / "phonemes") == tokens


def test_language_of_utt2synth_fields():
    assert language_of("espeak-ng en-gb-scotland+m3 rate=150 pitch=40 amplitude=50 peak_db=-3") == \
        "en-gb-scotland"
    assert language_of("festival ked_diphone language=en stretch=1.1 peak_db=-6") == "en-us"
    assert language_of("festival hindi_NSK_diphone language=hi stretch=1 peak_db=-6") == "hi"
    assert language_of("", default="fi") == "fi"


def test_parse_ipa_line_drops_language_switches_and_empty_phones():
    line = "(en)_h_ə_l_ˈəʊ w_ˈɜː__l_d k_ə_(ru) _æ_n_d"
    assert parse_ipa_line(line) == [["h", "ə", "l", "ˈ", "əʊ"], ["w", "ˈ", "ɜː", "l", "d"], ["k", "ə"],
                                    ["æ", "n", "d"]]
    assert parse_ipa_line("t͡ʃ_ˈa", stress=False) == [["tʃ", "a"]]
    assert split_clauses("Hi, you… 3.5 km! ok") == [("Hi", ","), ("you", "."), ("3.5 km", "!"), ("ok", "")]


def test_missing_espeak_and_unknown_voice_are_one_line_errors(monkeypatch):
    monkeypatch.setattr(ph.shutil, "which", lambda name: None)
    with pytest.raises(PhonemizerError, match="espeak-ng not found on PATH") as err:
        phonemize(["hello"])
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with pytest.raises(PhonemizerError, match="espeak-ng -v xx-nowhere failed") as err:
        phonemize(["hello"], "xx-nowhere")
    assert "\n" not in str(err.value)


def test_vocabulary_json_round_trip_and_unknown_symbols(tmp_path):
    train = [["k", "ˈ", "æ", "t", WORD_BOUNDARY, "s", "æ", "t"], ["ð", "ə", "."]]
    vocab = PhonemeVocabulary.build(train)
    assert vocab.symbols[:5] == list(SPECIAL_TOKENS)
    assert vocab.symbols[5:] == sorted({"k", "ˈ", "æ", "t", "s", "ð", "ə", "."})
    assert len(vocab) == 13 and (vocab.pad_id, vocab.unk_id, vocab.word_boundary_id) == (0, 3, 4)
    ids = vocab.encode(train[0], bos=True, eos=True)
    assert ids.dtype == torch.long and ids.shape == (10,)
    assert ids[0].item() == vocab.bos_id and ids[-1].item() == vocab.eos_id and ids[5].item() == 4
    assert vocab.decode(ids) == train[0]
    unknown = vocab.encode(["k", "ʒ", "æ"])
    assert unknown.tolist() == [vocab.symbols.index("k"), 3, vocab.symbols.index("æ")]
    assert vocab.decode(unknown) == ["k", "<unk>", "æ"]
    vocab.save(tmp_path / "vocab.json")
    content = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert content["format"] == "funcodec_lite.phoneme_vocabulary" and content["symbols"] == vocab.symbols
    assert PhonemeVocabulary.load(tmp_path / "vocab.json") == vocab
    assert PhonemeVocabulary.build(train, min_count=2).symbols[5:] == ["t", "æ"]


def test_vocabulary_load_refuses_other_files_in_one_line(tmp_path):
    (tmp_path / "pickle.json").write_bytes(b"\x80\x04\x95")
    (tmp_path / "other.json").write_text('{"symbols": ["a"]}')
    (tmp_path / "dup.json").write_text(json.dumps({"format": "funcodec_lite.phoneme_vocabulary",
                                                   "version": 1, "symbols": [*SPECIAL_TOKENS, "a", "a"]}))
    for name, problem in (("pickle.json", "not a JSON file"), ("other.json", "not a phoneme vocabulary"),
                          ("dup.json", "distinct"), ("missing.json", "cannot read")):
        with pytest.raises(VocabularyError, match=problem) as err:
            PhonemeVocabulary.load(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
