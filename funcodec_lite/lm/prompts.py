"""VampNet-style prompt masks over codec tokens [B, K, T] (True = generate, False = keep) and a spec syntax.

A mask says which tokens a masked token model regenerates: ``True`` (or 1) = masked / generate, ``False``
(or 0) = kept as part of the prompt. Builders return bool tensors; the combinators and :func:`apply_mask`
also take long 0/1 masks. Every random builder draws only from the ``torch.Generator`` it is given, so a
seeded generator gives the same mask every time.

The ``--mask`` spec language that combines these builders is `funcodec_lite.lm.mask_spec`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Device = torch.device | str | None


def resolve_device(device: Device, generator: torch.Generator | None) -> torch.device:
    """The device a builder makes its mask on: the one given, else the generator's, else the CPU."""
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def full(B: int, K: int, T: int, device: Device = None) -> torch.Tensor:
    """All True: generate every token. Returns a bool mask [B, K, T]."""
    return torch.ones(B, K, T, dtype=torch.bool, device=device)


def empty(B: int, K: int, T: int, device: Device = None) -> torch.Tensor:
    """All False: keep every token. Returns a bool mask [B, K, T]."""
    return torch.zeros(B, K, T, dtype=torch.bool, device=device)


def random(B: int, K: int, T: int, p: float | torch.Tensor, generator: torch.Generator | None = None,
           device: Device = None) -> torch.Tensor:
    """Generate each token independently with probability p.

    Args:
        p: a float or a tensor [B] of per-example probabilities in [0, 1].
    Returns:
        torch.Tensor: bool mask [B, K, T]; token (b, k, t) is True iff u[b, k, t] < p[b] for
        u = torch.rand(B, K, T, generator=generator).
    """
    dev = resolve_device(device, generator)
    p = torch.as_tensor(p, dtype=torch.float32, device=dev).reshape(-1)
    if p.numel() not in (1, B) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"p must be a probability or {B} of them, got {p.tolist()}")
    return torch.rand(B, K, T, generator=generator, device=dev) < p.expand(B)[:, None, None]


def cosine_random(B: int, K: int, T: int, r: torch.Tensor, generator: torch.Generator | None = None,
                  device: Device = None) -> torch.Tensor:
    """The training mask: generate each token with probability cos(π r / 2) (clamped to [1e-10, 1]).

    Args:
        r (torch.Tensor): mask level per example, shape [B], in [0, 1] (r = 0 masks everything).
    """
    dev = resolve_device(device, generator)
    r = torch.as_tensor(r, dtype=torch.float32, device=dev).reshape(-1).expand(B)
    return random(B, K, T, torch.cos(r * math.pi / 2).clamp(1e-10, 1.0), generator, dev)


def periodic(B: int, K: int, T: int, period: int, width: int = 1, roll: bool = False,
             generator: torch.Generator | None = None, device: Device = None) -> torch.Tensor:
    """Keep `width` frames centred on every `period`-th frame (0, P, 2P, ...), in all codebooks.

    Frame t is kept when |t - a| sits in [-(W - 1) // 2, W // 2] for an anchor a = 0, P, 2P, ... < T.
    With `roll`, each example's pattern is rolled circularly along time by its own offset drawn from
    0..P-1, so examples differ but keep the same number of frames. Period 0 generates everything.
    """
    if period < 0 or width < 1:
        raise ValueError(f"need period >= 0 and width >= 1, got period={period}, width={width}")
    dev = resolve_device(device, generator)
    if period == 0:
        return full(B, K, T, dev)
    keep = torch.zeros(T, dtype=torch.bool, device=dev)
    anchors = torch.arange(0, T, period, device=dev)
    for offset in range(-((width - 1) // 2), width // 2 + 1):
        idx = anchors + offset
        keep[idx[(idx >= 0) & (idx < T)]] = True
    keep = keep.expand(B, T)
    if roll and T > 0:
        shifts = torch.randint(0, period, (B,), generator=generator, device=dev)
        keep = keep.gather(1, (torch.arange(T, device=dev)[None] - shifts[:, None]) % T)
    return (~keep)[:, None, :].expand(B, K, T).clone()


def inpaint(B: int, K: int, T: int, prefix_frames: int, suffix_frames: int,
            device: Device = None) -> torch.Tensor:
    """Keep the first `prefix_frames` and the last `suffix_frames` frames; generate the middle."""
    if prefix_frames < 0 or suffix_frames < 0:
        raise ValueError(f"prefix and suffix must be >= 0, got {prefix_frames}, {suffix_frames}")
    t = torch.arange(T, device=device)
    generate = (t >= prefix_frames) & (t < T - suffix_frames)
    return generate[None, None].expand(B, K, T).clone()


def upper(B: int, K: int, T: int, keep_codebooks: int, device: Device = None) -> torch.Tensor:
    """Keep the lowest `keep_codebooks` codebooks at every frame; generate the codebooks above them."""
    if keep_codebooks < 0:
        raise ValueError(f"keep_codebooks must be >= 0, got {keep_codebooks}")
    generate = torch.arange(K, device=device) >= keep_codebooks
    return generate[None, :, None].expand(B, K, T).clone()


def _keep_windows(frames: Sequence[Sequence[int]], B: int, K: int, T: int, start: int, stop: int,
                  device: Device) -> torch.Tensor:
    """Generate everywhere except frames f + start .. f + stop - 1 around each listed frame f."""
    if len(frames) not in (1, B):
        raise ValueError(f"need frame lists for 1 or {B} examples, got {len(frames)}")
    mask = full(B, K, T, device)
    for b in range(B):
        for f in frames[b if len(frames) == B else 0]:
            lo, hi = max(int(f) + start, 0), min(int(f) + stop, T)
            if lo < hi:
                mask[b, :, lo:hi] = False
    return mask


def onsets(frames: Sequence[Sequence[int]], B: int, K: int, T: int, width: int = 3,
           device: Device = None) -> torch.Tensor:
    """Keep `width` frames from each onset on (frames f .. f + width - 1), in all codebooks.

    Args:
        frames: onset frame indices per example (B lists, or one list shared by all examples).
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return _keep_windows(frames, B, K, T, 0, width, device)


def beats(frames: Sequence[Sequence[int]], B: int, K: int, T: int, before: int = 0, after: int = 4,
          device: Device = None) -> torch.Tensor:
    """Keep frames f - before .. f + after around each beat frame f, in all codebooks.

    Args:
        frames: beat frame indices per example (B lists, or one list shared by all examples).
    """
    if before < 0 or after < 0:
        raise ValueError(f"before and after must be >= 0, got {before}, {after}")
    return _keep_windows(frames, B, K, T, -before, after + 1, device)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def mask_and(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generate only where both generate (the union of the prompts). Keeps the dtype of `a`."""
    _check_pair(a, b)
    return (a.bool() & b.bool()).to(a.dtype)


def mask_or(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generate where either generates (the intersection of the prompts). Keeps the dtype of `a`."""
    _check_pair(a, b)
    return (a.bool() | b.bool()).to(a.dtype)


def dropout(mask: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Re-mask each kept token with probability p (masked tokens stay masked). Keeps the dtype of `mask`."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    u = torch.rand(mask.shape, generator=generator, device=mask.device)
    return (mask.bool() | (u < p)).to(mask.dtype)


def apply_mask(codes: torch.Tensor, mask: torch.Tensor, mask_token: int) -> torch.Tensor:
    """Replace the masked tokens of `codes` [B, K, T] with `mask_token` (a copy; the kept tokens stay)."""
    _check_pair(codes, mask)
    return codes.masked_fill(mask.bool(), mask_token)


def seconds_to_frames(seconds: float, frame_rate: float) -> int:
    """ceil(seconds * frame_rate), ignoring float round-off (0.1 s at 50 Hz is 5 frames, not 6)."""
    return max(0, math.ceil(seconds * frame_rate - 1e-6))


def times_to_frames(times: Sequence[float] | torch.Tensor, frame_rate: float,
                    num_frames: int | None = None) -> list[int]:
    """Event times in seconds -> sorted unique frame indices round(t * frame_rate), within [0, num_frames)."""
    frames = sorted({round(float(t) * frame_rate) for t in times})
    return [f for f in frames if f >= 0 and (num_frames is None or f < num_frames)]


# ---------------------------------------------------------------------------------------------- spec syntax
