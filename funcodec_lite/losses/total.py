"""The weighted generator objective of FunCodec (Eq. 7) and the matching discriminator objective."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from funcodec_lite.losses.adversarial import DISCRIMINATOR_LOSSES, GENERATOR_LOSSES, feature_matching_loss
from funcodec_lite.losses.complex_spectral import CompressedComplexLoss
from funcodec_lite.losses.phase_derivative import PhaseDerivativeLoss
from funcodec_lite.losses.reconstruction import SPECTRAL_LOSSES, time_l1_loss

# per sub-discriminator: (logits, feature maps), as returned by funcodec_lite.discriminators
DiscOutputs = Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]]


@dataclass
class LossWeights:
    """Weights of the generator loss terms; defaults are FunCodec's (Eq. 7).

    Args:
        time: λ_t, time-domain L1.
        freq: λ_f, multi-scale spectral loss.
        adv: λ_adv, adversarial loss.
        feat: λ_feat, feature matching.
        commit: λ_cm, quantizer commitment loss.
        spectral: which loss the λ_f term is: "funcodec" (Eq. 4: L1 + L2 on log power and log mel
            spectra, 7 scales) or "dac_mel" (DAC: L1 on log magnitude mel spectra, 7 scales; DAC
            weighs it 15).
        complex: λ_c, the phase-aware compressed complex spectral loss (`CompressedComplexLoss`;
            0 = off).
        phase: λ_p, the instantaneous-frequency and group-delay loss (`PhaseDerivativeLoss`; 0 = off).
    """

    time: float = 1.0
    freq: float = 1.0
    adv: float = 1.0 / 9.0
    feat: float = 100.0 / 9.0
    commit: float = 1.0
    spectral: str = "funcodec"
    complex: float = 0.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        if self.spectral not in SPECTRAL_LOSSES:
            raise ValueError(f"unknown spectral loss {self.spectral!r}; "
                             f"choose one of {sorted(SPECTRAL_LOSSES)}")


class LossOutput(NamedTuple):
    """A training objective and its parts.

    Attributes:
        total (torch.Tensor): scalar to back-propagate.
        terms (dict[str, float]): the unweighted terms that were computed, plus "total", as floats.
    """

    total: torch.Tensor
    terms: dict[str, float]


class CodecLoss(nn.Module):
    """Generator and discriminator objectives of a GAN-trained codec.

    Generator: λ_t·L1(x, x̂) + λ_f·spectral(x, x̂) + λ_adv·adv(D(x̂)) + λ_feat·featmatch(D(x), D(x̂))
    + λ_cm·commit. Terms whose weight is 0, or whose inputs are not given (no discriminator outputs
    before the discriminators start, no commitment loss for an unquantised model), are skipped and
    left out of the logged terms.

    Args:
        sample_rate: audio sample rate in Hz (for the spectral loss scales).
        weights: term weights; None means FunCodec's defaults.
        gan: "hinge" (FunCodec, EnCodec) or "lsgan" (HiFi-GAN).
        relative_features: normalise feature matching by the real feature magnitude (EnCodec paper).
        spectral: the spectral loss module; None builds the one ``weights.spectral`` names.
    """

    def __init__(
        self,
        sample_rate: int,
        weights: LossWeights | None = None,
        gan: str = "hinge",
        relative_features: bool = False,
        spectral: nn.Module | None = None,
    ):
        super().__init__()
        if gan not in GENERATOR_LOSSES:
            raise ValueError(f"unknown gan loss {gan!r}; choose one of {sorted(GENERATOR_LOSSES)}")
        self.weights = weights or LossWeights()
        self.gan = gan
        self.relative_features = relative_features
        self.spectral = spectral or SPECTRAL_LOSSES[self.weights.spectral](sample_rate)
        self.complex = CompressedComplexLoss() if self.weights.complex else None
        self.phase = PhaseDerivativeLoss() if self.weights.phase else None

    def forward(
        self,
        wav: torch.Tensor,
        wav_hat: torch.Tensor,
        commit_loss: torch.Tensor | None = None,
        real_outputs: DiscOutputs | None = None,
        fake_outputs: DiscOutputs | None = None,
    ) -> LossOutput:
        """Generator objective.

        Args:
            wav (torch.Tensor): reference signal [B, C, T].
            wav_hat (torch.Tensor): reconstruction [B, C, T] (attached to the generator's graph).
            commit_loss (torch.Tensor | None): scalar commitment loss from the quantizer.
            real_outputs: discriminator outputs for `wav` (may be computed under no_grad); needed for
                feature matching.
            fake_outputs: discriminator outputs for `wav_hat`; needed for both adversarial terms.

        Returns:
            LossOutput: weighted total and the terms "time", "freq", "complex", "phase", "adv", "feat",
            "commit", "total".
        """
        w = self.weights
        parts: dict[str, tuple[float, torch.Tensor]] = {}
        if w.time:
            parts["time"] = (w.time, time_l1_loss(wav, wav_hat))
        if w.freq:
            parts["freq"] = (w.freq, self.spectral(wav, wav_hat))
        if self.complex is not None:
            parts["complex"] = (w.complex, self.complex(wav, wav_hat))
        if self.phase is not None:
            parts["phase"] = (w.phase, self.phase(wav, wav_hat))
        if fake_outputs is not None and w.adv:
            parts["adv"] = (w.adv, GENERATOR_LOSSES[self.gan]([logits for logits, _ in fake_outputs]))
        if fake_outputs is not None and real_outputs is not None and w.feat:
            feat = feature_matching_loss(
                [maps for _, maps in real_outputs], [maps for _, maps in fake_outputs], self.relative_features
            )
            parts["feat"] = (w.feat, feat)
        if commit_loss is not None and w.commit:
            parts["commit"] = (w.commit, commit_loss)
        if not parts:
            raise ValueError("every loss term is disabled or missing its inputs")
        total = torch.stack([weight * value for weight, value in parts.values()]).sum()
        return LossOutput(total, _as_floats(parts, total))

    def discriminator_loss(self, real_outputs: DiscOutputs, fake_outputs: DiscOutputs) -> LossOutput:
        """Discriminator objective on outputs for real audio and detached generated audio.

        Returns:
            LossOutput: the loss and the terms "disc" (same value) and "total".
        """
        loss = DISCRIMINATOR_LOSSES[self.gan]([r for r, _ in real_outputs], [f for f, _ in fake_outputs])
        return LossOutput(loss, _as_floats({"disc": (1.0, loss)}, loss))


def _as_floats(parts: dict[str, tuple[float, torch.Tensor]], total: torch.Tensor) -> dict[str, float]:
    terms = {name: float(value.detach()) for name, (_, value) in parts.items()}
    terms["total"] = float(total.detach())
    return terms
