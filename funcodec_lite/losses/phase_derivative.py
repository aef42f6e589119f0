"""Phase-derivative loss: instantaneous frequency and group delay of the decoded STFT against the reference.

A decoder that predicts each frame's spectrum may give every frame a plausible phase and still let the
phase of a partial jump from frame to frame; the overlap-add then smears the partial into noise. What
keeps a partial whole is its instantaneous frequency, the phase advance between consecutive frames, and
what keeps a transient sharp is the group delay, the phase step between neighbouring bins (APNet, Ai & Ling
2023, train both with "anti-wrapping" losses). This loss compares both as unit phasors, so the 2π
wrapping needs no special case:

    a = Z_t conj(Z_{t-1}) / (|Z_t conj(Z_{t-1})| + ε)      (the advance of bin f from frame t-1 to t)
    term = mean_w |a_ref - a_dec|² = mean_w 2 (1 - cos(Δφ_dec - Δφ_ref))

and the same along frequency. The mean is weighted by the reference's compressed magnitude (of both bins
of the pair), so bins that hold no energy in the reference do not count; ε is relative to the mean power
of the pair products, so near-silent decoded bins get a bounded gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_WINDOWS = (512, 1024)


def _unit_products(spec: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """Unit phasors of Z_k conj(Z_{k-1}) along ``dim`` of a complex spectrum [B, F, N]."""
    later = spec.narrow(dim, 1, spec.shape[dim] - 1)
    earlier = spec.narrow(dim, 0, spec.shape[dim] - 1)
    product = later * earlier.conj()
    magnitude = product.abs()
    floor = eps * magnitude.detach().mean(dim=(-2, -1), keepdim=True) + 1e-12
    return product / (magnitude + floor)


class PhaseDerivativeLoss(nn.Module):
    """Mean over resolutions of the weighted instantaneous-frequency and group-delay phasor errors.

    Per resolution: Hann window of ``w`` samples, hop w / 4, centred frames with zero padding.

    Args:
        windows: window lengths (= FFT sizes) of the resolutions.
        compress: the reference magnitude's power in the weights.
        group_delay_weight: weight of the group-delay term beside the instantaneous-frequency term.
        eps: the phasor floor, relative to the mean magnitude of the pair products.

    Shapes: two signals [B, C, T] (any leading dims) → a scalar (0 for identical signals, at most 4).
    """

    def __init__(self, windows: Sequence[int] = DEFAULT_WINDOWS, compress: float = 0.3,
                 group_delay_weight: float = 1.0, eps: float = 1e-3) -> None:
        super().__init__()
        if not windows or any(w < 4 for w in windows):
            raise ValueError(f"windows must be a non-empty list of lengths >= 4, got {list(windows)}")
        self.windows, self.compress = list(windows), compress
        self.group_delay_weight, self.eps = group_delay_weight, eps
        for w in self.windows:
            self.register_buffer(f"window_{w}", torch.hann_window(w), persistent=False)

    def _stft(self, wav: torch.Tensor, n_fft: int) -> torch.Tensor:
        return torch.stft(wav.reshape(-1, wav.shape[-1]).float(), n_fft, n_fft // 4,
                          window=getattr(self, f"window_{n_fft}"), center=True, pad_mode="constant",
                          return_complex=True)

    def _term(self, ref: torch.Tensor, hyp: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
        pair_weight = (weight.narrow(dim, 1, weight.shape[dim] - 1)
                       * weight.narrow(dim, 0, weight.shape[dim] - 1)).sqrt()
        error = (_unit_products(ref, dim, self.eps) - _unit_products(hyp, dim, self.eps)).abs().square()
        return (pair_weight * error).sum() / pair_weight.sum().clamp(min=1e-12)

    def forward(self, wav: torch.Tensor, wav_hat: torch.Tensor) -> torch.Tensor:
        """Args:
            wav (torch.Tensor): reference signal [B, C, T].
            wav_hat (torch.Tensor): reconstruction, same shape.

        Returns:
            torch.Tensor: scalar loss.
        """
        if wav.shape != wav_hat.shape:
            raise ValueError(f"signal and reconstruction shapes differ: {tuple(wav.shape)} vs "
                             f"{tuple(wav_hat.shape)}")
        terms = []
        for n_fft in self.windows:
            ref, hyp = self._stft(wav.detach(), n_fft), self._stft(wav_hat, n_fft)
            weight = ref.abs().pow(self.compress)
            frequency = self._term(ref, hyp, weight, dim=-1)  # along time: instantaneous frequency
            delay = self._term(ref, hyp, weight, dim=-2)  # along frequency: group delay
            terms.append(frequency + self.group_delay_weight * delay)
        return torch.stack(terms).mean()
