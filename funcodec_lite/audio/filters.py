"""Time-domain filters in plain torch: band-limited (windowed-sinc) resampling and a biquad high-pass.

Written here rather than taken from torchaudio, which has no release built for the torch this project runs
on; both compute torchaudio 2.x's numbers (``functional.resample`` with its defaults, ``highpass_biquad``),
operation for operation, so results are unchanged (tests/test_audio_filters.py compares them).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# the sinc kernel: zero crossings kept on each side, and the cutoff as a fraction of the lower Nyquist
FILTER_WIDTH = 6
ROLLOFF = 0.99


@lru_cache(maxsize=32)
def _sinc_kernel(orig: int, new: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, int]:
    """Hann-windowed sinc kernels for coprime rates ``orig -> new``.

    Output sample ``j`` of each group of ``new`` reads the ``2 width + orig`` input samples around it;
    the kernels are evaluated at the exact positions ``i / orig - j / new`` (in seconds x rate), clipped to
    ``FILTER_WIDTH`` zero crossings, in ``dtype`` (as torchaudio evaluates them: in the signal's dtype).

    Returns:
        (kernel [new, 1, 2 width + orig], width).
    """
    cutoff = min(orig, new) * ROLLOFF  # in units of the reduced rates
    width = math.ceil(FILTER_WIDTH * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new + taps
    t = (t * cutoff).clamp(-FILTER_WIDTH, FILTER_WIDTH)
    window = torch.cos(t * math.pi / FILTER_WIDTH / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones((), dtype=t.dtype, device=device), t.sin() / t)
    return kernel * (window * (cutoff / orig)), width


def sinc_resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resamples by windowed-sinc interpolation (Hann window, 6 zero crossings, cutoff 0.99 x Nyquist).

    Args:
        wav (torch.Tensor): floating-point audio of shape [..., T].
        orig_sr, new_sr: integer sample rates in Hz.

    Returns:
        torch.Tensor: audio of shape [..., ceil(T * new_sr / orig_sr)] (``wav`` itself when the rates match).
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if not wav.is_floating_point():
        raise TypeError(f"expected floating-point audio, got {wav.dtype}")
    if orig_sr == new_sr:
        return wav
    gcd = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // gcd, int(new_sr) // gcd
    kernel, width = _sinc_kernel(orig, new, wav.dtype, wav.device)
    shape = wav.shape
    flat = F.pad(wav.reshape(-1, shape[-1]), (width, width + orig))
    out = F.conv1d(flat[:, None], kernel, stride=orig)  # [N, new, groups]
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    # the exact integer ceil; torchaudio rounds the ratio through float32 and, past ~2^17 output samples,
    # can drop the last sample (e.g. 441328 samples at 44.1 kHz give it 160119 at 16 kHz, not 160120)
    target = -(-new * shape[-1] // orig)
    return out[:, :target].reshape(*shape[:-1], -1)


def highpass_biquad(wav: torch.Tensor, sample_rate: int, cutoff_hz: float, q: float = 0.707) -> torch.Tensor:
    """Second-order high-pass (RBJ cookbook / SoX coefficients), zero initial state, output clipped to
    [-1, 1] as torchaudio's ``lfilter`` does.

    The coefficients are computed in ``wav``'s dtype and the recursion runs in that dtype sample by sample
    (numpy, on the CPU), so the output equals torchaudio's ``highpass_biquad`` bit for bit. Not
    differentiable.

    Args:
        wav (torch.Tensor): floating-point audio of shape [..., T].
        sample_rate: sample rate in Hz.
        cutoff_hz: cutoff frequency in Hz.
        q: quality factor (0.707: Butterworth).

    Returns:
        torch.Tensor: filtered audio of shape [..., T], same dtype and device.
    """
    if not wav.is_floating_point():
        raise TypeError(f"expected floating-point audio, got {wav.dtype}")
    dtype = wav.dtype
    w0 = 2 * math.pi * torch.as_tensor(cutoff_hz, dtype=dtype) / sample_rate
    alpha = torch.sin(w0) / 2.0 / torch.as_tensor(q, dtype=dtype)
    b = torch.stack([(1 + torch.cos(w0)) / 2, -1 - torch.cos(w0), (1 + torch.cos(w0)) / 2])
    a = torch.stack([1 + alpha, -2 * torch.cos(w0), 1 - alpha])
    b, a = b / a[0], a / a[0]
    shape = wav.shape
    flat = wav.detach().to("cpu").reshape(-1, 1, shape[-1])
    fir = F.conv1d(F.pad(flat, (2, 0)), b.flip(0)[None, None])[:, 0]  # b0 x[n] + b1 x[n-1] + b2 x[n-2]
    out = _all_pole(fir.numpy(), float(a[1]), float(a[2]))
    return torch.from_numpy(out).clamp(-1.0, 1.0).reshape(shape).to(wav.device)


def _all_pole(x: np.ndarray, a1: float, a2: float) -> np.ndarray:
    """y[n] = x[n] - (a2 y[n-2] + a1 y[n-1]) along the last axis of ``x`` [B, T], in ``x``'s dtype.

    A loop over samples: the recursion is sequential, and computing it in this order and precision is
    what keeps the output equal to torchaudio's (a float64 ``scipy.signal.lfilter`` differs by ~2e-4 at
    low cutoffs, the float32 rounding of the recursion itself)."""
    columns = np.ascontiguousarray(x.T)  # [T, B]: one row per step
    y = np.zeros((columns.shape[0] + 2, columns.shape[1]), dtype=x.dtype)
    c1, c2 = x.dtype.type(a1), x.dtype.type(a2)
    for n in range(columns.shape[0]):
        y[n + 2] = columns[n] - (y[n] * c2 + y[n + 1] * c1)
    return np.ascontiguousarray(y[2:].T)
