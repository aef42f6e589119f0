"""Residual vector quantization: codebooks, RVQ, distributed sync and semantic augmentation."""

from .codebook import CodebookUpdate, EuclideanCodebook
from .kmeans import KMeansResult, kmeans
from .rvq import QuantizerOutput, ResidualVectorQuantizer, RVQConfig
from .search import nearest_codes
from .semantic import SemanticAugmentation, SemanticConfig

__all__ = [
    "CodebookUpdate",
    "EuclideanCodebook",
    "KMeansResult",
    "QuantizerOutput",
    "RVQConfig",
    "ResidualVectorQuantizer",
    "SemanticAugmentation",
    "SemanticConfig",
    "kmeans",
    "nearest_codes",
]
