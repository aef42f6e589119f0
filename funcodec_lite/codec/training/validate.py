"""Validation during training: decode held-out utterances at several n_q and score them."""

from __future__ import annotations

from pathlib import Path

import torch

from funcodec_lite.audio import save_audio
from funcodec_lite.codec.model import Codec
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.data import AudioDataset
from funcodec_lite.metrics import average_scores, save_spectrogram_png, score_pair


@torch.no_grad()
def validate(codec: Codec, dataset: AudioDataset, config: TrainConfig, out_dir: Path) -> dict[str, float]:
    """Scores ``codec`` on the first utterances of ``dataset`` at each n_q of ``config.schedule.valid_n_q``.

    Writes the first ``valid_clips`` decodes as wavs and a spectrogram PNG per clip under ``out_dir``.

    Returns:
        ``{"nq{n}/{metric}": value}`` for metric in pesq, stoi, estoi, mel_distance, si_snr.
    """
    was_training = codec.training
    codec.eval()
    device = next(codec.parameters()).device
    n_qs = [n for n in config.schedule.valid_n_q if n <= codec.n_q]
    count = min(len(dataset), config.data.valid_utterances)
    scores: dict[int, list] = {n: [] for n in n_qs}
    for index in range(count):
        item = dataset[index]
        if not hasattr(item, "wav"):
            continue  # an unreadable file, already reported by the dataset
        wav = item.wav[:, : item.length]
        decodes = {}
        for n_q in n_qs:
            codes = codec.encode(wav[None].to(device), n_q=n_q)
            decoded = codec.decode(codes, length=wav.shape[-1])[0].float().cpu().clamp(-1, 1)
            scores[n_q].append(score_pair(wav, decoded, codec.sample_rate))
            decodes[f"n_q={n_q}"] = decoded
        if index < config.schedule.valid_clips:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, decoded in decodes.items():
                save_audio(out_dir / f"{item.utt_id}_{name.replace('=', '')}.wav", decoded, codec.sample_rate)
            save_spectrogram_png(out_dir / f"{item.utt_id}.png",
                                 {"reference": wav[0], **{k: v[0] for k, v in decodes.items()}},
                                 codec.sample_rate)
    codec.train(was_training)
    results: dict[str, float] = {}
    for n_q, pair_scores in scores.items():
        if pair_scores:
            for metric, value in vars(average_scores(pair_scores)).items():
                results[f"nq{n_q}/{metric}"] = float(value)
    return results
