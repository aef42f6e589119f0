"""Encoding and decoding of signals of any length in chunks, with memory bounded by the chunk size.

Works with any ``CompressionModel``.  Causal models stream (their ``streaming_encoder()`` /
``streaming_decoder()``): the codes and audio equal whole-signal results.  Non-causal models use
overlapping windows aligned to code frames (to whole tokens of every codebook, ``frame_alignment``, for
multi-rate models): each window is a chunk of
``chunk_seconds`` plus ``context_seconds`` of real signal on each side (clipped at the signal's ends),
is encoded (or decoded) alone, and only its central frames (samples) are kept.  Frames whose receptive
field fits inside the window come out as in whole-signal coding; what an LSTM or GroupNorm sees beyond
the window is lost, so codes near chunk boundaries can differ (docs/cli.md measures how much).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.model import Codec


@dataclass
class ChunkConfig:
    """Chunk sizes for long signals.

    Args:
        chunk_seconds: audio per window whose codes are kept (rounded to whole code frames).
        context_seconds: extra audio on each side of a window of a non-causal model (whole frames).
    """

    chunk_seconds: float = 20.0
    context_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not self.chunk_seconds > 0 or self.context_seconds < 0:
            raise ValueError(f"chunk_seconds must be > 0 and context_seconds >= 0, got {self}")

    def frames(self, codec: CompressionModel) -> tuple[int, int]:
        """(chunk frames, context frames) for ``codec``, whole multiples of its ``frame_alignment``."""
        rate, align = codec.frame_rate, codec.frame_alignment
        chunk = max(1, round(self.chunk_seconds * rate))
        return -(-chunk // align) * align, -(-math.ceil(self.context_seconds * rate) // align) * align


def check_codable(codec: CompressionModel) -> None:
    """Refuses models the file commands cannot drive (semantic augmentation needs extra inputs)."""
    if isinstance(codec, Codec) and codec.semantic is not None:
        raise ValueError("this model uses semantic augmentation: its codes depend on semantic features, "
                         "which the command line and the Tokenizer do not provide")


def is_causal(codec: CompressionModel) -> bool:
    return codec.is_causal


def frames_for_length(codec: CompressionModel, length: int) -> int:
    """Code frames that ``codec.encode`` gives for ``length`` samples (0 for an empty signal)."""
    return codec.num_frames(length)


def min_length(codec: CompressionModel) -> int:
    """Fewest samples ``codec.encode`` accepts (shorter windows are zero-padded by ``ChunkedEncoder``)."""
    return codec.min_samples


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Returns freed heap memory to the system (glibc only; a no-op elsewhere).

    Between windows of a long signal. glibc's allocator raises its mmap threshold after large frees, so
    later window-sized tensors come from the heap, whose freed space it keeps: without trimming, a
    10-minute file grew the process by up to 300 MB more than a 1-minute one (docs/benchmarks.md).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def model_device(codec: CompressionModel) -> torch.device:
    return next(codec.parameters(), torch.empty(0)).device


def model_dtype(codec: CompressionModel) -> torch.dtype:
    """Floating-point dtype of the model's first floating parameter (float32 when it has none)."""
    return next((p.dtype for p in codec.parameters() if p.is_floating_point()), torch.float32)


class ChunkedEncoder:
    """Encodes a signal that arrives in blocks, one window at a time.

    Args:
        codec: the model (eval mode, no semantic augmentation).
        n_q: codebooks per frame (default all).
        config: chunk and context sizes.

    ``push(wav [B, C, t]) -> codes [B, n_q, n]`` (n may be 0) for each block at the model's rate and
    ``flush() -> codes`` at the end; the codes concatenate to [B, n_q, frames_for_length(T)].  A causal
    model's encoder is in streaming mode from the first ``push`` to ``flush`` or ``close``; use the
    encoder as a context manager so that an error in between closes the stream.
    """

    def __init__(self, codec: CompressionModel, n_q: int | None = None,
                 config: ChunkConfig | None = None) -> None:
        check_codable(codec)
        self.codec = codec
        self.n_q = n_q or codec.num_codebooks  # its range is checked by the model's encode
        self.config = config or ChunkConfig()
        self.chunk, self.context = self.config.frames(codec)
        self.spf = codec.samples_per_frame
        self.device = model_device(codec)
        self.dtype = model_dtype(codec)
        self._stream: Any = None
        self._buffer: torch.Tensor | None = None
        self._start = 0  # sample index of the buffer's first sample (a multiple of spf)
        self._next = 0  # first code frame not emitted yet
        self._batch = 0
        self._seen = 0  # samples pushed since the last flush

    @torch.no_grad()
    def push(self, wav: torch.Tensor) -> torch.Tensor:
        """Args: wav: [B, C, t] at the model's rate. Returns the codes completed by this block."""
        if wav.dim() != 3 or wav.shape[1] != self.codec.channels:
            raise ValueError(f"expected a waveform [B, {self.codec.channels}, T], got {tuple(wav.shape)}")
        self._batch = wav.shape[0]
        if wav.shape[-1] == 0:
            return self._empty()
        wav = wav.to(self.device, self.dtype)
        self._seen += wav.shape[-1]
        if self.codec.is_causal:
            if self._stream is None:
                self._stream = self.codec.streaming_encoder(self.n_q)
            return self._stream.push(wav).cpu()
        self._buffer = wav if self._buffer is None else torch.cat([self._buffer, wav], dim=-1)
        out = []
        spf, ctx = self.spf, self.context * self.spf
        while self._start + self._buffer.shape[-1] >= (self._next + self.chunk) * spf + ctx:
            end = (self._next + self.chunk) * spf + ctx
            codes = self._encode(self._buffer[..., : end - self._start])
            offset = self._next - self._start // spf
            out.append(codes[..., offset : offset + self.chunk].cpu())
            self._next += self.chunk
            keep_from = max(0, self._next * spf - ctx)
            self._buffer = self._buffer[..., keep_from - self._start :]
            self._start = keep_from
            release_memory()
        return torch.cat(out, dim=-1) if out else self._empty()

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """The codes of the last window; the encoder is reset afterwards."""
        if self._stream is not None:
            codes = self._stream.flush().cpu()
            self._stream, self._seen = None, 0
            return codes
        if self._buffer is None:
            return self._empty()
        codes = self._encode(self._buffer)
        out = codes[..., self._next - self._start // self.spf :].cpu()
        self._buffer, self._start, self._next, self._seen = None, 0, 0, 0
        return out

    def close(self) -> None:
        """Drops any open stream and buffered audio (the model leaves streaming mode)."""
        if self._stream is not None:
            _close(self._stream)
        self._stream, self._buffer, self._start, self._next, self._seen = None, None, 0, 0, 0

    def __enter__(self) -> ChunkedEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _empty(self) -> torch.Tensor:
        return torch.zeros(self._batch, self.n_q, 0, dtype=torch.long)

    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``codec.encode``; a window too short for a centred STFT is zero-padded, its extra frames cut."""
        shortest = min_length(self.codec)
        if wav.shape[-1] >= shortest:
            return self.codec.encode(wav, n_q=self.n_q)
        padded = torch.nn.functional.pad(wav, (0, shortest - wav.shape[-1]))
        return self.codec.encode(padded, n_q=self.n_q)[..., : frames_for_length(self.codec, wav.shape[-1])]


def _close(stream: Any) -> None:
    """Closes a model's streaming encoder or decoder (those that hold no state may have no ``close``)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def encode_chunked(codec: CompressionModel, wav: torch.Tensor, n_q: int | None = None,
                   config: ChunkConfig | None = None) -> torch.Tensor:
    """Encodes an in-memory signal window by window (bounded activation memory).

    Args:
        wav: [B, C, T] at the model's rate.
    Returns:
        codes [B, n_q, frames_for_length(T)] (long, CPU).
    """
    with ChunkedEncoder(codec, n_q, config) as encoder:
        step = encoder.chunk * encoder.spf
        parts = [encoder.push(wav[..., i : i + step]) for i in range(0, wav.shape[-1], step)]
        if not parts:
            encoder.push(wav)
        parts.append(encoder.flush())
    return torch.cat(parts, dim=-1)


@torch.no_grad()
def decode_chunks(codec: CompressionModel, codes: torch.Tensor,
                  config: ChunkConfig | None = None) -> Iterator[torch.Tensor]:
    """Decodes codes window by window.

    Args:
        codec: the model (no semantic augmentation).
        codes: [B, n_q, N] long codes (any device).
        config: chunk and context sizes.

    Yields:
        float32 CPU audio blocks [B, C, t] at the model's rate; together N · samples_per_frame samples.
    """
    check_codable(codec)
    config = config or ChunkConfig()
    chunk, context = config.frames(codec)
    spf, total = codec.samples_per_frame, codes.shape[-1]
    codes = codes.to(model_device(codec))
    if codec.is_causal:
        stream = codec.streaming_decoder()
        try:
            for start in range(0, total, chunk):
                yield stream.push(codes[..., start : start + chunk]).float().cpu()
                if total > chunk:
                    release_memory()
            if total:
                rest = stream.flush()  # held back only by a stream shorter than a conv's padding
                if rest.shape[-1]:
                    yield rest.float().cpu()
        finally:
            _close(stream)
        return
    for start in range(0, total, chunk):
        first, stop = max(0, start - context), min(total, start + chunk + context)
        wav = codec.decode(codes[..., first:stop])
        keep = (start - first) * spf
        block = wav[..., keep : keep + min(chunk, total - start) * spf].float().cpu()
        del wav
        if total > chunk:
            release_memory()
        yield block


def decode_chunked(codec: CompressionModel, codes: torch.Tensor, length: int | None = None,
                   config: ChunkConfig | None = None) -> torch.Tensor:
    """Decodes codes [B, n_q, N] to audio [B, C, length] (default N · samples_per_frame) in windows."""
    blocks = list(decode_chunks(codec, codes, config))
    wav = torch.cat(blocks, dim=-1) if blocks else torch.zeros(codes.shape[0], codec.channels, 0)
    return wav[..., :length] if length is not None else wav
