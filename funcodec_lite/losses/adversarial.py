"""Adversarial losses (hinge and least-squares) and discriminator feature matching."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

REDUCTIONS = ("mean", "sum")


def _reduce(terms: list[torch.Tensor], reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
    if not terms:
        raise ValueError("need at least one discriminator output")
    stacked = torch.stack(terms)
    return stacked.mean() if reduction == "mean" else stacked.sum()


def hinge_generator_loss(fake_logits: Sequence[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Generator hinge loss (FunCodec / EnCodec): mean_k mean(max(0, 1 - D_k(x̂))).

    Args:
        fake_logits: one logits tensor (any shape) per sub-discriminator, for generated audio.
        reduction: "mean" or "sum" over sub-discriminators.
    """
    return _reduce([F.relu(1.0 - d).mean() for d in fake_logits], reduction)


def hinge_discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor], reduction: str = "mean"
) -> torch.Tensor:
    """Discriminator hinge loss: mean_k [mean(max(0, 1 - D_k(x))) + mean(max(0, 1 + D_k(x̂)))].

    Args:
        real_logits, fake_logits: one logits tensor per sub-discriminator, for real and generated audio.
        reduction: "mean" or "sum" over sub-discriminators.
    """
    _check_pairs(real_logits, fake_logits)
    terms = [F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return _reduce(terms, reduction)


def lsgan_generator_loss(fake_logits: Sequence[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Least-squares generator loss (HiFi-GAN): mean_k mean((1 - D_k(x̂))²).

    HiFi-GAN sums over sub-discriminators: pass ``reduction="sum"`` to match it.
    """
    return _reduce([(1.0 - d).square().mean() for d in fake_logits], reduction)


def lsgan_discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor], reduction: str = "mean"
) -> torch.Tensor:
    """Least-squares discriminator loss: mean_k [mean((1 - D_k(x))²) + mean(D_k(x̂)²)]."""
    _check_pairs(real_logits, fake_logits)
    terms = [(1.0 - r).square().mean() + f.square().mean() for r, f in zip(real_logits, fake_logits)]
    return _reduce(terms, reduction)


GENERATOR_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "hinge": hinge_generator_loss,
    "lsgan": lsgan_generator_loss,
}
DISCRIMINATOR_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "hinge": hinge_discriminator_loss,
    "lsgan": lsgan_discriminator_loss,
}


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]],
    fake_features: Sequence[Sequence[torch.Tensor]],
    relative: bool = False,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> torch.Tensor:
    """L1 distance between discriminator feature maps of real and generated audio (FunCodec Eq. 5).

    With the defaults this is FunCodec's normalisation: mean absolute difference within each feature
    map, then the mean over every (sub-discriminator, layer) pair, i.e. 1/(K·L) Σ_k Σ_l mean|D_k^l(x) -
    D_k^l(x̂)|. ``relative=True`` divides each pair's term by mean|D_k^l(x)| as in the EnCodec paper.
    ``reduction="sum"`` sums the pairs instead (HiFi-GAN, which also weighs the result by 2).
    Real features are detached: the loss trains the generator only.

    Args:
        real_features: per sub-discriminator, its list of feature maps for real audio.
        fake_features: the same for generated audio (same structure and shapes).
        relative: normalise each term by the mean magnitude of the real feature map.
        reduction: "mean" or "sum" over (sub-discriminator, layer) pairs.
        eps: floor of the relative normaliser.
    """
    _check_pairs(real_features, fake_features)
    terms = []
    for real_maps, fake_maps in zip(real_features, fake_features):
        _check_pairs(real_maps, fake_maps)
        for real, fake in zip(real_maps, fake_maps):
            real = real.detach()
            term = (real - fake).abs().mean()
            if relative:
                term = term / real.abs().mean().clamp_min(eps)
            terms.append(term)
    return _reduce(terms, reduction)


def _check_pairs(real: Sequence, fake: Sequence) -> None:
    if len(real) != len(fake):
        raise ValueError(f"real and fake outputs differ in count: {len(real)} vs {len(fake)}")
