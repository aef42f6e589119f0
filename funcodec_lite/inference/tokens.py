"""The ``.npz`` token file: codes plus what is needed to decode them (reader, writer, validation).

The one reader and writer of the format; every command and recipe goes through ``save_tokens`` and
``load_tokens``.  The format is described in docs/formats.md.  Files load with ``allow_pickle=False``
and every field is checked (presence, dtype, shape, range) before anything uses it.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funcodec_lite.utils.atomic import atomic_path

FORMAT_VERSION = 1
FIELDS = ("codes", "sample_rate", "num_samples", "num_channels", "frame_rate", "codebook_size", "model_id",
          "format_version")
# Written only by models whose codebooks differ in size or rate; a reader of version 1 may ignore them.
OPTIONAL_FIELDS = ("codebook_sizes", "codebook_strides")
MAX_CODEBOOK_SIZE = 2**15  # codes are stored as int16


class TokenFileError(ValueError):
    """A token file that cannot be read, written or used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class TokenFile:
    """The contents of a token file.

    Args:
        codes: int16 array [streams, n_q, frames]; one stream per audio channel for a mono model
            (a model with k channels codes groups of k channels, see docs/formats.md).
        sample_rate: sample rate of the original audio in Hz (decoding restores it).
        num_samples: length of the original audio in samples at ``sample_rate``.
        num_channels: channels of the original audio.
        frame_rate: code frames per second of the model.
        codebook_size: codes per codebook of the model (its largest codebook's when they differ).
        model_id: ``model_id`` of the model that wrote the codes.
        format_version: version of this format.
        codebook_sizes: codes of each of the n_q codebooks, when they are not all ``codebook_size``.
        codebook_strides: code frames one token of each codebook spans, when they are not all 1 (a
            multi-rate model: ``codes[:, k, ::stride]`` are codebook k's own tokens).
    """

    codes: np.ndarray
    sample_rate: int
    num_samples: int
    num_channels: int
    frame_rate: float
    codebook_size: int
    model_id: str
    format_version: int = FORMAT_VERSION
    codebook_sizes: tuple[int, ...] | None = None
    codebook_strides: tuple[int, ...] | None = None

    @property
    def streams(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[1])

    @property
    def frames(self) -> int:
        return int(self.codes.shape[2])

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.num_samples / self.sample_rate

    @property
    def sizes(self) -> tuple[int, ...]:
        """Codes of each codebook of the file."""
        return self.codebook_sizes or (self.codebook_size,) * self.n_q

    @property
    def strides(self) -> tuple[int, ...]:
        """Code frames one token of each codebook spans."""
        return self.codebook_strides or (1,) * self.n_q

    @property
    def kbps(self) -> float:
        """Bit rate of the codes per stream: Σ_k log2(size_k) / stride_k · frame_rate / 1000 (n_q ·
        log2(codebook_size) · frame_rate / 1000 when the codebooks are alike)."""
        if self.codebook_sizes is None and self.codebook_strides is None:
            return self.n_q * math.log2(self.codebook_size) * self.frame_rate / 1000
        bits = sum(math.log2(size) / stride for size, stride in zip(self.sizes, self.strides))
        return bits * self.frame_rate / 1000

    def validate(self, path: str | os.PathLike = "<tokens>") -> None:
        """Checks types, shapes and ranges; raises ``TokenFileError`` naming ``path`` and the problem."""
        codes = self.codes
        if not isinstance(codes, np.ndarray) or codes.dtype != np.int16:
            kind = codes.dtype if isinstance(codes, np.ndarray) else type(codes).__name__
            raise TokenFileError(path, f"codes must be int16, got {kind}")
        if codes.ndim != 3 or codes.shape[0] < 1 or codes.shape[1] < 1:
            raise TokenFileError(path, f"codes must have shape [streams >= 1, n_q >= 1, frames], got "
                                       f"{list(codes.shape)}")
        if self.sample_rate <= 0 or self.num_samples < 0 or self.num_channels < 1:
            raise TokenFileError(path, f"bad audio description: sample_rate {self.sample_rate}, "
                                       f"num_samples {self.num_samples}, num_channels {self.num_channels}")
        if codes.shape[0] > self.num_channels:
            raise TokenFileError(path, f"{codes.shape[0]} code streams for {self.num_channels} "
                                       "audio channel(s)")
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise TokenFileError(path, f"frame_rate must be positive, got {self.frame_rate}")
        if not 2 <= self.codebook_size <= MAX_CODEBOOK_SIZE:
            raise TokenFileError(path, f"codebook_size must be in 2..{MAX_CODEBOOK_SIZE}, "
                                       f"got {self.codebook_size}")
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            bad = int(codes.min()) if int(codes.min()) < 0 else int(codes.max())
            raise TokenFileError(path, f"codes out of range: found {bad}, "
                                       f"codebook_size is {self.codebook_size}")
        self._validate_codebooks(path)
        if not self.model_id or len(self.model_id) > 128:
            raise TokenFileError(path, "model_id is empty or too long")
        if self.format_version != FORMAT_VERSION:
            raise TokenFileError(path, f"format_version {self.format_version} is not supported "
                                       f"(this funcodec_lite reads version {FORMAT_VERSION})")


    def _validate_codebooks(self, path: str | os.PathLike) -> None:
        """Checks ``codebook_sizes`` and ``codebook_strides`` (when present) against the codes."""
        for name, values, low, high in (("codebook_sizes", self.codebook_sizes, 2, self.codebook_size),
                                        ("codebook_strides", self.codebook_strides, 1, None)):
            if values is None:
                continue
            if len(values) != self.n_q or any(v < low or (high is not None and v > high) for v in values):
                bound = f"{low}..{high}" if high is not None else f">= {low}"
                raise TokenFileError(path, f"{name} must hold {self.n_q} values in {bound}, "
                                           f"got {list(values)}")
        if self.codebook_sizes is not None and self.codes.size:
            top = self.codes.max(axis=(0, 2))
            for k, size in enumerate(self.codebook_sizes):
                if int(top[k]) >= size:
                    raise TokenFileError(path, f"codes out of range: found {int(top[k])} in codebook {k}, "
                                               f"whose size is {size}")


def save_tokens(path: str | os.PathLike, tokens: TokenFile) -> None:
    """Validates ``tokens`` and writes them atomically to ``path`` (an uncompressed ``.npz``).

    Raises:
        TokenFileError: invalid contents, or a destination that cannot be written.
    """
    dest = Path(path)
    tokens.validate(dest)
    arrays = {
        "codes": np.ascontiguousarray(tokens.codes),
        "sample_rate": np.int64(tokens.sample_rate),
        "num_samples": np.int64(tokens.num_samples),
        "num_channels": np.int64(tokens.num_channels),
        "frame_rate": np.float64(tokens.frame_rate),
        "codebook_size": np.int64(tokens.codebook_size),
        "model_id": np.array(tokens.model_id),  # a unicode scalar: no pickle needed to read it
        "format_version": np.int64(tokens.format_version),
    }
    for name in OPTIONAL_FIELDS:
        values = getattr(tokens, name)
        if values is not None:
            arrays[name] = np.asarray(values, dtype=np.int64)
    if dest.is_dir():
        raise TokenFileError(dest, "is a directory")
    try:
        with atomic_path(dest) as tmp:
            np.savez(tmp, **arrays)
    except OSError as err:
        raise TokenFileError(dest, f"cannot write ({err.strerror or err})") from err


def load_tokens(path: str | os.PathLike) -> TokenFile:
    """Reads and validates a token file written by ``save_tokens``.

    Raises:
        TokenFileError: a missing, empty, corrupt or foreign file (not an ``.npz``, missing fields,
            pickled or object arrays, wrong dtypes or shapes), codes out of range or an unknown version.
    """
    src = Path(path)
    if not src.exists():
        raise TokenFileError(src, "no such file")
    if src.is_dir():
        raise TokenFileError(src, "is a directory, not a token file")
    if src.stat().st_size == 0:
        raise TokenFileError(src, "file is empty (0 bytes)")
    try:
        archive = np.load(src, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise TokenFileError(src, f"not a token file: cannot read it as .npz ({_first_line(err)})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise TokenFileError(src, "not a token file: a single .npy array, not an .npz archive")
    with archive:
        missing = [name for name in FIELDS if name not in archive.files]
        if missing:
            raise TokenFileError(src, "not a funcodec_lite token file: missing field(s) "
                                      f"{', '.join(missing)}")
        try:
            values = {name: archive[name] for name in FIELDS}
            optional = {name: archive[name] for name in OPTIONAL_FIELDS if name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
            raise TokenFileError(src, f"corrupt token file ({_first_line(err)})") from err
    tokens = TokenFile(
        codes=values["codes"],
        sample_rate=_scalar(src, "sample_rate", values["sample_rate"], int),
        num_samples=_scalar(src, "num_samples", values["num_samples"], int),
        num_channels=_scalar(src, "num_channels", values["num_channels"], int),
        frame_rate=_scalar(src, "frame_rate", values["frame_rate"], float),
        codebook_size=_scalar(src, "codebook_size", values["codebook_size"], int),
        model_id=_text(src, values["model_id"]),
        format_version=_scalar(src, "format_version", values["format_version"], int),
        **{name: _int_list(src, name, value) for name, value in optional.items()},
    )
    tokens.validate(src)
    return tokens


def read_model_id(path: str | os.PathLike) -> str | None:
    """The ``model_id`` of a token file, or None when it cannot be read (cheap: reads one field)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return _text(Path(path), archive["model_id"])
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, AttributeError, TypeError):
        return None


def _scalar(path: Path, name: str, value: np.ndarray, kind: type) -> int | float:
    allowed = "iu" if kind is int else "iuf"
    if value.shape != () or value.dtype.kind not in allowed:
        raise TokenFileError(path, f"field {name} must be a {kind.__name__} scalar, got {value.dtype} "
                                   f"{list(value.shape)}")
    return kind(value.item())


def _int_list(path: Path, name: str, value: np.ndarray) -> tuple[int, ...]:
    if value.ndim != 1 or value.dtype.kind not in "iu":
        raise TokenFileError(path, f"field {name} must be a 1-D integer array, got {value.dtype} "
                                   f"{list(value.shape)}")
    return tuple(int(v) for v in value)


def _text(path: Path, value: np.ndarray) -> str:
    if value.shape != () or value.dtype.kind != "U":
        raise TokenFileError(path, f"field model_id must be a text scalar, got {value.dtype} "
                                   f"{list(value.shape)}")
    return str(value.item())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
