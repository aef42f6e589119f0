"""WaveNet's output distributions: μ-law classes, a discretized mixture of logistics, a Gaussian.

Their log-likelihoods (training: `WaveNetVocoder.log_prob`; the student's distillation: `mol_log_density`)
and one draw per step (`draw`, shared by both samplers in `funcodec_lite.vocoders.wavenet_sampling`). The
model (`wavenet.py`) and its samplers import this module; it imports neither.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

OUTPUTS = ("mulaw", "mol", "gaussian")


# ---------------------------------------------------------------------------------------------------------
# μ-law and the output distributions


def mulaw_encode(wav: torch.Tensor, bits: int) -> torch.Tensor:
    """μ-law classes (long, in [0, 2^bits - 1]) of audio in [-1, 1] (values outside are clipped)."""
    mu = 2**bits - 1
    x = wav.clamp(-1.0, 1.0)
    companded = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((companded + 1) / 2 * mu).long()


def mulaw_decode(classes: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Audio in [-1, 1] of μ-law classes (the inverse of `mulaw_encode` up to the quantization)."""
    mu = 2**bits - 1
    companded = classes.to(dtype) / mu * 2 - 1
    return torch.sign(companded) * torch.expm1(companded.abs() * math.log1p(mu)) / mu


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  num_classes: int) -> torch.Tensor:
    """log P(bin of x) under a logistic discretized to ``num_classes`` levels of [-1, 1] (PixelCNN++).

    The bin centres are -1 + 2k / (num_classes - 1); the first and last bins take the tails. Where a bin's
    mass underflows (< 1e-5) its density at the centre times the bin width is used.

    Args:
        x: samples (any shape), broadcast against ``mean`` and ``log_scale``.
    """
    half = 1.0 / (num_classes - 1)
    centered = x - mean
    inv_scale = torch.exp(-log_scale)
    plus_in = inv_scale * (centered + half)
    min_in = inv_scale * (centered - half)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): the left tail bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # log (1 - sigmoid(min_in)): the right tail bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_scale * centered
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)),
                        log_pdf_mid + math.log(2 * half))
    return torch.where(x < -1 + half, log_cdf_plus,
                       torch.where(x > 1 - half, log_one_minus_cdf_min, inner))


def mol_log_prob(params: torch.Tensor, x: torch.Tensor, num_classes: int,
                 min_log_scale: float) -> torch.Tensor:
    """Discretized mixture-of-logistics log-probability.

    Args:
        params: [B, 3K, T]: mixture logits, means, log-scales (clamped below at ``min_log_scale``).
        x: [B, T] samples in [-1, 1].

    Returns:
        [B, T] log-probabilities (nats).
    """
    logits, means, log_scales = split_mol(params, min_log_scale)
    per_component = discretized_logistic_log_prob(x.unsqueeze(1), means, log_scales, num_classes)
    return torch.logsumexp(F.log_softmax(logits, dim=1) + per_component, dim=1)


def mol_log_density(params: torch.Tensor, x: torch.Tensor, min_log_scale: float) -> torch.Tensor:
    """Log-density [B, T] of the continuous mixture of logistics (params [B, 3K, T]) at x [B, T].

    Inside [-1, 1] it is the discretized mixture's log-probability minus the log bin width, up to the
    bin's curvature (bins of 2 / 65,535); unlike it, it is a proper density on the whole line.
    """
    logits, means, log_scales = split_mol(params, min_log_scale)
    standardized = (x.unsqueeze(1) - means) * torch.exp(-log_scales)
    per_component = -standardized - log_scales - 2.0 * F.softplus(-standardized)
    return torch.logsumexp(F.log_softmax(logits, dim=1) + per_component, dim=1)


def split_mol(params: torch.Tensor, min_log_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, means, log-scales), each [B, K, ...], of mixture parameters [B, 3K, ...]."""
    logits, means, log_scales = params.chunk(3, dim=1)
    return logits, means, log_scales.clamp_min(min_log_scale)


def split_gaussian(params: torch.Tensor, min_log_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log-scale), each [B, ...], of Gaussian parameters [B, 2, ...]."""
    return params[:, 0], params[:, 1].clamp_min(min_log_scale)


def gaussian_log_prob(params: torch.Tensor, x: torch.Tensor, min_log_scale: float) -> torch.Tensor:
    """Gaussian log-density [B, T] of samples x [B, T] under parameters [B, 2, T] (mean, log-scale)."""
    mean, log_scale = split_gaussian(params, min_log_scale)
    return -0.5 * math.log(2 * math.pi) - log_scale - 0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2


# ---------------------------------------------------------------------------------------------------------
# One draw per step

UNIFORM_EPS = 1e-5  # uniforms are kept in [eps, 1 - eps] so that Gumbel and logistic noise stay finite


def _uniform(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)
    return u.clamp(UNIFORM_EPS, 1 - UNIFORM_EPS)


def _gumbel_argmax(logits: torch.Tensor, temperature: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Index [B] drawn from softmax(logits [B, K] / temperature) by the Gumbel-max trick (argmax at 0)."""
    gumbel = -torch.log(-torch.log(_uniform(tuple(logits.shape), logits, generator)))
    return (logits + temperature * gumbel).argmax(dim=1)


def draw(params: torch.Tensor, output: str, min_log_scale: float, temperature: float,
         generator: torch.Generator | None) -> torch.Tensor:
    """One sample per batch item from the output distribution at one time step.

    ``"mulaw"``: a class drawn from softmax(logits / temperature). ``"mol"``: a component drawn the same
    way, then ``mean + temperature * scale * logistic noise``. ``"gaussian"``: ``mean + temperature *
    scale * N(0, 1)``. Continuous samples are clipped to [-1, 1].

    Args:
        params: [B, P] the distribution's parameters.
        output: the distribution (``OUTPUTS``); min_log_scale: the lower bound of its log-scales.
        temperature: scales the noise (0: the mode of a class or component, the mean of a sample).
        generator: the random source (on the device it draws on); None: torch's default.

    Returns:
        [B]: classes (long) for "mulaw", samples otherwise.
    """
    if output == "mulaw":
        return _gumbel_argmax(params, temperature, generator)
    if output == "mol":
        logits, means, log_scales = split_mol(params, min_log_scale)
        component = _gumbel_argmax(logits, temperature, generator).unsqueeze(1)
        mean, log_scale = means.gather(1, component)[:, 0], log_scales.gather(1, component)[:, 0]
        u = _uniform((params.shape[0],), params, generator)
        noise = torch.log(u) - torch.log1p(-u)
    else:
        mean, log_scale = split_gaussian(params, min_log_scale)
        device = generator.device if generator is not None else params.device
        noise = torch.randn(params.shape[0], generator=generator, device=device,
                            dtype=params.dtype).to(params.device)
    return (mean + temperature * torch.exp(log_scale) * noise).clamp(-1.0, 1.0)
