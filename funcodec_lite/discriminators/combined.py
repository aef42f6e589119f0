"""Any combination of the MSD, MPD and MS-STFT discriminators behind one module."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from funcodec_lite.discriminators.mpd import MPDConfig, MultiPeriodDiscriminator
from funcodec_lite.discriminators.msd import MSDConfig, MultiScaleDiscriminator
from funcodec_lite.discriminators.msstft import MSSTFTConfig, MultiScaleSTFTDiscriminator

KINDS = ("msd", "mpd", "msstft")

# per sub-discriminator: (logits, feature maps)
DiscriminatorOutputs = list[tuple[torch.Tensor, list[torch.Tensor]]]


@dataclass
class DiscriminatorConfig:
    """Which discriminators to train against, and their settings.

    Args:
        kinds: any of "msd", "mpd", "msstft", in the order their outputs are listed.
        msd: multi-scale waveform discriminator settings.
        mpd: multi-period discriminator settings.
        msstft: multi-scale STFT discriminator settings.
    """

    kinds: list[str] = field(default_factory=lambda: ["msstft"])
    msd: MSDConfig = field(default_factory=MSDConfig)
    mpd: MPDConfig = field(default_factory=MPDConfig)
    msstft: MSSTFTConfig = field(default_factory=MSSTFTConfig)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must be distinct names from {KINDS} (at least one), got {self.kinds}")


class MultiDiscriminator(nn.Module):
    """The discriminators named in `config.kinds`, run on the same signal.

    Args:
        config: settings; None means the MS-STFT discriminator alone.
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config or DiscriminatorConfig()
        builders = {
            "msd": lambda: MultiScaleDiscriminator(self.config.msd),
            "mpd": lambda: MultiPeriodDiscriminator(self.config.mpd),
            "msstft": lambda: MultiScaleSTFTDiscriminator(self.config.msstft),
        }
        self.discriminators = nn.ModuleDict({kind: builders[kind]() for kind in self.config.kinds})

    @property
    def names(self) -> list[str]:
        """One name per sub-discriminator, in output order (e.g. "msd/0", "mpd/2", "msstft/1024")."""
        cfg = self.config
        labels = {"msd": range(cfg.msd.scales), "mpd": cfg.mpd.periods, "msstft": cfg.msstft.windows}
        return [f"{kind}/{label}" for kind in cfg.kinds for label in labels[kind]]

    def prepare(self, wav: torch.Tensor) -> DiscriminatorInputs:
        """The weight-free front ends (the MS-STFT spectrograms), computed once for a signal.

        Args:
            wav (torch.Tensor): mono signal of shape [B, 1, T] or [B, T].
        """
        if wav.dim() == 2:
            wav = wav[:, None]
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a mono signal [B, 1, T], got shape {tuple(wav.shape)}")
        inputs = {}
        for kind, disc in self.discriminators.items():
            inputs[kind] = disc.spectrograms(wav) if isinstance(disc, MultiScaleSTFTDiscriminator) else wav
        return DiscriminatorInputs(inputs)

    def forward(self, wav: torch.Tensor | DiscriminatorInputs) -> DiscriminatorOutputs:
        """Args:
            wav: mono signal [B, 1, T] or [B, T], or its `prepare`d inputs (reused across the
                discriminator and generator updates of a step; pass them through `forward` rather
                than calling the sub-modules, so a DistributedDataParallel wrapper still syncs).

        Returns:
            DiscriminatorOutputs: per sub-discriminator (see `names`), (logits, feature maps).
        """
        inputs = wav if isinstance(wav, DiscriminatorInputs) else self.prepare(wav)
        outputs: DiscriminatorOutputs = []
        for kind, disc in self.discriminators.items():
            x = inputs.by_kind[kind]
            outputs.extend(disc.classify(x) if isinstance(disc, MultiScaleSTFTDiscriminator) else disc(x))
        return outputs


class DiscriminatorInputs:
    """What `MultiDiscriminator.prepare` computed for one signal: per kind, a waveform or spectrograms."""

    def __init__(self, by_kind: dict[str, torch.Tensor | list[torch.Tensor]]):
        self.by_kind = by_kind

    def detach(self) -> DiscriminatorInputs:
        """The same inputs cut from the autograd graph (for the discriminator update on fakes)."""
        return DiscriminatorInputs({
            kind: [t.detach() for t in x] if isinstance(x, list) else x.detach()
            for kind, x in self.by_kind.items()
        })
