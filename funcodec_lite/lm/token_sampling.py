"""Codec tokens of whole clips for class labels, from a class-conditional token model (the Foley generator's
prior): MaskGIT for a masked model, the autoregressive sampler with its KV cache for a codec LM."""

from __future__ import annotations

import torch
from torch import nn

from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate

CLASS_PRIOR_KINDS = ("masked_lm", "codec_lm")  # the token models that can sample a clip from its class


@torch.no_grad()
def sample_class_tokens(prior: nn.Module, labels: torch.Tensor, sampling: dict,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes [B, K, frames] of the classes ``labels`` [B]: MaskGIT from a fully masked clip (``masked_lm``)
    or the autoregressive sampler with its KV cache (``codec_lm``, no EOS before ``frames``).

    Args:
        prior: the token model (K = its ``config.n_q`` codebooks).
        labels: [B] class ids.
        sampling: ``frames`` and the sampler's settings (`MaskGITConfig` / `SamplingConfig` fields).
        generator: the random source (CPU).

    Raises:
        ValueError: a prior of another kind.
    """
    settings = dict(sampling)
    frames = int(settings.pop("frames"))
    b, k = len(labels), prior.config.n_q
    if prior.model_kind == "masked_lm":
        codes = torch.zeros(b, k, frames, dtype=torch.long)
        mask = torch.ones(b, k, frames, dtype=torch.bool)
        return maskgit_generate(prior, codes, mask, MaskGITConfig(**settings), labels,
                                generator=generator).codes
    if prior.model_kind == "codec_lm":
        config = SamplingConfig(**{**settings, "min_frames": frames})
        return generate(prior, b, frames, config, labels=labels, generator=generator).codes
    raise ValueError(f"a {prior.model_kind} prior cannot sample Foley clips; use one of {CLASS_PRIOR_KINDS}")
