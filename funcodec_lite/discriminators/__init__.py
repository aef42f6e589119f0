"""GAN discriminators for codecs and vocoders: MSD, MPD, MS-STFT and their combination."""

from .combined import (
    KINDS,
    DiscriminatorConfig,
    DiscriminatorInputs,
    DiscriminatorOutputs,
    MultiDiscriminator,
)
from .mpd import MPDConfig, MultiPeriodDiscriminator, PeriodDiscriminator
from .msd import MSDConfig, MultiScaleDiscriminator, ScaleDiscriminator
from .msstft import MSSTFTConfig, MultiScaleSTFTDiscriminator, STFTDiscriminator

__all__ = [
    "KINDS",
    "DiscriminatorConfig",
    "DiscriminatorInputs",
    "DiscriminatorOutputs",
    "MPDConfig",
    "MSDConfig",
    "MSSTFTConfig",
    "MultiDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "ScaleDiscriminator",
]
