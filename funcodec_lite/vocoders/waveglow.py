"""WaveGlow (Prenger et al., 2019): a mel-conditioned normalizing flow between audio and Gaussian noise."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from funcodec_lite.vocoders.flow_layers import (
    UPSAMPLERS,
    AffineCoupling,
    FlowVocoder,
    InvertibleConv1x1,
    build_upsampler,
    squeeze,
    unsqueeze,
)


@dataclass
class WaveGlowConfig:
    """WaveGlow's settings (names as the public ``config.json`` where it has them); the defaults are the
    paper's model (`waveglow_paper`).

    Args:
        num_mels: input mel bands.
        upsample_rates: time factors of the mel upsampler (their product is the hop).
        upsampler: ``conv2d`` (FloWaveNet's, one small kernel for all bands) or ``conv1d`` (transposed
            convs of num_mels channels, as WaveGlow's): `build_upsampler`.
        n_group: samples squeezed into one vector (the flow's channels).
        n_flows: steps of (invertible 1x1 conv, affine coupling).
        n_early_every: an early output leaves before every ``n_early_every``-th flow (not the first).
        n_early_size: channels per early output.
        wn_channels: width of each coupling's WaveNet-like transform.
        wn_layers: its dilated layers (dilations 1, 2, 4, ...).
        wn_kernel_size: its odd kernel.
        sigma: standard deviation of the Gaussian prior during training (the public config's 1.0).
        temperature: default scale of the prior's deviation at synthesis (WaveGlow samples at sigma 0.6).
        max_log_scale: soft limit of each coupling's log-scale (`AffineCoupling`).
    """

    num_mels: int = 80
    upsample_rates: list[int] = field(default_factory=lambda: [256])
    upsampler: str = "conv1d"
    n_group: int = 8
    n_flows: int = 12
    n_early_every: int = 4
    n_early_size: int = 2
    wn_channels: int = 256
    wn_layers: int = 8
    wn_kernel_size: int = 3
    sigma: float = 1.0
    temperature: float = 0.6
    max_log_scale: float = 4.0

    def __post_init__(self) -> None:
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {self.upsampler!r}")
        if self.hop_length % self.n_group:
            raise ValueError(f"the hop {self.hop_length} must be a multiple of n_group {self.n_group}")
        if self.n_group - self.n_early_size * self.num_early_outputs < 2:
            raise ValueError("the early outputs leave fewer than two channels for the last flows")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        return math.prod(self.upsample_rates)

    @property
    def num_early_outputs(self) -> int:
        """How many early outputs leave the flow."""
        return (self.n_flows - 1) // self.n_early_every if self.n_early_every > 0 else 0


def waveglow_paper() -> WaveGlowConfig:
    """The paper's model: 12 flows, groups of 8 samples, 2 channels out every 4 flows, WN of 8 layers x 256
    channels (the released model's) and one 80-channel transposed conv of stride 256 (kernel 512 here,
    1024 in WaveGlow): 85.2 M parameters (the paper reports 87.9 M)."""
    return WaveGlowConfig()


def waveglow_tiny() -> WaveGlowConfig:
    """A CPU-sized WaveGlow (hop 256): FloWaveNet's upsampler, 4 flows, 2 channels out after 2, WN of 3
    layers x 16 channels (272 k parameters, 90 % of them the couplings' 640-channel mel conditioning)."""
    return WaveGlowConfig(upsample_rates=[16, 16], upsampler="conv2d", n_flows=4, n_early_every=2,
                          wn_channels=16, wn_layers=3)


PRESETS = {"paper": waveglow_paper, "tiny": waveglow_tiny}


class WaveGlow(FlowVocoder):
    """Audio [B, 1, T] <-> latent z [B, 1, T], conditioned on log-mels [B, num_mels, T / hop].

    The audio is squeezed into vectors of ``n_group`` consecutive samples; each flow step mixes the
    channels by an invertible 1x1 conv and transforms half of them by an affine coupling whose
    WaveNet-like transform sees the other half and the upsampled mel (squeezed the same way). Every
    ``n_early_every`` steps, ``n_early_size`` channels leave early (their latent is final). The latent is
    N(0, sigma^2) per sample; training minimises the exact negative log-likelihood, and synthesis draws z
    and runs the inverse in one pass.

    Args:
        config: settings; None means the paper's.
    """

    model_kind = "waveglow"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = WaveGlowConfig

    def __init__(self, config: WaveGlowConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or waveglow_paper()
        self.upsample = build_upsampler(cfg.upsampler, cfg.num_mels, cfg.upsample_rates)
        cond_channels = cfg.num_mels * cfg.n_group
        self.convs, self.couplings = nn.ModuleList(), nn.ModuleList()
        channels = cfg.n_group
        for k in range(cfg.n_flows):
            if self._early_output_before(k):
                channels -= cfg.n_early_size
            self.convs.append(InvertibleConv1x1(channels))
            self.couplings.append(AffineCoupling(channels, cond_channels, cfg.wn_channels, cfg.wn_layers,
                                                 cfg.wn_kernel_size, cfg.max_log_scale))
        self.final_channels = channels

    def _early_output_before(self, k: int) -> bool:
        every = self.config.n_early_every
        return every > 0 and k > 0 and k % every == 0

    def encode(self, wav: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow, audio to latent.

        Args:
            wav (torch.Tensor): audio [B, 1, F · hop] (or [B, F · hop]).
            mel (torch.Tensor): its log-mel [B, num_mels, F].

        Returns:
            (z, logdet): latent [B, 1, F · hop] (early outputs and the last flow's output, in squeezed
            channel order) and log|det dz/dwav| [B].
        """
        wav = wav.reshape(wav.shape[0], 1, -1)
        cond = squeeze(self.condition(mel, wav.shape[-1]), self.config.n_group)
        x = squeeze(wav, self.config.n_group)
        logdet = x.new_zeros(x.shape[0])
        early = []
        for k, (conv, coupling) in enumerate(zip(self.convs, self.couplings)):
            if self._early_output_before(k):
                early.append(x[:, : self.config.n_early_size])
                x = x[:, self.config.n_early_size :]
            x, conv_logdet = conv(x)
            x, coupling_logdet = coupling(x, cond)
            logdet = logdet + conv_logdet + coupling_logdet
        return unsqueeze(torch.cat([*early, x], 1), self.config.n_group), logdet

    def decode(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """The inverse flow: latent z [B, 1, F · hop] and mel [B, num_mels, F] -> audio [B, 1, F · hop]."""
        cond = squeeze(self.condition(mel, z.shape[-1]), self.config.n_group)
        parts = squeeze(z, self.config.n_group)
        sizes = [self.config.n_early_size] * self.config.num_early_outputs + [self.final_channels]
        *early, x = parts.split(sizes, 1)
        for k in reversed(range(self.config.n_flows)):
            x = self.convs[k].inverse(self.couplings[k].inverse(x, cond))
            if self._early_output_before(k):
                x = torch.cat([early.pop(), x], 1)
        return unsqueeze(x, self.config.n_group)
