"""Sets of task examples as one `.npz` per split, and the VALL-E examples of a data dir (phonemes, an
acoustic prompt from another utterance of the same speaker, target codes). Format: docs/formats.md."""

from __future__ import annotations

import os
import random
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.data.phonemes import PhonemeVocabulary
from funcodec_lite.inference.tokens import MAX_CODEBOOK_SIZE, load_tokens
from funcodec_lite.lm.sequence import TaskExample
from funcodec_lite.utils.atomic import atomic_path

EXAMPLES_KIND = "funcodec_lite.task_examples"
EXAMPLES_VERSION = 1
_INT = "iu"
_FIELDS = ("kind", "format_version", "codebook_size", "num_codebooks", "frame_rate", "model_id", "tasks",
           "utt_ids", "prompt_ids", "labels", "phoneme_lengths", "phonemes", "prompt_lengths", "prompts",
           "target_lengths", "targets")


@dataclass
class ExampleSet:
    """The examples of one split and the codec that coded them.

    Args:
        examples: the examples, all with the same number of codebooks K.
        codebook_size: codes per codebook; frame_rate: code frames per second; model_id: the codec's id.
    """

    examples: list[TaskExample]
    codebook_size: int
    frame_rate: float = 0.0
    model_id: str = ""
    num_codebooks: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        ks = {e.target.shape[0] for e in self.examples}
        if len(ks) > 1:
            raise ValueError(f"examples with different numbers of codebooks: {sorted(ks)}")
        self.num_codebooks = ks.pop() if ks else 0

    def __len__(self) -> int:
        return len(self.examples)

    def save(self, path: str | os.PathLike) -> None:
        """Writes one uncompressed `.npz` of plain arrays, atomically (codes as int16)."""
        if not 2 <= self.codebook_size <= MAX_CODEBOOK_SIZE:
            raise ValueError(f"codebook_size must be in 2..{MAX_CODEBOOK_SIZE}, got {self.codebook_size}")
        k, examples = self.num_codebooks, self.examples

        def lengths(items: list[torch.Tensor | None]) -> np.ndarray:
            return np.array([-1 if x is None else x.shape[-1] for x in items], dtype=np.int64)

        def joined(items: list[torch.Tensor | None], shape: tuple[int, ...], dtype: type) -> np.ndarray:
            parts = [x.numpy().astype(dtype) for x in items if x is not None]
            return np.concatenate(parts, axis=-1) if parts else np.zeros((*shape, 0), dtype=dtype)

        for e in examples:
            for codes in (e.target, e.prompt):
                if codes is not None and codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < \
                        self.codebook_size:
                    raise ValueError(f"{e.utt_id or 'an example'}: codes out of 0..{self.codebook_size - 1}")
        arrays = {
            "kind": np.array(EXAMPLES_KIND), "format_version": np.int64(EXAMPLES_VERSION),
            "codebook_size": np.int64(self.codebook_size), "num_codebooks": np.int64(k),
            "frame_rate": np.float64(self.frame_rate), "model_id": np.array(self.model_id),
            "tasks": _text([e.task for e in examples]), "utt_ids": _text([e.utt_id for e in examples]),
            "prompt_ids": _text([e.prompt_id for e in examples]),
            "labels": np.array([-1 if e.label is None else int(e.label) for e in examples], dtype=np.int64),
            "phoneme_lengths": lengths([e.phonemes for e in examples]),
            "phonemes": joined([e.phonemes for e in examples], (), np.int32),
            "prompt_lengths": lengths([e.prompt for e in examples]),
            "prompts": joined([e.prompt for e in examples], (k,), np.int16),
            "target_lengths": lengths([e.target for e in examples]),
            "targets": joined([e.target for e in examples], (k,), np.int16),
        }
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExampleSet:
        """Reads a file of `save` with allow_pickle=False; a one-line ValueError naming the file otherwise."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    raise ValueError("a single .npy array, not an .npz archive")
                a = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: not a file of task examples ({_first_line(err)})") from err
        missing = [name for name in _FIELDS if name not in a]
        if missing:
            raise ValueError(f"{path}: not a file of task examples (missing {', '.join(missing)})")
        try:
            return _from_arrays(a)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: bad file of task examples ({_first_line(err)})") from err


def _text(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="U1")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _from_arrays(a: dict[str, np.ndarray]) -> ExampleSet:
    if str(a["kind"]) != EXAMPLES_KIND:
        raise ValueError(f"kind is {str(a['kind'])!r}, not {EXAMPLES_KIND!r}")
    if int(a["format_version"]) != EXAMPLES_VERSION:
        raise ValueError(f"format_version {int(a['format_version'])} is not supported "
                         f"(this funcodec_lite reads version {EXAMPLES_VERSION})")
    k, card = int(a["num_codebooks"]), int(a["codebook_size"])
    n = len(a["tasks"])
    for name in ("tasks", "utt_ids", "prompt_ids", "labels", "phoneme_lengths", "prompt_lengths",
                 "target_lengths"):
        if a[name].shape != (n,):
            raise ValueError(f"{name} must have shape [{n}], got {list(a[name].shape)}")
    for name, ndim in (("phonemes", 1), ("prompts", 2), ("targets", 2)):
        if a[name].dtype.kind not in _INT or a[name].ndim != ndim or (ndim == 2 and a[name].shape[0] != k):
            raise ValueError(f"{name} must be integers of {ndim} dimension(s), got {a[name].dtype} "
                             f"{list(a[name].shape)}")
    if n and (min(int(a["phoneme_lengths"].min()), int(a["prompt_lengths"].min())) < -1
              or int(a["target_lengths"].min()) < 0):
        raise ValueError("lengths below -1 (phonemes, prompts) or 0 (targets)")
    for codes in (a["prompts"], a["targets"]):
        if codes.size and not 0 <= int(codes.min()) <= int(codes.max()) < card:
            raise ValueError(f"codes out of 0..{card - 1}")
    splits = {}
    for name, lengths in (("phonemes", "phoneme_lengths"), ("prompts", "prompt_lengths"),
                          ("targets", "target_lengths")):
        sizes = np.maximum(a[lengths], 0)
        if int(sizes.sum()) != a[name].shape[-1]:
            raise ValueError(f"{lengths} add up to {int(sizes.sum())}, {name} has {a[name].shape[-1]}")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        splits[name] = [None if a[lengths][i] < 0 else
                        torch.from_numpy(a[name][..., bounds[i] : bounds[i + 1]].astype(np.int64))
                        for i in range(n)]
    examples = [TaskExample(task=str(a["tasks"][i]), phonemes=splits["phonemes"][i],
                            prompt=splits["prompts"][i], target=splits["targets"][i],
                            label=None if a["labels"][i] < 0 else int(a["labels"][i]),
                            utt_id=str(a["utt_ids"][i]), prompt_id=str(a["prompt_ids"][i])) for i in range(n)]
    return ExampleSet(examples, card, float(a["frame_rate"]), str(a["model_id"]))


def choose_prompts(utt2spk: Mapping[str, str], seed: int = 0) -> dict[str, str | None]:
    """Per utterance, another utterance of its speaker to be its acoustic prompt (None for a speaker with
    one utterance). Each choice depends only on the seed, the utterance and its speaker's utterances."""
    by_speaker: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        by_speaker.setdefault(utt2spk[utt], []).append(utt)
    prompts: dict[str, str | None] = {}
    for utt in sorted(utt2spk):
        others = [u for u in by_speaker[utt2spk[utt]] if u != utt]
        prompts[utt] = random.Random(f"{seed}:{utt}").choice(others) if others else None
    return prompts


def write_prompts(path: str | os.PathLike, prompts: Mapping[str, str | None]) -> None:
    """Writes 'utt-id prompt-utt-id' lines ('-' for none), sorted, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{u} {prompts[u] or '-'}\n" for u in sorted(prompts)), encoding="utf-8")


def read_prompts(path: str | os.PathLike) -> dict[str, str | None]:
    """Reads a file of `write_prompts`."""
    pairs = (line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    return {utt: None if prompt == "-" else prompt for utt, prompt in pairs}


def build_tts_examples(phonemes: Mapping[str, Sequence[str]], vocab: PhonemeVocabulary,
                       token_dir: str | os.PathLike, prompts: Mapping[str, str | None],
                       prompt_seconds: float = 3.0, task: str = "tts") -> ExampleSet:
    """VALL-E examples: per utterance of `prompts`, its phoneme ids, the first `prompt_seconds` of its
    prompt utterance's codes (all of them for <= 0) and its own codes (`token_dir/<utt>.npz`, mono).

    Raises:
        ValueError: an utterance without phonemes or token file, or token files of different codecs.
        TokenFileError: a broken token file.
    """
    token_dir = Path(token_dir)
    needed = sorted(set(prompts) | {p for p in prompts.values() if p is not None})
    missing = [u for u in needed if not (token_dir / f"{u}.npz").is_file()]
    if missing:
        raise ValueError(f"{token_dir}: {len(missing)} token file(s) missing (first: {missing[0]}.npz)")
    unspoken = [u for u in sorted(prompts) if u not in phonemes]
    if unspoken:
        raise ValueError(f"{len(unspoken)} utterance(s) have no phonemes (first: {unspoken[0]})")
    codes, first = {}, None
    for utt in needed:
        tokens = load_tokens(token_dir / f"{utt}.npz")
        first = tokens if first is None else first
        if (tokens.model_id, tokens.codebook_size, tokens.n_q) != (first.model_id, first.codebook_size,
                                                                   first.n_q):
            raise ValueError(f"{token_dir / (utt + '.npz')}: model {tokens.model_id} with n_q {tokens.n_q}, "
                             f"others have model {first.model_id} with n_q {first.n_q}; retokenize")
        if tokens.streams != 1:
            raise ValueError(f"{token_dir / (utt + '.npz')}: {tokens.streams} code streams; TTS needs mono")
        codes[utt] = torch.from_numpy(tokens.codes[0].astype(np.int64))
    if first is None:
        return ExampleSet([], codebook_size=2)
    frames = round(prompt_seconds * first.frame_rate) if prompt_seconds > 0 else None
    examples = [TaskExample(task=task, phonemes=vocab.encode(phonemes[utt]),
                            prompt=None if prompts[utt] is None else codes[prompts[utt]][:, :frames],
                            target=codes[utt], utt_id=utt, prompt_id=prompts[utt] or "")
                for utt in sorted(prompts)]
    return ExampleSet(examples, first.codebook_size, first.frame_rate, first.model_id)
