"""FloWaveNet (Kim et al., 2019): a multi-scale flow of ActNorm and WaveNet affine couplings, mel to audio."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from funcodec_lite.vocoders.flow_layers import (
    UPSAMPLERS,
    ActNorm,
    AffineCoupling,
    FlowVocoder,
    build_upsampler,
    squeeze,
    swap_halves,
    unsqueeze,
    unswap_halves,
)


@dataclass
class FloWaveNetConfig:
    """FloWaveNet's settings (the public implementation's names in brackets); the defaults are the paper's
    model (`flowavenet_paper`).

    Args:
        num_mels: input mel bands [cin_channels].
        upsample_rates: time factors of the mel upsampler (their product is the hop).
        upsampler: ``conv2d`` (FloWaveNet's, one small kernel for all bands) or ``conv1d`` (transposed
            convs of num_mels channels, as WaveGlow's): `build_upsampler`.
        n_blocks: context blocks, each a squeeze (time x 1/2, channels x 2) and ``n_flows`` flows [n_block].
        n_flows: flows of (ActNorm, affine coupling, swap of halves) per block [n_flow].
        wn_channels: width of each coupling's WaveNet-like transform [filter_size].
        wn_layers: its dilated layers [n_layer].
        wn_kernel_size: its odd kernel.
        split_every: blocks between multi-scale splits [block_per_split]: after every such block (not the
            last) half the channels leave as latent, under a learned Gaussian prior conditioned on the other
            half and the mel; 0 means no split.
        sigma: standard deviation of the Gaussian prior during training (FloWaveNet: 1).
        temperature: default scale of the prior's deviation at synthesis (the public code samples at 1).
        max_log_scale: soft limit of each coupling's log-scale (`AffineCoupling`).
    """

    num_mels: int = 80
    upsample_rates: list[int] = field(default_factory=lambda: [16, 16])
    upsampler: str = "conv2d"
    n_blocks: int = 8
    n_flows: int = 6
    wn_channels: int = 256
    wn_layers: int = 2
    wn_kernel_size: int = 3
    split_every: int = 0
    sigma: float = 1.0
    temperature: float = 1.0
    max_log_scale: float = 4.0

    def __post_init__(self) -> None:
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {self.upsampler!r}")
        if self.hop_length % 2**self.n_blocks:
            raise ValueError(f"the hop {self.hop_length} is not a multiple of 2^{self.n_blocks}")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        return math.prod(self.upsample_rates)

    def splits_after(self, block: int) -> bool:
        """Whether half the channels leave after block ``block`` (0-based)."""
        return self.split_every > 0 and (block + 1) % self.split_every == 0 and block < self.n_blocks - 1


def flowavenet_paper() -> FloWaveNetConfig:
    """The paper's model: 8 blocks x 6 flows, WaveNets of 2 layers x 256 channels, no split (the public
    code's ``block_per_split`` of 8 with 8 blocks): 177.0 M parameters (the paper counts 182.6 M; its
    WaveNets have extra output convs), most of them in the couplings' conditioning (80 · 2^7 mel channels
    in the last block)."""
    return FloWaveNetConfig()


def flowavenet_tiny() -> FloWaveNetConfig:
    """A CPU-sized FloWaveNet (hop 256): 4 blocks x 2 flows, a split after block 2, WaveNets of 2 layers x
    16 channels (214 k parameters)."""
    return FloWaveNetConfig(n_blocks=4, n_flows=2, wn_channels=16, split_every=2)


PRESETS = {"paper": flowavenet_paper, "tiny": flowavenet_tiny}


class FlowBlock(nn.Module):
    """One context block: squeeze audio and mel by 2, then ``n_flows`` x (ActNorm, coupling, swap of halves).

    As in FloWaveNet, flow k's coupling sees one half of the squeezed mel channels (the first half for
    even k, the second for odd k: the public code swaps the mel's halves along with the audio's). With
    ``split``, a last coupling conditioned on the whole mel standardises the second half of the channels,
    which then leaves as latent: Glow's learned prior N(mean, sd) for the split-off half, written as an
    invertible affine map, so every latent is N(0, sigma^2).

    Args:
        channels: audio channels after the squeeze (C).
        cond_channels: mel channels after the squeeze.
        config: the model's settings.
        split: whether the second half of the channels leaves after this block.
    """

    def __init__(self, channels: int, cond_channels: int, config: FloWaveNetConfig, split: bool) -> None:
        super().__init__()
        wn = (config.wn_channels, config.wn_layers, config.wn_kernel_size, config.max_log_scale)
        self.norms = nn.ModuleList(ActNorm(channels) for _ in range(config.n_flows))
        self.couplings = nn.ModuleList(AffineCoupling(channels, cond_channels // 2, *wn)
                                       for _ in range(config.n_flows))
        self.prior = AffineCoupling(channels, cond_channels, *wn) if split else None
        self.kept = channels // 2 if split else channels

    def forward(self, x: torch.Tensor, cond: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """x [B, C / 2, T], cond [B, M, T] -> (out [B, kept, T / 2], split-off latent [B, C - kept, T / 2] or
        None, squeezed cond [B, 2M, T / 2], logdet [B])."""
        x, cond = squeeze(x, 2), squeeze(cond, 2)
        halves = cond.chunk(2, 1)
        logdet = x.new_zeros(x.shape[0])
        for k, (norm, coupling) in enumerate(zip(self.norms, self.couplings)):
            x, norm_logdet = norm(x)
            x, coupling_logdet = coupling(x, halves[k % 2])
            x = swap_halves(x)
            logdet = logdet + norm_logdet + coupling_logdet
        if self.prior is None:
            return x, None, cond, logdet
        x, prior_logdet = self.prior(x, cond)
        return x[:, : self.kept], x[:, self.kept :], cond, logdet + prior_logdet

    def inverse(self, y: torch.Tensor, latent: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        """The inverse: y [B, kept, T / 2], the split-off latent (None without split) and the squeezed cond
        [B, 2M, T / 2] -> x [B, C / 2, T]."""
        if self.prior is not None:
            y = self.prior.inverse(torch.cat([y, latent], 1), cond)
        halves = cond.chunk(2, 1)
        for k in reversed(range(len(self.couplings))):
            y = unswap_halves(y)
            y = self.norms[k].inverse(self.couplings[k].inverse(y, halves[k % 2]))
        return unsqueeze(y, 2)


class FloWaveNet(FlowVocoder):
    """Audio [B, 1, T] <-> latent z [B, 1, T], conditioned on log-mels [B, num_mels, T / hop].

    The mel is upsampled to the sample rate and squeezed along with the audio in every block, so each
    block's couplings see it at their own time resolution. The split-off latents and the last block's
    output are put back in the audio's layout (unsqueezed as the blocks squeezed), so ``z`` has the
    audio's shape. Training minimises the exact negative log-likelihood under N(0, sigma^2); synthesis
    draws z and runs the inverse in one pass.

    Args:
        config: settings; None means the paper's.
    """

    model_kind = "flowavenet"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = FloWaveNetConfig

    def __init__(self, config: FloWaveNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or flowavenet_paper()
        self.upsample = build_upsampler(cfg.upsampler, cfg.num_mels, cfg.upsample_rates)
        self.blocks = nn.ModuleList()
        channels, cond_channels = 1, cfg.num_mels
        for i in range(cfg.n_blocks):
            channels, cond_channels = 2 * channels, 2 * cond_channels
            self.blocks.append(FlowBlock(channels, cond_channels, cfg, cfg.splits_after(i)))
            channels = self.blocks[-1].kept

    def encode(self, wav: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow, audio to latent.

        Args:
            wav (torch.Tensor): audio [B, 1, F · hop] (or [B, F · hop]).
            mel (torch.Tensor): its log-mel [B, num_mels, F].

        Returns:
            (z, logdet): latent [B, 1, F · hop] and log|det dz/dwav| [B].
        """
        x = wav.reshape(wav.shape[0], 1, -1)
        cond = self.condition(mel, x.shape[-1])
        logdet = x.new_zeros(x.shape[0])
        latents = []
        for block in self.blocks:
            x, latent, cond, block_logdet = block(x, cond)
            latents.append(latent)
            logdet = logdet + block_logdet
        for latent in reversed(latents):  # back to the audio's layout
            x = unsqueeze(x if latent is None else torch.cat([x, latent], 1), 2)
        return x, logdet

    def decode(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """The inverse flow: latent z [B, 1, F · hop] and mel [B, num_mels, F] -> audio [B, 1, F · hop]."""
        cond = self.condition(mel, z.shape[-1])
        conds, latents = [], []
        for block in self.blocks:  # each block's squeezed mel, and z cut as `encode` assembled it
            cond, z = squeeze(cond, 2), squeeze(z, 2)
            conds.append(cond)
            latents.append(z[:, block.kept :] if block.prior is not None else None)
            z = z[:, : block.kept]
        x = z
        for block, cond, latent in zip(reversed(self.blocks), reversed(conds), reversed(latents)):
            x = block.inverse(x, latent, cond)
        return x
