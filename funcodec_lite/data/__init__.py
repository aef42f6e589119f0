"""Training data: Kaldi data directories, the audio dataset and speech corpus preparation."""

from .dataset import AudioBatch, AudioDataset, AudioItem, DataConfig, SkipCounter, Skipped, collate_audio
from .kaldi import (
    DataDir,
    DataDirError,
    Utterance,
    read_data_dir,
    read_scp,
    read_table,
    validate_data_dir,
    write_data_dir,
)

__all__ = [
    "AudioBatch",
    "AudioDataset",
    "AudioItem",
    "DataConfig",
    "DataDir",
    "DataDirError",
    "SkipCounter",
    "Skipped",
    "Utterance",
    "collate_audio",
    "read_data_dir",
    "read_scp",
    "read_table",
    "validate_data_dir",
    "write_data_dir",
]
