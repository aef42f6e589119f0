"""Classical speech codecs through their command-line tools (codec2, Opus, Speex), time alignment, Ogg sizes.

Each codec runs as its Debian tool does for a user: 16-bit PCM in, 16-bit PCM out. ``run_codec`` returns the
decoded audio at the input rate and the number of payload bits the codec spent: for codec2 the size of its
headerless bit file, for Opus and Speex the sum of the Ogg packets that carry audio (the header and comment
packets, and the Ogg page headers, are not counted), so a bitrate is what the codec really spent, not the
target it was given.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.audio.io import resample


@dataclass(frozen=True)
class ClassicalCodec:
    """One operating point of a classical codec.

    Args:
        name: row label, e.g. ``"codec2 3200"``.
        tool: "codec2", "opus" or "speex".
        setting: the codec2 mode, the Opus ``--bitrate`` in kbps, or the Speex ``--quality``.
        nominal_kbps: the codec's stated rate (codec2's mode, Opus' target); None where it has none.
    """

    name: str
    tool: str
    setting: str
    nominal_kbps: float | None


def make_codecs(codec2_modes: list[str], opus_kbps: list[str],
                speex_quality: list[str]) -> list[ClassicalCodec]:
    """codec2 at each mode (e.g. "700C", "3200"), Opus VBR at each ``--bitrate`` target, Speex wideband at
    each ``--quality``."""
    codecs = [ClassicalCodec(f"codec2 {m}", "codec2", m, 0.7 if m.upper() == "700C" else int(m) / 1000)
              for m in codec2_modes]
    codecs += [ClassicalCodec(f"opus {b}", "opus", b, float(b)) for b in opus_kbps]
    codecs += [ClassicalCodec(f"speex-wb q{q}", "speex", q, None) for q in speex_quality]
    return codecs


def tools_missing(tool: str) -> list[str]:
    """The command-line programs that ``tool`` needs and this machine lacks."""
    need = {"codec2": ["c2enc", "c2dec"], "opus": ["opusenc", "opusdec"], "speex": ["speexenc", "speexdec"]}
    return [p for p in need[tool] if shutil.which(p) is None]


def _pcm16(wav: torch.Tensor) -> np.ndarray:
    return np.round(wav.clamp(-1, 32767 / 32768).numpy() * 32768).astype("<i2")


def _call(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")


def ogg_packets(data: bytes) -> list[int]:
    """Sizes in bytes of the packets of a single-stream Ogg file, in order (RFC 3533 page layout).

    Args:
        data: the whole file.
    """
    sizes: list[int] = []
    pending = 0
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_seg = data[pos + 26]
        lacing = data[pos + 27:pos + 27 + n_seg]
        for value in lacing:
            pending += value
            if value < 255:
                sizes.append(pending)
                pending = 0
        pos += 27 + n_seg + sum(lacing)
    if pending:
        sizes.append(pending)
    return sizes


def ogg_payload_bytes(path: Path, header_packets: int = 2) -> int:
    """Bytes of audio packets in an Opus or Speex Ogg file: every packet but the first ``header_packets``."""
    return sum(ogg_packets(path.read_bytes())[header_packets:])


def run_codec(codec: ClassicalCodec, wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
    """Encodes and decodes ``wav`` with the codec's command-line tools.

    Args:
        codec: the operating point.
        wav (torch.Tensor): mono audio of shape [T] in [-1, 1].
        sample_rate: rate of ``wav``; codec2 runs at 8 kHz and Speex wideband / Opus here at 16 kHz, with
            resampling in and out.

    Returns:
        (decoded audio [T'] at ``sample_rate``, not yet aligned; payload bits).
    """
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if codec.tool == "codec2":
            x = resample(wav, sample_rate, 8000)
            _pcm16(x).tofile(d / "in.raw")
            _call(["c2enc", codec.setting, str(d / "in.raw"), str(d / "out.bit")])
            _call(["c2dec", codec.setting, str(d / "out.bit"), str(d / "out.raw")])
            bits = (d / "out.bit").stat().st_size * 8
            y = torch.from_numpy(np.fromfile(d / "out.raw", dtype="<i2").astype(np.float32) / 32768)
            return resample(y, 8000, sample_rate), bits
        x = resample(wav, sample_rate, 16000)
        sf.write(d / "in.wav", _pcm16(x), 16000, subtype="PCM_16")
        if codec.tool == "opus":
            _call(["opusenc", "--quiet", "--bitrate", codec.setting, str(d / "in.wav"), str(d / "out.ogg")])
            _call(["opusdec", "--quiet", "--rate", "16000", str(d / "out.ogg"), str(d / "out.wav")])
        elif codec.tool == "speex":
            _call(["speexenc", "--wideband", "--quality", codec.setting, str(d / "in.wav"),
                   str(d / "out.ogg")])
            _call(["speexdec", str(d / "out.ogg"), str(d / "out.wav")])
        else:
            raise ValueError(f"unknown codec tool {codec.tool!r}")
        bits = ogg_payload_bytes(d / "out.ogg") * 8
        y, rate = sf.read(d / "out.wav", dtype="float32", always_2d=True)
        return resample(torch.from_numpy(y.mean(axis=1)), rate, sample_rate), bits


def _xcorr(ref: torch.Tensor, hyp: torch.Tensor, lags: torch.Tensor) -> torch.Tensor:
    """sum_t hyp[t + lag] * ref[t] for each lag (FFT, float64)."""
    size = 1 << (ref.numel() + hyp.numel() - 1).bit_length()
    spectrum = torch.fft.rfft(hyp.double(), size) * torch.fft.rfft(ref.double(), size).conj()
    corr = torch.fft.irfft(spectrum, size)
    return corr[lags % size]


def _envelope(x: torch.Tensor, width: int) -> torch.Tensor:
    """Moving average of |x| over ``width`` samples, mean removed: [T]."""
    c = torch.cat([torch.zeros(1, dtype=torch.float64), x.double().abs().cumsum(0)])
    env = torch.cat([c[width:] - c[:-width], torch.zeros(width - 1, dtype=torch.float64)]) / width
    return env - env.mean()


def find_delay(ref: torch.Tensor, hyp: torch.Tensor, max_lag: int, refine: int = 40) -> int:
    """The lag (samples) by which ``hyp`` trails ``ref``.

    First the peak of the cross-correlation of the two amplitude envelopes (5 ms moving averages of |x| at
    16 kHz), which does not depend on phase, so it also holds for codecs that do not keep the waveform
    (codec2, neural codecs); then the peak of the waveform cross-correlation within ``refine`` samples of
    it, exact for codecs that keep the waveform (Opus, Speex).

    Args:
        ref (torch.Tensor): reference of shape [T].
        hyp (torch.Tensor): delayed, degraded copy of shape [T'].
        max_lag: search lags in [-max_lag, max_lag].
        refine: half-width of the waveform search around the envelope's lag.

    Returns:
        d such that hyp[t + d] best matches ref[t] (positive: hyp is late).
    """
    lags = torch.arange(-max_lag, max_lag + 1)
    coarse = int(lags[_xcorr(_envelope(ref, 80), _envelope(hyp, 80), lags).argmax()])
    near = torch.arange(coarse - refine, coarse + refine + 1)
    return int(near[_xcorr(ref, hyp, near).argmax()])


def align(hyp: torch.Tensor, delay: int, length: int) -> torch.Tensor:
    """``hyp`` advanced by ``delay`` samples and cut or zero-padded to ``length``: [length]."""
    out = torch.zeros(length, dtype=hyp.dtype)
    src = hyp[max(delay, 0):]
    start = max(-delay, 0)
    count = min(length - start, src.numel())
    if count > 0:
        out[start:start + count] = src[:count]
    return out
