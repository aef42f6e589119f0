"""funcodec_lite: neural audio codecs (SEANet, FreqCodec) with residual vector quantisation."""

__version__ = "0.1.0"
