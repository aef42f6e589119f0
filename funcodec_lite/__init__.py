"""funcodec_lite: neural audio codecs (SEANet, FreqCodec) with residual vector quantisation."""

from funcodec_lite.codec import Codec, CodecConfig, CodecOutput, list_presets
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.utils.config import ConfigError

__version__ = "0.1.0"
__all__ = ["Codec", "CodecConfig", "CodecOutput", "ConfigError", "list_presets", "Tokenizer", "__version__"]
