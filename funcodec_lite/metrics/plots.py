"""Log-mel spectrogram grids (reference and decodes side by side) written atomically as PNG files."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch

from funcodec_lite.utils.atomic import atomic_path

from ..audio.spectral import MelSpectrogram, STFTConfig, max_mel_bins

_DB_PER_NEPER = 20.0 / math.log(10.0)


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # an optional dependency: only plotting needs it
        raise ImportError("save_spectrogram_png needs matplotlib: pip install matplotlib") from err
    return Figure


def log_mel_db(wav: torch.Tensor, sample_rate: int, n_mels: int = 80) -> torch.Tensor:
    """Log-magnitude mel spectrogram in dB (floor -100 dB) for display.

    Window about 64 ms (next power of two), hop a quarter window, zero padding at the edges.

    Args:
        wav (torch.Tensor): signal of shape [T].
        sample_rate: rate in Hz.
        n_mels: maximum number of mel bands (fewer where the FFT resolution cannot support them).

    Returns:
        torch.Tensor: spectrogram of shape [n_mels', N].
    """
    n_fft = 2 ** max(5, round(math.log2(0.064 * sample_rate)))
    cfg = STFTConfig(n_fft=n_fft, hop_length=n_fft // 4, pad_mode="constant")
    mel = MelSpectrogram(sample_rate, cfg, max_mel_bins(sample_rate, n_fft, limit=n_mels), log=True)
    return mel(wav.detach().to("cpu", torch.float32)) * _DB_PER_NEPER


def save_spectrogram_png(
    path: str | os.PathLike,
    wavs: Mapping[str, torch.Tensor],
    sample_rate: int,
    dynamic_range_db: float = 80.0,
    dpi: int = 100,
) -> None:
    """Draws one log-mel spectrogram per signal, stacked top to bottom, and saves the grid as a PNG.

    All panels share one colour scale (the loudest bin of any panel down to `dynamic_range_db` below
    it), so the panels can be compared by eye. The file is written to a temporary name in the same
    directory and renamed over `path`, so a reader never sees a partial image. Needs matplotlib (its
    Agg renderer; pyplot and the global backend are not touched).

    Args:
        path: destination .png file; its directory must exist.
        wavs: panel title -> signal of shape [T] (e.g. {"reference": x, "n_q=2": y2, "n_q=8": y8});
            signals may differ in length (all panels share the time axis of the longest).
        sample_rate: rate of every signal in Hz.
        dynamic_range_db: colour range below the loudest bin.
        dpi: image resolution (the figure is 10 inches wide, 2.2 inches per panel).

    Raises:
        ValueError: no signals, a signal that is not 1-D or is empty, or NaN/Inf samples.
        ImportError: matplotlib is not installed.
    """
    if not wavs:
        raise ValueError("wavs is empty: nothing to plot")
    for name, wav in wavs.items():
        if wav.dim() != 1 or wav.shape[0] == 0:
            raise ValueError(f"{name!r}: expected a non-empty signal [T], got shape {tuple(wav.shape)}")
        if not bool(torch.isfinite(wav).all()):
            raise ValueError(f"{name!r}: contains NaN or Inf samples")
    Figure = _figure_class()
    specs = {name: log_mel_db(wav, sample_rate) for name, wav in wavs.items()}
    vmax = max(float(s.max()) for s in specs.values())
    longest = max(wav.shape[0] for wav in wavs.values()) / sample_rate
    fig = Figure(figsize=(10.0, 2.2 * len(specs)), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(specs), 1, squeeze=False)[:, 0]
    image = None
    for ax, (name, spec) in zip(axes, specs.items()):
        seconds = wavs[name].shape[0] / sample_rate
        image = ax.imshow(
            spec.numpy(), origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
            vmin=vmax - dynamic_range_db, vmax=vmax, extent=(0.0, seconds, 0, spec.shape[0]),
        )
        ax.set_xlim(0.0, longest)  # one time axis for all panels, so they line up
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=list(axes), label="dB", shrink=0.9)
    with atomic_path(path) as tmp, open(tmp, "xb") as handle:
        fig.savefig(handle, format="png")
