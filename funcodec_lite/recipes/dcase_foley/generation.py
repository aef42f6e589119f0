"""Stage 6 of the Foley recipe: the run as one generator model directory, and clips per class from it."""

from __future__ import annotations

import torch

from funcodec_lite.audio.mel_frontend import check_vocoder, recipe_front_end
from funcodec_lite.foley.generator import FoleyGenerator, write_clips
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.lm.pixelsnail import PixelSNAIL
from funcodec_lite.recipes.dcase_foley.codec_path import build_codec_generator
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.atomic import write_json
from funcodec_lite.utils.weights import load_model_dir, save_model_dir
from funcodec_lite.vocoders.training import load_any_vocoder


def build_generator(run: FoleyRun) -> FoleyGenerator:
    """The run's trained parts as one `FoleyGenerator` (mel path: prior (`FoleyRun.prior_dir`: the best
    held-out one when stage 4 kept one), autoencoder, vocoder).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    mel_config = recipe_front_end().config
    class_names = run.class_names
    vocoder = load_any_vocoder(run.vocoder_exp / "model")
    check_vocoder(mel_config, vocoder.hop_length, vocoder.config.num_mels, str(run.vocoder_exp))
    parts = {"prior": load_model_dir(run.prior_dir, PixelSNAIL.model_kind),
             "autoencoder": MelVQVAE.from_pretrained(run.exp / "vqvae" / "model"), "vocoder": vocoder}
    return FoleyGenerator.from_parts(class_names, "mel", parts, mel_config.sample_rate,
                                     mel_config.num_samples, {"temperature": run.config.generate.temperature,
                                      "guidance": run.config.generate.guidance})


@torch.no_grad()
def stage_generate(run: FoleyRun) -> None:
    """6: the run's generator (``exp/<run>/generator``, one model directory for ``codec generate``) writes
    ``clips_per_class`` clips per class in the challenge's format (the mel front end's rate and length:
    22,050 Hz, 88,200 samples), DC removed (`funcodec_lite.foley.generator.remove_dc`).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    model = build_codec_generator(run) if run.config.path == "codec" else build_generator(run)
    save_model_dir(run.exp / "generator", model, {"run": str(run.config_path)})
    model.prepare_for_inference()
    settings = run.config.generate
    timing = write_clips(model, run.exp / "generated", settings.clips_per_class, settings.batch_size,
                         settings.seed)
    clips = settings.clips_per_class * len(model.config.class_names)
    write_json(run.exp / "generated" / "timing.json", {**timing, "clips": clips})


def stage_generate_codec(run: FoleyRun) -> None:
    """Stage 6 of a codec-token run (`stage_generate`); a mel-path run is refused in one line."""
    run.require_codec_path()
    stage_generate(run)
