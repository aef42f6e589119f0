"""HiFi-GAN training losses (official train.py): LSGAN + 2 · feature matching + 45 · mel L1 over MPD + MSD."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch.nn import functional as F

from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.discriminators import DiscriminatorConfig, DiscriminatorOutputs, MultiDiscriminator
from funcodec_lite.losses.adversarial import (
    feature_matching_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)


@dataclass
class HiFiGANLossConfig:
    """HiFi-GAN's generator objective: LSGAN + 2 · feature matching + 45 · mel L1.

    Args:
        discriminator: MPD (periods 2, 3, 5, 7, 11) + MSD (3 scales), HiFi-GAN V1's sizes by default.
        mel: the loss mel. HiFi-GAN's ``fmax_for_loss`` is None: the full band up to 11,025 Hz
            (the generator's input mel stops at 8 kHz); clips keep their length.
        adversarial_weight, feature_weight, mel_weight: weights of the three terms.
    """

    discriminator: DiscriminatorConfig = field(
        default_factory=lambda: DiscriminatorConfig(kinds=["mpd", "msd"])
    )
    mel: FoleyMelConfig = field(default_factory=lambda: FoleyMelConfig(fmax=None, num_samples=None))
    adversarial_weight: float = 1.0
    feature_weight: float = 2.0
    mel_weight: float = 45.0


class HiFiGANGeneratorLoss(NamedTuple):
    """The weighted total and the unweighted terms.

    ``total = adversarial_weight · adversarial + feature_weight · feature + mel_weight · mel``.
    """

    total: torch.Tensor
    adversarial: torch.Tensor
    feature: torch.Tensor
    mel: torch.Tensor


def build_discriminator(config: HiFiGANLossConfig | None = None) -> MultiDiscriminator:
    """The toolkit's MPD + MSD with the loss config's settings."""
    return MultiDiscriminator((config or HiFiGANLossConfig()).discriminator)


def build_loss_mel(config: HiFiGANLossConfig | None = None) -> FoleyMel:
    """The mel used by the L1 term (full band, no length fitting, by default)."""
    return FoleyMel((config or HiFiGANLossConfig()).mel)


def _with_logits(outputs: DiscriminatorOutputs) -> list[list[torch.Tensor]]:
    """Feature maps plus the output logits: the official ``fmap`` lists include the last conv too."""
    return [[*features, logits] for logits, features in outputs]


def hifigan_generator_loss(
    discriminator: MultiDiscriminator,
    wav: torch.Tensor,
    wav_hat: torch.Tensor,
    loss_mel: FoleyMel,
    config: HiFiGANLossConfig | None = None,
    mel: torch.Tensor | None = None,
) -> HiFiGANGeneratorLoss:
    """Generator loss of one batch, summed over sub-discriminators as in the official code.

    Args:
        discriminator: MPD + MSD (see `build_discriminator`).
        wav (torch.Tensor): real audio [B, 1, T].
        wav_hat (torch.Tensor): generated audio [B, 1, T].
        loss_mel: the loss mel (see `build_loss_mel`).
        config: weights; None means HiFi-GAN's.
        mel (torch.Tensor, optional): the loss mel of ``wav`` [B, n_mels, N] if already computed.

    Returns:
        HiFiGANGeneratorLoss: total and the unweighted LSGAN, feature-matching and mel-L1 terms.

    Its backward also leaves gradients in the discriminator: zero them before the discriminator's step.
    """
    config = config or HiFiGANLossConfig()
    if wav.shape != wav_hat.shape:
        raise ValueError(f"real and generated audio differ in shape: {tuple(wav.shape)} vs "
                         f"{tuple(wav_hat.shape)}")
    if mel is None:
        with torch.no_grad():
            mel = loss_mel(wav)
    mel_l1 = F.l1_loss(loss_mel(wav_hat), mel)
    fake = discriminator(wav_hat)
    with torch.no_grad():
        real = discriminator(wav)
    adversarial = lsgan_generator_loss([logits for logits, _ in fake], reduction="sum")
    feature = feature_matching_loss(_with_logits(real), _with_logits(fake), reduction="sum")
    total = (config.adversarial_weight * adversarial + config.feature_weight * feature
             + config.mel_weight * mel_l1)
    return HiFiGANGeneratorLoss(total, adversarial, feature, mel_l1)


def hifigan_discriminator_loss(discriminator: MultiDiscriminator, wav: torch.Tensor,
                               wav_hat: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss, summed over sub-discriminators; ``wav_hat`` is detached.

    Args:
        discriminator: MPD + MSD.
        wav (torch.Tensor): real audio [B, 1, T].
        wav_hat (torch.Tensor): generated audio [B, 1, T].
    """
    real = [logits for logits, _ in discriminator(wav)]
    fake = [logits for logits, _ in discriminator(wav_hat.detach())]
    return lsgan_discriminator_loss(real, fake, reduction="sum")
