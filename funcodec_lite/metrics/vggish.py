"""VGGish embeddings as the official DCASE 2023 Task 7 FAD evaluator computes them.

The evaluator (a fork of google-research's FAD) reads each wav with ``scipy.io.wavfile.read`` and does
*not* resample: the 22,050 Hz audio is framed as if it were 16 kHz (16,000-sample windows, hop 8,000:
ten windows per 4-s clip), each clip is divided by max(0.1, its largest sample), and each window becomes
one 96 x 64 VGGish log-mel example whose 128-d pre-activation output (no ReLU, no PCA) is the embedding.
Files are read with the package's one reader (`funcodec_lite.audio.io.load_audio`) and put back on
scipy's integer scale, which matters only through the 0.1 floor of the peak normalisation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from funcodec_lite.audio.io import AudioError, load_audio
from funcodec_lite.utils.torch_files import read_torch_file

EMBEDDING_DIM = 128
# Layer names of the common PyTorch VGGish port (harritaylor/torchvggish, vggish-10086976.pth).
_CONVS = (("features.0", 1, 64), ("features.3", 64, 128), ("features.6", 128, 256), ("features.8", 256, 256),
          ("features.11", 256, 512), ("features.13", 512, 512))
_LINEARS = (("embeddings.0", 512 * 6 * 4, 4096), ("embeddings.2", 4096, 4096), ("embeddings.4", 4096, 128))
_IGNORED_PREFIXES = ("pproc.",)  # the port's PCA post-processor, not used for FAD
# scipy.io.wavfile.read's value of a full-scale sample (1.0 from load_audio) per subtype: 16-bit PCM gives
# int16 values, 24- and 32-bit PCM left-justified int32 values, float files their stored values.
_SCIPY_SCALE = {"PCM_16": 2.0**15, "PCM_24": 2.0**31, "PCM_32": 2.0**31, "FLOAT": 1.0, "DOUBLE": 1.0}


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


def read_wav_for_fad(path: str | os.PathLike) -> torch.Tensor:
    """A mono file's samples at the scale the evaluator sees them, never resampled.

    Read with `load_audio` (float in [-1, 1)) and multiplied back to ``scipy.io.wavfile.read``'s scale:
    16-bit PCM gives the raw integer values (so a clip is always normalised to a peak of +1), 24-bit PCM
    left-justified 32-bit integers, float files their stored values; all of these are exact. 32-bit PCM
    and double files pass through float32 (a relative error below 6e-8).

    Returns:
        torch.Tensor: float64 samples of shape [T] (the file's rate is ignored, as by the evaluator).

    Raises:
        AudioError: a missing or undecodable file, more than one channel, or a subtype scipy reads
            differently (e.g. 8-bit PCM); DCASE requires PCM_16.
    """
    wav, _ = load_audio(path)
    if wav.shape[0] != 1:
        raise AudioError(path, f"expected mono audio, got {wav.shape[0]} channels")
    subtype = sf.info(str(path)).subtype
    if subtype not in _SCIPY_SCALE:
        raise AudioError(path, f"unsupported subtype {subtype}; use PCM_16 (as DCASE requires)")
    return wav[0].to(torch.float64) * _SCIPY_SCALE[subtype]


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
        state = read_torch_file(path)
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
    windows = torch.cat([model.clip_windows(read_wav_for_fad(p)) for p in paths])
    return model.embed_windows(windows, batch_windows).double().numpy()
