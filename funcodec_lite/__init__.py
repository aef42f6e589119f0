"""funcodec_lite: neural audio codecs (SEANet, FreqCodec) with residual vector quantisation."""

from funcodec_lite.codec import Codec, CodecOutput
from funcodec_lite.config import CodecConfig, ConfigError, list_presets
from funcodec_lite.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = ["Codec", "CodecConfig", "CodecOutput", "ConfigError", "list_presets", "Tokenizer", "__version__"]
