"""The quantizer a config asks for: residual VQ (``kind: rvq``) or residual FSQ (``kind: fsq``)."""

from __future__ import annotations

from .fsq import ResidualFSQ
from .rvq import ResidualVectorQuantizer, RVQConfig

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
