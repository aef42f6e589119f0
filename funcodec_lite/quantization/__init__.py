"""Residual quantization (VQ codebooks or FSQ grids), distributed sync and semantic augmentation."""

from .builder import Quantizer, build_quantizer, build_semantic
from .codebook import CodebookUpdate, EuclideanCodebook
from .fsq import ResidualFSQ
from .kmeans import KMeansResult, kmeans
from .rvq import QUANTIZER_KINDS, QuantizerOutput, ResidualVectorQuantizer, RVQConfig
from .search import nearest_codes
from .semantic import SemanticAugmentation, SemanticConfig

__all__ = [
    "QUANTIZER_KINDS",
    "CodebookUpdate",
    "EuclideanCodebook",
    "KMeansResult",
    "Quantizer",
    "QuantizerOutput",
    "RVQConfig",
    "ResidualFSQ",
    "ResidualVectorQuantizer",
    "SemanticAugmentation",
    "SemanticConfig",
    "build_quantizer",
    "build_semantic",
    "kmeans",
    "nearest_codes",
]
