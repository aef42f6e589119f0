"""Audio files ↔ token files: block-wise reading, resampling, chunked coding and atomic writing."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from funcodec_lite.audio.blocks import AudioWriter, BlockResampler, audio_info, read_blocks
from funcodec_lite.audio.io import resample
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import model_id
from funcodec_lite.inference.chunking import (
    ChunkConfig,
    ChunkedEncoder,
    check_codable,
    decode_chunks,
    encode_chunked,
    frames_for_length,
)
from funcodec_lite.inference.tokens import TokenFile, TokenFileError, load_tokens, save_tokens


@dataclass(frozen=True)
class StreamLayout:
    """How a file's channels map to code streams.

    A mono model codes every channel as its own stream; a k-channel model codes consecutive groups of
    k channels, and a mono file is repeated to k channels (``upmix``) and averaged back on decoding.
    """

    streams: int
    model_channels: int
    upmix: bool

    @classmethod
    def for_file(cls, codec: CompressionModel, channels: int,
                 path: str | os.PathLike = "<audio>") -> StreamLayout:
        k = codec.channels
        if k == 1:
            return cls(channels, 1, False)
        if channels == 1:
            return cls(1, k, True)
        if channels % k:
            raise ValueError(f"{path}: {channels} channels cannot be coded by a {k}-channel model "
                             f"(need 1 or a multiple of {k})")
        return cls(channels // k, k, False)

    def split(self, wav: torch.Tensor) -> torch.Tensor:
        """[C, t] file channels -> [streams, model_channels, t]."""
        if self.upmix:
            return wav.expand(self.model_channels, -1)[None]
        return wav.reshape(self.streams, self.model_channels, wav.shape[-1])

    def join(self, wav: torch.Tensor) -> torch.Tensor:
        """[streams, model_channels, t] -> [C, t] file channels."""
        if self.upmix:
            return wav.mean(dim=1)
        return wav.reshape(self.streams * self.model_channels, wav.shape[-1])


def model_length(num_samples: int, sample_rate: int, model_rate: int) -> int:
    """Samples at the model's rate for ``num_samples`` at ``sample_rate`` (`sinc_resample`'s length)."""
    if sample_rate == model_rate:
        return num_samples
    return math.ceil(model_rate * num_samples / sample_rate)


def _tokens(codec: CompressionModel, codes: torch.Tensor, sample_rate: int, num_samples: int,
            channels: int) -> TokenFile:
    expected = frames_for_length(codec, model_length(num_samples, sample_rate, codec.sample_rate))
    if codes.shape[-1] != expected:  # an internal consistency check, never expected to fire
        raise RuntimeError(f"chunked encoding gave {codes.shape[-1]} frames, expected {expected}")
    n_q = codes.shape[1]
    sizes, strides = codec.codebook_sizes[:n_q], codec.codebook_strides[:n_q]
    return TokenFile(codes=codes.numpy().astype(np.int16), sample_rate=int(sample_rate),
                     num_samples=int(num_samples), num_channels=int(channels), frame_rate=codec.frame_rate,
                     codebook_size=codec.codebook_size, model_id=model_id(codec),
                     codebook_sizes=sizes if any(n != codec.codebook_size for n in sizes) else None,
                     codebook_strides=strides if any(n != 1 for n in strides) else None)


def encode_file(codec: CompressionModel, src: str | os.PathLike, dest: str | os.PathLike | None,
                n_q: int | None = None, chunk: ChunkConfig | None = None) -> TokenFile:
    """Encodes an audio file of any length to a token file, reading it block by block.

    Args:
        codec: the model.
        src: an audio file (any format soundfile reads, any rate, any number of channels).
        dest: the ``.npz`` to write atomically (None: only return the tokens).
        n_q: codebooks (default all).
        chunk: chunk sizes (see ``ChunkConfig``).

    Raises:
        AudioError: unreadable input or NaN/Inf samples; TokenFileError: unwritable output.
    """
    check_codable(codec)
    chunk = chunk or ChunkConfig()
    info = audio_info(src)
    layout = StreamLayout.for_file(codec, info.channels, src)
    resampler = BlockResampler(info.sample_rate, codec.sample_rate)
    block_frames = max(1, round(chunk.chunk_seconds * info.sample_rate))
    parts, total = [], 0
    with ChunkedEncoder(codec, n_q, chunk) as encoder:
        for block in read_blocks(src, block_frames):
            total += block.shape[-1]
            parts.append(encoder.push(resampler.push(layout.split(block))))
        if total:
            parts.append(encoder.push(resampler.flush()))
            parts.append(encoder.flush())
    if total:
        codes = torch.cat(parts, dim=-1)
    else:
        codes = torch.zeros(layout.streams, encoder.n_q, 0, dtype=torch.long)
    tokens = _tokens(codec, codes, info.sample_rate, total, info.channels)
    if dest is not None:
        save_tokens(dest, tokens)
    return tokens


def encode_waveform(codec: CompressionModel, wav: torch.Tensor, sample_rate: int, n_q: int | None = None,
                    chunk: ChunkConfig | None = None) -> TokenFile:
    """Encodes in-memory audio [C, T] at ``sample_rate`` (resampled whole, coded in chunks)."""
    at_model_rate = resample(wav, sample_rate, codec.sample_rate) if wav.shape[-1] else wav
    return encode_resampled(codec, at_model_rate, sample_rate, wav.shape[-1], n_q, chunk)


def encode_resampled(codec: CompressionModel, wav: torch.Tensor, sample_rate: int, num_samples: int,
                     n_q: int | None = None, chunk: ChunkConfig | None = None) -> TokenFile:
    """Encodes audio [C, T'] already at the model's rate; ``sample_rate`` and ``num_samples`` describe the
    original audio (what decoding restores)."""
    check_codable(codec)
    layout = StreamLayout.for_file(codec, wav.shape[0])
    codes = encode_chunked(codec, layout.split(wav), n_q, chunk)
    return _tokens(codec, codes, sample_rate, num_samples, wav.shape[0])


def check_tokens(tokens: TokenFile, codec: CompressionModel, path: str | os.PathLike,
                 force: bool = False) -> StreamLayout:
    """Checks that ``codec`` can decode ``tokens`` (the model that made them unless ``force``).

    Raises:
        TokenFileError: a different model (without ``force``), or codes the model cannot decode.
    """
    ours = model_id(codec)
    if tokens.model_id != ours and not force:
        raise TokenFileError(path, f"made by model {tokens.model_id}, but this model is {ours}; decode with "
                                   "the model that made it (--model DIR), or pass --force")
    if tokens.n_q > codec.n_q:
        raise TokenFileError(path, f"holds {tokens.n_q} codebooks; the model has {codec.n_q}")
    if tokens.codes.size and int(tokens.codes.max()) >= codec.codebook_size:
        raise TokenFileError(path, f"codes out of range for the model: found {int(tokens.codes.max())}, "
                                   f"codebook_size is {codec.codebook_size}")
    if tokens.codes.size and len(set(codec.codebook_sizes)) > 1:
        top = tokens.codes.max(axis=(0, 2))
        for k, size in enumerate(codec.codebook_sizes[: tokens.n_q]):
            if int(top[k]) >= size:
                raise TokenFileError(path, f"codes out of range for the model: found {int(top[k])} in "
                                           f"codebook {k}, whose size is {size}")
    if tokens.strides != codec.codebook_strides[: tokens.n_q]:
        raise TokenFileError(path, f"codebook strides {list(tokens.strides)} do not fit the model's "
                                   f"{list(codec.codebook_strides[: tokens.n_q])}")
    try:
        layout = StreamLayout.for_file(codec, tokens.num_channels, path)
    except ValueError as err:
        raise TokenFileError(path, str(err).split(": ", 1)[-1]) from err
    if layout.streams != tokens.streams:
        raise TokenFileError(path, f"{tokens.streams} code streams do not fit {tokens.num_channels} "
                                   f"channel(s) with a {codec.channels}-channel model")
    length = model_length(tokens.num_samples, tokens.sample_rate, codec.sample_rate)
    expected = frames_for_length(codec, length)
    if tokens.frames != expected and not force:
        raise TokenFileError(path, f"holds {tokens.frames} frames, but {tokens.num_samples} samples at "
                                   f"{tokens.sample_rate} Hz need {expected} (truncated or edited?)")
    return layout


def decode_file(codec: CompressionModel, src: str | os.PathLike, dest: str | os.PathLike, force: bool = False,
                chunk: ChunkConfig | None = None, subtype: str | None = None) -> TokenFile:
    """Decodes a token file to audio with the original rate, length and channel count.

    Args:
        codec: the model; it must be the one that wrote the file unless ``force``.
        src: the ``.npz`` token file.
        dest: the audio file to write atomically (.wav, .flac or .ogg).
        force: decode tokens of another model (their codes must still fit this one).
        chunk: chunk sizes.
        subtype: soundfile subtype of the output (default PCM_16, VORBIS for .ogg).

    Raises:
        TokenFileError: unreadable, corrupt or incompatible tokens; AudioError: unwritable output.
    """
    check_codable(codec)
    tokens = load_tokens(src)
    layout = check_tokens(tokens, codec, src, force)
    length = model_length(tokens.num_samples, tokens.sample_rate, codec.sample_rate)
    codes = torch.from_numpy(tokens.codes.astype(np.int64))
    resampler = BlockResampler(codec.sample_rate, tokens.sample_rate)
    with AudioWriter(dest, tokens.sample_rate, tokens.num_channels, subtype) as out:
        left_model, left_file = length, tokens.num_samples

        def emit(block: torch.Tensor) -> None:
            nonlocal left_file
            block = block[..., :left_file]
            left_file -= block.shape[-1]
            if block.shape[-1]:
                out.write(block)

        for block in decode_chunks(codec, codes, chunk):
            block = layout.join(block[..., :left_model])
            left_model -= block.shape[-1]
            emit(resampler.push(block))
        if length and codes.shape[-1]:
            emit(resampler.flush())
        if left_file > 0:  # fewer frames than the length needs (only with force): pad with silence
            emit(torch.zeros(tokens.num_channels, left_file))
    return tokens
