"""VALL-E-style text-to-speech on codec tokens: synthesis with the AR + NAR models, and its evaluation.

Synthesis: the AR model continues the acoustic prompt's codebook 0 under the phoneme prefix until EOS
(at most ``max_frames_per_phoneme`` frames per phoneme, as VALL-E's 16 x text length), the NAR model fills
codebooks 1..K-1, and the `Tokenizer` decodes. Evaluation: held-out token NLL of each codebook against a
unigram baseline, the synthesized duration against the reference rendering's, and the mel-cepstral
distortion after DTW against the reference rendering, per voice.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.lm.codec_lm import CodecLM
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.nar import NARCodecLM
from funcodec_lite.lm.sequence import TaskExample
from funcodec_lite.metrics.mcd import mel_cepstral_distortion


@dataclass
class Synthesis:
    """One synthesized utterance: audio [C, T] at the tokenizer's rate, codes [K, N], stop reason."""

    wav: torch.Tensor
    codes: torch.Tensor
    reason: str


@torch.no_grad()
def synthesize(ar: CodecLM, nar: NARCodecLM | None, example: TaskExample, tokenizer: Tokenizer,
               sampling: SamplingConfig | None = None, max_frames_per_phoneme: float = 16.0,
               min_frames_per_phoneme: float = 0.0,
               generator: torch.Generator | None = None) -> Synthesis:
    """Speaks ``example.phonemes`` in the voice of ``example.prompt`` (codes [K, Tp]), in at least
    ``min_frames_per_phoneme`` and at most ``max_frames_per_phoneme`` frames per phoneme (UniAudio bounds
    the length the same way, by ratios to the condition's length)."""
    device = next(ar.parameters()).device
    phonemes = example.phonemes[None].to(device)
    lengths = torch.tensor([phonemes.shape[1]], device=device)
    prompt = None if example.prompt is None else example.prompt[None].to(device)
    limit = max(1, math.ceil(max_frames_per_phoneme * phonemes.shape[1]))
    sampling = replace(sampling or SamplingConfig(top_k=50),
                       min_frames=min(limit, math.floor(min_frames_per_phoneme * phonemes.shape[1])))
    out = generate(ar, 1, limit, sampling, prompt=None if prompt is None
                   else prompt[:, : ar.config.n_q], phonemes=phonemes, phoneme_lengths=lengths,
                   generator=generator)
    frames = int(out.frames[0])
    codes = out.codes[:, :, :frames].to(device)
    if nar is not None and frames:
        codes = nar.continue_prompt(codes[:, 0], prompt, phonemes=phonemes, phoneme_lengths=lengths)
    if frames == 0:
        return Synthesis(torch.zeros(tokenizer.channels, 0), codes[0].cpu(), out.reasons[0])
    decoded = tokenizer.decode(codes)
    return Synthesis(decoded.wav[0].float().cpu().clamp(-1, 1), codes[0].cpu(), out.reasons[0])


def unigram_nll(train: Sequence[TaskExample], test: Sequence[TaskExample], n_q: int,
                card: int) -> list[float]:
    """Per codebook, the NLL (nats per code) of the test targets under the training targets' code
    frequencies (add-one smoothing): the baseline a token LM has to beat."""
    result = []
    for q in range(n_q):
        counts = np.ones(card)
        for example in train:
            counts += np.bincount(example.target[q].numpy(), minlength=card)
        log_p = np.log(counts / counts.sum())
        codes = np.concatenate([example.target[q].numpy() for example in test])
        result.append(float(-log_p[codes].mean()))
    return result


def speaker_of(utt_id: str) -> str:
    """The speaker part of a corpus utterance id (``<speaker>-<index>``)."""
    return utt_id.rsplit("-", 1)[0]


def compare_to_references(synthesized: dict[str, torch.Tensor], references: dict[str, torch.Tensor],
                          sample_rate: int) -> dict:
    """Duration ratios (synthesized / reference) and MCD after DTW, per utterance and per voice."""
    per_voice: dict[str, list[tuple[float, float]]] = defaultdict(list)
    utterances = {}
    for utt, wav in sorted(synthesized.items()):
        reference = references[utt]
        ratio = wav.shape[-1] / max(1, reference.shape[-1])
        mcd = mel_cepstral_distortion(reference[0], wav[0], sample_rate) if wav.shape[-1] else float("nan")
        utterances[utt] = {"duration_ratio": ratio, "mcd_db": mcd}
        per_voice[speaker_of(utt)].append((ratio, mcd))
    voices = {voice: {"utterances": len(rows),
                      "within_20_percent": sum(abs(r - 1) <= 0.2 for r, _ in rows) / len(rows),
                      "duration_ratio_mean": float(np.mean([r for r, _ in rows])),
                      "mcd_db_mean": float(np.nanmean([m for _, m in rows]))}
              for voice, rows in sorted(per_voice.items())}
    ratios = [u["duration_ratio"] for u in utterances.values()]
    return {"utterances": utterances, "voices": voices,
            "within_20_percent": sum(abs(r - 1) <= 0.2 for r in ratios) / max(1, len(ratios)),
            "mcd_db_mean": float(np.nanmean([u["mcd_db"] for u in utterances.values()]))}
