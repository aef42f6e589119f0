"""Shared pieces of the ``codec`` commands: model options, devices, input walking, per-file reporting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import DTYPES, load_model
from funcodec_lite.inference.chunking import ChunkConfig


class UsageError(ValueError):
    """A command line that does not make sense (missing or conflicting arguments)."""


class CommandParser(argparse.ArgumentParser):
    """The parser of a ``codec`` command. With ``intermixed=True`` its options may stand anywhere among its
    positionals (``parse_known_intermixed_args``): ``codec convert --from mimi CKPT --config X OUT_DIR``
    parses as ``codec convert --from mimi --config X CKPT OUT_DIR`` even with an optional positional."""

    def __init__(self, *args, intermixed: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.intermixed = intermixed
        self._in_intermixed = False

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        if not self.intermixed or self._in_intermixed:  # the intermixed parse calls this twice itself
            return super().parse_known_args(args, namespace)
        self._in_intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._in_intermixed = False


def add_model_args(parser: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--model``, ``--device`` (and ``--dtype``)."""
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="model directory (config.yaml + model.safetensors); default: the shipped model")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    if dtype:
        parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                            help="inference precision (bfloat16 is fast on GPUs only)")


def add_chunk_args(parser: argparse.ArgumentParser) -> None:
    defaults = ChunkConfig()
    parser.add_argument("--chunk-seconds", type=float, default=defaults.chunk_seconds,
                        help="audio coded per window (bounds memory; default %(default)s)")
    parser.add_argument("--context-seconds", type=float, default=defaults.context_seconds,
                        help="context on each side of a window, non-causal models (default %(default)s)")


def chunk_config(args: argparse.Namespace) -> ChunkConfig:
    return ChunkConfig(args.chunk_seconds, args.context_seconds)


def pick_device(name: str | None) -> torch.device:
    """The requested device (default: cuda when available, else cpu). Plain ``cuda`` means the process's
    GPU under ``accelerate launch`` / ``torchrun`` (``LOCAL_RANK``), GPU 0 otherwise."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name}: not a device (cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return device


def check_n_q(n_q: int | None, codec: CompressionModel) -> None:
    """``--n-q`` (or the codebooks of ``--bandwidth``) checked against the model: the command line's one
    check, before any file is read; below it only the model's ``encode`` checks."""
    if n_q is not None and not 1 <= n_q <= codec.n_q:
        raise UsageError(f"--n-q must be in 1..{codec.n_q}, got {n_q}")


def load_from_args(args: argparse.Namespace) -> CompressionModel:
    """Loads ``--model`` (any codec kind; default model when omitted) on ``--device`` in ``--dtype``."""
    return load_model(args.model, pick_device(args.device), getattr(args, "dtype", "float32"))


@dataclass(frozen=True)
class Job:
    """One input and the output it goes to."""

    src: Path
    dest: Path


def collect_jobs(src: str | None, dest: str | None, scp: str | None, out_dir: str | None,
                 extensions: Iterable[str], out_suffix: str, command: str) -> tuple[list[Job], bool]:
    """Pairs inputs with outputs for one of the three input forms.

    * ``src`` a file: ``dest`` is the output file (or a directory to put it in).
    * ``src`` a directory: every file with one of ``extensions`` below it, mirrored under ``dest``.
    * ``scp`` (``utt-id path`` lines) with ``out_dir``: ``out_dir/<utt-id><out_suffix>``.

    Returns:
        (jobs, single): ``single`` when one file was named (errors end the command at once).
    """
    from funcodec_lite.data.kaldi import read_scp

    if scp is not None:
        if src is not None or dest is not None or out_dir is None:
            raise UsageError(f"codec {command} --scp FILE needs --out-dir DIR and no positional paths")
        return [Job(Path(path), Path(out_dir) / f"{utt}{out_suffix}") for utt, path in read_scp(scp)], False
    if src is None or dest is None:
        raise UsageError(f"codec {command} needs IN and OUT (or --scp FILE --out-dir DIR)")
    source, target = Path(src), Path(dest)
    if source.is_dir():
        if target.exists() and not target.is_dir():
            raise UsageError(f"{target}: input {source} is a directory, so the output must be one too")
        wanted = tuple(ext.lower() for ext in extensions)
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
        if not files:
            raise UsageError(f"{source}: no input files ({', '.join(wanted)}) in this directory")
        jobs = [Job(p, (target / p.relative_to(source)).with_suffix(out_suffix)) for p in files]
        seen: dict[Path, Path] = {}
        for job in jobs:
            if job.dest in seen:
                raise UsageError(f"{job.src} and {seen[job.dest]} would both write {job.dest}")
            seen[job.dest] = job.src
        return jobs, False
    if target.is_dir():
        target = target / (source.stem + out_suffix)
    return [Job(source, target)], True


def run_jobs(jobs: list[Job], single: bool, work: Callable[[Job], str], command: str, quiet: bool) -> int:
    """Runs ``work`` on every job, creating output directories; a failure is one line on stderr.

    A single job's failure propagates (one error line, exit code 2, from ``main``); in batch mode the
    other files go on and the exit code is 2 if any failed.
    """
    failed = 0
    for job in jobs:
        try:
            _make_parent(job.dest)
            line = work(job)
        except (ValueError, OSError, RuntimeError) as err:
            if single:
                raise
            failed += 1
            print(f"codec {command}: error: {one_line(err)}", file=sys.stderr)
            continue
        if not quiet:
            print(line)
    if not single and not quiet:
        print(f"codec {command}: {len(jobs) - failed} of {len(jobs)} file(s) done, {failed} failed")
    return 2 if failed else 0


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{path}: cannot create its directory ({err.strerror or err})") from None


def one_line(error: BaseException) -> str:
    """An exception's message on one line (multi-line messages joined with '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__
