"""Signal levels: peak, RMS, ITU-R BS.1770-4 integrated loudness and normalisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

# BS.1770-4 K-weighting, expressed as analog prototypes so the filters can be designed for any sample
# rate; these parameters reproduce the standard's 48 kHz coefficients (see tests).
_SHELF_F0 = 1681.974450955533  # Hz
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_MID_EXP = 0.4996667741545416  # mid-band gain = high-frequency gain ** this
_HIGHPASS_F0 = 38.13547087602444  # Hz
_HIGHPASS_Q = 0.5003270373238773

_BLOCK_S = 0.4
_STEP_S = 0.1  # 75 % overlap
_ABSOLUTE_GATE = -70.0  # LUFS
_RELATIVE_GATE = -10.0  # LU below the absolute-gated loudness
_OFFSET = -0.691


def peak(wav: torch.Tensor) -> float:
    """Largest absolute sample value of `wav` (any shape); 0.0 for an empty tensor."""
    return float(wav.abs().max()) if wav.numel() else 0.0


def peak_normalize(wav: torch.Tensor, target_db: float = -1.0) -> torch.Tensor:
    """Scales `wav` (any shape) so its peak is `target_db` dBFS; silence is returned unchanged."""
    p = peak(wav)
    if p == 0.0:
        return wav.clone()
    return wav * (10.0 ** (target_db / 20.0) / p)


def rms_db(wav: torch.Tensor) -> float:
    """RMS level over all samples of `wav` in dBFS (a full-scale sine is -3.01); -inf for silence."""
    if not wav.numel():
        return -math.inf
    ms = float(wav.double().square().mean())
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def _prewarped(f0: float, sample_rate: int) -> float:
    """Analog angular frequency that the bilinear transform maps onto f0 exactly."""
    return 2.0 * sample_rate * math.tan(math.pi * f0 / sample_rate)


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-weighting biquads (b, a) for `sample_rate`: the high-shelf pre-filter then the RLB high-pass.

    Each stage is an analog second-order prototype mapped to the z-plane with scipy's bilinear
    transform, pre-warped at its corner frequency. At 48 kHz this gives the coefficients printed in
    BS.1770-4 to 1e-8.
    """
    w0 = _prewarped(_SHELF_F0, sample_rate)
    high = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    mid = high**_SHELF_MID_EXP
    from scipy import signal  # imported here: scipy.signal adds ~1.7 s to every start-up

    shelf = signal.bilinear([high, mid * w0 / _SHELF_Q, w0**2], [1.0, w0 / _SHELF_Q, w0**2], sample_rate)
    w1 = _prewarped(_HIGHPASS_F0, sample_rate)
    # BS.1770 prints the 48 kHz RLB numerator as (1, -2, 1): a pass-band gain of ~+0.04 dB that the
    # -0.691 offset is calibrated against. Keep that gain (not the rate-dependent b0 = 1) at every rate.
    k48 = math.tan(math.pi * _HIGHPASS_F0 / 48000.0)
    gain = 1.0 + k48 / _HIGHPASS_Q + k48**2
    highpass = signal.bilinear([gain, 0.0, 0.0], [1.0, w1 / _HIGHPASS_Q, w1**2], sample_rate)
    return [shelf, highpass]


def _channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights: 1.0, except surrounds (1.41) and LFE (0) in 5.0 / 5.1 layouts."""
    if channels == 5:  # L R C Ls Rs
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:  # WAV / SMPTE 5.1 order: L R C LFE Ls Rs
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def loudness_lufs(
    wav: torch.Tensor, sample_rate: int, channel_weights: Sequence[float] | None = None
) -> float:
    """Integrated loudness per ITU-R BS.1770-4 in LUFS.

    Written here rather than imported: no small, maintained, dependency-free implementation is among our
    dependencies. Steps: K-weighting, mean square per 400 ms block (75 % overlap), absolute gate at
    -70 LUFS, relative gate 10 LU below the absolute-gated loudness. BS.1770 gives no value for a signal
    shorter than one block; we measure such a signal as a single block.

    Args:
        wav (torch.Tensor): audio of shape [C, T] (or [T] for mono).
        sample_rate: sample rate in Hz.
        channel_weights: per-channel weights G_i (default: see `_channel_weights`).

    Returns:
        float: loudness in LUFS; -inf when no block passes the gates (e.g. silence).
    """
    x = wav.detach().double().cpu().numpy()
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise ValueError(f"expected audio [C, T] or [T], got shape {tuple(wav.shape)}")
    channels, length = x.shape
    if length == 0:
        return -math.inf
    weights = _channel_weights(channels) if channel_weights is None else np.asarray(channel_weights, float)
    if weights.shape != (channels,):
        raise ValueError(f"need {channels} channel weights, got {len(weights)}")
    from scipy import signal

    for b, a in k_weighting(sample_rate):
        x = signal.lfilter(b, a, x, axis=-1)
    block = min(length, round(_BLOCK_S * sample_rate))
    step = round(_STEP_S * sample_rate)
    starts = np.arange(0, length - block + 1, step)
    # cumulative sums give every block's mean square in O(T)
    csum = np.concatenate([np.zeros((channels, 1)), np.cumsum(x * x, axis=-1)], axis=-1)
    z = (csum[:, starts + block] - csum[:, starts]) / block  # [C, J]
    weighted = weights @ z  # [J]
    with np.errstate(divide="ignore"):
        block_loudness = _OFFSET + 10.0 * np.log10(weighted)
    gated = block_loudness > _ABSOLUTE_GATE
    if not gated.any():
        return -math.inf
    relative = _OFFSET + 10.0 * math.log10(weighted[gated].mean()) + _RELATIVE_GATE
    gated &= block_loudness > relative
    return _OFFSET + 10.0 * math.log10(weighted[gated].mean())


def loudness_normalize(wav: torch.Tensor, sample_rate: int, target_lufs: float = -23.0) -> torch.Tensor:
    """Scales `wav` [C, T] to `target_lufs` integrated loudness; silence is returned unchanged.

    The result is not clipped and may exceed [-1, 1]; follow with `peak_normalize` if that matters.
    """
    current = loudness_lufs(wav, sample_rate)
    if not math.isfinite(current):
        return wav.clone()
    return wav * (10.0 ** ((target_lufs - current) / 20.0))
