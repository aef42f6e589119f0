"""Exportable forms of the operations ONNX cannot take from PyTorch: STFT, inverse STFT, RVQ search.

``torch.stft`` / ``torch.istft`` / ``torch.fft`` and complex tensors do not export to ONNX, and the
signal-length arithmetic of the padded convolutions is plain Python (it would be frozen into the graph
at the traced length).  Here the STFT is a strided ``conv1d`` with fixed DFT-times-window kernels, the
inverse STFT a ``conv_transpose1d`` with fixed inverse-DFT-times-window kernels divided by the
overlap-added squared window (the same window-envelope normalisation as ``torch.istft``), reflect
padding a gather whose indices are computed from the traced length, and the RVQ nearest-neighbour
search an ``argmin`` over ``|x|² - 2x·c + |c|²``.  Only the exported graphs use these
(``funcodec_lite.inference.export``); the PyTorch models keep their FFTs.

Every length below may be a traced 0-dim tensor (``x.shape[-1]`` while ``torch.onnx.export`` traces) or
a Python int (eager), so the same code gives the eager reference and the dynamic-length graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _as_tensor(value: int | torch.Tensor) -> torch.Tensor:
    """A 0-dim long tensor of a length (traced during export, constant in eager mode)."""
    return torch.as_tensor(value, dtype=torch.long)


def reflect_pad(x: torch.Tensor, left: int, right: int | torch.Tensor, max_right: int) -> torch.Tensor:
    """``pad1d(x, left, right, "reflect")`` for any length (also shorter than the padding).

    A signal shorter than the padding is zero-extended to ``max(left, right) + 1`` samples, reflected,
    and the zeros cut off again (EnCodec's convention, kept by ``pad1d``).  Only the edge samples are
    gathered (by indices computed from the traced length); the signal itself is copied once by the
    concatenation, as by a pad.  ``right`` may be a traced length (at most ``max_right``).

    Args:
        x: [B, C, T].
        left: samples added before.
        right: samples added after (int or traced 0-dim tensor).
        max_right: an upper bound of ``right``.
    Returns:
        [B, C, left + T + right].
    """
    length = _as_tensor(x.shape[-1])
    right = _as_tensor(right)
    reflected = torch.maximum(length, torch.clamp(right, min=left) + 1)  # T' of the zero-extended signal
    tail = length + torch.arange(right, device=x.device)  # positions after the end
    tail = torch.where(tail < reflected, tail, 2 * (reflected - 1) - tail)
    source = torch.cat([torch.arange(left, 0, -1, device=x.device), tail])  # head: x[left], ..., x[1]
    inside = source < length  # sources past the end are the zero extension
    edges = torch.where(inside, x.index_select(-1, torch.clamp(source, max=length - 1)), 0.0)
    parts = [edges[..., :left]] if left else []
    return torch.cat([*parts, x, edges[..., left:]], dim=-1)


def constant_pad(x: torch.Tensor, left: int, right: int | torch.Tensor, max_right: int,
                 mode: str = "constant") -> torch.Tensor:
    """Zero (``constant``) or edge (``replicate``) padding by a possibly traced ``right`` ≤ ``max_right``.

    Args:
        x: [..., T].
    Returns:
        [..., left + T + right].
    """
    padded = F.pad(x, (left, max_right), mode=mode)
    return padded[..., : left + x.shape[-1] + right]


def stft_kernels(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """Real-DFT analysis kernels with the window folded in: [2F, 1, n_fft], rows cos then -sin.

    Row k < F holds ``w[n] cos(2πkn/N)``, row F + k holds ``-w[n] sin(2πkn/N)`` (F = N // 2 + 1), so a
    ``conv1d`` gives Re and Im of ``torch.stft`` (``center=False``).  A window shorter than ``n_fft`` is
    centred in it as ``torch.stft`` does.
    """
    window = _full_window(n_fft, window)
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(k, n).remainder(n_fft) / n_fft
    sine = -torch.sin(angle)
    sine[0] = 0.0  # the DC and Nyquist bins are real, as in an FFT: sin(π n) rounds to ±1e-16, which
    if n_fft % 2 == 0:  # would flip the angle of a negative real bin between -π and π
        sine[-1] = 0.0
    kernels = torch.cat([torch.cos(angle), sine]) * window
    return kernels.unsqueeze(1).float()


def istft_kernels(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse real-DFT synthesis kernels with the window folded in: [2F, 1, n_fft].

    ``conv_transpose1d`` of [Re; Im] with these gives the windowed frames ``w[n] · irfft(X)[n]``
    overlap-added: ``irfft(X)[n] = (1/N) Σ_k c_k (Re X_k cos(2πkn/N) - Im X_k sin(2πkn/N))`` with
    c_0 = c_{N/2} = 1, c_k = 2 otherwise (and, as ``irfft``, the imaginary parts of the DC and Nyquist
    bins ignored).
    """
    window = _full_window(n_fft, window)
    n = torch.arange(n_fft, dtype=torch.float64)
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(k, n).remainder(n_fft) / n_fft
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    sine = -torch.sin(angle) * weight
    sine[0] = 0.0
    if n_fft % 2 == 0:
        sine[-1] = 0.0
    kernels = torch.cat([torch.cos(angle) * weight, sine]) * window / n_fft
    return kernels.unsqueeze(1).float()


def _full_window(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    window = window.detach().to(torch.float64)
    if window.numel() < n_fft:
        left = (n_fft - window.numel()) // 2
        window = F.pad(window, (left, n_fft - window.numel() - left))
    return window


class ConvSTFT(nn.Module):
    """``torch.stft(x, n_fft, hop, window, center=False)`` as a strided convolution.

    Args:
        n_fft: FFT size.
        hop_length: samples between frames.
        window: [win_length ≤ n_fft] analysis window.

    Shapes: input [B, T] (already padded), output (real, imag), each [B, n_fft // 2 + 1, N] with
    N = (T - n_fft) // hop + 1.
    """

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor) -> None:
        super().__init__()
        self.hop_length, self.bins = hop_length, n_fft // 2 + 1
        self.register_buffer("kernels", stft_kernels(n_fft, window), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = F.conv1d(x.unsqueeze(1), self.kernels.to(x.dtype), stride=self.hop_length)
        return spec[:, : self.bins], spec[:, self.bins :]


class ConvOverlapAdd(nn.Module):
    """Windowed inverse DFT of each frame, overlap-added and divided by the overlap-added squared window.

    Sample t of the result is ``Σ_n w[t - n·hop] · irfft(X_n)[t - n·hop] / Σ_n w²[t - n·hop]`` over the
    whole overlap-add span, as ``torch.istft`` computes it before trimming; callers trim (and must keep
    only samples where the envelope is > 0).

    Args:
        n_fft: FFT size.
        hop_length: samples between frames.
        window: [win_length ≤ n_fft] synthesis window.

    Shapes: input real, imag [B, n_fft // 2 + 1, N]; output [B, (N - 1) · hop + n_fft].
    """

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.register_buffer("kernels", istft_kernels(n_fft, window), persistent=False)
        envelope = _full_window(n_fft, window).square().float()
        self.register_buffer("envelope_kernel", envelope.view(1, 1, -1), persistent=False)

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        frames = torch.cat([real, imag], dim=1)
        wav = F.conv_transpose1d(frames, self.kernels.to(frames.dtype), stride=self.hop_length)
        # [1, 1, N] ones computed from the data: the exporter may freeze a shape read from an
        # intermediate tensor (``ones_like``, ``arange(x.shape[-1])``) at its traced value
        first = real[:1, :1]
        ones = (torch.isnan(first) | ~torch.isnan(first)).to(frames.dtype)
        envelope = F.conv_transpose1d(ones, self.envelope_kernel.to(frames.dtype), stride=self.hop_length)
        return (wav / envelope)[:, 0]


class RVQSearch(nn.Module):
    """Residual VQ encoding as one graph: per layer an argmin over squared distances, then subtract.

    The distance is EnCodec's ``|x|² - 2x·c + |c|²`` in the same order as ``nearest_codes``; ``argmin``
    keeps the first minimum, as ``torch.argmin`` does.

    Args:
        codebooks: [n_q, K, D] float codewords.

    Shapes: latent [B, D, N] -> codes long [B, n_q, N].
    """

    def __init__(self, codebooks: torch.Tensor) -> None:
        super().__init__()
        codebooks = codebooks.detach().float()
        self.register_buffer("codebooks", codebooks, persistent=False)
        self.register_buffer("norms", codebooks.square().sum(-1, keepdim=True).transpose(1, 2),
                             persistent=False)  # [n_q, 1, K]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        residual = latent.float().transpose(1, 2)  # [B, N, D]
        codes = []
        for layer in range(self.codebooks.shape[0]):
            embed = self.codebooks[layer]
            dist = residual.square().sum(-1, keepdim=True) - torch.matmul(2 * residual, embed.t())
            index = (dist + self.norms[layer]).argmin(-1)  # [B, N]
            residual = residual - F.embedding(index, embed)
            codes.append(index)
        return torch.stack(codes, dim=1)


class RVQLookup(nn.Module):
    """Residual VQ decoding as one gather: the sum of each layer's codeword, for the first K ≤ n_q layers.

    Args:
        codebooks: [n_q, K, D] float codewords.

    Shapes: codes long [B, K', N] (K' ≤ n_q taken from the input) -> latent [B, D, N].
    """

    def __init__(self, codebooks: torch.Tensor) -> None:
        super().__init__()
        n_q, size, dim = codebooks.shape
        self.register_buffer("table", codebooks.detach().float().reshape(n_q * size, dim), persistent=False)
        self.register_buffer("offsets", torch.arange(n_q).view(1, n_q, 1) * size, persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        index = codes + self.offsets[:, : codes.shape[1]]
        return F.embedding(index, self.table).sum(1).transpose(1, 2)  # [B, K', N, D] -> [B, D, N]
