"""A stand-in for torchaudio, for importing the reference codecs where torchaudio cannot load (test and
benchmark use only; nothing in the package imports it).

torchaudio has no release built for the torch this project runs on (2.13): pip installs it as a dependency
of ``encodec`` and ``descript-audio-codec``, and its compiled extension then fails with OSError. The
reference packages of `IMPORT_WITH_STANDIN` import torchaudio at import time but their model classes never
call it (or call only what the stand-in offers), so `import_package` imports them against the stand-in,
which is taken out of ``sys.modules`` again afterwards: nothing imported later can get it.
``tests/reference_libs.py`` wraps `import_package` with pytest's skips; ``tools/bench/interop_refs.py``
uses it as it is.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from types import ModuleType

import torch
from torch import nn

STANDIN_MARK = "__funcodec_lite_test_standin__"
# Reference packages that import torchaudio at import time but whose models never call it, -> the packages
# they drag in that import it too: imported against the stand-in where torchaudio cannot load.
IMPORT_WITH_STANDIN: dict[str, tuple[str, ...]] = {
    "encodec": (),
    "dac": ("audiotools",),  # descript-audio-codec, through descript-audiotools
    "audiotools": (),
    "funcodec": (),
}


def import_package(name: str) -> ModuleType:
    """The module ``name``; a package of `IMPORT_WITH_STANDIN` that fails only because torchaudio cannot
    load is imported against the stand-in.

    Raises:
        ImportError / OSError: the module is missing, or fails for another reason.
    """
    before = set(sys.modules)
    try:
        return importlib.import_module(name)
    except (ImportError, OSError):
        package = name.partition(".")[0]
        if package not in IMPORT_WITH_STANDIN or not torchaudio_unloadable():
            raise
        for leftover in (package, *IMPORT_WITH_STANDIN[package]):  # half-imported by the failed attempt
            forget_modules_since(before, leftover)
        return import_with_torchaudio_standin(name)


def torchaudio_unloadable() -> bool:
    if isinstance(sys.modules.get("torchaudio"), ModuleType) and not is_standin(sys.modules["torchaudio"]):
        return False
    before = set(sys.modules)
    try:
        importlib.import_module("torchaudio")
    except (ImportError, OSError):
        forget_modules_since(before, "torchaudio")
        return True
    return False


def forget_modules_since(before: set[str], package: str) -> None:
    for key in [k for k in sys.modules if k not in before and (k == package or k.startswith(package + "."))]:
        del sys.modules[key]


def import_with_torchaudio_standin(name: str) -> ModuleType:
    """Imports ``name`` with `torchaudio_standin` as ``sys.modules["torchaudio"]``, then puts back whatever
    ``torchaudio*`` entries were there before: the package's modules keep the stand-in they bound to their
    ``torchaudio`` name, and nothing imported later can get it."""
    saved = {k: v for k, v in sys.modules.items() if k == "torchaudio" or k.startswith("torchaudio.")}
    for key in saved:
        del sys.modules[key]
    sys.modules["torchaudio"] = torchaudio_standin()
    try:
        return importlib.import_module(name)
    finally:
        for key in [k for k in sys.modules if k == "torchaudio" or k.startswith("torchaudio.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def is_standin(module: object) -> bool:
    return bool(getattr(module, STANDIN_MARK, False))


# --- the stand-in ------------------------------------------------------------------------------------
# TEST ONLY. It offers exactly what the `encodec` package (0.1.1) uses of torchaudio:
#   utils.convert_audio:   torchaudio.transforms.Resample(sr, target_sr)(wav)
#   msstftd.DiscriminatorSTFT: torchaudio.transforms.Spectrogram(n_fft, hop_length, win_length, window_fn,
#                          normalized, center=False, pad_mode=None, power=None)
#   utils.save_audio:      torchaudio.save(path, wav, sample_rate=, encoding="PCM_S", bits_per_sample=16)
#   __main__ (the CLI), model/compress test helpers: torchaudio.load(path)
# with torchaudio 2.x's semantics; anything else raises. A reference result computed through it is our
# reading of torchaudio, not torchaudio: tests whose reference goes through it say so.
# tests/test_reference_libs.py compares it with real torchaudio wherever that loads.


class _STFTSettings(nn.Module):
    """The frame settings and window buffer torchaudio's Spectrogram and InverseSpectrogram share (the window
    is part of the state dict, as there); ``normalized`` True or "window" scales by the window's L2 norm,
    "frame_length" is torch.stft's / torch.istft's own normalization."""

    def __init__(self, n_fft: int, win_length: int | None, hop_length: int | None, pad: int,
                 window_fn: Callable[..., torch.Tensor], normalized: bool | str, wkwargs: dict | None,
                 center: bool, onesided: bool):
        super().__init__()
        if normalized not in (True, False, "window", "frame_length"):
            raise ValueError(f"normalized must be a bool, 'window' or 'frame_length', got {normalized!r}")
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        window = window_fn(self.win_length) if wkwargs is None else window_fn(self.win_length, **wkwargs)
        self.register_buffer("window", window)
        self.pad, self.normalized, self.center, self.onesided = pad, normalized, center, onesided

    def _window_norm(self) -> torch.Tensor | None:
        """The L2 norm of the window where ``normalized`` asks for it, else None."""
        return self.window.pow(2.0).sum().sqrt() if self.normalized in (True, "window") else None

    def _stft_options(self) -> dict:
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "win_length": self.win_length,
                "window": self.window, "center": self.center, "onesided": self.onesided,
                "normalized": self.normalized == "frame_length"}


class Spectrogram(_STFTSettings):
    """torchaudio.transforms.Spectrogram: torch.stft of [..., T] to [..., n_fft // 2 + 1, frames]
    (``onesided=False``: n_fft bins), then, as torchaudio.functional.spectrogram does: ``normalized``
    True or "window" divides by the window's L2 norm, "frame_length" is torch.stft's normalization
    (1 / sqrt(n_fft)); ``power`` None returns the complex spectrum, else ``|X| ** power``."""

    def __init__(self, n_fft: int = 400, win_length: int | None = None, hop_length: int | None = None,
                 pad: int = 0, window_fn: Callable[..., torch.Tensor] = torch.hann_window,
                 power: float | None = 2.0, normalized: bool | str = False, wkwargs: dict | None = None,
                 center: bool = True, pad_mode: str | None = "reflect", onesided: bool = True):
        super().__init__(n_fft, win_length, hop_length, pad, window_fn, normalized, wkwargs, center, onesided)
        self.power, self.pad_mode = power, pad_mode

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.pad > 0:
            waveform = nn.functional.pad(waveform, (self.pad, self.pad), "constant")
        shape = waveform.shape
        spec = torch.stft(waveform.reshape(-1, shape[-1]), pad_mode=self.pad_mode or "reflect",
                          return_complex=True, **self._stft_options())
        spec = spec.reshape(shape[:-1] + spec.shape[-2:])
        norm = self._window_norm()
        if norm is not None:
            spec = spec / norm
        if self.power is None:
            return spec
        return spec.abs() if self.power == 1.0 else spec.abs().pow(self.power)


class InverseSpectrogram(_STFTSettings):
    """torchaudio.transforms.InverseSpectrogram (FunCodec's FreqCodec and STFT-domain models decode with
    it): a complex [..., n_fft // 2 + 1, frames] spectrum back to [..., T] by torch.istft, as
    torchaudio.functional.inverse_spectrogram does: ``normalized`` True or "window" multiplies by the
    window's L2 norm first, "frame_length" is torch.istft's normalization; ``pad`` samples are cut from both
    ends (``length`` is the length after that cut)."""

    def __init__(self, n_fft: int = 400, win_length: int | None = None, hop_length: int | None = None,
                 pad: int = 0, window_fn: Callable[..., torch.Tensor] = torch.hann_window,
                 normalized: bool | str = False, wkwargs: dict | None = None, center: bool = True,
                 pad_mode: str = "reflect", onesided: bool = True):
        super().__init__(n_fft, win_length, hop_length, pad, window_fn, normalized, wkwargs, center, onesided)

    def forward(self, spectrogram: torch.Tensor, length: int | None = None) -> torch.Tensor:
        if not spectrogram.is_complex():
            raise ValueError("expected a complex spectrogram")
        norm = self._window_norm()
        if norm is not None:
            spectrogram = spectrogram * norm
        shape = spectrogram.shape
        total = length + 2 * self.pad if length is not None else None
        wav = torch.istft(spectrogram.reshape(-1, shape[-2], shape[-1]), length=total, return_complex=False,
                          **self._stft_options())
        if self.pad > 0:
            wav = wav[:, self.pad:-self.pad]
        return wav.reshape(shape[:-2] + wav.shape[-1:])


class Resample(nn.Module):
    """torchaudio.transforms.Resample with its defaults only (sinc_interp_hann, 6 zero crossings, rolloff
    0.99): the Hann-windowed sinc of `funcodec_lite.audio.filters.sinc_resample`, but evaluated as the
    transform evaluates it (positions partly in float32, kernel designed in float64 and kept in float32),
    which differs from ``functional.resample`` and `sinc_resample` by ~5e-7; the output length is
    torchaudio's (the float32 ratio, then ceil)."""

    def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, **options):
        super().__init__()
        if options:
            raise NotImplementedError(f"the torchaudio stand-in has no Resample options {sorted(options)}")
        self.orig_freq, self.new_freq = orig_freq, new_freq
        if orig_freq != new_freq:
            gcd = math.gcd(int(orig_freq), int(new_freq))
            self.orig, self.new = int(orig_freq) // gcd, int(new_freq) // gcd
            cutoff = min(self.orig, self.new) * 0.99
            self.width = math.ceil(6 * self.orig / cutoff)
            taps = torch.arange(-self.width, self.width + self.orig, dtype=torch.float64) / self.orig
            t = torch.arange(0, -self.new, -1)[:, None, None] / self.new + taps  # int / int: float32 first
            t = (t * cutoff).clamp(-6, 6)
            window = torch.cos(t * math.pi / 6 / 2) ** 2
            t = t * math.pi
            kernel = torch.where(t == 0, torch.ones((), dtype=t.dtype), t.sin() / t)
            kernel = kernel * (window * (cutoff / self.orig))
            self.register_buffer("kernel", kernel.to(torch.float32))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.orig_freq == self.new_freq:
            return waveform
        shape = waveform.shape
        flat = nn.functional.pad(waveform.reshape(-1, shape[-1]), (self.width, self.width + self.orig))
        out = nn.functional.conv1d(flat[:, None], self.kernel, stride=self.orig)
        out = out.transpose(1, 2).reshape(flat.shape[0], -1)
        target = int(torch.ceil(torch.as_tensor(self.new * shape[-1] / self.orig)))
        return out[:, :target].reshape(*shape[:-1], -1)


def load(uri, **options) -> tuple[torch.Tensor, int]:
    """torchaudio.load(path): float32 [C, T] in [-1, 1) and the sample rate (soundfile formats)."""
    if options:
        raise NotImplementedError(f"the torchaudio test stand-in has no load options {sorted(options)}")
    from funcodec_lite.audio.io import load_audio

    return load_audio(uri)


def save(uri, src: torch.Tensor, sample_rate: int, channels_first: bool = True, encoding: str | None = None,
         bits_per_sample: int | None = None, **options) -> None:
    """torchaudio.save as encodec calls it: [C, T] audio, 16-bit PCM (the default) or 32-bit float."""
    subtypes = {(None, None): None, ("PCM_S", 16): "PCM_16", ("PCM_S", None): "PCM_16",
                ("PCM_F", 32): "FLOAT"}
    if options or (encoding, bits_per_sample) not in subtypes:
        raise NotImplementedError("the torchaudio test stand-in saves 16-bit PCM or 32-bit float only")
    from funcodec_lite.audio.io import save_audio

    save_audio(uri, src if channels_first else src.t(), sample_rate, subtypes[encoding, bits_per_sample])


def torchaudio_standin() -> ModuleType:
    """A fresh ``torchaudio`` module object holding the stand-in (see the comment above `Spectrogram`)."""
    module = ModuleType("torchaudio", "TEST-ONLY stand-in for torchaudio (tools/bench/torchaudio_standin.py)")
    transforms = ModuleType("torchaudio.transforms")
    transforms.Spectrogram, transforms.Resample = Spectrogram, Resample
    transforms.InverseSpectrogram = InverseSpectrogram
    module.transforms, module.load, module.save = transforms, load, save
    module.__version__ = "test-standin"
    setattr(module, STANDIN_MARK, True)
    setattr(transforms, STANDIN_MARK, True)
    return module
