"""Stages 6-8 of the Foley recipe: generate clips per class, evaluate them (FAD, class accuracy), plot."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.io import save_audio
from funcodec_lite.foley.data import CHALLENGE_FOLDERS
from funcodec_lite.foley.generator import FoleyGenerator
from funcodec_lite.foley.mel import check_vocoder, recipe_front_end
from funcodec_lite.foley.recipe_config import FoleyRunConfig
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.lm import PixelSNAIL
from funcodec_lite.utils.atomic import write_json
from funcodec_lite.utils.weights import load_model_dir, save_model_dir
from funcodec_lite.vocoders.training import load_any_vocoder


def output_folder(class_name: str) -> str:
    """The challenge's folder for a class (the class name itself for classes outside the challenge)."""
    return CHALLENGE_FOLDERS.get(class_name, class_name)


def load_prior(directory: Path) -> PixelSNAIL:
    """A PixelSNAIL model directory, in eval mode."""
    return load_model_dir(directory, PixelSNAIL.model_kind)


def build_generator(args: argparse.Namespace, config: FoleyRunConfig) -> FoleyGenerator:
    """The run's trained parts as one `FoleyGenerator` (mel path: prior, autoencoder, vocoder).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    mel_config = recipe_front_end().config
    with np.load(args.exp / "codes" / "train.npz", allow_pickle=False) as archive:
        class_names = archive["class_names"].tolist()
    vocoder = load_any_vocoder(args.vocoder_exp / "model")
    check_vocoder(mel_config, vocoder.hop_length, vocoder.config.num_mels, str(args.vocoder_exp))
    parts = {"prior": load_prior(args.exp / "prior" / "model"),
             "autoencoder": MelVQVAE.from_pretrained(args.exp / "vqvae" / "model"), "vocoder": vocoder}
    return FoleyGenerator.from_parts(class_names, "mel", parts, mel_config.sample_rate,
                                     mel_config.num_samples, {"temperature": config.generate.temperature})


@torch.no_grad()
def write_clips(model: FoleyGenerator, out_root: Path, clips_per_class: int, batch_size: int, seed: int,
                classes: list[str] | None = None) -> dict[str, float]:
    """``clips_per_class`` clips of each class (default: all) as ``out_root/<challenge folder>/NNN.wav``
    (16-bit PCM at the model's rate and length); returns the seconds spent per phase."""
    generator = torch.Generator().manual_seed(seed)
    timing: dict[str, float] = {}
    for name in classes or model.config.class_names:
        label = model.label(name)
        folder = out_root / output_folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, clips_per_class, batch_size):
            count = min(batch_size, clips_per_class - start)
            wavs = model.generate(torch.full((count,), label), generator, timing)
            for k, wav in enumerate(wavs):
                save_audio(folder / f"{start + k:03d}.wav", wav, model.config.sample_rate, "PCM_16")
        print(f"{name}: {clips_per_class} clips -> {folder}")
    return timing


@torch.no_grad()
def stage_generate(args: argparse.Namespace) -> None:
    """6: the run's generator (``exp/<run>/generator``, one model directory for ``codec generate``) writes
    ``clips_per_class`` clips per class in the challenge's format (the mel front end's rate and length:
    22,050 Hz, 88,200 samples), DC removed (`funcodec_lite.foley.generator.remove_dc`).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    config = FoleyRunConfig.from_yaml(args.config)
    if config.path == "codec":
        from funcodec_lite.foley.codec_path import build_codec_generator

        model = build_codec_generator(args, config)
    else:
        model = build_generator(args, config)
    save_model_dir(args.exp / "generator", model, {"run": str(args.config)})
    model.prepare_for_inference()
    timing = write_clips(model, args.exp / "generated", config.generate.clips_per_class,
                         config.generate.batch_size, config.generate.seed)
    clips = config.generate.clips_per_class * len(model.config.class_names)
    write_json(args.exp / "generated" / "timing.json", {**timing, "clips": clips})
