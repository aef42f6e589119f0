"""Inverse-autoregressive-flow student distilled from a WaveNet teacher (Parallel WaveNet, ClariNet).

The student maps white noise z [B, 1, T] to audio in one parallel pass through a stack of IAFs. Flow i
computes ``x_i = x_{i-1} * exp(log_s_i) + mu_i`` with (mu_i, log_s_i) at time t from a causal
`WaveNetStack` over x_{i-1} at times < t (the input is shifted by one) and the upsampled mel. Composed,
``x = z * exp(log_s) + mu`` where (mu, log_s) at time t depend on z_<t only, so given z_<t each sample
is Gaussian (z ~ N(0, 1), ClariNet, Ping et al. 2019) or logistic (z logistic, Parallel WaveNet,
van den Oord et al. 2018) with mean mu_t and scale exp(log_s_t).

Probability density distillation minimises KL(student || teacher) per time step, with the frozen
teacher run teacher-forced on the student's own sample:

- a "gaussian" teacher: the closed-form Gaussian KL (ClariNet), plus its regulariser
  ``(log s_teacher - log s_student)^2``;
- a "mol" teacher: a Monte-Carlo estimate, ``E_q[-log p_teacher(x_t)] - H(q_t)`` with the logistic's
  entropy ``log s + 2`` in closed form and ``mc_samples`` fresh draws of x_t per step (Parallel WaveNet),
  the teacher's mixture taken as a continuous density;

plus a multi-resolution spectral loss between the student's sample and the real audio (both papers add
a spectral term so that the student does not whisper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.losses.reconstruction import MultiScaleSpectralLoss
from funcodec_lite.vocoders.wavenet import WaveNetVocoder
from funcodec_lite.vocoders.wavenet_layers import MelUpsampler, WaveNetStack
from funcodec_lite.vocoders.wavenet_outputs import mol_log_density, split_gaussian

DISTRIBUTIONS = ("gaussian", "logistic")
TEACHER_OUTPUT = {"gaussian": "gaussian", "logistic": "mol"}  # the teacher each student distils from


@dataclass
class StudentConfig:
    """An IAF student's settings.

    Args:
        num_mels: input mel bands.
        upsample_scales: factors of the mel upsampler (their product is the hop).
        upsample_depthwise: one upsampling filter per band (`MelUpsampler`).
        distribution: "gaussian" (ClariNet; a "gaussian" teacher) or "logistic" (Parallel WaveNet; a
            "mol" teacher): the noise and so the per-sample output distribution.
        flow_layers: WaveNet layers of each flow (dilations 1, 2, ..., 512, 1, 2, ...).
        residual_channels, gate_channels, skip_channels, kernel_size: each flow's WaveNet.
        min_log_scale: lower bound of each flow's log-scale.
        sample_rate: of the audio (the spectral loss' mel scales).
        spectral_weight: weight of the multi-resolution spectral loss.
        log_scale_weight: weight of ClariNet's ``(log s_teacher - log s_student)^2`` ("gaussian").
        mc_samples: draws of each x_t in the Monte-Carlo cross-entropy ("logistic").
    """

    num_mels: int = 80
    upsample_scales: list[int] = field(default_factory=lambda: [4, 4, 4, 4])
    upsample_depthwise: bool = False
    distribution: str = "gaussian"
    flow_layers: list[int] = field(default_factory=lambda: [10] * 6)
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 64
    kernel_size: int = 2
    min_log_scale: float = -7.0
    sample_rate: int = 22050
    spectral_weight: float = 1.0
    log_scale_weight: float = 4.0
    mc_samples: int = 4

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if not self.flow_layers or min(self.flow_layers) < 1:
            raise ValueError(f"flow_layers needs at least one flow of at least one layer: {self.flow_layers}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_scales)


def student_clarinet() -> StudentConfig:
    """ClariNet's student: six Gaussian IAFs of 10 layers, 64 residual channels (2.3 M weights)."""
    return StudentConfig()


def student_parallel_wavenet() -> StudentConfig:
    """Parallel WaveNet's student: logistic IAFs of 10, 10, 10 and 30 layers (2.3 M weights)."""
    return StudentConfig(distribution="logistic", flow_layers=[10, 10, 10, 30])


def student_tiny() -> StudentConfig:
    """A CPU-sized Gaussian student for `wavenet_tiny_gaussian`: two flows of 5 layers, 16/32/16 (44 k)."""
    return StudentConfig(upsample_depthwise=True, flow_layers=[5, 5], residual_channels=16, gate_channels=32,
                         skip_channels=16)


PRESETS = {"clarinet": student_clarinet, "parallel_wavenet": student_parallel_wavenet, "tiny": student_tiny}


def gaussian_kl(mean_q: torch.Tensor, log_scale_q: torch.Tensor, mean_p: torch.Tensor,
                log_scale_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, s_q) || N(mean_p, s_p)) elementwise (nats), scales given as logs."""
    variance_ratio = torch.exp(2 * (log_scale_q - log_scale_p))
    squared_gap = ((mean_q - mean_p) * torch.exp(-log_scale_p)) ** 2
    return log_scale_p - log_scale_q + (variance_ratio + squared_gap) / 2 - 0.5


class IAFlow(nn.Module):
    """One inverse autoregressive flow: shift and log-scale of sample t from the input before t.

    Args:
        config: the student's settings.
        layers: its WaveNet's layers.
    """

    def __init__(self, config: StudentConfig, layers: int) -> None:
        super().__init__()
        self.min_log_scale = config.min_log_scale
        self.stack = WaveNetStack(1, config.residual_channels, config.gate_channels, config.skip_channels,
                                  config.num_mels, config.kernel_size, [2 ** (i % 10) for i in range(layers)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(config.skip_channels, 2, 1))
        nn.init.zeros_(self.out[-1].weight)  # each flow starts as the identity
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: [B, 1, T] the previous flow's output.
            cond: [B, num_mels, T] the upsampled mel.

        Returns:
            (shift, log-scale), each [B, 1, T]; entry t depends on x at times < t only.
        """
        shifted = F.pad(x, (1, 0))[..., :-1]
        shift, log_scale = self.out(self.stack(shifted, cond)).chunk(2, dim=1)
        return shift, log_scale.clamp_min(self.min_log_scale)


class StudentVocoder(nn.Module):
    """Parallel-sampling IAF student; distilled from an attached, frozen WaveNet teacher.

    Args:
        config: its settings (`StudentConfig`; default: the ClariNet preset).
    """

    model_kind = "student"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = StudentConfig

    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or StudentConfig()
        self.upsampler = MelUpsampler(config.num_mels, config.upsample_scales, config.upsample_depthwise)
        self.flows = nn.ModuleList(IAFlow(config, layers) for layers in config.flow_layers)
        self._teacher: tuple[WaveNetVocoder, ...] = ()  # a tuple: outside the module registry
        self._spectral: tuple[MultiScaleSpectralLoss, ...] = ()  # built on first use, weightless

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    # -- the teacher ---------------------------------------------------------------------------------------

    def attach_teacher(self, teacher: WaveNetVocoder) -> None:
        """Distil from ``teacher``: frozen, in eval mode, and never part of this module's state dict."""
        expected = TEACHER_OUTPUT[self.config.distribution]
        if teacher.config.output != expected:
            raise ValueError(f"a {self.config.distribution} student distils from a {expected!r} teacher, "
                             f"not {teacher.config.output!r}")
        if (teacher.hop_length, teacher.config.num_mels) != (self.hop_length, self.config.num_mels):
            raise ValueError("the teacher's hop and mel bands differ from the student's")
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)

    @property
    def teacher(self) -> WaveNetVocoder:
        if not self._teacher:
            raise RuntimeError("no teacher: call attach_teacher(teacher) before training")
        return self._teacher[0]

    # -- the flows -----------------------------------------------------------------------------------------

    def noise(self, shape: tuple[int, ...], like: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """White noise of the student's distribution (N(0, 1) or standard logistic), on ``like``'s device."""
        device = generator.device if generator is not None else like.device
        if self.config.distribution == "gaussian":
            z = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
        else:
            u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype).clamp(1e-5, 1 - 1e-5)
            z = torch.log(u) - torch.log1p(-u)
        return z.to(like.device)

    def transform(self, z: torch.Tensor,
                  mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise to audio through all flows, in one pass each.

        Args:
            z: [B, 1, T] noise, T <= F * hop.
            mel: [B, num_mels, F].

        Returns:
            (x, mean, log_scale), each [B, 1, T]: the sample ``x = z * exp(log_scale) + mean`` and the
            composed per-sample distribution (mean and log-scale at t depend on z_<t only).
        """
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"expected mel [B, {self.config.num_mels}, F], got {tuple(mel.shape)}")
        cond = self.upsampler(mel)[..., :z.shape[-1]]
        x, mean, log_scale = z, torch.zeros_like(z), torch.zeros_like(z)
        for flow in self.flows:
            shift, flow_log_scale = flow(x, cond)
            scale = torch.exp(flow_log_scale)
            x = x * scale + shift
            mean = mean * scale + shift
            log_scale = log_scale + flow_log_scale
        return x, mean, log_scale

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio [B, 1, F * hop] in one parallel pass from noise times ``temperature``, clipped to [-1, 1].

        Args:
            mel: [B, num_mels, F].
            generator: the noise's random source (on the device it draws on); None: torch's default.
        """
        z = self.noise((mel.shape[0], 1, mel.shape[-1] * self.hop_length), mel, generator) * temperature
        return self.transform(z, mel)[0].clamp(-1.0, 1.0)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``synthesize(mel)``: audio [B, 1, F * hop] of mel [B, num_mels, F]."""
        return self.synthesize(mel)

    # -- distillation --------------------------------------------------------------------------------------

    def spectral_loss(self, wav: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Multi-resolution spectral loss (`MultiScaleSpectralLoss`) of the sample x against audio wav."""
        if not self._spectral:
            self._spectral = (MultiScaleSpectralLoss(self.config.sample_rate),)
        return self._spectral[0].to(x.device)(wav.reshape(x.shape).to(x.dtype), x)

    def _teacher_params(self, x: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher
        reference = next(teacher.parameters())
        if (reference.device, reference.dtype) != (mel.device, mel.dtype):
            teacher.to(device=mel.device, dtype=mel.dtype)
        cond_proj = teacher.stack.cond_projections(teacher.condition(mel))
        return teacher.teacher_forced_params(x[:, 0], cond_proj)  # gradients reach x, not the teacher

    def distillation_kl(self, mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor,
                        mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """KL(student || teacher) per sample (nats), averaged, at the student's sample x.

        Args:
            mean, log_scale, x: [B, 1, T] from `transform`.
            mel: [B, num_mels, F].

        Returns:
            ``kl``, and ``log_scale_gap`` (the regulariser, "gaussian") or ``cross_entropy`` and
            ``entropy`` ("logistic").
        """
        params = self._teacher_params(x, mel)
        teacher_config = self.teacher.config
        mean, log_scale = mean[:, 0], log_scale[:, 0]
        if self.config.distribution == "gaussian":
            mean_p, log_scale_p = split_gaussian(params, teacher_config.min_log_scale)
            kl = gaussian_kl(mean, log_scale, mean_p, log_scale_p).mean()
            return {"kl": kl, "log_scale_gap": (log_scale_p - log_scale).square().mean()}
        # the teacher's mixture as a density (the discretized one has point masses at -1 and 1)
        noise = self.noise((self.config.mc_samples, *mean.shape), mean)
        cross_entropy = torch.stack([
            -mol_log_density(params, mean + torch.exp(log_scale) * n, teacher_config.min_log_scale).mean()
            for n in noise]).mean()
        entropy = (log_scale + 2.0).mean()  # a logistic of scale s: log s + 2 nats
        return {"kl": cross_entropy - entropy, "cross_entropy": cross_entropy, "entropy": entropy}

    def training_loss(self, mel: torch.Tensor, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """Distillation loss of a random noise draw.

        Args:
            mel: [B, num_mels, F].
            wav: [B, 1, F * hop] the real audio (for the spectral loss only).

        Returns:
            ``loss`` = kl (+ log_scale_weight * log_scale_gap) + spectral_weight * spectral, and its terms.
        """
        z = self.noise((wav.shape[0], 1, wav.shape[-1]), mel)
        x, mean, log_scale = self.transform(z, mel)
        terms = self.distillation_kl(mean, log_scale, x, mel)
        loss = terms["kl"]
        if "log_scale_gap" in terms and self.config.log_scale_weight:
            loss = loss + self.config.log_scale_weight * terms["log_scale_gap"]
        if self.config.spectral_weight:
            terms["spectral"] = self.spectral_loss(wav, x)
            loss = loss + self.config.spectral_weight * terms["spectral"]
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


def build_student(config: StudentConfig, teacher: WaveNetVocoder | str | Path) -> StudentVocoder:
    """A new student with its teacher attached (a model or a "wavenet" model directory).

    For `train_likelihood_vocoder`: ``build_model=lambda: build_student(config, teacher_dir)``.
    """
    if not isinstance(teacher, nn.Module):
        from funcodec_lite.utils.weights import load_model_as

        teacher = load_model_as(teacher, WaveNetVocoder)
    student = StudentVocoder(config)
    student.attach_teacher(teacher)
    return student
