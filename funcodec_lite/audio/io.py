"""Audio file loading, atomic saving (wav, flac, ogg via soundfile) and resampling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.audio.filters import sinc_resample
from funcodec_lite.utils.atomic import atomic_path

_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


class AudioError(ValueError):
    """An audio file that cannot be read or written; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited (windowed-sinc) resampling (`funcodec_lite.audio.filters.sinc_resample`).

    Args:
        wav (torch.Tensor): floating-point audio of shape [..., T].
        orig_sr: sample rate of `wav` in Hz.
        new_sr: wanted sample rate in Hz.

    Returns:
        torch.Tensor: audio of shape [..., ceil(T * new_sr / orig_sr)]; `wav` itself when the rates match.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    return sinc_resample(wav, int(orig_sr), int(new_sr))


def _convert_channels(wav: torch.Tensor, channels: int, path: str | os.PathLike) -> torch.Tensor:
    have = wav.shape[0]
    if channels == have:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if have == 1:
        return wav.expand(channels, -1).clone()
    raise AudioError(path, f"cannot convert {have} channels to {channels} (only to mono or from mono)")


def check_audio_path(path: str | os.PathLike) -> Path:
    """The path as a Path if it names a non-empty file; otherwise an AudioError saying what it is."""
    p = Path(path)
    if not p.exists():
        raise AudioError(path, "no such file")
    if p.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    return p


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, channels: int | None = None
) -> tuple[torch.Tensor, int]:
    """Reads an audio file in any format soundfile supports.

    Integer formats decode to [-1, 1); floating-point files are returned as stored (they may exceed
    +-1) but must be finite.

    Args:
        path: file to read.
        sample_rate: resample to this rate (None keeps the file's rate).
        channels: 1 down-mixes by averaging; k > 1 repeats a mono file k times (None keeps the file's).

    Returns:
        (wav, sample_rate): float32 audio of shape [C, T] (T may be 0) and its sample rate.

    Raises:
        AudioError: missing path, directory, empty or undecodable file, NaN/Inf samples,
            or an impossible channel conversion.
    """
    if channels is not None and channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    p = check_audio_path(path)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(path, f"cannot decode audio ({str(err).splitlines()[0]})") from err
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or Inf samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if channels is not None:
        wav = _convert_channels(wav, channels, path)
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate) if wav.shape[-1] else wav
        sr = sample_rate
    return wav, int(sr)


def _format_for(path: Path, subtype: str | None) -> tuple[str, str]:
    ext = path.suffix.lower()
    if ext not in _FORMATS:
        raise AudioError(path, f"unsupported extension {ext!r}; use one of {sorted(_FORMATS)}")
    fmt, default = _FORMATS[ext]
    subtype = (subtype or default).upper()
    if not sf.check_format(fmt, subtype):
        raise AudioError(path, f"subtype {subtype} cannot be written as {fmt}")
    return fmt, subtype


def save_audio(
    path: str | os.PathLike, wav: torch.Tensor, sample_rate: int, subtype: str | None = None
) -> None:
    """Writes audio atomically: to a temporary file in the same directory, then renamed over `path`.

    A reader never sees a partial file, and a failed write leaves `path` as it was and no temporary file.

    Args:
        path: destination; the format comes from the extension (.wav, .flac, .ogg).
        wav (torch.Tensor): audio of shape [C, T] or [T].
        sample_rate: sample rate in Hz.
        subtype: soundfile subtype (e.g. "PCM_24", "FLOAT"); default PCM_16 for wav/flac, VORBIS for ogg.
            Samples are clipped to [-1, 1] for every subtype except FLOAT and DOUBLE.

    Raises:
        AudioError: unsupported extension or subtype, bad shape, NaN/Inf samples, or a destination that
            cannot be written.
    """
    dest = Path(path)
    fmt, subtype = _format_for(dest, subtype)
    x = wav.detach().to("cpu", torch.float32)
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2 or x.shape[0] < 1:
        raise AudioError(path, f"expected audio [C, T] or [T], got shape {tuple(wav.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise AudioError(path, "refusing to write NaN or Inf samples")
    if subtype not in _FLOAT_SUBTYPES:
        x = x.clamp(-1.0, 1.0)
    data = x.T.contiguous().numpy()  # soundfile wants [T, C]
    if dest.is_dir():
        raise AudioError(path, "is a directory")
    if not dest.parent.is_dir():
        raise AudioError(path, f"parent directory {str(dest.parent)!r} does not exist")
    with atomic_path(dest) as tmp:
        try:
            handle = open(tmp, "xb")  # "x": never clobber another file
        except OSError as err:
            raise AudioError(path, f"cannot create a file in {str(dest.parent)!r} ({err.strerror})") from err
        try:
            with handle:
                sf.write(handle, data, sample_rate, subtype=subtype, format=fmt)
        except (sf.SoundFileError, RuntimeError, OSError) as err:
            detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
            raise AudioError(path, f"cannot write audio ({detail})") from err
