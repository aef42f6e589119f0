"""Fréchet Audio Distance: Gaussian statistics, the Fréchet distance and a VGGish embedder (DCASE 2023 T7).

The embedder follows the official DCASE 2023 Task 7 evaluator (a fork of google-research's FAD): the
22,050 Hz audio is *not* resampled but framed as if it were 16 kHz (16,000-sample windows, hop 8,000: ten
windows per 4-s clip), each clip is divided by max(0.1, its largest sample), and each window becomes one
96 x 64 VGGish log-mel example whose 128-d pre-activation output (no ReLU, no PCA) is the embedding.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy import linalg
from torch import nn

EMBEDDING_DIM = 128
# Layer names of the common PyTorch VGGish port (harritaylor/torchvggish, vggish-10086976.pth).
_CONVS = (("features.0", 1, 64), ("features.3", 64, 128), ("features.6", 128, 256), ("features.8", 256, 256),
          ("features.11", 256, 512), ("features.13", 512, 512))
_LINEARS = (("embeddings.0", 512 * 6 * 4, 4096), ("embeddings.2", 4096, 4096), ("embeddings.4", 4096, 128))
_IGNORED_PREFIXES = ("pproc.",)  # the port's PCA post-processor, not used for FAD


# ------------------------------------------------------------------------------------ Fréchet distance
def gaussian_stats(embeddings: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N - 1) covariance of a set of embeddings, in float64.

    Args:
        embeddings: array of shape [N, D] with N >= 2.

    Returns:
        (mu, sigma): arrays of shape [D] and [D, D].
    """
    x = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need embeddings of shape [N >= 2, D], got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or Inf")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-7
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as the DCASE evaluator computes it.

    d = |mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 sigma2)). When scipy's sqrtm of the
    product is not finite (a numerically singular product), it is retried with `eps` added to the
    diagonal of both covariances, and a RuntimeWarning says so. A small imaginary part of the square
    root is discarded. The result is not clipped at 0 (identical inputs may give about -1e-12).

    Args:
        mu1, mu2: means of shape [D].
        sigma1, sigma2: covariances of shape [D, D].
        eps: diagonal offset of the retry.

    Raises:
        ValueError: mismatched shapes, or an imaginary diagonal above 1e-3 in the square root.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"need mu [D] and sigma [D, D] for both Gaussians, got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product is handled below
        root = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(root).all():
            warnings.warn(f"sqrtm(sigma1 @ sigma2) is not finite; retrying with {eps:g} added to the "
                          "covariance diagonals", RuntimeWarning, stacklevel=2)
            offset = eps * np.eye(dim)
            root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part "
                             f"(max |imag| on the diagonal {np.abs(np.diagonal(root).imag).max():.3g})")
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root))


def fad_per_class(
    real_embeddings: Mapping[str, np.ndarray | torch.Tensor],
    generated_embeddings: Mapping[str, np.ndarray | torch.Tensor],
) -> dict[str, float]:
    """FAD of each generated class against the real embeddings of the same class.

    Args:
        real_embeddings: class -> real embeddings of shape [N, D].
        generated_embeddings: class -> generated embeddings of shape [M, D]; every class must be in
            `real_embeddings`.

    Returns:
        class -> FAD, in the order of `generated_embeddings`.
    """
    missing = [c for c in generated_embeddings if c not in real_embeddings]
    if missing:
        raise ValueError(f"no real embeddings for generated classes {missing}")
    return {c: frechet_distance(*gaussian_stats(real_embeddings[c]), *gaussian_stats(gen))
            for c, gen in generated_embeddings.items()}


@dataclass
class FADMatrix:
    """FAD of every generated class against every real class.

    Args:
        generated_classes: row labels.
        real_classes: column labels.
        values: FAD(generated row, real column), array of shape [G, R].
    """

    generated_classes: list[str]
    real_classes: list[str]
    values: np.ndarray

    def get(self, generated: str, real: str) -> float:
        """FAD of generated class `generated` against real class `real`."""
        return float(self.values[self.generated_classes.index(generated), self.real_classes.index(real)])

    def nearest_real(self) -> dict[str, str]:
        """Generated class -> the real class it is closest to (smallest FAD)."""
        rows = zip(self.generated_classes, self.values)
        return {g: self.real_classes[int(np.argmin(row))] for g, row in rows}

    def matched_is_nearest(self) -> dict[str, bool]:
        """For each class on both axes: FAD(gen c, real c) < FAD(gen c, real c') for every other c'."""
        result = {}
        for i, g in enumerate(self.generated_classes):
            if g in self.real_classes:
                j = self.real_classes.index(g)
                others = np.delete(self.values[i], j)
                result[g] = bool(others.size == 0 or self.values[i, j] < others.min())
        return result


def fad_matrix(
    real_embeddings: Mapping[str, np.ndarray | torch.Tensor],
    generated_embeddings: Mapping[str, np.ndarray | torch.Tensor],
) -> FADMatrix:
    """FAD of every generated class (rows) against every real class (columns); statistics computed once."""
    real = {c: gaussian_stats(e) for c, e in real_embeddings.items()}
    gen = {c: gaussian_stats(e) for c, e in generated_embeddings.items()}
    values = np.array([[frechet_distance(*real[r], *gen[g]) for r in real] for g in gen], dtype=np.float64)
    return FADMatrix(list(gen), list(real), values.reshape(len(gen), len(real)))


# ------------------------------------------------------------------------------- evaluator front-end
@dataclass
class VGGishFrontEndConfig:
    """The evaluator's framing and VGGish log-mel settings, in samples of the *unresampled* audio.

    Args:
        window: samples per embedding window (VGGish's one second at its nominal 16 kHz).
        hop: samples between windows (the evaluator's step_size).
        min_peak: a clip is divided by max(min_peak, its largest sample value).
        nominal_rate: rate VGGish assumes; sets the mel band edges in bins, not a resampling.
        stft_window, stft_hop, n_fft: 25 ms / 10 ms periodic-Hann STFT magnitude at the nominal rate.
        n_mels, f_min, f_max: HTK mel bands, triangular in mel, DC bin excluded.
        log_offset: log(mel + log_offset).
        example_frames: STFT frames per VGGish example (0.96 s).
    """

    window: int = 16000
    hop: int = 8000
    min_peak: float = 0.1
    nominal_rate: int = 16000
    stft_window: int = 400
    stft_hop: int = 160
    n_fft: int = 512
    n_mels: int = 64
    f_min: float = 125.0
    f_max: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96


def normalize_peak(wav: torch.Tensor, min_peak: float = 0.1) -> torch.Tensor:
    """Divides each clip by max(min_peak, its largest sample): the positive peak, not the absolute one.

    Args:
        wav (torch.Tensor): clips of shape [..., T].
    """
    return wav / wav.amax(dim=-1, keepdim=True).clamp_min(min_peak)


def frame_windows(wav: torch.Tensor, window: int = 16000, hop: int = 8000) -> torch.Tensor:
    """Windows starting at 0, hop, 2 hop, ... that fit entirely (the evaluator's framing).

    Args:
        wav (torch.Tensor): clips of shape [..., T] with T >= window.

    Returns:
        torch.Tensor: windows of shape [..., 1 + (T - window) // hop, window] (10 for T = 88,200).
    """
    if wav.shape[-1] < window:
        raise ValueError(f"clips need at least {window} samples, got {wav.shape[-1]}")
    return wav.unfold(-1, window, hop)


def vggish_mel_matrix(config: VGGishFrontEndConfig) -> torch.Tensor:
    """VGGish mel weights of shape [n_fft // 2 + 1, n_mels] (float64): triangles linear in HTK mel."""
    def to_mel(hz: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, config.nominal_rate / 2, config.n_fft // 2 + 1))
    edges = np.linspace(to_mel(config.f_min), to_mel(config.f_max), config.n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0  # no weight on the DC bin
    return torch.from_numpy(weights)


class VGGishFrontEnd(nn.Module):
    """Log-mel examples of 16,000-sample windows, computed in float64 like the evaluator's numpy code."""

    def __init__(self, config: VGGishFrontEndConfig | None = None):
        super().__init__()
        self.config = config or VGGishFrontEndConfig()
        n = self.config.stft_window
        hann = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)  # periodic
        self.register_buffer("hann", hann, persistent=False)
        self.register_buffer("mel", vggish_mel_matrix(self.config), persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Args:
            windows (torch.Tensor): windows of shape [N, window] (already peak-normalised).

        Returns:
            torch.Tensor: float32 log-mel examples of shape [N, example_frames, n_mels] (time first).
        """
        c = self.config
        frames = windows.to(torch.float64).unfold(-1, c.stft_window, c.stft_hop)  # [N, 98, 400]
        if frames.shape[-2] < c.example_frames:
            raise ValueError(f"a window of {windows.shape[-1]} samples gives {frames.shape[-2]} STFT frames, "
                             f"fewer than the {c.example_frames} of one example")
        magnitude = torch.fft.rfft(frames * self.hann, n=c.n_fft).abs()
        log_mel = torch.log(magnitude @ self.mel + c.log_offset)
        return log_mel[..., : c.example_frames, :].to(torch.float32)


class VGGish(nn.Module):
    """VGGish (Hershey et al., 2017) up to the 128-d pre-activation embedding, with the evaluator front-end.

    Parameter names match the common PyTorch port, so its state dict loads unchanged (see
    `load_vggish_weights`). The front-end has no parameters and no state-dict entries.
    """

    def __init__(self, front_end: VGGishFrontEndConfig | None = None):
        super().__init__()
        self.front_end = VGGishFrontEnd(front_end)
        layers: list[nn.Module] = []
        for name, c_in, c_out in _CONVS:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]
            if name in ("features.0", "features.3", "features.8", "features.13"):
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(*_LINEARS[0][1:]), nn.ReLU(), nn.Linear(*_LINEARS[1][1:]),
                                        nn.ReLU(), nn.Linear(*_LINEARS[2][1:]))

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """Args:
            examples (torch.Tensor): log-mel examples of shape [N, 96, 64] (time, mel).

        Returns:
            torch.Tensor: embeddings of shape [N, 128] (before the last ReLU).
        """
        x = self.features(examples.unsqueeze(1))  # [N, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).flatten(1)  # time, mel, channel order, as in the TensorFlow original
        return self.embeddings(x)

    @torch.no_grad()
    def embed_windows(self, windows: torch.Tensor, batch_windows: int = 64) -> torch.Tensor:
        """Embeds peak-normalised windows in batches on the model's device.

        Args:
            windows (torch.Tensor): windows of shape [N, 16000].

        Returns:
            torch.Tensor: float32 embeddings of shape [N, 128] on the CPU.
        """
        device = next(self.parameters()).device
        out = [self(self.front_end(windows[i:i + batch_windows].to(device))).cpu()
               for i in range(0, windows.shape[0], batch_windows)]
        return torch.cat(out) if out else torch.zeros(0, EMBEDDING_DIM)

    def clip_windows(self, clips: torch.Tensor) -> torch.Tensor:
        """The evaluator's peak normalisation and framing.

        Args:
            clips (torch.Tensor): clips of shape [..., T] at any scale (e.g. raw int16 values, see
                `read_wav_for_fad`), T >= 16,000.

        Returns:
            torch.Tensor: float64 windows of shape [..., W, 16000] with W = 1 + (T - 16000) // 8000.
        """
        c = self.front_end.config
        return frame_windows(normalize_peak(clips.to(torch.float64), c.min_peak), c.window, c.hop)

    def embed_clips(self, clips: torch.Tensor, batch_windows: int = 64) -> torch.Tensor:
        """Embeds whole clips the way the evaluator does.

        Args:
            clips (torch.Tensor): clips of shape [B, T] (see `clip_windows`).
            batch_windows: windows per forward pass.

        Returns:
            torch.Tensor: embeddings of shape [B, W, 128].
        """
        windows = self.clip_windows(clips)
        return self.embed_windows(windows.flatten(0, 1), batch_windows).reshape(*windows.shape[:2], -1)


# --------------------------------------------------------------------------------------- file input
def read_wav_for_fad(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Reads a mono file at the scale the evaluator sees it (``scipy.io.wavfile.read``).

    16-bit PCM gives the raw integer values (so a clip is always normalised to a peak of +1), 24- and
    32-bit PCM give left-justified 32-bit integers, and float files their stored values.

    Returns:
        (samples, sample_rate): float64 samples of shape [T] and the file's rate (never resampled).
    """
    info = sf.info(str(path))
    if info.channels != 1:
        raise ValueError(f"{path}: expected mono audio, got {info.channels} channels")
    dtype = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32", "FLOAT": "float64", "DOUBLE": "float64"}
    if info.subtype not in dtype:
        raise ValueError(f"{path}: unsupported subtype {info.subtype}; use PCM_16 (as DCASE requires)")
    data, rate = sf.read(str(path), dtype=dtype[info.subtype])
    return torch.from_numpy(data.astype(np.float64)), int(rate)


def load_vggish_weights(path: str | os.PathLike, front_end: VGGishFrontEndConfig | None = None) -> VGGish:
    """A VGGish in eval mode with weights from a state dict in the torchvggish key layout.

    Accepts a ``.safetensors`` file or a PyTorch file read with ``torch.load(weights_only=True)`` (e.g.
    ``vggish-10086976.pth``): keys ``features.{0,3,6,8,11,13}.{weight,bias}`` and
    ``embeddings.{0,2,4}.{weight,bias}``; ``pproc.*`` (PCA) entries are ignored.

    Raises:
        ValueError: not a state dict, missing or unexpected keys, or a tensor of the wrong shape.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    with torch.device("meta"):  # no storage and no random initialisation: every weight is replaced below
        model = VGGish(front_end)
    model.front_end = VGGishFrontEnd(front_end)  # parameter-free; its buffers must be real tensors
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: not a VGGish state dict; missing keys {missing}, "
                         f"unexpected keys {unexpected}")
    wrong = [f"{k}: {tuple(state[k].shape)} (want {tuple(v.shape)})" for k, v in expected.items()
             if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{path}: tensors of the wrong shape: {'; '.join(wrong)}")
    model.load_state_dict({k: v.to(torch.float32).contiguous() for k, v in state.items()}, assign=True)
    return model.eval()


def embed_wav_files(model: VGGish, paths: Sequence[str | os.PathLike], batch_windows: int = 64) -> np.ndarray:
    """Evaluator-style embeddings of mono files (read with `read_wav_for_fad`, never resampled).

    Returns:
        np.ndarray: float64 embeddings of shape [sum of W over the files, 128] in file order, W windows
        per file (10 for a 4-s clip at 22,050 Hz).
    """
    if not paths:
        raise ValueError("no files to embed")
    windows = torch.cat([model.clip_windows(read_wav_for_fad(p)[0]) for p in paths])
    return model.embed_windows(windows, batch_windows).double().numpy()
