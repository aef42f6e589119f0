"""Audio in blocks, for files of any length: block reading, streaming resampling, atomic block writing."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.audio.filters import FILTER_WIDTH, ROLLOFF, sinc_resample
from funcodec_lite.audio.io import AudioError, check_audio_path
from funcodec_lite.utils.atomic import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64")
WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate, channels, length in samples, container and sample format."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str


def _problem(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Reads an audio file's header.

    Raises:
        AudioError: missing path, directory, empty file, or a header soundfile cannot decode.
    """
    p = check_audio_path(path)
    try:
        info = sf.info(str(p))
    except _READ_ERRORS as err:
        raise AudioError(path, f"cannot decode audio ({_problem(err)})") from err
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, f"bad header: {info.samplerate} Hz, {info.channels} channel(s)")
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), int(info.frames), info.format,
                     info.subtype)


def read_blocks(path: str | os.PathLike, block_frames: int) -> Iterator[torch.Tensor]:
    """Reads a file block by block, never holding more than one block of samples.

    Args:
        path: the audio file.
        block_frames: samples per block (the last block may be shorter).

    Yields:
        float32 audio blocks [C, n] (integer formats scaled to [-1, 1), float formats as stored).

    Raises:
        AudioError: undecodable data or NaN/Inf samples (naming the first bad sample).
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    p = check_audio_path(path)
    offset = 0
    try:
        with sf.SoundFile(str(p)) as handle:
            while True:
                data = handle.read(block_frames, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                bad = ~np.isfinite(data)
                if bad.any():
                    first = offset + int(np.argwhere(bad)[0][0])
                    raise AudioError(path, f"contains NaN or Inf samples (first at sample {first})")
                offset += data.shape[0]
                yield torch.from_numpy(np.ascontiguousarray(data.T))
    except AudioError:
        raise
    except _READ_ERRORS as err:
        raise AudioError(path, f"cannot decode audio at sample {offset} ({_problem(err)})") from err


class BlockResampler:
    """Band-limited resampling of a signal that arrives in blocks; the output equals
    `sinc_resample` on the whole signal (up to float rounding).

    Each output group of ``new / gcd`` samples depends on a window of input around the matching
    ``orig / gcd`` input samples; a block is resampled with enough input context on both sides
    (``context`` samples, a multiple of ``orig / gcd``) and only the groups whose window lies inside
    it (or at the signal's ends) are emitted.  Memory: one block plus the context.

    Args:
        orig_sr, new_sr: sample rates in Hz.

    ``push(x [..., t]) -> y [..., t']`` and ``flush() -> y [..., rest]``; the total output length is
    ``ceil(total_input * new_sr / orig_sr)``, as `sinc_resample` gives.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        if orig_sr <= 0 or new_sr <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
        self.orig_sr, self.new_sr = int(orig_sr), int(new_sr)
        gcd = math.gcd(self.orig_sr, self.new_sr)
        self.o, self.n = self.orig_sr // gcd, self.new_sr // gcd
        width = math.ceil(FILTER_WIDTH * self.o / (min(self.o, self.n) * ROLLOFF))
        # group g reads input [g·o - width, g·o + o + width): `context` covers that on both sides
        self.context = (math.ceil(width / self.o) + 1) * self.o
        self._reset()

    def _reset(self) -> None:
        self._buffer: torch.Tensor | None = None
        self._empty: torch.Tensor | None = None
        self._start = 0  # input index of the buffer's first sample (a multiple of o)
        self._next_group = 0  # first output group not emitted yet
        self._emitted = 0
        self._total_in = 0

    @property
    def identity(self) -> bool:
        return self.orig_sr == self.new_sr

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: [..., t] input samples. Returns the output samples fully determined so far."""
        self._empty = x[..., :0]
        if self.identity:
            return x
        self._total_in += x.shape[-1]
        self._buffer = x if self._buffer is None else torch.cat([self._buffer, x], dim=-1)
        last = (self._start + self._buffer.shape[-1] - self.context) // self.o  # groups < last are complete
        if last <= self._next_group:
            return self._empty
        out = self._window_groups(last)
        self._next_group = last
        keep_from = max(0, last * self.o - self.context)
        self._buffer = self._buffer[..., keep_from - self._start :]
        self._start = keep_from
        return out

    def flush(self) -> torch.Tensor:
        """The rest of the output ([..., 0] when nothing is left); the resampler is reset afterwards."""
        empty = self._empty if self._empty is not None else torch.zeros(0)
        if self.identity or self._buffer is None:
            self._reset()
            return empty
        before = self._emitted
        out = self._window_groups(None)
        target = math.ceil(self.n * self._total_in / self.o)
        out = out[..., : max(0, target - before)]
        self._reset()
        return out

    def _window_groups(self, last: int | None) -> torch.Tensor:
        """Resamples the buffer and returns groups [next_group, last) (to the end when last is None)."""
        window = sinc_resample(self._buffer, self.orig_sr, self.new_sr)
        base = self._start // self.o
        stop = None if last is None else (last - base) * self.n
        out = window[..., (self._next_group - base) * self.n : stop]
        self._emitted += out.shape[-1]
        return out


class AudioWriter:
    """Writes audio block by block to a temporary file renamed onto ``path`` when the block ends
    without error; on any error nothing is left behind (``path`` keeps its old contents).

    Args:
        path: destination; the format comes from the extension (.wav, .flac, .ogg).
        sample_rate: sample rate in Hz.
        channels: channels of every block.
        subtype: soundfile subtype (default PCM_16 for wav/flac, VORBIS for ogg); samples are clipped
            to [-1, 1] except for FLOAT and DOUBLE.

    Use as ``with AudioWriter(...) as out: out.write(block [C, t])``.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int,
                 subtype: str | None = None) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in WRITE_FORMATS:
            raise AudioError(path, f"unsupported output extension {ext!r}; "
                                   f"use one of {sorted(WRITE_FORMATS)}")
        self.format, default = WRITE_FORMATS[ext]
        self.subtype = (subtype or default).upper()
        if not sf.check_format(self.format, self.subtype):
            raise AudioError(path, f"subtype {self.subtype} cannot be written as {self.format}")
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._stack = ExitStack()
        self._file: sf.SoundFile | None = None
        self.frames = 0

    def __enter__(self) -> AudioWriter:
        if self.path.is_dir():
            raise AudioError(self.path, "is a directory")
        if not self.path.parent.is_dir():
            raise AudioError(self.path, f"parent directory {str(self.path.parent)!r} does not exist")
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            handle = self._stack.enter_context(open(tmp, "xb"))
            self._file = sf.SoundFile(handle, "w", self.sample_rate, self.channels, self.subtype,
                                      format=self.format)
            self._stack.callback(self._file.close)
        except (OSError, sf.SoundFileError, RuntimeError, ValueError) as err:
            self._stack.close()
            detail = err.strerror if isinstance(err, OSError) and err.strerror else _problem(err)
            raise AudioError(self.path, f"cannot write ({detail})") from err
        return self

    def write(self, block: torch.Tensor) -> None:
        """Args: block: [C, t] audio."""
        if block.dim() != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a block [{self.channels}, t], got {tuple(block.shape)}")
        x = block.detach().to("cpu", torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise AudioError(self.path, "refusing to write NaN or Inf samples")
        if self.subtype not in _FLOAT_SUBTYPES:
            x = x.clamp(-1.0, 1.0)
        try:
            self._file.write(x.T.contiguous().numpy())
        except (OSError, sf.SoundFileError, RuntimeError) as err:
            raise AudioError(self.path, f"cannot write ({_problem(err)})") from err
        self.frames += x.shape[1]

    def __exit__(self, *exc) -> bool:
        try:
            return bool(self._stack.__exit__(*exc))
        except OSError as err:
            raise AudioError(self.path, f"cannot write ({err.strerror or err})") from err
