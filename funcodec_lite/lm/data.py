"""Training data of the token models: task examples (`funcodec_lite.lm.sequence`) from token files,
cropped and batched as `LMBatch` es.

A token directory (``codec tokenize``) gives one example per file (its first stream); ``utt2class`` adds
class labels. Every file must come from one codec (one model id): mixing codecs is refused, in one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# read_labels: the name recipes/dcase_foley/codec_path.py imports until it imports data.kaldi.read_table
from funcodec_lite.data.kaldi import read_table as read_labels  # noqa: F401
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.lm.codec_lm import LMBatch
from funcodec_lite.lm.sequence import TaskExample, collate_examples


class TokenDataError(ValueError):
    """Token files that cannot be used together (another codec, too few codebooks, none at all)."""


@dataclass
class TokenInfo:
    """What all token files of a set share: model id, frame rate, codebook size, sample rate, codebooks."""

    model_id: str
    frame_rate: float
    codebook_size: int
    sample_rate: int
    n_q: int

    def to_dict(self) -> dict:
        return asdict(self)


def token_examples(token_dir: str | os.PathLike, n_q: int, labels: dict[str, str] | None = None,
                   class_names: Sequence[str] | None = None,
                   model_id: str | None = None) -> tuple[list[TaskExample], TokenInfo, list[str]]:
    """One example per ``<utt>.npz`` of ``token_dir`` (sorted; the first stream, codebooks [:n_q]).

    Args:
        labels: {utt: class name}; files without a label are left out when given.
        class_names: the classes' order (default: sorted names of ``labels``).
        model_id: the codec the files must come from (default: the first file's).

    Returns:
        (examples, what the files share, class names).
    """
    files = sorted(Path(token_dir).glob("*.npz"))
    if not files:
        raise TokenDataError(f"{token_dir}: no token files (.npz)")
    names = list(class_names) if class_names is not None else sorted(set((labels or {}).values()))
    index = {name: i for i, name in enumerate(names)}
    examples, info = [], None
    for path in files:
        tokens = load_tokens(path)
        wanted = model_id or (info.model_id if info else tokens.model_id)
        if tokens.model_id != wanted:
            raise TokenDataError(f"{path}: tokens of codec {tokens.model_id}, not {wanted}: all token files "
                                 "must come from the codec the LM is for")
        if tokens.n_q < n_q:
            raise TokenDataError(f"{path}: {tokens.n_q} codebooks, the LM models {n_q}")
        info = info or TokenInfo(tokens.model_id, tokens.frame_rate, tokens.codebook_size, tokens.sample_rate,
                                 n_q)
        utt = path.stem
        label = None
        if labels is not None:
            if utt not in labels:
                continue
            if labels[utt] not in index:
                raise TokenDataError(f"{path}: class {labels[utt]!r} is not one of {names}")
            label = index[labels[utt]]
        codes = torch.from_numpy(tokens.codes[0, :n_q].astype(np.int64))
        examples.append(TaskExample(task="class_to_audio" if label is not None else "lm", target=codes,
                                    label=label, utt_id=utt))
    if not examples:
        raise TokenDataError(f"{token_dir}: no token file has a label")
    return examples, info, names


class ExampleDataset(Dataset):
    """Task examples as LM training items: targets cropped to ``segment_frames`` (examples without phonemes;
    a TTS target keeps its whole length), prompts cut to ``prompt_frames``, all crops fixed by
    (seed, epoch, index) so that a resumed run sees the crops of the straight run; ``collate`` makes an
    `LMBatch` (prompt and target joined, the prompt out of the loss).

    Args:
        examples: the examples.
        segment_frames: target frames at most (0: whole).
        prompt_frames: prompt frames at most (0: whole); an example without a prompt gets none.
        seed: the crops' seed; ``train`` False: no random crops (the first frames).
    """

    def __init__(self, examples: Sequence[TaskExample], segment_frames: int = 0, prompt_frames: int = 0,
                 seed: int = 0, train: bool = True) -> None:
        self.examples, self.segment_frames, self.prompt_frames = list(examples), segment_frames, prompt_frames
        self.seed, self.train, self.epoch = seed, train, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def _crop(self, codes: torch.Tensor, limit: int, generator: torch.Generator) -> torch.Tensor:
        if not limit or codes.shape[-1] <= limit:
            return codes
        if not self.train:
            return codes[:, :limit]
        start = int(torch.randint(0, codes.shape[-1] - limit + 1, (1,), generator=generator))
        return codes[:, start : start + limit]

    def __getitem__(self, index: int) -> TaskExample:
        example = self.examples[index]
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index)
        target = example.target if example.phonemes is not None else \
            self._crop(example.target, self.segment_frames, generator)
        prompt = None if example.prompt is None else self._crop(example.prompt, self.prompt_frames, generator)
        return TaskExample(task=example.task, phonemes=example.phonemes, prompt=prompt, target=target,
                           label=example.label, utt_id=example.utt_id, prompt_id=example.prompt_id)

    @staticmethod
    def collate(items: Sequence[TaskExample]) -> LMBatch:
        return to_lm_batch(items)


def to_lm_batch(items: Sequence[TaskExample]) -> LMBatch:
    """Pads examples into an `LMBatch`: prompt and target joined, conditions where the examples have them."""
    batch = collate_examples(items)
    codes, frames, prompt_frames = batch.with_prompt()
    has_phonemes = bool((batch.phoneme_lengths > 0).any())
    has_labels = bool((batch.labels >= 0).all())
    return LMBatch(codes, frames, prompt_frames,
                   batch.phonemes if has_phonemes else None,
                   batch.phoneme_lengths if has_phonemes else None,
                   batch.labels if has_labels else None)


def heldout_batches(examples: Sequence[TaskExample], batch_size: int, segment_frames: int = 0,
                    prompt_frames: int = 0, limit: int = 0) -> list[LMBatch]:
    """Deterministic held-out batches (first frames, no random crops) of at most ``limit`` examples."""
    chosen = list(examples)[: limit or None]
    dataset = ExampleDataset(chosen, segment_frames, prompt_frames, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    return [to_lm_batch(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
