"""Token extraction for whole datasets (``codec tokenize``): sharded, resumable, every input in a log.

Each process (an ``accelerate launch`` / ``torchrun`` rank, or ``--shard i/n``) takes every n-th
utterance of the sorted ``wav.scp``, skips utterances whose token file exists (written atomically,
so an existing file is complete), and writes one line per utterance to its log: ``ok``, ``skipped``
or ``failed`` with the reason.  Audio is read and resampled in DataLoader workers; the model runs in
the main process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from funcodec_lite.audio.io import AudioError, load_audio, resample
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import model_id
from funcodec_lite.data.kaldi import read_scp
from funcodec_lite.inference.chunking import ChunkConfig
from funcodec_lite.inference.filecoding import encode_resampled
from funcodec_lite.inference.tokens import read_model_id, save_tokens


@dataclass(frozen=True)
class Shard:
    """This process's share of the utterances: every ``world``-th one starting at ``rank``."""

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"bad shard {self.rank}/{self.world}: need 0 <= rank < world")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` (0-based rank i of n)."""
        try:
            rank, world = (int(part) for part in text.split("/"))
        except ValueError as err:
            raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from err
        return cls(rank, world)

    @classmethod
    def from_env(cls) -> Shard:
        """The rank set by ``accelerate launch`` / ``torchrun`` (``RANK``, ``WORLD_SIZE``), else 0/1."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    @property
    def log_name(self) -> str:
        return "tokenize.log" if self.world == 1 else f"tokenize.{self.rank}-of-{self.world}.log"


class _Loaded(NamedTuple):
    """One utterance read by a worker: audio [C, T'] at the model's rate and the original rate and length,
    or the reason it could not be read."""

    utt: str
    wav: torch.Tensor | None
    sample_rate: int
    num_samples: int
    problem: str


class _Loader(Dataset):
    """Reads each utterance whole and resamples it to the model's rate (in a DataLoader worker)."""

    def __init__(self, items: list[tuple[str, str]], sample_rate: int) -> None:
        self.items, self.sample_rate = items, sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Loaded:
        utt, path = self.items[index]
        try:
            wav, sr = load_audio(path)
        except AudioError as err:
            return _Loaded(utt, None, 0, 0, str(err))
        at_rate = resample(wav, sr, self.sample_rate) if wav.shape[-1] else wav
        return _Loaded(utt, at_rate, sr, wav.shape[-1], "")


def _single(item):
    return item


@dataclass
class TokenizeSummary:
    """Counts of one run; ``failed`` maps utterance ids to reasons; ``redone`` counts token files of
    another model that were rewritten (they are in ``ok`` too)."""

    ok: int = 0
    skipped: int = 0
    redone: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    seconds: float = 0.0
    audio_seconds: float = 0.0


def tokenize_scp(codec: CompressionModel, scp: str | os.PathLike, out_dir: str | os.PathLike,
                 n_q: int | None = None, num_workers: int = 0, shard: Shard | None = None,
                 chunk: ChunkConfig | None = None, progress: bool | None = None) -> TokenizeSummary:
    """Writes ``out_dir/<utt>.npz`` for this shard's utterances of ``scp`` and a log in ``out_dir/log/``.

    Args:
        codec: the model, any codec kind (on its device).
        scp: ``wav.scp`` (``utt-id path`` per line).
        out_dir: token directory (created).
        n_q: codebooks to keep (default all).
        num_workers: DataLoader processes reading and resampling audio (0: in this process).
        shard: this process's share (default: from ``RANK`` / ``WORLD_SIZE``).
        chunk: chunk sizes for long utterances.
        progress: show a progress bar (None: when stderr is a terminal).

    Returns:
        the counts. The one rule for existing token files: a file of this model is skipped (a rerun
        resumes); a file of another model (an earlier checkpoint, another codec) is redone, and the log
        says so.
    """
    shard = shard or Shard.from_env()
    out = Path(out_dir)
    (out / "log").mkdir(parents=True, exist_ok=True)
    ours = model_id(codec)
    summary = TokenizeSummary(log=out / "log" / shard.log_name)
    start = time.perf_counter()
    items = read_scp(scp)[shard.rank :: shard.world]
    with open(summary.log, "w", encoding="utf-8", buffering=1) as log:
        log.write(f"# codec tokenize: {len(items)} utterance(s), shard {shard.rank}/{shard.world}, "
                  f"model {ours}\n")
        todo = []
        for utt, path in items:
            state = _existing(out, utt, ours)
            if state == "done":
                summary.skipped += 1
                log.write(f"{utt}\tskipped\ttoken file exists\n")
            elif state in ("new", "redo"):
                todo.append((utt, path))
                if state == "redo":
                    summary.redone += 1
                    log.write(f"{utt}\tredo\t{out / (utt + '.npz')} was made by model "
                              f"{read_model_id(out / (utt + '.npz')) or 'unknown'}, not {ours}\n")
            else:
                summary.failed[utt] = state
                log.write(f"{utt}\tfailed\t{state}\n")
        bar = tqdm(total=len(todo), desc=f"tokenize {shard.rank}/{shard.world}", dynamic_ncols=True,
                   disable=(not sys.stderr.isatty()) if progress is None else not progress)
        for item in _load(todo, codec.sample_rate, num_workers):
            utt = item.utt
            try:
                if item.wav is None:
                    raise ValueError(item.problem)
                tokens = encode_resampled(codec, item.wav, item.sample_rate, item.num_samples, n_q, chunk)
                save_tokens(out / f"{utt}.npz", tokens)
            except (ValueError, OSError, RuntimeError) as err:
                summary.failed[utt] = str(err).replace("\n", " ")
                log.write(f"{utt}\tfailed\t{summary.failed[utt]}\n")
            else:
                summary.ok += 1
                summary.audio_seconds += tokens.duration
                log.write(f"{utt}\tok\t{tokens.frames} frames\n")
            bar.update(1)
        bar.close()
        summary.seconds = time.perf_counter() - start
        log.write(f"# summary: {summary.ok} ok ({summary.redone} redone), {summary.skipped} skipped, "
                  f"{len(summary.failed)} failed, {summary.seconds:.1f} s\n")
    return summary


def _existing(out: Path, utt: str, ours: str) -> str:
    """``new`` (no token file), ``done`` (a file of this model), ``redo`` (a file of another model), or
    why the utterance cannot be tokenized."""
    if not utt or "/" in utt or utt.startswith("."):
        return f"utterance id {utt!r} cannot be used as a file name"
    target = out / f"{utt}.npz"
    if not target.exists():
        return "new"
    return "done" if read_model_id(target) == ours else "redo"


def _load(items: list[tuple[str, str]], sample_rate: int, num_workers: int) -> Iterator[_Loaded]:
    dataset = _Loader(items, sample_rate)
    if num_workers <= 0:
        yield from (dataset[i] for i in range(len(dataset)))
        return
    yield from DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_single,
                          prefetch_factor=2, persistent_workers=False)
