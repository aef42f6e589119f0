"""Vocoder training data from any Kaldi data directory: aligned (log-mel, audio) chunks of equal length."""

from __future__ import annotations

import os

import torch

from funcodec_lite.audio.io import load_audio
from funcodec_lite.audio.mel_frontend import FoleyMel
from funcodec_lite.data.kaldi import read_data_dir


@torch.no_grad()
def load_vocoder_data(data_dir: str | os.PathLike, mel: FoleyMel, chunk_frames: int,
                      max_utterances: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every utterance of ``data_dir`` (wav.scp, optional segments) at the front end's rate, mono, cut into
    non-overlapping chunks of ``chunk_frames`` mel frames (the tail shorter than a chunk is dropped).

    Args:
        data_dir: a Kaldi data directory.
        mel: the front end (its ``num_samples`` must be None: utterances keep their lengths).
        chunk_frames: frames per chunk (>= the training segment length).
        max_utterances: read at most this many utterances (None: all).

    Returns:
        (mels [N, n_mels, chunk_frames], wavs [N, chunk_frames · hop]): chunk k of an utterance covers
        samples [k·C·hop, (k + 1)·C·hop) and its mel frames are those of that audio alone.

    Raises:
        ValueError: no utterance is as long as one chunk, or the front end cuts clips to a fixed length.
    """
    cfg = mel.config
    if cfg.num_samples is not None:
        raise ValueError("the vocoder's front end must keep each utterance's length (num_samples None)")
    chunk = chunk_frames * cfg.hop_length
    mels, wavs = [], []
    utterances = read_data_dir(data_dir).utterances[:max_utterances]
    for utt in utterances:
        wav, _ = load_audio(utt.path, cfg.sample_rate, channels=1)
        start = round(utt.start * cfg.sample_rate)
        end = wav.shape[-1] if utt.end is None else round(utt.end * cfg.sample_rate)
        wav = wav[0, start:end]
        count = wav.shape[-1] // chunk
        if count == 0:
            continue
        pieces = wav[: count * chunk].reshape(count, chunk)
        wavs.append(pieces)
        mels.append(mel(pieces))  # [count, n_mels, chunk_frames]
    if not wavs:
        raise ValueError(f"{data_dir}: no utterance lasts one chunk of {chunk_frames} frames "
                         f"({chunk / cfg.sample_rate:.2f} s)")
    return torch.cat(mels), torch.cat(wavs)
