"""A MUSHRA-style listening test (ITU-R BS.1534) as one self-contained page: trials, anchor, page directory.

``build_test`` matches the reference files of a directory by name with the files of each condition's
directory (same relative path, any audio extension) and writes one folder that a browser opens from disk:
``index.html`` (inline script and style, no network) and ``audio/tNN/<letter>.wav`` beside it. Each trial
holds the open reference, the hidden reference, a 3.5 kHz low-pass anchor of the same length and loudness,
and one stimulus per condition, in an order drawn from ``seed``; the files are named by letter so the
browser shows nothing of what they are. The page exports a listener's ratings as JSON and CSV, which
`funcodec_lite.jobs.listening_stats` reads back.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.blocks import AUDIO_EXTENSIONS
from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.jobs.listening_page import render_page

ANCHOR_HZ = 3500.0  # BS.1534-3's low-pass anchor
ANCHOR_ORDER = 8  # Butterworth order, applied forward and backward (zero phase, 16th-order magnitude)
HIDDEN_REFERENCE = "reference"
ANCHOR = "anchor_3k5"
RESERVED = (HIDDEN_REFERENCE, ANCHOR)
RESULTS_FORMAT = "funcodec_lite.mushra/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Trial:
    """One reference file and the file of each condition that matches it by name."""

    name: str
    reference: Path
    conditions: dict[str, Path]


def parse_conditions(specs: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` strings → ``{name: dir}`` in the given order.

    Raises:
        ValueError: a spec without ``=``, a name with other characters than ``A-Za-z0-9_.+-``, a name used
            twice or reserved (``reference``, ``anchor_3k5``), or a directory that does not exist.
    """
    conditions: dict[str, Path] = {}
    for spec in specs:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"--cond {spec!r}: expected NAME=DIR")
        if not _NAME.match(name):
            raise ValueError(f"--cond {spec!r}: a name of letters, digits and _.+- only")
        if name in RESERVED or name in conditions:
            raise ValueError(f"--cond {spec!r}: the name {name!r} is " +
                             ("reserved" if name in RESERVED else "used twice"))
        path = Path(directory)
        if not path.is_dir():
            raise ValueError(f"--cond {spec!r}: {path}: no such directory")
        conditions[name] = path
    if not conditions:
        raise ValueError("give at least one --cond NAME=DIR")
    return conditions


def _audio_by_name(directory: Path) -> dict[str, Path]:
    """Audio files below ``directory`` keyed by relative path without extension."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return {p.relative_to(directory).with_suffix("").as_posix(): p for p in files}


def collect_trials(ref_dir: str | os.PathLike, conditions: dict[str, Path]) -> tuple[list[Trial], list[str]]:
    """The trials: reference files that every condition has (by relative name), sorted by name.

    Returns:
        (trials, skipped): ``skipped`` names the reference files some condition lacks.

    Raises:
        ValueError: a missing reference directory, no audio in it, or no name that all conditions share.
    """
    ref_dir = Path(ref_dir)
    if not ref_dir.is_dir():
        raise ValueError(f"--ref {ref_dir}: no such directory")
    references = _audio_by_name(ref_dir)
    if not references:
        raise ValueError(f"--ref {ref_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    by_condition = {name: _audio_by_name(path) for name, path in conditions.items()}
    trials, skipped = [], []
    for name, path in references.items():
        if all(name in files for files in by_condition.values()):
            trials.append(Trial(name, path, {c: files[name] for c, files in by_condition.items()}))
        else:
            skipped.append(name)
    if not trials:
        raise ValueError(f"no reference file of {ref_dir} has a file of the same name in every condition "
                         f"directory ({', '.join(str(p) for p in conditions.values())})")
    return trials, skipped


def lowpass_anchor(wav: torch.Tensor, sample_rate: int, cutoff_hz: float = ANCHOR_HZ) -> torch.Tensor:
    """The low-pass anchor of a reference: Butterworth low-pass at ``cutoff_hz``, zero phase, same RMS.

    Args:
        wav (torch.Tensor): reference of shape [C, T].
        sample_rate: its rate (above ``2 * cutoff_hz``).

    Returns:
        float32 [C, T], scaled to the reference's RMS over all channels (silence stays silent).
    """
    from scipy.signal import butter, sosfiltfilt

    if sample_rate <= 2 * cutoff_hz:
        raise ValueError(f"a {cutoff_hz:.0f} Hz low-pass anchor needs a sample rate above "
                         f"{2 * cutoff_hz:.0f} Hz, got {sample_rate}")
    x = wav.double().numpy()
    sos = butter(ANCHOR_ORDER, cutoff_hz, btype="lowpass", fs=sample_rate, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    y = sosfiltfilt(sos, x, axis=-1, padlen=max(padlen, 0)) if x.shape[-1] > 1 else x.copy()
    ref_rms, out_rms = np.sqrt(np.mean(x ** 2)), np.sqrt(np.mean(y ** 2))
    if out_rms > 0:
        y = y * (ref_rms / out_rms)
    return torch.from_numpy(y).float()


def _fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Cuts or zero-pads [C, t] to [C, length]."""
    if wav.shape[-1] >= length:
        return wav[:, :length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"S{i + 1}" for i in range(n)]


def test_id(trials: list[Trial], seed: int) -> str:
    """A short id of a test (trial names, condition names, seed): results of other tests are refused."""
    text = "|".join([str(seed), *sorted(trials[0].conditions), *(t.name for t in trials)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_test(ref_dir: str | os.PathLike, conditions: dict[str, Path], out_dir: str | os.PathLike,
               seed: int = 0, title: str = "Listening test") -> dict:
    """Writes the test page directory ``out_dir`` (which must not exist or be empty).

    Every stimulus is written as 16-bit WAV at the reference's rate and length (a condition's file is cut or
    zero-padded to it), so all stimuli of a trial switch at the same position. The folder is assembled
    beside ``out_dir`` and renamed into place: a failure leaves nothing behind.

    Raises:
        ValueError: no trials, a condition file whose sample rate or channel count differs from its
            reference, unreadable audio, or an ``out_dir`` that holds files.

    Returns:
        The page's configuration (``id``, ``title``, ``trials`` with each stimulus's key and path).
    """
    trials, _ = collect_trials(ref_dir, conditions)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    config = {"format": RESULTS_FORMAT, "id": test_id(trials, seed), "title": title, "trials": []}
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for index, trial in enumerate(trials):
            config["trials"].append(_write_trial(work, index, trial, rng))
        (work / "index.html").write_text(render_page(config), encoding="utf-8")
        work.chmod(0o755)
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return config


def _write_trial(root: Path, index: int, trial: Trial, rng: random.Random) -> dict:
    """Writes one trial's stimuli under ``root/audio/tNN/``; returns its page entry."""
    ref, rate = load_audio(trial.reference)
    if ref.shape[-1] == 0:
        raise ValueError(f"{trial.reference}: no samples")
    stimuli = {HIDDEN_REFERENCE: ref, ANCHOR: lowpass_anchor(ref, rate)}
    for name, path in trial.conditions.items():
        wav, cond_rate = load_audio(path)
        if cond_rate != rate:
            raise ValueError(f"{path}: sample rate {cond_rate} Hz, its reference {trial.reference} has "
                             f"{rate}")
        if wav.shape[0] != ref.shape[0]:
            raise ValueError(f"{path}: {wav.shape[0]} channel(s), its reference {trial.reference} has "
                             f"{ref.shape[0]}")
        stimuli[name] = _fit_length(wav, ref.shape[-1])
    keys = list(stimuli)
    rng.shuffle(keys)
    folder = f"audio/t{index + 1:02d}"
    (root / folder).mkdir(parents=True)
    save_audio(root / folder / "ref.wav", ref, rate)
    entries = []
    for letter, key in zip(_letters(len(keys)), keys):
        save_audio(root / folder / f"{letter}.wav", stimuli[key], rate)
        entries.append({"key": key, "label": letter, "src": f"{folder}/{letter}.wav"})
    return {"name": trial.name, "reference": f"{folder}/ref.wav", "stimuli": entries}
