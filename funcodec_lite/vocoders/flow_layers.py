"""Invertible layers of the flow vocoders (WaveGlow, FloWaveNet): 1x1 conv, ActNorm, affine coupling, squeeze.

Every layer maps ``forward(x, ...) -> (y, logdet)`` with ``logdet`` [B] = log|det dy/dx| per example, and
``inverse(y, ...) -> x`` exactly (up to float rounding). Also here: the mel upsamplers and `FlowVocoder`,
the vocoder interface (likelihood loss, one-pass synthesis) both models share.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from funcodec_lite.vocoders.wavenet_layers import MelUpsampler, WaveNetStack


def squeeze(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Folds time into channels: [B, C, T] -> [B, C · factor, T / factor].

    Output channel ``c · factor + j`` at step t is input channel c at sample ``t · factor + j``; for C = 1
    this is WaveGlow's grouping of ``factor`` consecutive samples into one vector.
    """
    b, c, t = x.shape
    if t % factor:
        raise ValueError(f"length {t} is not a multiple of the squeeze factor {factor}")
    return x.reshape(b, c, t // factor, factor).transpose(2, 3).reshape(b, c * factor, t // factor)


def unsqueeze(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse of `squeeze`: [B, C · factor, T] -> [B, C, T · factor]."""
    b, c, t = x.shape
    if c % factor:
        raise ValueError(f"{c} channels are not a multiple of the squeeze factor {factor}")
    return x.reshape(b, c // factor, factor, t).transpose(2, 3).reshape(b, c // factor, t * factor)


def gaussian_nll(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log N(z; 0, sigma^2) summed per example: [B, ...] -> [B] (nats)."""
    per_item = z.pow(2) / (2.0 * sigma**2) + 0.5 * math.log(2.0 * math.pi * sigma**2)
    return per_item.flatten(1).sum(1)


class Squeeze(nn.Module):
    """`squeeze` as a flow layer (a permutation: log-determinant 0).

    Args:
        factor: samples folded into channels.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (y [B, C · factor, T / factor], logdet [B] of zeros)."""
        return squeeze(x, self.factor), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, C · factor, T / factor] -> x [B, C, T]."""
        return unsqueeze(y, self.factor)


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """FloWaveNet's change of order: [x_a, x_b] -> [x_b, x_a] of x [B, C, T] (x_a: C // 2 channels)."""
    half = x.shape[1] // 2
    return torch.cat([x[:, half:], x[:, :half]], 1)


def unswap_halves(y: torch.Tensor) -> torch.Tensor:
    """The inverse of `swap_halves` (the same map when C is even)."""
    half = y.shape[1] - y.shape[1] // 2
    return torch.cat([y[:, half:], y[:, :half]], 1)


class SwapHalves(nn.Module):
    """`swap_halves` as a flow layer (a permutation: log-determinant 0): the half a coupling left unchanged
    is transformed by the next one."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (y [B, C, T], logdet [B] of zeros)."""
        return swap_halves(x), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, C, T] -> x [B, C, T]."""
        return unswap_halves(y)


class InvertibleConv1x1(nn.Module):
    """Invertible 1x1 convolution (WaveGlow, after Glow): y_t = W x_t with a learned C x C matrix W.

    W is kept in Glow's LU-decomposed form ``W = P · (L + I) · (U + diag(sign_s · exp(log_s)))``, P a fixed
    permutation, L strictly lower and U strictly upper triangular, so ``log|det W| = sum(log_s)`` costs
    nothing and W stays invertible. At construction W is a random orthogonal matrix (WaveGlow's
    initialisation: QR of a Gaussian matrix), decomposed once.

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        perm, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", perm)
        self.register_buffer("sign_s", torch.sign(diag))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(diag.abs().log())

    def weight(self) -> torch.Tensor:
        """W [C, C]."""
        eye = torch.eye(self.log_s.numel(), dtype=self.log_s.dtype, device=self.log_s.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (W x [B, C, T], logdet [B] = T · sum(log_s))."""
        y = F.conv1d(x, self.weight().to(x.dtype)[:, :, None])
        return y, (self.log_s.sum() * x.shape[2]).expand(x.shape[0]).to(x.dtype)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, C, T] -> W^-1 y [B, C, T] (W inverted in float64)."""
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv1d(y, w_inv[:, :, None])


class ActNorm(nn.Module):
    """Per-channel affine normalisation ``y = (x + bias) · exp(log_scale)`` (Glow; FloWaveNet's ActNorm).

    Data-dependent initialisation: the first forward pass sets bias and scale so that this batch leaves
    with zero mean and unit variance per channel (the statistics are averaged over processes when
    ``torch.distributed`` is running). The ``initialized`` buffer records it, so a saved model (model
    directory or checkpoint) is not initialised again.

    Args:
        channels: C.
        eps: added to the standard deviation.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Sets bias and scale from a batch x [B, C, T]: zero mean, unit variance per channel."""
        flat = x.detach().transpose(0, 1).flatten(1).float()  # [C, B·T]
        moments = torch.stack([flat.mean(1), flat.pow(2).mean(1)])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(moments)
            moments /= dist.get_world_size()
        mean, square = moments
        std = (square - mean.pow(2)).clamp_min(0.0).sqrt()
        self.bias.copy_(-mean.view_as(self.bias))
        self.log_scale.copy_(-(std + self.eps).log().view_as(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (y [B, C, T], logdet [B] = T · sum(log_scale))."""
        if not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * self.log_scale.exp()
        return y, (self.log_scale.sum() * x.shape[2]).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, C, T] -> x [B, C, T]."""
        return y * torch.exp(-self.log_scale) - self.bias


class AffineCoupling(nn.Module):
    """Affine coupling of x = [x_a, x_b]: ``(log_s, t) = NN(x_a, cond)``, ``y = [x_a, x_b · e^log_s + t]``.

    NN is a non-causal `WaveNetStack` (1x1 input conv C_a -> H, gated layers of dilations 1, 2, 4, ...
    conditioned on the upsampled, squeezed mel, skip sum of H channels) and a 1x1 conv to 2 · C_b channels
    that starts at zero, so a new coupling is the identity (WaveGlow's WN, FloWaveNet's coupling). The
    log-scale is soft-clamped, ``log_s = m · tanh(raw / m)`` with m = ``max_log_scale``: the identity near 0,
    never beyond ±m, which keeps exp(log_s) from overflowing early in training.

    Args:
        channels: C; the first C // 2 channels (x_a) condition the other C - C // 2 (x_b).
        cond_channels: conditioning channels.
        hidden_channels: H, the WaveNet-like transform's width.
        num_layers: its dilated layers.
        kernel_size: its odd kernel.
        max_log_scale: m above.
    """

    def __init__(self, channels: int, cond_channels: int, hidden_channels: int, num_layers: int,
                 kernel_size: int = 3, max_log_scale: float = 4.0) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError("a coupling needs at least two channels")
        self.n_a, self.n_b = channels // 2, channels - channels // 2
        self.max_log_scale = max_log_scale
        self.wn = WaveNetStack(self.n_a, hidden_channels, 2 * hidden_channels, hidden_channels, cond_channels,
                               kernel_size, [2**i for i in range(num_layers)], causal=False)
        self.end = nn.Conv1d(hidden_channels, 2 * self.n_b, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def _scale_shift(self, x_a: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_log_s, t = self.end(self.wn(x_a, cond)).split(self.n_b, 1)
        return self.max_log_scale * torch.tanh(raw_log_s / self.max_log_scale), t

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T], cond [B, cond_channels, T] -> (y [B, C, T], logdet [B] = sum(log_s))."""
        x_a, x_b = x.split([self.n_a, self.n_b], 1)
        log_s, t = self._scale_shift(x_a, cond)
        return torch.cat([x_a, x_b * log_s.exp() + t], 1), log_s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """y [B, C, T], cond [B, cond_channels, T] -> x [B, C, T]."""
        y_a, y_b = y.split([self.n_a, self.n_b], 1)
        log_s, t = self._scale_shift(y_a, cond)
        return torch.cat([y_a, (y_b - t) * torch.exp(-log_s)], 1)


class MelUpsampler2d(nn.Module):
    """Mel frames to sample rate with FloWaveNet's upsampler: per rate r a 2-D transposed conv (kernel
    3 bands x 2r frames, stride r along time, one channel) and LeakyReLU(0.4). One small kernel is shared
    by all bands (194 parameters for rates 16, 16, where `MelUpsampler`'s 80 -> 80-channel convs take 410 k).

    Args:
        rates: time factors (their product is the hop); each must be even.
    """

    def __init__(self, rates: list[int]) -> None:
        super().__init__()
        if any(r % 2 for r in rates):
            raise ValueError(f"upsampling rates must be even, got {rates}")
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, (3, 2 * r), stride=(1, r), padding=(1, r // 2)) for r in rates)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, M, F] -> [B, M, F · prod(rates)]."""
        h = mel[:, None]
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.4)
        return h[:, 0]


UPSAMPLERS = ("conv2d", "conv1d")


def build_upsampler(kind: str, num_mels: int, rates: list[int]) -> nn.Module:
    """The mel upsampler of a flow vocoder: ``conv2d``, FloWaveNet's `MelUpsampler2d` (a kernel shared by
    all bands), or ``conv1d``, the WaveNet vocoder's `MelUpsampler` (80 -> 80-channel transposed convs, as
    WaveGlow's single one of stride 256)."""
    if kind == "conv2d":
        return MelUpsampler2d(rates)
    if kind == "conv1d":
        return MelUpsampler(num_mels, rates)
    raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {kind!r}")


class FlowVocoder(nn.Module):
    """The vocoder interface of a flow between audio and Gaussian noise (WaveGlow, FloWaveNet).

    A subclass defines ``encode(wav, mel) -> (z, logdet)``, the flow (audio [B, 1, T] to a latent of the
    same shape, with log|det dz/dwav| [B]), ``decode(z, mel) -> wav``, its inverse, an ``upsample``
    module (mel frames to samples) and a ``config`` with ``num_mels``, ``hop_length``, ``sigma`` (the
    prior's deviation) and ``temperature`` (the default at synthesis).
    The latent is N(0, sigma^2) per sample, so the likelihood of the audio is exact.
    """

    config: object

    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        return self.config.hop_length

    upsample: nn.Module

    def condition(self, mel: torch.Tensor, samples: int) -> torch.Tensor:
        """mel [B, num_mels, F] -> the mel upsampled to the audio rate [B, num_mels, F · hop], checked against
        an audio length of ``samples``."""
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"expected mel [B, {self.config.num_mels}, F], got {tuple(mel.shape)}")
        if samples != mel.shape[-1] * self.hop_length:
            raise ValueError(f"{samples} samples are not {mel.shape[-1]} frames of hop {self.hop_length}")
        return self.upsample(mel)

    def encode(self, wav: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, mel: torch.Tensor, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exact negative log-likelihood of the audio, nats per sample.

        Args:
            mel (torch.Tensor): log-mels [B, num_mels, F].
            wav (torch.Tensor): audio [B, 1, F · hop].

        Returns:
            dict: ``loss`` = ``prior - logdet``; ``prior``, the Gaussian's NLL of z (sum z^2 / (2 sigma^2)
            plus its normaliser 0.5 log(2 pi sigma^2) per sample, which WaveGlow's printed loss omits);
            ``logdet``, log|det dz/dwav|; all per sample, averaged over the batch.
        """
        z, logdet = self.encode(wav, mel)
        samples = z.shape[-1]
        prior = gaussian_nll(z, self.config.sigma).mean() / samples
        logdet = logdet.mean() / samples
        return {"loss": prior - logdet, "prior": prior, "logdet": logdet}

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor, temperature: float | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio from mels in one inverse pass: z ~ N(0, (temperature · sigma)^2).

        Args:
            mel (torch.Tensor): log-mels [B, num_mels, F].
            temperature: scale of the prior's deviation; None means ``config.temperature``.
            generator: the noise's random source (on its own device; the noise then moves to ``mel``'s).

        Returns:
            torch.Tensor: audio [B, 1, F · hop].
        """
        temperature = self.config.temperature if temperature is None else temperature
        shape = (mel.shape[0], 1, mel.shape[-1] * self.hop_length)
        device = generator.device if generator is not None else mel.device
        noise = torch.randn(shape, generator=generator, device=device).to(mel.device, mel.dtype)
        return self.decode(noise * (temperature * self.config.sigma), mel)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """HiFi-GAN's interface: mel [B, num_mels, F] -> audio [B, 1, F · hop] at the default temperature."""
        return self.synthesize(mel)
