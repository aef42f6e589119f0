"""Autoregressive sampling of a `CodecLM` over its codebook pattern, with or without a KV cache.

With the cache, each step feeds one pattern step and attends to the cached keys and values; without it,
each step recomputes the whole prefix. Both draw the same random numbers in the same order, so for a seed
they give the same tokens (`tests/test_lm_generate.py`). Items of a batch stop on their own: at EOS
(codebook 0's end-of-sequence class, at the frame after the last) or at their maximum length, and each
item's stop reason is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.nn import functional as F

from funcodec_lite.lm.codec_lm import CodecLM, frame_index


@dataclass
class SamplingConfig:
    """Args:
        temperature: softmax temperature (> 0).
        top_k: keep the k most likely codes (0: all).
        top_p: keep the smallest set of codes with probability >= top_p (0 or 1: all).
        cfg_coef: classifier-free guidance, ``uncond + cfg_coef * (cond - uncond)`` (1: no guidance).
        min_frames: frames before EOS may be sampled.
        use_cache: incremental decoding with a KV cache.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    cfg_coef: float = 1.0
    min_frames: int = 0
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.top_k < 0 or not 0 <= self.top_p <= 1 or self.min_frames < 0:
            raise ValueError("need temperature > 0, top_k >= 0, 0 <= top_p <= 1 and min_frames >= 0")


class Generation(NamedTuple):
    """codes [B, K, T] (frames after the prompt; padded with 0 past each item's length), frames [B],
    stop reasons per item (``"eos"`` or ``"max_length"``), and the number of model calls."""

    codes: torch.Tensor
    frames: torch.Tensor
    reasons: list[str]
    steps: int


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Sets to -inf every logit of [N, V] outside the top-k and outside the top-p nucleus."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        mass = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = mass - ordered.softmax(dim=-1) >= top_p  # keep the first code that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of logits [N, V] (float32) -> [N] long."""
    probs = F.softmax(filter_logits(logits.float() / config.temperature, config.top_k, config.top_p), -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def start_sampling(model: torch.nn.Module, batch_size: int, max_frames: int | torch.Tensor,
                   prompt: torch.Tensor | None) -> tuple:
    """What every autoregressive sampler sets up first: (model config, device, per-item frame limits [B],
    prompt frames); eval mode; a negative limit or a prompt with other codebooks is refused."""
    model.eval()
    device = next(model.parameters()).device
    limit = torch.as_tensor(max_frames, device=device).expand(batch_size).clone()
    if int(limit.min()) < 0:
        raise ValueError("max_frames must be >= 0")
    if prompt is not None and prompt.shape[1] != model.config.n_q:
        raise ValueError(f"the prompt has {prompt.shape[1]} codebooks, the model {model.config.n_q}")
    return model.config, device, limit, 0 if prompt is None else prompt.shape[-1]


@torch.no_grad()
def generate(model: CodecLM, batch_size: int, max_frames: int | torch.Tensor,
             config: SamplingConfig | None = None, prompt: torch.Tensor | None = None,
             labels: torch.Tensor | None = None, phonemes: torch.Tensor | None = None,
             phoneme_lengths: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> Generation:
    """Samples frames after an optional prompt.

    Args:
        model: the LM (eval mode is set here).
        batch_size: B.
        max_frames: frames to generate at most, one number or one per item [B].
        config: sampling settings.
        prompt: [B, K, Tp] codes that the generated frames continue (an acoustic prompt), or None.
        labels, phonemes, phoneme_lengths: the conditions, as in training.
        generator: the random source (CPU), for reproducible draws.
    """
    config = config or SamplingConfig()
    lm, device, limit, tp = start_sampling(model, batch_size, max_frames, prompt)
    b, k = batch_size, lm.n_q
    total = tp + int(limit.max()) + 1  # one more frame for the EOS slot
    where = frame_index(model.pattern, total, device)  # [K, S]
    steps = where.shape[1]
    last_step = torch.full((k, total), -1, dtype=torch.long, device=device)  # step of (k, frame)
    kk, ss = torch.nonzero(where >= 0, as_tuple=True)
    last_step[kk, where[kk, ss]] = ss
    sequence = torch.full((b, k, steps), lm.special, dtype=torch.long, device=device)
    if tp:
        known = (where >= 0) & (where < tp)
        kk, ss = torch.nonzero(known, as_tuple=True)
        sequence[:, kk, ss] = prompt.to(device)[:, kk, where[kk, ss]]
    end = tp + limit  # [B] first frame not generated (EOS may move it earlier)
    reasons = ["max_length"] * b
    guided = config.cfg_coef != 1.0 and model.conditioner.active
    rows = 2 * b if guided else b

    def expand(x):
        return None if x is None else (torch.cat([x, x]) if guided else x)

    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device) \
        if guided else None
    prefix = model.condition(expand(labels), expand(phonemes), expand(phoneme_lengths), rows, device, drop)
    cache = model.transformer.new_cache() if config.use_cache else None
    calls = 0
    for s in range(1, steps):
        if cache is not None:
            start = prefix[1].sum(dim=1) + (s - 1)
            logits = model(expand(sequence[:, :, s - 1 : s]), prefix, cache=cache, start=start)[:, :, -1]
        else:
            logits = model(expand(sequence[:, :, :s]), prefix)[:, :, -1]
        calls += 1
        if guided:
            cond, uncond = logits[:b], logits[b:]
            logits = uncond + config.cfg_coef * (cond - uncond)
        frames = where[:, s]  # [K]
        active = [q for q in range(k) if frames[q] >= tp]
        if active:
            chosen = logits[:, active].float()  # [B, A, V]
            eos_ok = torch.zeros(len(active), dtype=torch.bool, device=device)
            if active[0] == 0 and int(frames[0]) >= tp + config.min_frames:
                eos_ok[0] = True
            chosen[:, ~eos_ok, lm.card] = float("-inf")  # only codebook 0 ends a sequence
            drawn = sample(chosen.reshape(-1, chosen.shape[-1]).cpu(), config, generator).to(device)
            drawn = drawn.view(b, len(active))
            for column, q in enumerate(active):
                frame = int(frames[q])
                value = drawn[:, column]
                live = frame < end
                if q == 0:
                    stop = live & (value == lm.card)
                    for item in torch.nonzero(stop).flatten().tolist():
                        reasons[item] = "eos"
                    end = torch.where(stop, torch.full_like(end, frame), end)
                    live = frame < end
                    value = torch.where(stop, torch.full_like(value, lm.eos), value)
                    sequence[:, q, s] = torch.where(live | stop, value, torch.full_like(value, lm.special))
                else:
                    sequence[:, q, s] = torch.where(live, value, torch.full_like(value, lm.special))
        # done when every item has filled every position of its frames before `end`
        needed = last_step[:, (end - 1).clamp_min(0)].max(dim=0).values  # [B]
        needed = torch.where(end > tp, needed, torch.zeros_like(needed))
        if bool((needed <= s).all()):
            break
    codes = model.pattern.revert(torch.where(sequence < lm.card, sequence, torch.zeros_like(sequence)))
    codes = codes[:, :, tp : tp + int(limit.max())]
    frames_out = (end - tp).clamp_min(0)
    keep = torch.arange(codes.shape[-1], device=device)[None, None] < frames_out[:, None, None]
    return Generation(codes * keep, frames_out, reasons, calls)
