"""The Codec model: its config, presets, shipped weights and model-directory loading."""

from funcodec_lite.codec.config import CodecConfig, list_presets
from funcodec_lite.codec.model import Codec, CodecOutput

__all__ = ["Codec", "CodecConfig", "CodecOutput", "list_presets"]
