"""Codec training losses: reconstruction, spectral, adversarial, feature matching and their total."""

from .adversarial import (
    DISCRIMINATOR_LOSSES,
    GENERATOR_LOSSES,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from .reconstruction import (
    SPECTRAL_LOSSES,
    MelReconstructionLoss,
    MultiScaleSpectralLoss,
    dac_resolutions,
    log_compress,
    time_l1_loss,
)
from .total import CodecLoss, LossOutput, LossWeights

__all__ = [
    "DISCRIMINATOR_LOSSES",
    "GENERATOR_LOSSES",
    "CodecLoss",
    "LossOutput",
    "LossWeights",
    "MelReconstructionLoss",
    "MultiScaleSpectralLoss",
    "SPECTRAL_LOSSES",
    "dac_resolutions",
    "feature_matching_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "log_compress",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "time_l1_loss",
]
