"""Chunk-by-chunk encoding and decoding with causal ``Codec`` models (``Codec.streaming_encoder`` /
``Codec.streaming_decoder``).

The classes drive a ``funcodec_lite.codec.model.Codec`` (its encoder, quantizer and decoder); they are
typed ``Any`` here because the model module imports this one.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch


def check_streamable(codec: Any) -> None:
    """Raises ValueError (one line) unless ``codec`` is a causal time-domain codec without semantic
    augmentation."""
    if codec.config.arch != "seanet" or not codec.config.model.causal:
        raise ValueError("only causal time-domain codecs (arch seanet, causal: true) can stream")
    if codec.semantic is not None:
        raise ValueError("streaming does not support semantic augmentation")


class StreamingEncoder:
    """Encodes a signal that arrives in chunks; the codes equal those of ``Codec.encode`` on the whole.

    Args:
        codec: a causal time-domain codec.
        n_q: codebooks per frame (default ``codec.num_codebooks``).

    Use ``push(chunk [B, C, t]) -> codes [B, n_q, t']`` for each chunk (t' may be 0 while the encoder
    waits for a whole frame) and ``flush() -> codes`` once at the end.  Also a context manager.
    """

    def __init__(self, codec: Any, n_q: int | None = None) -> None:
        check_streamable(codec)
        self.codec, self.n_q = codec, n_q or codec.num_codebooks
        self._stack = ExitStack()
        self._stack.enter_context(codec.encoder.streaming())
        self._batch = 0

    @torch.no_grad()
    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        self.codec._check_wav(chunk)
        self._batch = chunk.shape[0]
        return self.codec.quantizer.encode(self.codec.encoder(self.codec.scale_input(chunk)), self.n_q)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Codes of the last frames; the stream is closed afterwards."""
        latent = self.codec.encoder.flush()
        self.close()
        if latent is None:
            return torch.zeros(self._batch, self.n_q, 0, dtype=torch.long)
        return self.codec.quantizer.encode(latent, self.n_q)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> StreamingEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamingDecoder:
    """Decodes codes that arrive in chunks; the audio equals ``Codec.decode`` on all codes at once.

    ``push(codes [B, n_q, n]) -> wav [B, C, n * samples_per_frame]``; ``flush()`` ends the stream.  The
    audio comes out in the decoder's dtype.
    """

    def __init__(self, codec: Any) -> None:
        check_streamable(codec)
        self.codec = codec
        self._stack = ExitStack()
        self._stack.enter_context(codec.decoder.streaming())
        self._batch = 0
        self._dtype = next((p.dtype for p in codec.decoder.parameters() if p.is_floating_point()),
                           torch.float32)

    @torch.no_grad()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        self._batch = codes.shape[0]
        latent = self.codec.quantizer.decode(codes).to(self._dtype)
        return self.codec.scale_output(self.codec.decoder(latent))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Audio still held back, [B, C, t] (t = 0 for causal SEANet decoders); closes the stream."""
        rest = self.codec.decoder.flush()
        self.close()
        if rest is None:
            return torch.zeros(self._batch, self.codec.channels, 0, dtype=self._dtype)
        return self.codec.scale_output(rest)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> StreamingDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
