"""Ancestral sampling of a `WaveNetVocoder`: the fast incremental sampler and the naive reference.

`incremental_sample` is Fast WaveNet (Paine et al., 2016): every dilated convolution keeps a queue of its
past inputs, so a new sample costs one step of each layer, O(layers), whatever the length so far.
`naive_sample` recomputes the whole network on the whole prefix for every sample, O(T) per sample; it is
the reference the incremental sampler must match. Both draw their random numbers through `draw`, in the
same order, so for one seed they give the same samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from funcodec_lite.vocoders.wavenet import split_gaussian, split_mol

if TYPE_CHECKING:
    from funcodec_lite.vocoders.wavenet import WaveNetVocoder

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


def draw(model: WaveNetVocoder, params: torch.Tensor, temperature: float,
         generator: torch.Generator | None) -> torch.Tensor:
    """One sample per batch item from the output distribution at one time step.

    ``"mulaw"``: a class drawn from softmax(logits / temperature). ``"mol"``: a component drawn the same
    way, then ``mean + temperature * scale * logistic noise``. ``"gaussian"``: ``mean + temperature *
    scale * N(0, 1)``. Continuous samples are clipped to [-1, 1].

    Args:
        params: [B, P] the distribution's parameters.

    Returns:
        [B]: classes (long) for "mulaw", samples otherwise.
    """
    config = model.config
    if config.output == "mulaw":
        return _gumbel_argmax(params, temperature, generator)
    if config.output == "mol":
        logits, means, log_scales = split_mol(params, config.min_log_scale)
        component = _gumbel_argmax(logits, temperature, generator).unsqueeze(1)
        mean, log_scale = means.gather(1, component)[:, 0], log_scales.gather(1, component)[:, 0]
        u = _uniform((params.shape[0],), params, generator)
        noise = torch.log(u) - torch.log1p(-u)
    else:
        mean, log_scale = split_gaussian(params, config.min_log_scale)
        device = generator.device if generator is not None else params.device
        noise = torch.randn(params.shape[0], generator=generator, device=device,
                            dtype=params.dtype).to(params.device)
    return (mean + temperature * torch.exp(log_scale) * noise).clamp(-1.0, 1.0)


def _empty_samples(model: WaveNetVocoder, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
    dtype = torch.long if model.config.output == "mulaw" else like.dtype
    return torch.zeros(batch, length, dtype=dtype, device=like.device)


@torch.no_grad()
def incremental_sample(model: WaveNetVocoder, mel: torch.Tensor, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples [B, F * hop] (μ-law classes or audio) for mel [B, num_mels, F], O(layers) per sample."""
    cond_proj = model.stack.cond_projections(model.condition(mel))
    batch, length = mel.shape[0], mel.shape[-1] * model.hop_length
    samples = _empty_samples(model, batch, length, mel)
    features = mel.new_zeros(batch, model.config.input_channels, 1)  # the input before the first sample
    queues = model.stack.init_queues(features)
    for t in range(length):
        step_cond = [None if p is None else p[..., t:t + 1] for p in cond_proj]
        skip, queues = model.stack.step(features, queues, step_cond)
        sample = draw(model, model.step_params(skip), temperature, generator)
        samples[:, t] = sample
        features = model.input_features(sample.unsqueeze(1), mel.dtype)
    return samples


@torch.no_grad()
def naive_sample(model: WaveNetVocoder, mel: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None, length: int | None = None) -> torch.Tensor:
    """The reference sampler: the whole network on the whole prefix for each new sample, O(T) each.

    Args:
        mel: [B, num_mels, F].
        length: samples to draw (default F * hop); the incremental sampler's first ``length`` samples.

    Returns:
        [B, length] μ-law classes or audio.
    """
    cond_proj = model.stack.cond_projections(model.condition(mel))
    length = length or mel.shape[-1] * model.hop_length
    samples = _empty_samples(model, mel.shape[0], length, mel)
    for t in range(length):
        params = model.teacher_forced_params(samples[:, :t + 1], cond_proj)  # sample t itself is unseen
        samples[:, t] = draw(model, params[..., t], temperature, generator)
    return samples
