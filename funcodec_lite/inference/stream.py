"""Chunk-by-chunk encoding and decoding with causal codecs.

The streaming classes of our ``Codec`` live in the codec layer (``funcodec_lite.codec.streaming``); any
``CompressionModel`` that streams hands out its own through ``streaming_encoder()`` /
``streaming_decoder()``.  The names are kept here for existing callers.
"""

from funcodec_lite.codec.streaming import StreamingDecoder, StreamingEncoder

__all__ = ["StreamingDecoder", "StreamingEncoder"]
