"""Converters from other toolkits' checkpoints to funcodec_lite models."""

from funcodec_lite.convert.encodec import encodec_key_to_ours, encodec_to_codec

__all__ = ["encodec_key_to_ours", "encodec_to_codec"]
