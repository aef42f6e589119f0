"""MaskGIT's parallel iterative decoding for a `MaskedLM`, with the number re-masked counted per example.

At step t of T (r = (t + 1) / T), every masked token is sampled, its confidence is log p + τ·(1 − r)·g
with g ~ Gumbel(0, 1) (VampNet's "mask temperature" τ, annealed linearly to 0), prompt tokens have infinite
confidence, and the ⌊γ(r)·n_b⌋ least confident of example b's tokens (n_b: how many it had masked at the
start) are masked again, at least one while any is left and none at the last step. VampNet sums n over the
batch, which over-masks every example of a batch larger than one; here n_b is each example's own
(`tests/test_lm_maskgit.py` checks it on a batch of examples with different prompts). For VampNet's own
models (``vampnet_lm``) the random numbers are drawn in VampNet's order (frame by frame, codebooks fastest)
so that a batch of one and a seed give VampNet's ``generate`` tokens (`tests/test_convert_vampnet.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.nn import functional as F

from funcodec_lite.lm.masked import MaskedLM, gamma
from funcodec_lite.lm.sampling import filter_logits


@dataclass
class MaskGITConfig:
    """Args:
        steps: decoding iterations (VampNet: 12-36).
        temperature: sampling temperature of the tokens.
        mask_temperature: τ of the confidence noise (VampNet: 10.5 in code, 15 in its demo).
        top_p: nucleus filtering of the token distribution (0: off).
        typical_mass: typical filtering mass (0: off; VampNet's demo uses 0.15 when on).
        cfg_coef: classifier-free guidance weight (1: none).
    """

    steps: int = 24
    temperature: float = 1.0
    mask_temperature: float = 10.5
    top_p: float = 0.0
    typical_mass: float = 0.0
    cfg_coef: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.temperature <= 0 or self.mask_temperature < 0:
            raise ValueError("need steps >= 1, temperature > 0 and mask_temperature >= 0")
        if not 0 <= self.top_p <= 1 or not 0 <= self.typical_mass <= 1:
            raise ValueError("top_p and typical_mass must lie in [0, 1]")


class MaskGITOutput(NamedTuple):
    """codes [B, K, T] (nothing masked), and the number of masked tokens of each example after each step
    [steps, B] (the schedule actually followed)."""

    codes: torch.Tensor
    masked_counts: torch.Tensor


def typical_filter(logits: torch.Tensor, mass: float, min_tokens: int = 1) -> torch.Tensor:
    """Locally typical filtering: keeps the tokens whose surprise is nearest the entropy, up to ``mass``."""
    log_p = F.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1, keepdim=True)
    gap = (-log_p - entropy).abs()
    order = gap.argsort(dim=-1)
    mass_sorted = log_p.gather(-1, order).exp().cumsum(dim=-1)
    drop_sorted = mass_sorted - log_p.gather(-1, order).exp() >= mass
    drop_sorted[..., :min_tokens] = False
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


def gumbel(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp(1e-20, 1 - 1e-7)
    return -torch.log(-torch.log(uniform))


@torch.no_grad()
def maskgit_generate(model: MaskedLM, codes: torch.Tensor, mask: torch.Tensor,
                     config: MaskGITConfig | None = None, labels: torch.Tensor | None = None,
                     frames: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> MaskGITOutput:
    """Fills the masked tokens of ``codes``.

    Args:
        model: the masked LM (eval mode is set here).
        codes: [B, K, T] the known tokens (values under the mask are ignored).
        mask: [B, K, T] bool, True = generate; never True on the conditioning codebooks.
        config: decoding settings.
        labels: [B] class ids of a class-conditional model, or None.
        frames: [B] real frames (padding after), or None.
        generator: the random source (CPU): the same seed gives the same tokens.
    """
    config = config or MaskGITConfig()
    model.eval()
    device = codes.device
    b, k, t = codes.shape
    nc = model.config.n_conditioning
    mask = mask.bool().clone()
    if mask[:, :nc].any():
        raise ValueError(f"the first {nc} codebooks condition the model: they cannot be masked")
    z = torch.where(mask, torch.full_like(codes, model.config.mask_id), codes)
    guided = config.cfg_coef != 1.0 and model.conditioner.active
    rows = 2 * b if guided else b
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device) \
        if guided else None
    prefix = model.conditioner(rows, device, torch.cat([labels, labels]) if guided and labels is not None
                               else labels, drop=drop)
    start = mask[:, nc:].flatten(1).sum(dim=1)  # [B] tokens to generate per example
    frame_major = getattr(model, "vampnet_draw_order", False)  # VampNet's own models (lm/vampnet.py)
    counts = []
    for step in range(config.steps):
        inputs = torch.cat([z, z]) if guided else z
        logits = model(inputs, prefix, None if frames is None else torch.cat([frames] * (rows // b)))
        if guided:
            logits = logits[b:] + config.cfg_coef * (logits[:b] - logits[b:])
        logits = logits.float().cpu() / config.temperature  # [B, Kp, T, V]
        if config.top_p:
            logits = filter_logits(logits.flatten(0, 2), 0, config.top_p).view_as(logits)
        if config.typical_mass:
            logits = typical_filter(logits, config.typical_mass)
        probs = F.softmax(logits, dim=-1)
        if frame_major:  # draws frame by frame, codebooks fastest, as VampNet: its seed gives its tokens
            flat = probs.transpose(1, 2).reshape(-1, probs.shape[-1])  # [B·T·Kp, V]
            sampled = torch.multinomial(flat, 1, generator=generator).view(b, t, -1).transpose(1, 2)
        else:
            sampled = torch.multinomial(probs.flatten(0, 2), 1, generator=generator).view(probs.shape[:-1])
        log_p = probs.gather(-1, sampled[..., None])[..., 0].clamp_min(1e-30).log()
        current = mask[:, nc:].cpu()  # [B, Kp, T]
        r = (step + 1) / config.steps
        if frame_major:
            tau = config.mask_temperature * (1 - torch.tensor(r, dtype=torch.float32))  # float32, as VampNet
            noise = tau * gumbel((b, t, log_p.shape[1]), generator).transpose(1, 2)
        else:
            noise = config.mask_temperature * (1 - r) * gumbel(log_p.shape, generator)
        confidence = torch.where(current, log_p + noise, torch.full_like(log_p, float("inf")))
        z[:, nc:] = torch.where(current.to(device), sampled.to(device), z[:, nc:])
        remaining = current.flatten(1).sum(dim=1)
        keep_masked = torch.floor(gamma(r) * start.cpu()).long()
        if step < config.steps - 1:
            keep_masked = torch.minimum(keep_masked.clamp_min(1), (remaining - 1).clamp_min(0))
        else:
            keep_masked = torch.zeros_like(keep_masked)
        ranks = confidence.flatten(1).argsort(dim=1).argsort(dim=1)  # 0 = least confident
        remask = (ranks < keep_masked[:, None]).view_as(current) & current
        mask[:, nc:] = remask.to(device)
        z[:, nc:] = torch.where(mask[:, nc:], torch.full_like(z[:, nc:], model.config.mask_id), z[:, nc:])
        counts.append(remask.flatten(1).sum(dim=1))
    return MaskGITOutput(z, torch.stack(counts))
