"""The quantizer a config asks for: residual VQ (``kind: rvq``) or residual FSQ (``kind: fsq``); the
semantic augmentation a ``SemanticConfig`` asks for."""

from __future__ import annotations

from .fsq import ResidualFSQ
from .funcodec_semantic import FunCodecSemantic
from .rvq import ResidualVectorQuantizer, RVQConfig
from .semantic import SemanticAugmentation, SemanticConfig

Quantizer = ResidualVectorQuantizer | ResidualFSQ


def build_quantizer(config: RVQConfig) -> Quantizer:
    """Builds the quantizer of ``config.kind``; both take a latent [B, D, N] and give codes [B, n_q, N].

    Args:
        config (RVQConfig): the codec config's ``quantizer`` section.

    Returns:
        ResidualVectorQuantizer | ResidualFSQ: the quantizer.
    """
    if config.kind == "fsq":
        return ResidualFSQ(config)
    return ResidualVectorQuantizer(config)


def build_semantic(config: SemanticConfig, latent_dim: int) -> SemanticAugmentation:
    """Our semantic augmentation (``frontend: linear``) or FunCodec's (``frontend: funcodec``)."""
    if config.frontend == "funcodec":
        return FunCodecSemantic(config, latent_dim)
    if config.frontend != "linear":
        raise ValueError(f"semantic frontend must be 'linear' or 'funcodec', got {config.frontend!r}")
    return SemanticAugmentation(config, latent_dim)
