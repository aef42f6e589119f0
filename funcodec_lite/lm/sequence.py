"""Task examples of the token-LM recipes: UniAudio's task sequence (flat ids), batches, `.npz` files.

A `TaskExample` holds the parts of one example as tensors: the task, its conditions (phonemes, a class
label, an acoustic prompt) and the target codes. `TaskVocabulary` lays them out in one id space, as UniAudio
does, and turns an example into one flat sequence of ids and back:

    <start> <{task}_task> [<phone_start> phonemes <phone_end>] [<class_start> label <class_end>]
    [<prompt_start> prompt codes <prompt_end>] <audio_start> target codes <audio_end> <end>

Codes are flattened frame-major, codebook k of a frame at id ``audio_offset + k * codebook_size + code``.
With ``non_acoustic_repeat = r`` every other token is written r times (UniAudio: r = K, so every frame of
K positions holds one audio frame or one repeated token). Files of examples: `funcodec_lite.lm.examples`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from funcodec_lite.utils.atomic import atomic_path

SPECIAL_TOKENS = ("<pad>", "<start>", "<end>", "<phone_start>", "<phone_end>", "<class_start>", "<class_end>",
                  "<prompt_start>", "<prompt_end>", "<audio_start>", "<audio_end>")
DEFAULT_TASKS = ("tts", "lm", "class_to_audio")
_SPECIAL = {name: index for index, name in enumerate(SPECIAL_TOKENS)}


@dataclass(kw_only=True)
class TaskExample:
    """One example of a task.

    Args:
        task: task name (e.g. 'tts').
        phonemes: long [P] phoneme ids (`PhonemeVocabulary`), or None.
        prompt: long [K, Tp] codes of the acoustic prompt (VALL-E: another utterance of the speaker), or None.
        target: long [K, T] codes to generate.
        label: class id, or None.
        utt_id: the target's utterance id ('' when unknown); not part of the flat sequence.
        prompt_id: the prompt's utterance id ('' when none or unknown); not part of the flat sequence.
    """

    task: str
    phonemes: torch.Tensor | None = None
    prompt: torch.Tensor | None = None
    target: torch.Tensor
    label: int | None = None
    utt_id: str = ""
    prompt_id: str = ""


@dataclass(frozen=True)
class TaskVocabulary:
    """The id space of task sequences: [specials | tasks | (reserved) | phonemes | classes | audio].

    Args:
        num_phonemes: phoneme vocabulary size (`len(PhonemeVocabulary)`).
        num_codebooks: K, codebooks of every audio segment.
        codebook_size: codes per codebook.
        num_classes: class labels (0: none).
        tasks: task names, ids `len(SPECIAL_TOKENS)` onwards.
        reserved: ids kept for specials and tasks (phoneme ids start here), so tasks can be added later
            without moving any other id.
        non_acoustic_repeat: copies of each non-audio token (UniAudio repeats them K times).
    """

    num_phonemes: int
    num_codebooks: int
    codebook_size: int
    num_classes: int = 0
    tasks: tuple[str, ...] = DEFAULT_TASKS
    reserved: int = 64
    non_acoustic_repeat: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if min(self.num_phonemes, self.num_classes) < 0 or min(self.num_codebooks, self.codebook_size) < 1:
            raise ValueError("num_phonemes, num_classes must be >= 0; num_codebooks, codebook_size >= 1")
        if len(set(self.tasks)) != len(self.tasks) or not all(self.tasks):
            raise ValueError(f"task names must be distinct and non-empty, got {list(self.tasks)}")
        if len(SPECIAL_TOKENS) + len(self.tasks) > self.reserved:
            raise ValueError(f"{len(SPECIAL_TOKENS)} special tokens and {len(self.tasks)} tasks do not fit "
                             f"in reserved={self.reserved}")
        if self.non_acoustic_repeat < 1:
            raise ValueError(f"non_acoustic_repeat must be >= 1, got {self.non_acoustic_repeat}")

    # -- ids ---------------------------------------------------------------------------------------------
    def special_id(self, name: str) -> int:
        """Id of a special token, e.g. '<pad>' (0), '<start>', '<audio_end>'."""
        return _SPECIAL[name]

    @property
    def pad_id(self) -> int:
        return _SPECIAL["<pad>"]

    def task_id(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this vocabulary has {list(self.tasks)}")
        return len(SPECIAL_TOKENS) + self.tasks.index(task)

    @property
    def phoneme_offset(self) -> int:
        return self.reserved

    @property
    def class_offset(self) -> int:
        return self.reserved + self.num_phonemes

    @property
    def audio_offset(self) -> int:
        return self.class_offset + self.num_classes

    @property
    def size(self) -> int:
        """Number of ids."""
        return self.audio_offset + self.num_codebooks * self.codebook_size

    def audio_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [K, T] -> flat ids [K * T], frame-major: code + k * codebook_size + audio_offset."""
        shift = self.audio_offset + self.codebook_size * torch.arange(self.num_codebooks)
        return (codes.long() + shift[:, None]).T.reshape(-1)

    # -- flat sequences ----------------------------------------------------------------------------------
    def to_flat(self, example: TaskExample) -> torch.Tensor:
        """The example as one sequence of ids, long [S]."""
        self._check(example)
        r = self.non_acoustic_repeat
        parts: list[torch.Tensor] = []

        def tokens(*ids: int) -> None:
            parts.append(torch.tensor(ids, dtype=torch.long).repeat_interleave(r))

        tokens(_SPECIAL["<start>"], self.task_id(example.task))
        if example.phonemes is not None:
            tokens(_SPECIAL["<phone_start>"])
            parts.append((example.phonemes.long() + self.phoneme_offset).repeat_interleave(r))
            tokens(_SPECIAL["<phone_end>"])
        if example.label is not None:
            tokens(_SPECIAL["<class_start>"], self.class_offset + int(example.label), _SPECIAL["<class_end>"])
        if example.prompt is not None:
            tokens(_SPECIAL["<prompt_start>"])
            parts.append(self.audio_ids(example.prompt))
            tokens(_SPECIAL["<prompt_end>"])
        tokens(_SPECIAL["<audio_start>"])
        parts.append(self.audio_ids(example.target))
        tokens(_SPECIAL["<audio_end>"], _SPECIAL["<end>"])
        return torch.cat(parts)

    def from_flat(self, sequence: torch.Tensor | Sequence[int]) -> TaskExample:
        """The example of a flat sequence [S] (trailing '<pad>' ids allowed); ValueError for anything else."""
        ids = torch.as_tensor(sequence, dtype=torch.long).reshape(-1).tolist()
        reader = _Reader(ids, self)
        reader.expect("<start>")
        task_index = reader.token() - len(SPECIAL_TOKENS)
        if not 0 <= task_index < len(self.tasks):
            raise ValueError(f"position {reader.pos - self.non_acoustic_repeat}: expected a task token")
        example = TaskExample(task=self.tasks[task_index], target=torch.zeros(self.num_codebooks, 0,
                                                                              dtype=torch.long))
        if reader.peek("<phone_start>"):
            reader.expect("<phone_start>")
            phones = reader.until("<phone_end>", self.phoneme_offset, self.class_offset)
            example.phonemes = torch.tensor(phones, dtype=torch.long) - self.phoneme_offset
        if reader.peek("<class_start>"):
            reader.expect("<class_start>")
            label = reader.token()
            if not self.class_offset <= label < self.audio_offset:
                raise ValueError(f"position {reader.pos - self.non_acoustic_repeat}: expected a class id")
            example.label = label - self.class_offset
            reader.expect("<class_end>")
        if reader.peek("<prompt_start>"):
            reader.expect("<prompt_start>")
            example.prompt = reader.audio("<prompt_end>")
        reader.expect("<audio_start>")
        example.target = reader.audio("<audio_end>")
        reader.expect("<end>")
        rest = ids[reader.pos :]
        if any(i != self.pad_id for i in rest):
            raise ValueError(f"position {reader.pos}: only '<pad>' may follow '<end>'")
        return example

    def target_mask(self, sequence: torch.Tensor) -> torch.Tensor:
        """Bool mask [..., S] of flat sequences, True at the target's audio ids (UniAudio's loss_key
        segment: between '<audio_start>' and '<audio_end>')."""
        started = (sequence == _SPECIAL["<audio_start>"]).long().cumsum(-1) > 0
        ended = (sequence == _SPECIAL["<audio_end>"]).long().cumsum(-1) > 0
        return started & ~ended & (sequence >= self.audio_offset)

    def _check(self, example: TaskExample) -> None:
        self.task_id(example.task)
        k, card = self.num_codebooks, self.codebook_size
        for name, codes in (("target", example.target), ("prompt", example.prompt)):
            if codes is None:
                if name == "target":
                    raise ValueError("target codes are required")
                continue
            if codes.dim() != 2 or codes.shape[0] != k:
                raise ValueError(f"{name} codes must have shape [{k}, T], got {list(codes.shape)}")
            if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= card):
                raise ValueError(f"{name} codes must be in 0..{card - 1}")
        if example.phonemes is not None:
            p = example.phonemes
            if p.dim() != 1 or (p.numel() and (int(p.min()) < 0 or int(p.max()) >= self.num_phonemes)):
                raise ValueError(f"phonemes must be ids [P] in 0..{self.num_phonemes - 1}")
        if example.label is not None and not 0 <= int(example.label) < self.num_classes:
            raise ValueError(f"label must be in 0..{self.num_classes - 1}, got {example.label}")

    # -- files -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {**asdict(self), "tasks": list(self.tasks)}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the layout as JSON (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TaskVocabulary:
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a task vocabulary ({err})") from err


class _Reader:
    """Walks a flat sequence, checking the repeats of non-audio tokens."""

    def __init__(self, ids: list[int], vocab: TaskVocabulary) -> None:
        self.ids, self.vocab, self.pos, self.r = ids, vocab, 0, vocab.non_acoustic_repeat

    def token(self) -> int:
        group = self.ids[self.pos : self.pos + self.r]
        if len(group) < self.r or len(set(group)) != 1:
            raise ValueError(f"position {self.pos}: expected {self.r} copies of a token, got {group}")
        self.pos += self.r
        return group[0]

    def peek(self, name: str) -> bool:
        return self.pos < len(self.ids) and self.ids[self.pos] == _SPECIAL[name]

    def expect(self, name: str) -> None:
        if not self.peek(name):
            found = self.ids[self.pos] if self.pos < len(self.ids) else "the end"
            raise ValueError(f"position {self.pos}: expected {name}, found {found}")
        self.token()

    def until(self, name: str, low: int, high: int) -> list[int]:
        values = []
        while not self.peek(name):
            value = self.token()
            if not low <= value < high:
                raise ValueError(f"position {self.pos - self.r}: id {value} is not in {low}..{high - 1}")
            values.append(value)
        self.expect(name)
        return values

    def audio(self, end: str) -> torch.Tensor:
        k, card, offset = self.vocab.num_codebooks, self.vocab.codebook_size, self.vocab.audio_offset
        stop = self.pos
        while stop < len(self.ids) and self.ids[stop] != _SPECIAL[end]:
            stop += 1
        flat = torch.tensor(self.ids[self.pos : stop], dtype=torch.long)
        if flat.numel() % k:
            raise ValueError(f"position {self.pos}: {flat.numel()} audio ids are not whole frames of {k}")
        codes = (flat.reshape(-1, k).T - offset) - card * torch.arange(k)[:, None]
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= card):
            raise ValueError(f"position {self.pos}: audio ids out of place (codebook order or range)")
        self.pos = stop
        self.expect(end)
        return codes


class TaskBatch(NamedTuple):
    """Examples padded for the models.

    Attributes:
        tasks: task names [B]; utt_ids, prompt_ids: [B].
        phonemes: long [B, P_max] (pad: `phoneme_pad`); phoneme_lengths: long [B] (0 where None).
        prompt: long [B, K, Tp_max] (pad: `code_pad`); prompt_lengths: long [B] (0 where None).
        codes: long [B, K, T_max] target codes (pad: `code_pad`); code_lengths: long [B].
        labels: long [B], -1 where None.
    """

    tasks: list[str]
    phonemes: torch.Tensor
    phoneme_lengths: torch.Tensor
    prompt: torch.Tensor
    prompt_lengths: torch.Tensor
    codes: torch.Tensor
    code_lengths: torch.Tensor
    labels: torch.Tensor
    utt_ids: list[str]
    prompt_ids: list[str]

    def with_prompt(self, code_pad: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompt and target joined per item (VALL-E's acoustic input): (codes [B, K, Tp + T] padded with
        `code_pad`, frames [B] = prompt + target lengths, prompt_frames [B])."""
        b, k = self.codes.shape[:2]
        frames = self.prompt_lengths + self.code_lengths
        joined = torch.full((b, k, int(frames.max()) if b else 0), code_pad, dtype=torch.long)
        for i in range(b):
            tp, t = int(self.prompt_lengths[i]), int(self.code_lengths[i])
            joined[i, :, :tp] = self.prompt[i, :, :tp]
            joined[i, :, tp : tp + t] = self.codes[i, :, :t]
        return joined, frames, self.prompt_lengths.clone()


def collate_examples(examples: Sequence[TaskExample], phoneme_pad: int = 0, code_pad: int = 0) -> TaskBatch:
    """Pads a list of examples (all with the same K) into a `TaskBatch`."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    k = examples[0].target.shape[0]
    if any(e.target.shape[0] != k or (e.prompt is not None and e.prompt.shape[0] != k) for e in examples):
        raise ValueError("all examples of a batch must have the same number of codebooks")

    def lengths(items: list[torch.Tensor | None]) -> torch.Tensor:
        return torch.tensor([0 if x is None else x.shape[-1] for x in items], dtype=torch.long)

    def pad(items: list[torch.Tensor | None], size: tuple[int, ...], value: int) -> torch.Tensor:
        longest = max(x.shape[-1] for x in items if x is not None) if any(x is not None for x in items) else 0
        out = torch.full((len(items), *size, longest), value, dtype=torch.long)
        for i, x in enumerate(items):
            if x is not None:
                out[i, ..., : x.shape[-1]] = x
        return out

    phonemes = [e.phonemes for e in examples]
    prompts = [e.prompt for e in examples]
    targets = [e.target for e in examples]
    return TaskBatch(
        tasks=[e.task for e in examples],
        phonemes=pad(phonemes, (), phoneme_pad), phoneme_lengths=lengths(phonemes),
        prompt=pad(prompts, (k,), code_pad), prompt_lengths=lengths(prompts),
        codes=pad(targets, (k,), code_pad), code_lengths=lengths(targets),
        labels=torch.tensor([-1 if e.label is None else int(e.label) for e in examples], dtype=torch.long),
        utt_ids=[e.utt_id for e in examples], prompt_ids=[e.prompt_id for e in examples])
