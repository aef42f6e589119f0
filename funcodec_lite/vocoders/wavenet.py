"""Mel-conditioned autoregressive WaveNet vocoder with μ-law, mixture-of-logistics or Gaussian outputs.

Output distributions (``WaveNetConfig.output``):

- ``"mulaw"``: a categorical over 2^bits μ-law classes (WaveNet, 2016); the input is the one-hot class of
  the previous sample.
- ``"mol"``: a discretized mixture of logistics over 65,536 levels of [-1, 1] (PixelCNN++, Salimans et al.
  2017; the Parallel WaveNet teacher, van den Oord et al. 2018).
- ``"gaussian"``: one Gaussian per sample (ClariNet's teacher, Ping et al. 2019), its log-scale bounded
  below.

Training is teacher-forced: the network sees the true previous samples. The distributions are in
`funcodec_lite.vocoders.wavenet_outputs`, sampling in `funcodec_lite.vocoders.wavenet_sampling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.vocoders.wavenet_layers import MelUpsampler, WaveNetStack, pointwise
from funcodec_lite.vocoders.wavenet_outputs import (
    OUTPUTS,
    gaussian_log_prob,
    mol_log_prob,
    mulaw_decode,
    mulaw_encode,
)
from funcodec_lite.vocoders.wavenet_sampling import incremental_sample

# ---------------------------------------------------------------------------------------------------------
# The model


@dataclass
class WaveNetConfig:
    """A WaveNet vocoder's settings.

    Args:
        num_mels: input mel bands.
        upsample_scales: factors of the mel upsampler (their product is the hop).
        upsample_depthwise: one upsampling filter per band (`MelUpsampler`).
        output: "mulaw", "mol" or "gaussian".
        mulaw_bits: bits of the μ-law classes ("mulaw").
        mol_components: logistics in the mixture ("mol").
        mol_classes: levels the mixture is discretized to ("mol"; 65,536 = 16-bit audio).
        min_log_scale: lower bound of the log-scale of a logistic or Gaussian.
        residual_channels, gate_channels, skip_channels: widths of the residual stack.
        kernel_size: taps of the dilated convolutions.
        layers_per_cycle: layers per dilation cycle (dilations 1, 2, ..., 2^(layers_per_cycle - 1)).
        dilation_cycles: repetitions of the cycle.
    """

    num_mels: int = 80
    upsample_scales: list[int] = field(default_factory=lambda: [4, 4, 4, 4])
    upsample_depthwise: bool = False
    output: str = "mol"
    mulaw_bits: int = 8
    mol_components: int = 10
    mol_classes: int = 65536
    min_log_scale: float = -7.0
    residual_channels: int = 128
    gate_channels: int = 256
    skip_channels: int = 128
    kernel_size: int = 2
    layers_per_cycle: int = 10
    dilation_cycles: int = 3

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.kernel_size < 2:
            raise ValueError("kernel_size must be at least 2")

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_scales)

    @property
    def dilations(self) -> list[int]:
        return [2**i for i in range(self.layers_per_cycle)] * self.dilation_cycles

    @property
    def input_channels(self) -> int:
        """Channels of one input sample: the one-hot class count for "mulaw", else 1."""
        return 2**self.mulaw_bits if self.output == "mulaw" else 1

    @property
    def output_channels(self) -> int:
        """Distribution parameters per sample."""
        return {"mulaw": 2**self.mulaw_bits, "mol": 3 * self.mol_components, "gaussian": 2}[self.output]


def wavenet_base() -> WaveNetConfig:
    """30 layers (3 cycles of 1...512), 128/256/128 channels, a 10-logistic mixture (3.8 M weights)."""
    return WaveNetConfig()


def wavenet_tiny() -> WaveNetConfig:
    """A CPU-sized μ-law WaveNet: 2 cycles of 1...16, 16/32/32 channels (61 k weights)."""
    return WaveNetConfig(output="mulaw", upsample_depthwise=True, residual_channels=16, gate_channels=32,
                         skip_channels=32, layers_per_cycle=5, dilation_cycles=2)


def wavenet_tiny_gaussian() -> WaveNetConfig:
    """The tiny WaveNet with a Gaussian output (48 k weights): a teacher for the ClariNet student."""
    config = wavenet_tiny()
    config.output = "gaussian"
    return config


def wavenet_tiny_mol() -> WaveNetConfig:
    """The tiny WaveNet with a 4-logistic mixture (49 k weights): a Parallel WaveNet teacher."""
    config = wavenet_tiny()
    config.output, config.mol_components = "mol", 4
    return config


PRESETS = {"base": wavenet_base, "tiny": wavenet_tiny, "tiny_gaussian": wavenet_tiny_gaussian,
           "tiny_mol": wavenet_tiny_mol}


class WaveNetVocoder(nn.Module):
    """Autoregressive WaveNet: p(x_t | x_<t, mel), a causal residual stack over the previous samples.

    Args:
        config: its settings (`WaveNetConfig`; default: the base preset).
    """

    model_kind = "wavenet"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = WaveNetConfig

    def __init__(self, config: WaveNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or WaveNetConfig()
        self.upsampler = MelUpsampler(config.num_mels, config.upsample_scales, config.upsample_depthwise)
        self.stack = WaveNetStack(config.input_channels, config.residual_channels, config.gate_channels,
                                  config.skip_channels, config.num_mels, config.kernel_size,
                                  config.dilations, causal=True)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(config.skip_channels, config.skip_channels, 1),
                                  nn.ReLU(), nn.Conv1d(config.skip_channels, config.output_channels, 1))

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def receptive_field(self) -> int:
        """Previous samples that one prediction sees (the shift by one included)."""
        return self.stack.receptive_field

    def condition(self, mel: torch.Tensor) -> torch.Tensor:
        """Upsampled mel [B, num_mels, F * hop] of mel [B, num_mels, F]."""
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"expected mel [B, {self.config.num_mels}, F], got {tuple(mel.shape)}")
        return self.upsampler(mel)

    def targets(self, wav: torch.Tensor) -> torch.Tensor:
        """What the model predicts of audio [B, 1, T] or [B, T]: μ-law classes (long) or samples, [B, T]."""
        wav = wav.reshape(wav.shape[0], -1)
        if self.config.output == "mulaw":
            return mulaw_encode(wav, self.config.mulaw_bits)
        return wav.clamp(-1.0, 1.0)

    def input_features(self, targets: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Network input [B, C_in, T] of targets [B, T]: one-hot classes or the samples themselves."""
        dtype = dtype or self.head[-1].weight.dtype
        if self.config.output == "mulaw":
            return F.one_hot(targets, self.config.input_channels).transpose(1, 2).to(dtype)
        return targets.unsqueeze(1).to(dtype)

    def teacher_forced_params(self, targets: torch.Tensor,
                              cond_proj: list[torch.Tensor | None]) -> torch.Tensor:
        """Distribution parameters [B, P, T] of every sample given the true previous ones.

        Args:
            targets: [B, T] from `targets` (the last one is never seen).
            cond_proj: `self.stack.cond_projections(self.condition(mel))`, at least T long.
        """
        features = self.input_features(targets)
        shifted = F.pad(features, (1, 0))[..., :-1]  # the input at t is the sample t - 1 (zeros at t = 0)
        return self.head(self.stack(shifted, cond_proj=cond_proj))

    def step_params(self, skip: torch.Tensor) -> torch.Tensor:
        """The head on one step: parameters [B, P] of the skip sum [B, C_skip, 1] (`WaveNetStack.step`)."""
        hidden = pointwise(self.head[1], torch.relu(skip))
        return pointwise(self.head[3], torch.relu(hidden))[..., 0]

    def forward_params(self, targets: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Parameters [B, P, T] of p(x_t | x_<t, mel) for targets [B, T] and mel [B, num_mels, F]."""
        cond = self.condition(mel)
        if cond.shape[-1] < targets.shape[-1]:
            raise ValueError(f"mel of {mel.shape[-1]} frames covers {cond.shape[-1]} samples, "
                             f"not {targets.shape[-1]}")
        return self.teacher_forced_params(targets, self.stack.cond_projections(cond))

    def log_prob(self, params: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(targets) [B, T] (nats) under parameters [B, P, T]."""
        config = self.config
        if config.output == "mulaw":
            return -F.cross_entropy(params, targets, reduction="none")
        if config.output == "mol":
            return mol_log_prob(params, targets, config.mol_classes, config.min_log_scale)
        return gaussian_log_prob(params, targets, config.min_log_scale)

    def training_loss(self, mel: torch.Tensor, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced negative log-likelihood.

        Args:
            mel: [B, num_mels, F].
            wav: [B, 1, F * hop].

        Returns:
            ``loss`` and ``nll``: nats per sample; ``"mulaw"`` also logs ``accuracy`` (argmax = target).
        """
        targets = self.targets(wav)
        params = self.forward_params(targets, mel)
        nll = -self.log_prob(params, targets).mean()
        terms = {"loss": nll, "nll": nll.detach()}
        if self.config.output == "mulaw":
            terms["accuracy"] = (params.argmax(1) == targets).float().mean()
        return terms

    def to_audio(self, samples: torch.Tensor) -> torch.Tensor:
        """Audio [B, 1, T] of sampled targets [B, T] (μ-law classes decoded)."""
        if self.config.output == "mulaw":
            samples = mulaw_decode(samples, self.config.mulaw_bits, self.head[-1].weight.dtype)
        return samples.unsqueeze(1)

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio [B, 1, F * hop] sampled one sample at a time with the incremental (queue) sampler.

        Args:
            mel: [B, num_mels, F].
            temperature: scales the sampling noise (`wavenet_outputs.draw`); 0 takes the mode / mean.
            generator: the random source (on the device it draws on); None: torch's default.
        """
        return self.to_audio(incremental_sample(self, mel, temperature, generator))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``synthesize(mel)``: audio [B, 1, F * hop] of mel [B, num_mels, F]."""
        return self.synthesize(mel)
