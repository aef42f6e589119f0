"""Phonemes of text by espeak-ng (IPA, one symbol per phone), each utterance's language, the vocabulary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from funcodec_lite.data.kaldi import read_data_dir
from funcodec_lite.utils.atomic import atomic_path

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
WORD_BOUNDARY = "|"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, WORD_BOUNDARY)  # ids 0..4 of every vocabulary
STRESS_MARKS = "ˈˌ"  # primary, secondary: tokens of their own, before the stressed vowel
PUNCTUATION = ".,;:!?"  # clause punctuation kept as tokens
DEFAULT_LANGUAGE = "en-us"
# espeak-ng voice for the language of each festival voice (funcodec_lite.data.festival.FESTIVAL_VOICES);
# ked, the one English festival speaker, is American.
FESTIVAL_LANGUAGES = {"en": "en-us", "it": "it", "cs": "cs", "ru": "ru", "fi": "fi", "ca": "ca", "hi": "hi",
                      "mr": "mr", "te": "te"}
INSTALL_HINT = ("espeak-ng not found on PATH; install it with 'apt-get install -y espeak-ng' (Debian/Ubuntu) "
                "or 'brew install espeak-ng' (macOS)")
VOCABULARY_FORMAT = "funcodec_lite.phoneme_vocabulary"
VOCABULARY_VERSION = 1

_SEP = "_"  # phone separator asked of espeak-ng (--sep); words come separated by spaces
_CLAUSE_END = re.compile(r"([.,;:!?…。，、！？；：।॥]+)(?=\s|$)")
_TO_ASCII = str.maketrans({"…": ".", "。": ".", "।": ".", "॥": ".", "，": ",", "、": ",",
                           "！": "!", "？": "?", "；": ";", "：": ":"})
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[A-Za-z0-9-]+)?\)")  # espeak-ng's '(en)' ... '(hi)'
_TIES = str.maketrans("", "", "\u0361\u035c\u200d\u200c")
# espeak-ng splits input longer than ~180 words, and reads stdin in 1000-byte pieces: stay well below both
_MAX_WORDS, _MAX_BYTES = 60, 500


class PhonemizerError(RuntimeError):
    """espeak-ng is missing, refuses a voice or fails; the message is one line."""


def find_espeak(name: str = "espeak-ng") -> str | None:
    """Path of the espeak-ng executable, or None when it is not installed."""
    return shutil.which(name)


def split_clauses(text: str) -> list[tuple[str, str]]:
    """Splits text at clause punctuation followed by a space or the end: [(clause, mark)], mark in
    `PUNCTUATION` or ''. Long clauses are cut at word boundaries into pieces espeak-ng reads whole."""
    pieces, start = [], 0
    for match in _CLAUSE_END.finditer(text):
        pieces.append((text[start : match.start()], match.group(1).translate(_TO_ASCII)[-1]))
        start = match.end()
    pieces.append((text[start:], ""))
    clauses = []
    for clause, mark in pieces:
        words = clause.split()
        chunk: list[str] = []
        for word in words:
            if chunk and (len(chunk) >= _MAX_WORDS or len(" ".join(chunk + [word]).encode()) > _MAX_BYTES):
                clauses.append((" ".join(chunk), ""))
                chunk = []
            chunk.append(word)
        if chunk or mark:
            clauses.append((" ".join(chunk), mark))
    return clauses


def parse_ipa_line(line: str, stress: bool = True) -> list[list[str]]:
    """One line of `espeak-ng --ipa --sep=_` output -> the phones of each word (stress marks split off).

    Language-switch marks such as '(en)' and tie characters are removed; words without phones are dropped.
    """
    words = []
    for word in _LANGUAGE_SWITCH.sub("", line).translate(_TIES).split():
        phones = []
        for phone in word.split(_SEP):
            marks = [c for c in phone if c in STRESS_MARKS]
            base = "".join(c for c in phone if c not in STRESS_MARKS)
            phones.extend(marks if stress else [])
            if base:
                phones.append(base)
        if any(p not in STRESS_MARKS for p in phones):
            words.append(phones)
    return words


def _espeak_command(espeak: str, voice: str) -> list[str]:
    return [espeak, "-q", "--ipa", f"--sep={_SEP}", "-v", voice]


def _run(command: list[str], text: str, voice: str) -> list[str]:
    try:
        done = subprocess.run(command, input=text, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=600)
    except OSError as err:
        raise PhonemizerError(f"cannot run {command[0]}: {err.strerror or err}") from err
    if done.returncode != 0:
        problem = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise PhonemizerError(f"espeak-ng -v {voice} failed: {problem}")
    return done.stdout.splitlines()


def run_espeak(lines: Sequence[str], voice: str, espeak: str | None = None) -> list[str]:
    """IPA output of espeak-ng for each line (phones joined by '_', words by spaces), one process in all.

    espeak-ng reads standard input line by line and answers each line with one line unless it breaks the
    line into clauses (punctuation, length); `split_clauses` avoids that. Should the line counts still
    differ, each line is redone in a process of its own and its output lines are joined.

    Raises:
        PhonemizerError: espeak-ng is missing, does not know `voice`, or fails.
    """
    exe = espeak or find_espeak()
    if exe is None:
        raise PhonemizerError(INSTALL_HINT)
    lines = [" ".join(line.split()) for line in lines]
    if not lines:
        return []
    command = _espeak_command(exe, voice)
    out = _run(command, "".join(line + "\n" for line in lines), voice)
    if len(out) == len(lines):
        return out
    return [" ".join(_run(command + [line], "", voice)) if line else "" for line in lines]


def phonemize(texts: Sequence[str], languages: str | Sequence[str] = DEFAULT_LANGUAGE, *, stress: bool = True,
              punctuation: bool = True, espeak: str | None = None) -> list[list[str]]:
    """Phoneme tokens of each text: IPA phones, stress marks, `WORD_BOUNDARY` between words, clause marks.

    One espeak-ng process per language. espeak-ng joins unstressed function words to their neighbour
    ('on the' -> 'ɔnðə'), so such pairs have no boundary between them.

    Args:
        texts: the sentences.
        languages: one espeak-ng voice for all texts, or one per text (e.g. 'en-gb', 'en-us', 'cs').
        stress: keep the stress marks ˈ and ˌ (as tokens of their own).
        punctuation: keep clause punctuation (. , ; : ! ?) as tokens.
        espeak: the espeak-ng executable (default: found on PATH).

    Returns:
        list[list[str]]: the tokens of each text, e.g. 'The cat.' -> ['ð', 'ə', '|', 'k', 'ˈ', 'æ', 't', '.'].

    Raises:
        PhonemizerError: espeak-ng is missing or fails (one-line message).
    """
    voices = [languages] * len(texts) if isinstance(languages, str) else list(languages)
    if len(voices) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(voices)} languages")
    clauses = [split_clauses(text) for text in texts]
    ipa: dict[tuple[int, int], str] = {}
    for voice in sorted(set(voices)):
        keys = [(i, j) for i, v in enumerate(voices) if v == voice for j in range(len(clauses[i]))]
        lines = run_espeak([clauses[i][j][0] for i, j in keys], voice, espeak)
        ipa.update(zip(keys, lines))
    result = []
    for i, pieces in enumerate(clauses):
        tokens: list[str] = []
        for j, (_, mark) in enumerate(pieces):
            for word in parse_ipa_line(ipa[i, j], stress):
                if tokens and tokens[-1] != WORD_BOUNDARY:
                    tokens.append(WORD_BOUNDARY)
                tokens.extend(word)
            if mark and punctuation and tokens:
                tokens.append(mark)
        result.append(tokens)
    return result


def language_of(synth: str, default: str = DEFAULT_LANGUAGE) -> str:
    """The espeak-ng voice for an utterance from its utt2synth fields (after the utterance id).

    'espeak-ng en-gb+f5 rate=...' -> 'en-gb' (the variant does not change phonemes); 'festival ked_diphone
    language=en ...' -> `FESTIVAL_LANGUAGES['en']`; anything else -> `default`.
    """
    fields = synth.split()
    if len(fields) >= 2 and fields[0] == "espeak-ng":
        return fields[1].split("+")[0]
    if fields and fields[0] == "festival":
        for value in fields[1:]:
            if value.startswith("language="):
                language = value.split("=", 1)[1]
                return FESTIVAL_LANGUAGES.get(language, language)
    return default


def read_languages(data_dir: str | os.PathLike, default: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """espeak-ng voice of each utterance listed in `data_dir/utt2synth` (none without the file)."""
    path = Path(data_dir) / "utt2synth"
    if not path.is_file():
        return {}
    languages = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if parts:
            languages[parts[0]] = language_of(parts[1] if len(parts) > 1 else "", default)
    return languages


def phonemize_data_dir(data_dir: str | os.PathLike, language: str = DEFAULT_LANGUAGE, *, stress: bool = True,
                       punctuation: bool = True, espeak: str | None = None) -> dict[str, list[str]]:
    """Phoneme tokens of every utterance of a data dir's `text`, each in its voice's language (utt2synth;
    `language` for utterances it does not list).

    Raises:
        DataDirError: a broken data dir. ValueError: utterances without text. PhonemizerError: espeak-ng.
    """
    data = read_data_dir(data_dir)
    missing = [u.utt_id for u in data.utterances if u.utt_id not in data.text]
    if missing:
        raise ValueError(f"{data_dir}: {len(missing)} utterance(s) have no transcript in 'text' "
                         f"(first: {missing[0]})")
    ids = [u.utt_id for u in data.utterances]
    languages = read_languages(data_dir, language)
    tokens = phonemize([data.text[u] for u in ids], [languages.get(u, language) for u in ids], stress=stress,
                       punctuation=punctuation, espeak=espeak)
    return dict(zip(ids, tokens))


def write_phonemes(path: str | os.PathLike, phonemes: Mapping[str, Sequence[str]]) -> None:
    """Writes 'utt-id tok tok ...' lines sorted by id, atomically (tokens contain no whitespace)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(" ".join([utt, *phonemes[utt]]) + "\n" for utt in sorted(phonemes)),
                       encoding="utf-8")


def read_phonemes(path: str | os.PathLike) -> dict[str, list[str]]:
    """Reads a file of `write_phonemes`: {utt-id: tokens}."""
    result = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts:
            result[parts[0]] = parts[1:]
    return result


class VocabularyError(ValueError):
    """A vocabulary file that cannot be used; the message names the file and the problem."""


class PhonemeVocabulary:
    """Phoneme tokens <-> ids. Ids 0..4 are `SPECIAL_TOKENS` (pad, bos, eos, unk, word boundary).

    Args:
        symbols: every token in id order, starting with `SPECIAL_TOKENS`.
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        symbols = list(symbols)
        if tuple(symbols[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabularyError(f"symbols must start with {list(SPECIAL_TOKENS)}")
        if len(set(symbols)) != len(symbols):
            raise VocabularyError("symbols must be distinct")
        bad = [s for s in symbols if not isinstance(s, str) or not s or len(s.split()) != 1 or s != s.strip()]
        if bad:
            raise VocabularyError(f"symbols must be non-empty strings without whitespace, got {bad[0]!r}")
        self.symbols = symbols
        self._ids = {s: i for i, s in enumerate(symbols)}

    pad_id, bos_id, eos_id, unk_id, word_boundary_id = range(len(SPECIAL_TOKENS))

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 1) -> PhonemeVocabulary:
        """The specials, then every token seen at least `min_count` times, in code point order."""
        counts = Counter(token for tokens in sequences for token in tokens)
        return cls([*SPECIAL_TOKENS, *sorted(t for t, n in counts.items()
                                             if n >= min_count and t not in SPECIAL_TOKENS)])

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhonemeVocabulary) and self.symbols == other.symbols

    def encode(self, tokens: Sequence[str], bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Token ids, long [P] (+1 with bos, +1 with eos); tokens not in the vocabulary map to unk."""
        ids = [self._ids.get(t, self.unk_id) for t in tokens]
        return torch.tensor([self.bos_id] * bos + ids + [self.eos_id] * eos, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int], keep_special: bool = False) -> list[str]:
        """Tokens of ids [P]; pad, bos and eos are dropped unless `keep_special` (unk and | stay)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if any(not 0 <= i < len(self.symbols) for i in values):
            raise ValueError(f"ids must be in 0..{len(self.symbols) - 1}")
        dropped = () if keep_special else (self.pad_id, self.bos_id, self.eos_id)
        return [self.symbols[i] for i in values if i not in dropped]

    def save(self, path: str | os.PathLike) -> None:
        """Writes JSON: {"format", "version", "specials", "symbols"} (atomically)."""
        names = ("pad", "bos", "eos", "unk", "word_boundary")
        content = {"format": VOCABULARY_FORMAT, "version": VOCABULARY_VERSION,
                   "specials": dict(zip(names, SPECIAL_TOKENS)), "symbols": self.symbols}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> PhonemeVocabulary:
        """Reads a file of `save`; VocabularyError (one line naming the file) for anything else."""
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise VocabularyError(f"{path}: cannot read ({err.strerror or err})") from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise VocabularyError(f"{path}: not a JSON file ({err})") from err
        if not isinstance(content, dict) or content.get("format") != VOCABULARY_FORMAT:
            raise VocabularyError(f"{path}: not a phoneme vocabulary (format must be {VOCABULARY_FORMAT!r})")
        if content.get("version") != VOCABULARY_VERSION:
            raise VocabularyError(f"{path}: version {content.get('version')} is not supported "
                                  f"(this funcodec_lite reads version {VOCABULARY_VERSION})")
        symbols = content.get("symbols")
        if not isinstance(symbols, list):
            raise VocabularyError(f"{path}: 'symbols' must be a list")
        try:
            return cls(symbols)
        except VocabularyError as err:
            raise VocabularyError(f"{path}: {err}") from err
