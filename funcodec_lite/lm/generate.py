"""Autoregressive sampling of a `CodecLM` over its codebook pattern, with or without a KV cache.

With the cache, each step feeds one pattern step and attends to the cached keys and values; without it,
each step recomputes the whole prefix. Both draw the same random numbers in the same order, so for a seed
they give the same tokens (`tests/test_lm_generate.py`). Items of a batch stop on their own: at EOS
(codebook 0's end-of-sequence class, at the frame after the last) or at their maximum length, and each
item's stop reason is returned.
"""

from __future__ import annotations

import torch

from funcodec_lite.lm.codec_lm import CodecLM, frame_index
from funcodec_lite.lm.sampling import Generation, SamplingConfig, SamplingRun

__all__ = ["Generation", "SamplingConfig", "generate"]


@torch.no_grad()
def generate(model: CodecLM, batch_size: int, max_frames: int | torch.Tensor,
             config: SamplingConfig | None = None, prompt: torch.Tensor | None = None,
             labels: torch.Tensor | None = None, phonemes: torch.Tensor | None = None,
             phoneme_lengths: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> Generation:
    """Samples frames after an optional prompt, one pattern step per model call.

    Args:
        model: the LM (eval mode is set here).
        batch_size: B.
        max_frames: frames to generate at most, one number or one per item [B].
        config: sampling settings.
        prompt: [B, K, Tp] codes that the generated frames continue (an acoustic prompt), or None.
        labels, phonemes, phoneme_lengths: the conditions, as in training.
        generator: the random source (CPU), for reproducible draws.
    """
    run = SamplingRun(model, batch_size, max_frames, config, prompt, labels, phonemes, phoneme_lengths,
                      generator)
    b, k, tp, device = batch_size, run.lm.n_q, run.prompt_frames, run.device
    where = frame_index(model.pattern, run.total + 1, device)  # [K, S]; one more frame for the EOS slot
    steps = where.shape[1]
    last_step = torch.full((k, run.total + 1), -1, dtype=torch.long, device=device)  # step of (k, frame)
    kk, ss = torch.nonzero(where >= 0, as_tuple=True)
    last_step[kk, where[kk, ss]] = ss
    sequence = torch.full((b, k, steps), run.lm.special, dtype=torch.long, device=device)
    if tp:
        kk, ss = torch.nonzero((where >= 0) & (where < tp), as_tuple=True)
        sequence[:, kk, ss] = prompt.to(device)[:, kk, where[kk, ss]]
    cache = model.transformer.new_cache() if run.config.use_cache else None
    for s in range(1, steps):
        if cache is not None:
            start = run.prefix[1].sum(dim=1) + (s - 1)
            logits = model(run.expand(sequence[:, :, s - 1 : s]), run.prefix, cache=cache, start=start)
        else:
            logits = model(run.expand(sequence[:, :, :s]), run.prefix)
        run.calls += 1
        frames = where[:, s].tolist()  # [K]
        active = [q for q in range(k) if frames[q] >= tp]
        if active:
            drawn = run.draw(run.guide(logits[:, active, -1]), active, [frames[q] for q in active])
            for column, q in enumerate(active):
                sequence[:, q, s] = run.accept(q, frames[q], drawn[:, column])
        # done when every item has filled every position of its frames before `end`
        needed = last_step[:, (run.end - 1).clamp_min(0)].max(dim=0).values  # [B]
        needed = torch.where(run.end > tp, needed, torch.zeros_like(needed))
        if bool((needed <= s).all()):
            break
    return run.result(model.pattern.revert(sequence)[:, :, tp : run.total])
