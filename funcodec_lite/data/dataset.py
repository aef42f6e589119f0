"""Audio dataset over a Kaldi data dir: resampled, channel-mixed, seeded random crops, bad files skipped."""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from funcodec_lite.audio.io import AudioError, load_audio, resample
from funcodec_lite.data.augment import AugmentConfig, augment
from funcodec_lite.data.kaldi import DataDir, read_data_dir

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """How audio is prepared for a model.

    Args:
        sample_rate: the model's sample rate; every file is resampled to it.
        channels: the model's channel count; 1 averages the file's channels, k > 1 repeats a mono file.
        segment_seconds: length of the random training crops; shorter utterances are zero-padded.
        max_seconds: validation mode keeps at most this much of each utterance, from its start
            (None keeps everything).
        seed: seed of the training crops.
        gain_db: training only: (low, high) range of a random gain in dB applied to each crop,
            uniform in dB (HILCodec trains with -10 ... +6); None: no gain.
        dither: training only: RMS of white noise added to each crop's real samples (1e-4 is
            -80 dBFS), so digital silence (exact zeros, as synthetic speech has between words) is not
            a degenerate target for log-spectral losses; 0: none.
        augment: training only: speed, EQ, reverberation and noise effects (`AugmentConfig`), applied
            to each crop before the gain; None: none.
    """

    sample_rate: int = 16000
    channels: int = 1
    segment_seconds: float = 1.0
    max_seconds: float | None = 30.0
    seed: int = 0
    gain_db: tuple[float, float] | None = None
    dither: float = 0.0
    augment: AugmentConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.sample_rate <= 0 or self.channels < 1 or self.segment_seconds <= 0 or self.seed < 0:
            raise ValueError(f"invalid data config {self}")
        if self.gain_db is not None:
            self.gain_db = (float(self.gain_db[0]), float(self.gain_db[1]))
            if self.gain_db[0] > self.gain_db[1]:
                raise ValueError(f"gain_db must be (low, high) with low <= high, got {self.gain_db}")
        if self.dither < 0:
            raise ValueError(f"dither must be >= 0, got {self.dither}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or None, got {self.max_seconds}")

    @property
    def segment_samples(self) -> int:
        """Training crop length in samples at `sample_rate`."""
        return max(1, round(self.segment_seconds * self.sample_rate))


class AudioItem(NamedTuple):
    """One loaded utterance: `wav` [C, T] with its first `length` samples valid (the rest zero padding)."""

    wav: torch.Tensor
    length: int
    utt_id: str


class Skipped(NamedTuple):
    """An utterance that could not be loaded, returned in place of an `AudioItem`."""

    utt_id: str
    path: str
    problem: str


@dataclass
class AudioBatch:
    """A collated batch.

    Args:
        wav (torch.Tensor): audio of shape [B, C, T], zero-padded after each item's length.
        lengths (torch.Tensor): valid samples per item, int64 of shape [B].
        utt_ids: the B utterance ids.
        skipped: the items of this batch that were dropped because their audio could not be loaded.
    """

    wav: torch.Tensor
    lengths: torch.Tensor
    utt_ids: list[str]
    skipped: list[Skipped]

    def __len__(self) -> int:
        return self.wav.shape[0]


def crop_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one item: numpy's SeedSequence hashes (seed, epoch, index) into its state."""
    return np.random.default_rng([seed, epoch, index])


class AudioDataset(Dataset):
    """Utterances of a data directory as fixed-length training crops or whole validation utterances.

    Each item is loaded with `load_audio`, cut to its `segments` times, resampled to the config's rate and
    mixed to its channel count.

    Training mode (`train=True`) returns a crop of `segment_samples`; the offset is drawn from a generator
    built for the item alone from (seed, epoch, index) (see `crop_generator`). No global or per-worker
    random state is involved, so a crop does not depend on the number of workers, on which worker loads the
    item or in what order, and resuming at an epoch reproduces its crops. Call `set_epoch` before creating
    each epoch's DataLoader iterator (with `persistent_workers=True` the workers keep the epoch they were
    started with). Utterances shorter than the segment are zero-padded at the end and `length` says how
    many samples are real. Validation mode (`train=False`) returns whole utterances, cut to `max_seconds`.

    A file that cannot be read (missing, empty, corrupt, NaN samples, an impossible channel conversion) or
    that has no samples does not stop training: the item is returned as `Skipped`, logged once per file and
    worker with its path and problem, and dropped by `collate`, which lists it in `AudioBatch.skipped` so
    the training loop can count it (see `SkipCounter`). Files are not scanned up front: that would cost a
    pass over the corpus at every start, and a file can still fail later (a network disk going away).

    Args:
        data: a data directory (path or `DataDir`).
        config: sample rate, channels, crop length, validation length and seed.
        train: random crops (True) or whole utterances (False).

    Raises:
        DataDirError: an unusable data directory (see `read_data_dir`).
        ValueError: a data directory without utterances.
    """

    def __init__(self, data: DataDir | str | os.PathLike, config: DataConfig, train: bool = True):
        self.data = data if isinstance(data, DataDir) else read_data_dir(data)
        if not self.data.utterances:
            raise ValueError(f"{self.data.path}: the data directory lists no utterances")
        self.config = config
        self.train = train
        self.epoch = 0
        self._reported: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose crops `__getitem__` returns."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> AudioItem | Skipped:
        utt = self.data.utterances[index]
        try:
            wav = self._load(index)
        except AudioError as err:
            return self._skip(utt.utt_id, err.path, err.problem)
        if wav.shape[-1] == 0:
            return self._skip(utt.utt_id, utt.path, "no audio samples in this utterance")
        if not self.train:
            if self.config.max_seconds is not None:
                wav = wav[:, : math.ceil(self.config.max_seconds * self.config.sample_rate)]
            return AudioItem(wav.contiguous(), wav.shape[-1], utt.utt_id)
        segment = self.config.segment_samples
        length = wav.shape[-1]
        rng = crop_generator(self.config.seed, self.epoch, index)
        if length < segment:
            crop = self._augment(wav, rng)
            return AudioItem(torch.nn.functional.pad(crop, (0, segment - length)), length, utt.utt_id)
        offset = int(rng.integers(0, length - segment + 1))
        return AudioItem(self._augment(wav[:, offset : offset + segment], rng).contiguous(), segment,
                         utt.utt_id)

    def _augment(self, crop: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Effects, random gain, then dither, drawn from the item's own generator (worker-independent).

        Speed perturbation changes the crop's length: it is cut or zero-padded back to its own length.
        """
        config = self.config
        if config.augment is not None:
            length = crop.shape[-1]
            out = augment(crop.numpy(), config.augment, config.sample_rate, rng)[:, :length]
            crop = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(out)),
                                           (0, length - out.shape[-1])).to(crop.dtype)
        if config.gain_db is not None:
            crop = crop * float(10 ** (rng.uniform(*config.gain_db) / 20))
        if config.dither > 0:
            noise = rng.standard_normal(crop.shape, dtype=np.float32) * config.dither
            crop = crop + torch.from_numpy(noise).to(crop.dtype)
        return crop

    def _load(self, index: int) -> torch.Tensor:
        utt = self.data.utterances[index]
        wav, sr = load_audio(utt.path, channels=self.config.channels)
        if utt.start or utt.end is not None:
            first = round(utt.start * sr)
            if first >= wav.shape[-1]:
                duration = wav.shape[-1] / sr
                raise AudioError(utt.path, f"segment {utt.utt_id} starts at {utt.start:g} s, "
                                 f"after the end of the recording ({duration:.3f} s)")
            last = wav.shape[-1] if utt.end is None else round(utt.end * sr)
            wav = wav[:, first:last]
        return resample(wav, sr, self.config.sample_rate)

    def _skip(self, utt_id: str, path: str, problem: str) -> Skipped:
        if path not in self._reported:
            self._reported.add(path)
            logger.warning("skipping utterance %s: %s: %s", utt_id, path, problem)
        return Skipped(utt_id, path, problem)

    def collate(self, items: Sequence[AudioItem | Skipped | None]) -> AudioBatch:
        """`collate_audio` with this dataset's channel count (for a DataLoader's `collate_fn`)."""
        return collate_audio(items, channels=self.config.channels)


def collate_audio(items: Sequence[AudioItem | Skipped | None], channels: int = 1) -> AudioBatch:
    """Stacks items into [B, C, T] (T: the longest item, the others zero-padded), dropping skipped ones.

    Args:
        items: dataset items; `Skipped` ones (and None, from other datasets) are dropped and recorded.
        channels: channel count of the empty batch returned when every item was skipped.

    Returns:
        AudioBatch: B = number of loaded items (possibly 0: the caller should skip such a batch).
    """
    loaded = [item for item in items if isinstance(item, AudioItem)]
    skipped = [item if isinstance(item, Skipped) else Skipped("?", "?", "dataset returned None")
               for item in items if not isinstance(item, AudioItem)]
    if not loaded:
        return AudioBatch(torch.zeros(0, channels, 0), torch.zeros(0, dtype=torch.long), [], skipped)
    longest = max(item.wav.shape[-1] for item in loaded)
    wav = torch.zeros(len(loaded), loaded[0].wav.shape[0], longest, dtype=loaded[0].wav.dtype)
    for row, item in enumerate(loaded):
        wav[row, :, : item.wav.shape[-1]] = item.wav
    lengths = torch.tensor([item.length for item in loaded], dtype=torch.long)
    return AudioBatch(wav, lengths, [item.utt_id for item in loaded], skipped)


class SkipCounter:
    """Running count of skipped items for a training loop, failing fast when most of the data is unreadable.

    Args:
        max_fraction: raise once more than this fraction of the items seen were skipped...
        min_items: ...and at least this many items were seen (a few bad files early on are not alarming).
    """

    def __init__(self, max_fraction: float = 0.5, min_items: int = 64):
        self.max_fraction = max_fraction
        self.min_items = min_items
        self.seen = 0
        self.skipped = 0
        self.by_path: Counter[str] = Counter()

    def update(self, batch: AudioBatch) -> int:
        """Counts one batch; returns the number of items it skipped.

        Raises:
            RuntimeError: too many skipped items (e.g. the corpus disk is gone); names a few of the files.
        """
        self.seen += len(batch) + len(batch.skipped)
        self.skipped += len(batch.skipped)
        self.by_path.update(item.path for item in batch.skipped)
        if self.seen >= self.min_items and self.skipped > self.max_fraction * self.seen:
            examples = ", ".join(path for path, _ in self.by_path.most_common(3))
            raise RuntimeError(f"{self.skipped} of {self.seen} items could not be loaded "
                               f"(more than {self.max_fraction:.0%}), e.g. {examples}")
        return len(batch.skipped)
