"""Ancestral sampling of a `WaveNetVocoder`: the fast incremental sampler and the naive reference.

`incremental_sample` is Fast WaveNet (Paine et al., 2016): every dilated convolution keeps a queue of its
past inputs, so a new sample costs one step of each layer, O(layers), whatever the length so far.
`naive_sample` recomputes the whole network on the whole prefix for every sample, O(T) per sample; it is
the reference the incremental sampler must match. Both draw their random numbers through `draw`, in the
same order, so for one seed they give the same samples. ``model`` is a `WaveNetVocoder`, which imports
this module for `WaveNetVocoder.synthesize`; this module only calls its methods and never imports it.
"""

from __future__ import annotations

import torch
from torch import nn

from funcodec_lite.vocoders.wavenet_outputs import draw


def _empty_samples(model: nn.Module, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
    dtype = torch.long if model.config.output == "mulaw" else like.dtype
    return torch.zeros(batch, length, dtype=dtype, device=like.device)


@torch.no_grad()
def incremental_sample(model: nn.Module, mel: torch.Tensor, temperature: float = 1.0,
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
        sample = draw(model.step_params(skip), model.config.output, model.config.min_log_scale, temperature,
                      generator)
        samples[:, t] = sample
        features = model.input_features(sample.unsqueeze(1), mel.dtype)
    return samples


@torch.no_grad()
def naive_sample(model: nn.Module, mel: torch.Tensor, temperature: float = 1.0,
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
        samples[:, t] = draw(params[..., t], model.config.output, model.config.min_log_scale, temperature,
                             generator)
    return samples
