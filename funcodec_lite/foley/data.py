"""Foley data: the DCASE 2023 Task 7 folder layout, Kaldi data dirs with utt2class, and mel feature files."""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funcodec_lite.audio.io import load_audio
from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig, fit_length
from funcodec_lite.data.kaldi import Utterance, read_data_dir, write_data_dir
from funcodec_lite.utils.atomic import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# DCASE 2023 Task 7 dev-set class folders -> the folder names of the challenge's output (and eval) sets
CHALLENGE_FOLDERS = {
    "DogBark": "dog_bark",
    "Footstep": "footstep",
    "GunShot": "gunshot",
    "Keyboard": "keyboard",
    "MovingMotorVehicle": "moving_motor_vehicle",
    "Rain": "rain",
    "Sneeze_Cough": "sneeze_cough",
}


def output_folder(class_name: str) -> str:
    """The challenge's folder for a class (the class name itself for classes outside the challenge)."""
    return CHALLENGE_FOLDERS.get(class_name, class_name)


class FoleyDataError(ValueError):
    """A Foley dataset folder or data dir that cannot be used (one-line message naming the path)."""


@dataclass(frozen=True)
class FoleyClip:
    """One clip: id ``<Class>-<file stem>``, audio path and class folder name."""

    utt_id: str
    path: str
    class_name: str


def scan_class_folders(root: str | os.PathLike) -> list[FoleyClip]:
    """Clips of a ``<root>/<Class>/*.wav`` tree (the DCASE dev and eval set layout), sorted by id.

    The class of a clip is its folder's name as written (``dog_bark`` stays ``dog_bark``);
    `match_class_names` maps such names to the training classes.

    Raises:
        FoleyDataError: the folder is missing or holds no class folder with audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise FoleyDataError(f"{root}: not a directory (expected <Class>/*.wav folders)")
    clips = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                utt_id = f"{class_dir.name}-{path.stem}".replace(" ", "_")
                clips.append(FoleyClip(utt_id, str(path.resolve()), class_dir.name))
    if not clips:
        raise FoleyDataError(f"{root}: no <Class>/*.wav audio found")
    return clips


def _folded(name: str) -> str:
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


def match_class_names(names: set[str] | list[str], class_names: list[str]) -> dict[str, str]:
    """Maps folder class names to the training classes: ``dog_bark`` -> ``DogBark``.

    A name matches a class when it is the class itself, the class's challenge folder name
    (`CHALLENGE_FOLDERS`), or equal to it ignoring case, ``_``, ``-`` and spaces.

    Returns:
        name -> class, for every name.

    Raises:
        FoleyDataError: a name matches no class, or more than one.
    """
    folders = {folder: name for name, folder in CHALLENGE_FOLDERS.items() if name in class_names}
    mapping, unknown = {}, []
    for name in sorted(set(names)):
        if name in class_names:
            mapping[name] = name
        elif name in folders:
            mapping[name] = folders[name]
        else:
            found = [c for c in class_names if _folded(c) == _folded(name)]
            if len(found) != 1:
                unknown.append(name)
            else:
                mapping[name] = found[0]
    if unknown:
        raise FoleyDataError(f"classes not in the class list {list(class_names)}: {unknown}")
    return mapping


def split_clips(
    clips: list[FoleyClip], valid_fraction: float, seed: int
) -> tuple[list[FoleyClip], list[FoleyClip]]:
    """Stratified train/valid split: ``valid_fraction`` of each class (at least one) to valid."""
    rng = random.Random(seed)
    train, valid = [], []
    for name in sorted({c.class_name for c in clips}):
        members = [c for c in clips if c.class_name == name]
        rng.shuffle(members)
        count = max(1, round(valid_fraction * len(members))) if valid_fraction > 0 else 0
        valid += members[:count]
        train += members[count:]
    return sorted(train, key=lambda c: c.utt_id), sorted(valid, key=lambda c: c.utt_id)


def write_foley_data_dir(directory: str | os.PathLike, clips: list[FoleyClip]) -> None:
    """Writes wav.scp, utt2spk/spk2utt (the class as "speaker") and utt2class."""
    directory = Path(directory)
    write_data_dir(directory, [Utterance(c.utt_id, c.path, c.class_name) for c in clips])
    with atomic_path(directory / "utt2class") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(f"{c.utt_id} {c.class_name}\n" for c in sorted(clips, key=lambda c: c.utt_id))


def read_foley_data_dir(directory: str | os.PathLike) -> list[FoleyClip]:
    """The clips of a data dir written by `write_foley_data_dir` (wav.scp + utt2class).

    Raises:
        DataDirError: wav.scp is missing or malformed (from `read_data_dir`).
        FoleyDataError: utt2class is missing, malformed or lacks an utterance.
    """
    directory = Path(directory)
    data = read_data_dir(directory)
    classes: dict[str, str] = {}
    path = directory / "utt2class"
    if not path.is_file():
        raise FoleyDataError(f"{directory}: no utt2class file")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2:
            raise FoleyDataError(f"{path}:{number}: expected 'utt-id class', got {line!r}")
        classes[parts[0]] = parts[1]
    missing = [u.utt_id for u in data.utterances if u.utt_id not in classes]
    if missing:
        raise FoleyDataError(f"{path}: no class for {len(missing)} utterance(s), e.g. {missing[0]}")
    return [FoleyClip(u.utt_id, u.path, classes[u.utt_id]) for u in data.utterances]


@dataclass
class FoleyFeatures:
    """Log-mel features of a set of clips.

    Args:
        mels: [N, n_mels, frames] float32.
        labels: [N] int64 class indices into ``class_names``.
        utt_ids: N clip ids.
        class_names: the class list (sorted), shared by every split of a recipe.
    """

    mels: torch.Tensor
    labels: torch.Tensor
    utt_ids: list[str]
    class_names: list[str]

    def save(self, path: str | os.PathLike) -> None:
        """Writes an ``.npz`` (no pickled objects), atomically."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                mels=self.mels.numpy().astype(np.float32),
                labels=self.labels.numpy(),
                utt_ids=np.array(self.utt_ids, dtype=str),
                class_names=np.array(self.class_names, dtype=str),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> FoleyFeatures:
        with np.load(path, allow_pickle=False) as archive:
            return cls(
                torch.from_numpy(archive["mels"]),
                torch.from_numpy(archive["labels"]).long(),
                archive["utt_ids"].tolist(),
                archive["class_names"].tolist(),
            )

    def __len__(self) -> int:
        return len(self.utt_ids)

    def digest(self) -> str:
        """sha256 of the content (mels, labels, ids, class names): the key of models trained on it.

        Unlike the ``.npz`` file's bytes (its zip entries hold write times), it is the same whenever
        stage 1 rewrites the same clips.
        """
        digest = hashlib.sha256()
        for array in (self.mels.float().contiguous().numpy(), self.labels.long().contiguous().numpy()):
            digest.update(str((array.dtype.str, array.shape)).encode())
            digest.update(memoryview(array).cast("B"))
        digest.update(json.dumps([self.utt_ids, self.class_names]).encode())
        return digest.hexdigest()


def load_clips(paths: list[str], config: FoleyMelConfig) -> torch.Tensor:
    """Clips at the front end's rate, mono, cut or padded to its ``num_samples``: [N, T].

    Raises:
        FoleyDataError: ``num_samples`` is None (keep lengths) and the clips differ in length.
    """
    wavs = [load_audio(p, config.sample_rate, channels=1)[0][0] for p in paths]
    wavs = [fit_length(w, config.num_samples) for w in wavs]
    lengths = sorted({w.shape[-1] for w in wavs})
    if len(lengths) > 1:
        raise FoleyDataError(f"clips of {lengths[0]} to {lengths[-1]} samples cannot share one tensor: "
                             "give the mel front end a num_samples to cut or pad them to")
    return torch.stack(wavs)


@torch.no_grad()
def extract_features(
    clips: list[FoleyClip], class_names: list[str], mel: FoleyMel, batch_size: int = 16
) -> FoleyFeatures:
    """Loads each clip at the front end's rate (mono) and computes its log-mel [n_mels, frames].

    Class folder names are matched to ``class_names`` by `match_class_names` (``dog_bark`` is
    ``DogBark``), so the labels index ``class_names``.

    Raises:
        FoleyDataError: a class matches none of ``class_names``, or clips of different lengths with a
            front end that keeps lengths.
    """
    mapping = match_class_names({c.class_name for c in clips}, class_names)
    index = {name: i for i, name in enumerate(class_names)}
    mels = []
    for start in tqdm(range(0, len(clips), batch_size), desc="log-mel", dynamic_ncols=True):
        batch = clips[start : start + batch_size]
        mels += list(mel(load_clips([c.path for c in batch], mel.config)))
    frames = sorted({m.shape[-1] for m in mels})
    if len(frames) > 1:
        raise FoleyDataError(f"log-mels of {frames[0]} to {frames[-1]} frames: give the mel front end a "
                             "num_samples to cut or pad the clips to")
    labels = torch.tensor([index[mapping[c.class_name]] for c in clips], dtype=torch.long)
    return FoleyFeatures(torch.stack(mels).float(), labels, [c.utt_id for c in clips], list(class_names))

