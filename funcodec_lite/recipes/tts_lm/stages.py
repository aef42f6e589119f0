"""Stages 1, 2b and 5 of the TTS recipe: phonemes, task examples, synthesis of the test sentences."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from funcodec_lite.audio.io import save_audio
from funcodec_lite.data.kaldi import read_data_dir
from funcodec_lite.data.phonemes import PhonemeVocabulary, phonemize_data_dir, read_phonemes, write_phonemes
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.lm.codec_lm import CodecLM
from funcodec_lite.lm.examples import ExampleSet, build_tts_examples, choose_prompts, write_prompts
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.lm.nar import NARCodecLM
from funcodec_lite.lm.sequence import TaskVocabulary
from funcodec_lite.lm.tts import synthesize
from funcodec_lite.utils.weights import load_model_dir


def stage_phonemize(data_dirs: Sequence[Path], vocab_path: Path, language: str, stress: bool = True,
                    punctuation: bool = True) -> PhonemeVocabulary:
    """Writes ``<data dir>/phonemes`` (``utt-id ph ph ...``) for each data dir, each utterance in its voice's
    language (``utt2synth``), else in ``language``, and the vocabulary of the first (the training split) to
    ``vocab_path`` (JSON); returns the vocabulary.

    Raises:
        PhonemizerError: espeak-ng is missing or fails; DataDirError: a bad data dir.
    """
    vocab = None
    for data in data_dirs:
        phonemes = phonemize_data_dir(data, language, stress=stress, punctuation=punctuation)
        write_phonemes(data / "phonemes", phonemes)
        if vocab is None:
            vocab = PhonemeVocabulary.build(phonemes.values())
            vocab_path.parent.mkdir(parents=True, exist_ok=True)
            vocab.save(vocab_path)
            print(f"phonemize: {vocab_path}: {len(vocab)} symbols")
        tokens = sum(len(p) for p in phonemes.values())
        unknown = sum(t not in vocab for p in phonemes.values() for t in p)
        print(f"phonemize: {data / 'phonemes'}: {len(phonemes)} utterances, {tokens} tokens, "
              f"{unknown} not in the vocabulary")
    return vocab


def stage_pack(data_dirs: Sequence[Path], tokens: Path, vocab_path: Path, out: Path, seed: int = 0,
               prompt_seconds: float = 3.0) -> TaskVocabulary | None:
    """The TTS examples of each split in one file, ``out/<split>.npz`` (docs/formats.md): phonemes, an
    acoustic prompt (the first ``prompt_seconds`` of another utterance of the same speaker, chosen with
    ``seed``; 0: all of it; the pairs in ``out/<split>.utt2prompt``) and the target codes of
    ``tokens/<split>/``. Writes the id layout to ``out/layout.json`` and returns it (None: no examples).

    Raises:
        ValueError, TokenFileError: missing phonemes or token files, or token files of another codec.
    """
    out.mkdir(parents=True, exist_ok=True)
    vocab = PhonemeVocabulary.load(vocab_path)
    layout = None
    for data in data_dirs:
        split = data.name
        utt2spk = {u.utt_id: u.speaker for u in read_data_dir(data).utterances}
        prompts = choose_prompts(utt2spk, seed)
        examples = build_tts_examples(read_phonemes(data / "phonemes"), vocab, tokens / split, prompts,
                                      prompt_seconds)
        write_prompts(out / f"{split}.utt2prompt", prompts)
        examples.save(out / f"{split}.npz")
        if layout is None and len(examples):
            layout = TaskVocabulary(num_phonemes=len(vocab), num_codebooks=examples.num_codebooks,
                                    codebook_size=examples.codebook_size)
            layout.save(out / "layout.json")
        frames = sum(e.target.shape[-1] for e in examples.examples)
        alone = sum(p is None for p in prompts.values())
        print(f"pack_examples: {out / (split + '.npz')}: {len(examples)} examples, {frames} frames, "
              f"{len(examples) - alone} with a prompt, {alone} without (the speaker's only utterance)")
    if layout is not None:
        print(f"pack_examples: {out / 'layout.json'}: {layout.size} ids")
    return layout


def load_tts_models(ar_dir: Path, nar_dir: Path | None) -> tuple[CodecLM, NARCodecLM | None]:
    """The AR model (codebook 0) and, when given, the NAR model (codebooks 1..K-1).

    Raises:
        ModelDirError: a missing or corrupt directory, or one of another kind.
    """
    ar = load_model_dir(ar_dir, CodecLM.model_kind)
    nar = load_model_dir(nar_dir, NARCodecLM.model_kind) if nar_dir else None
    return ar, nar


def stage_synthesize(ar_dir: Path, nar_dir: Path | None, examples_path: Path, codec: str, out: Path,
                     sampling: SamplingConfig, min_frames_per_phoneme: float = 1.0,
                     seed: int = 0) -> list[dict]:
    """Speaks every example of ``examples_path`` (the test split) in its prompt's voice: the AR model
    continues the prompt's codebook 0 under the phonemes, the NAR model fills codebooks 1..K-1, the codec's
    `Tokenizer` decodes. Writes ``out/<utt>.wav`` and ``out/synthesis.jsonl`` (frames, stop reason, seconds
    per utterance) and returns its records.

    Raises:
        ModelDirError: a bad model directory; ValueError: examples made with another codec.
    """
    ar, nar = load_tts_models(ar_dir, nar_dir)
    examples = ExampleSet.load(examples_path)
    tokenizer = Tokenizer.from_pretrained(codec)
    if tokenizer.model_id != examples.model_id:
        raise ValueError(f"{examples_path} holds tokens of codec {examples.model_id}, --codec is "
                         f"{tokenizer.model_id}")
    torch.set_num_threads(1)  # one position per step: more threads only add synchronisation
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, example in enumerate(examples.examples):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed * 100_003 + index)
        result = synthesize(ar, nar, example, tokenizer, sampling,
                            min_frames_per_phoneme=min_frames_per_phoneme, generator=generator)
        if result.wav.shape[-1]:
            save_audio(out / f"{example.utt_id}.wav", result.wav, tokenizer.sample_rate)
        records.append({"utt": example.utt_id, "prompt": example.prompt_id, "frames": result.codes.shape[-1],
                        "reference_frames": example.target.shape[-1], "stop": result.reason,
                        "seconds": round(time.perf_counter() - start, 3)})
        print(json.dumps(records[-1]), flush=True)
    (out / "synthesis.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records
