"""Kaldi-style tables and data directories: reading, writing and validating wav.scp, segments, utt2spk, text
and one-value tables such as utt2class; the package's one reader of Kaldi tables."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from funcodec_lite.utils.atomic import atomic_path

_ARCHIVE = re.compile(r"\.(ark|scp):\d+$")
_MAX_LISTED = 10


class DataDirError(ValueError):
    """A data directory that cannot be used; `problems` lists each one as 'file:line: what is wrong'."""

    def __init__(self, path: str | os.PathLike, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        shown = problems[:_MAX_LISTED]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{self.path}: {len(problems)} problem(s)\n  " + "\n  ".join(shown) + more)


@dataclass(frozen=True)
class Utterance:
    """One entry of a data directory.

    Args:
        utt_id: utterance id (unique, no whitespace).
        path: audio file; absolute once read by `read_data_dir`.
        speaker: speaker id (the utterance id itself when the directory has no utt2spk).
        start: segment start in seconds within the recording.
        end: segment end in seconds; None reads to the end of the recording.
        recording: recording id of a `segments` entry (None when the utterance is the whole file).
    """

    utt_id: str
    path: str
    speaker: str
    start: float = 0.0
    end: float | None = None
    recording: str | None = None


@dataclass
class DataDir:
    """The contents of a data directory, in utterance-id order."""

    path: Path
    utterances: list[Utterance]
    text: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.utterances)

    def speakers(self) -> list[str]:
        """Sorted distinct speaker ids."""
        return sorted({u.speaker for u in self.utterances})


@dataclass(frozen=True)
class _Entry:
    line: int
    key: str
    value: str


class _Report:
    """Collects problems as errors (the directory is unusable) and strict ones (Kaldi would reject it)."""

    _FILES = ("wav.scp", "segments", "utt2spk", "text")

    def __init__(self):
        self._errors: list[tuple[str, int, str]] = []
        self._strict: list[tuple[str, int, str]] = []
        self.scp_lines: dict[str, int] = {}

    def error(self, name: str, line: int | None, problem: str) -> None:
        self._errors.append((name, line or 0, self._where(name, line) + problem))

    def warn(self, name: str, line: int | None, problem: str) -> None:
        self._strict.append((name, line or 0, self._where(name, line) + problem))

    @property
    def errors(self) -> list[str]:
        return self._sorted(self._errors)

    @property
    def strict(self) -> list[str]:
        return self._sorted(self._strict)

    def _sorted(self, problems: list[tuple[str, int, str]]) -> list[str]:
        rank = {name: i for i, name in enumerate(self._FILES)}
        return [text for *_, text in sorted(problems, key=lambda p: (rank.get(p[0], -1), p[1]))]

    @staticmethod
    def _where(name: str, line: int | None) -> str:
        return f"{name}:{line}: " if line is not None else f"{name}: "


def _read_table(directory: Path, name: str, report: _Report) -> list[_Entry] | None:
    """Reads `key value...` lines of `directory/name`; None when the file does not exist."""
    path = directory / name
    if not path.is_file():
        return None
    entries: list[_Entry] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            parts = line.split(maxsplit=1)
            if not parts:
                report.error(name, number, "empty line")
                continue
            key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            if key in first_line:
                report.error(name, number, f"duplicate id {key!r} (first on line {first_line[key]})")
                continue
            if entries and key < entries[-1].key:
                report.warn(name, number, f"not sorted: {key!r} after {entries[-1].key!r} "
                            "(sort with LC_ALL=C sort)")
            first_line[key] = number
            entries.append(_Entry(number, key, value))
    return entries


def _audio_path(value: str, root: Path, name: str, line: int, report: _Report) -> str | None:
    if not value:
        report.error(name, line, "expected 'id path', found an id only")
        return None
    if value.endswith("|"):
        report.error(name, line, f"Kaldi pipe commands are not supported ({value!r}); "
                     "write the audio to files and list their paths")
        return None
    if _ARCHIVE.search(value):
        report.error(name, line, f"Kaldi archive offsets are not supported ({value!r}); list audio files")
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else root / path)


def _read_segments(entries: list[_Entry], recordings: dict[str, str], report: _Report) -> list[Utterance]:
    utterances = []
    for entry in entries:
        fields = [entry.key, *entry.value.split()]
        if len(fields) != 4:
            report.error("segments", entry.line,
                         f"expected 'utt-id rec-id start end', got {len(fields)} fields")
            continue
        utt, rec, start_text, end_text = fields
        try:
            start, end = float(start_text), float(end_text)
        except ValueError:
            report.error("segments", entry.line,
                         f"start and end must be numbers, got {start_text!r} {end_text!r}")
            continue
        if rec not in recordings:
            report.error("segments", entry.line, f"recording {rec!r} is not in wav.scp")
            continue
        if start < 0 or (end != -1 and end <= start):
            report.error("segments", entry.line, f"bad times: start {start:g} s, end {end:g} s")
            continue
        end_or_none = None if end == -1 else end
        utterances.append(Utterance(utt, recordings[rec], utt, start, end_or_none, rec))
    return utterances


def _parse(directory: str | os.PathLike, root: str | os.PathLike | None) -> tuple[DataDir, _Report]:
    directory = Path(directory)
    report = _Report()
    if not directory.is_dir():
        report.error(str(directory), None, "no such directory")
        return DataDir(directory, []), report
    base = Path(root).absolute() if root is not None else Path.cwd()
    scp = _read_table(directory, "wav.scp", report)
    if scp is None:
        report.error("wav.scp", None, "missing (every data directory needs one)")
        return DataDir(directory, []), report
    recordings = {}
    for entry in scp:
        report.scp_lines[entry.key] = entry.line
        path = _audio_path(entry.value, base, "wav.scp", entry.line, report)
        if path is not None:
            recordings[entry.key] = path
    segments = _read_table(directory, "segments", report)
    if segments is not None:
        utterances = _read_segments(segments, recordings, report)
    else:
        utterances = [Utterance(key, path, key) for key, path in recordings.items()]
    utterances.sort(key=lambda u: u.utt_id)
    ids = {u.utt_id for u in utterances}
    utt2spk = _read_table(directory, "utt2spk", report)
    if utt2spk is not None:
        speakers = {}
        for entry in utt2spk:
            if not entry.value or len(entry.value.split()) != 1:
                report.error("utt2spk", entry.line, "expected 'utt-id speaker-id'")
            elif entry.key not in ids:
                report.warn("utt2spk", entry.line, f"utterance {entry.key!r} is not in the data directory")
            else:
                speakers[entry.key] = entry.value
        missing = sorted(ids - speakers.keys())
        if missing:
            report.warn("utt2spk", None, f"{len(missing)} utterance(s) have no speaker, e.g. {missing[0]!r}")
        utterances = [replace(u, speaker=speakers.get(u.utt_id, u.utt_id)) for u in utterances]
    text_entries = _read_table(directory, "text", report) or []
    text = {e.key: e.value for e in text_entries}
    for entry in text_entries:
        if entry.key not in ids:
            report.warn("text", entry.line, f"utterance {entry.key!r} is not in the data directory")
    return DataDir(directory, utterances, text), report


def read_data_dir(directory: str | os.PathLike, root: str | os.PathLike | None = None) -> DataDir:
    """Reads a data directory: wav.scp, and segments, utt2spk and text where present.

    Relative audio paths are resolved against `root` (default: the current directory, as Kaldi does) and
    stored as absolute paths, so worker processes do not depend on the directory they run in. Audio files
    are not opened here: a missing or corrupt file is the dataset's to skip (see `AudioDataset`).

    Args:
        directory: the data directory.
        root: directory that relative paths in wav.scp are relative to.

    Returns:
        DataDir: utterances sorted by id.

    Raises:
        DataDirError: a missing wav.scp, malformed or duplicate lines, pipe commands or archive offsets,
            or segments that name unknown recordings or have impossible times.
    """
    data, report = _parse(directory, root)
    if report.errors:
        raise DataDirError(directory, report.errors)
    return data


def validate_data_dir(
    directory: str | os.PathLike, root: str | os.PathLike | None = None, check_files: bool = True
) -> list[str]:
    """Checks a data directory the way Kaldi's validate_data_dir.sh would, and more.

    Args:
        directory: the data directory.
        root: directory that relative paths in wav.scp are relative to (default: current directory).
        check_files: also report audio files that do not exist.

    Returns:
        list[str]: every problem as 'file:line: what is wrong' (empty when the directory is valid):
            the errors `read_data_dir` raises for, plus unsorted ids, utt2spk or text entries that do not
            match the utterances, speaker ids that do not sort with the utterance ids (make the speaker id
            a prefix of the utterance id), and missing audio files.
    """
    data, report = _parse(directory, root)
    problems = report.errors + report.strict
    by_speaker = [u.speaker for u in data.utterances]
    if (Path(directory) / "utt2spk").is_file() and by_speaker != sorted(by_speaker):
        problems.append("utt2spk: speaker ids are not in utterance-id order; "
                        "make each utterance id start with its speaker id")
    if check_files:
        seen = set()
        for utt in data.utterances:
            key = utt.recording or utt.utt_id
            if key not in seen and not Path(utt.path).is_file():
                line = report.scp_lines.get(key, "?")
                problems.append(f"wav.scp:{line}: audio file {utt.path!r} does not exist")
            seen.add(key)
    return problems


def _read_file(path: Path, report: _Report) -> list[_Entry]:
    """The entries of one table file on its own (not in a data directory)."""
    entries = _read_table(path.parent, path.name, report)
    if entries is None:
        raise DataDirError(path, ["no such file" if not path.exists() else "not a file"])
    return entries


def read_scp(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """Reads one ``utt-id path`` list (a wav.scp or token scp on its own) by the rules of `read_data_dir`.

    Args:
        path: the list.
        root: directory that relative paths are relative to (default: the current directory).

    Returns:
        list[tuple[str, str]]: (utt-id, absolute path) pairs sorted by id (the file need not be sorted).

    Raises:
        DataDirError: a missing file, empty lines, lines without a path, duplicate ids, pipe commands,
            archive offsets, or no entries.
    """
    path, report = Path(path), _Report()
    entries = _read_file(path, report)
    base = Path(root).absolute() if root is not None else Path.cwd()
    pairs = {}
    for entry in entries:
        audio = _audio_path(entry.value, base, path.name, entry.line, report)
        if audio is not None:
            pairs[entry.key] = audio
    if report.errors:
        raise DataDirError(path, report.errors)
    if not pairs:
        raise DataDirError(path, ["no entries"])
    return sorted(pairs.items())


def read_table(path: str | os.PathLike) -> dict[str, str]:
    """Reads a table of one value per id (``utt2class``, ``utt2spk``): ``utt-id value`` lines.

    Returns:
        dict[str, str]: {utt-id: value} in file order.

    Raises:
        DataDirError: a missing file, empty lines, lines without exactly one value, or duplicate ids.
    """
    path, report = Path(path), _Report()
    entries = _read_file(path, report)
    for entry in entries:
        if len(entry.value.split()) != 1:
            report.error(path.name, entry.line, f"expected 'utt-id value', got {entry.key} {entry.value!r}")
    if report.errors:
        raise DataDirError(path, report.errors)
    return {entry.key: entry.value for entry in entries}


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def write_data_dir(
    directory: str | os.PathLike, utterances: Iterable[Utterance], text: dict[str, str] | None = None
) -> None:
    """Writes wav.scp, utt2spk, spk2utt, and segments and text where needed, each sorted (C locale).

    Each file is written atomically. Utterances with a `recording` (or a start/end) go to `segments`,
    with wav.scp listing recordings; then every utterance needs a recording id.

    Args:
        directory: created if needed; existing data files in it are replaced.
        utterances: the entries; ids must be unique and contain no whitespace.
        text: optional transcript per utterance id.

    Raises:
        DataDirError: duplicate or malformed ids, or one recording id with two paths.
    """
    directory = Path(directory)
    utts = sorted(utterances, key=lambda u: u.utt_id)
    problems = []
    for a, b in zip(utts, utts[1:]):
        if a.utt_id == b.utt_id:
            problems.append(f"duplicate utterance id {a.utt_id!r}")
    for u in utts:
        ids = (("utterance", u.utt_id), ("speaker", u.speaker), ("recording", u.recording or "x"))
        for name, value in ids:
            if not value or any(ch.isspace() for ch in value):
                problems.append(f"{name} id {value!r} of {u.utt_id!r} is empty or contains whitespace")
    segmented = any(u.recording is not None or u.start or u.end is not None for u in utts)
    recordings: dict[str, str] = {}
    for u in utts:
        key = (u.recording or u.utt_id) if segmented else u.utt_id
        if recordings.setdefault(key, u.path) != u.path:
            problems.append(f"recording {key!r} has two paths: {recordings[key]!r} and {u.path!r}")
    if problems:
        raise DataDirError(directory, problems)
    directory.mkdir(parents=True, exist_ok=True)
    _write_lines(directory / "wav.scp", (f"{k} {recordings[k]}" for k in sorted(recordings)))
    segments = directory / "segments"
    if segmented:
        _write_lines(segments, (f"{u.utt_id} {u.recording or u.utt_id} {u.start:.3f} "
                                f"{'-1' if u.end is None else f'{u.end:.3f}'}" for u in utts))
    elif segments.exists():
        segments.unlink()
    _write_lines(directory / "utt2spk", (f"{u.utt_id} {u.speaker}" for u in utts))
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.speaker, []).append(u.utt_id)
    _write_lines(directory / "spk2utt", (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    if text is not None:
        _write_lines(directory / "text", (f"{u.utt_id} {text[u.utt_id]}".rstrip()
                                          for u in utts if u.utt_id in text))
