"""Stages 0-5 of ``egs/dcase_foley/run.sh``: data, features, autoencoder, code maps, prior, vocoder.

Stage 6 (generation) is `funcodec_lite.recipes.dcase_foley.generation`, 7 (evaluation) `evaluation`, 8 (plots
and the listening page) `report`, the codec-token path's 2-4 `codec_path`. Each stage reads what earlier
stages wrote and overwrites its own outputs, so any stage can be rerun alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.mel_frontend import check_vocoder, recipe_front_end
from funcodec_lite.foley.data import (
    FoleyClip,
    extract_features,
    load_clips,
    match_class_names,
    read_foley_data_dir,
    scan_class_folders,
    split_clips,
    write_foley_data_dir,
)
from funcodec_lite.foley.training import extract_code_maps, prior_nll, train_prior, train_vqvae, vqvae_error
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.atomic import atomic_path, write_json
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.profile import count_parameters
from funcodec_lite.utils.weights import save_model_dir
from funcodec_lite.vocoders.hifigan import HiFiGANConfig, load_official_generator
from funcodec_lite.vocoders.training import build_vocoder, train_any_vocoder

SPLITS = ("train", "valid", "eval")


def stage_data(run: FoleyRun) -> None:
    """0: Kaldi data dirs (wav.scp, utt2class): train/valid from the dev set, eval from the eval set.

    The eval set's class folders may use the challenge's snake_case names (``dog_bark``): its utt2class
    holds the dev set's class names (``DogBark``).

    Raises:
        ValueError: no ``--dev-root``.
    """
    source = run.source
    if source is None or source.dev_root is None:
        raise ValueError("data: give --dev-root")
    clips = scan_class_folders(source.dev_root)
    train, valid = split_clips(clips, source.valid_fraction, source.seed)
    write_foley_data_dir(run.data / "train", train)
    write_foley_data_dir(run.data / "valid", valid)
    counts = {"train": len(train), "valid": len(valid)}
    if source.eval_root:
        evaluation = scan_class_folders(source.eval_root)
        names = match_class_names({c.class_name for c in evaluation}, sorted({c.class_name for c in clips}))
        evaluation = [FoleyClip(c.utt_id, c.path, names[c.class_name]) for c in evaluation]
        write_foley_data_dir(run.data / "eval", evaluation)
        counts["eval"] = len(evaluation)
    print("data dirs: " + ", ".join(f"{k} {v} clips" for k, v in counts.items()))


def stage_features(run: FoleyRun) -> None:
    """1: the baseline's log-mel (80 x 344) of every clip, one .npz per split."""
    mel = recipe_front_end()
    class_names = sorted({c.class_name for c in read_foley_data_dir(run.data / "train")})
    for split in SPLITS:
        if not (run.data / split / "wav.scp").is_file():
            continue
        features = extract_features(read_foley_data_dir(run.data / split), class_names, mel)
        features.save(run.features / f"{split}.npz")
        print(f"{split}: {len(features)} clips, mels {tuple(features.mels.shape)}")


def stage_vqvae(run: FoleyRun) -> None:
    """2: train the mel VQ-VAE / RVQ-VAE; reports held-out reconstruction error and codebook use."""
    config = run.config
    train = run.load_features("train")
    model = train_vqvae(config.vqvae, train.mels, config.vqvae_train, run.exp / "vqvae", resume=run.resume,
                        provenance={"data": str(run.features / "train.npz"), "clips": len(train.utt_ids)})
    report = {
        "parameters": count_parameters(model),
        "code_map": list(config.vqvae.code_map_shape),
        "valid": vqvae_error(model, run.load_features("valid").mels),
    }
    write_json(run.exp / "vqvae" / "valid.json", report)
    print(f"vqvae: {report}")


def stage_codes(run: FoleyRun) -> None:
    """3: the code map of every clip, with its class: ``codes/<split>.npz`` (int16 codes [N, H, W], labels,
    ids)."""
    model = MelVQVAE.from_pretrained(run.exp / "vqvae" / "model")
    for split in ("train", "valid"):
        features = run.load_features(split)
        maps = extract_code_maps(model, features.mels)
        path = run.exp / "codes" / f"{split}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                codes=maps.numpy().astype(np.int16),
                labels=features.labels.numpy(),
                utt_ids=np.array(features.utt_ids, dtype=str),
                class_names=np.array(features.class_names, dtype=str),
            )
        print(f"{split}: code maps {tuple(maps.shape)}")


def load_code_maps(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(codes [N, H, W] int64, labels [N], class names) of a stage-3 file."""
    with np.load(path, allow_pickle=False) as archive:
        return (
            torch.from_numpy(archive["codes"].astype(np.int64)),
            torch.from_numpy(archive["labels"]).long(),
            archive["class_names"].tolist(),
        )


def stage_prior(run: FoleyRun) -> None:
    """4: train the class-conditional PixelSNAIL on the training code maps."""
    codes, labels, class_names = load_code_maps(run.exp / "codes" / "train.npz")
    model = train_prior(run.config.prior_config(len(class_names)), codes, labels, run.config.prior_train,
                        run.exp / "prior", resume=run.resume,
                        provenance={"data": str(run.exp / "codes" / "train.npz"), "clips": len(codes)})
    valid_codes, valid_labels, _ = load_code_maps(run.exp / "codes" / "valid.npz")
    report = {
        "parameters": count_parameters(model),
        "sampled_model": str(run.prior_dir),  # what stage 6 samples (`FoleyRun.prior_dir`)
        "valid": prior_nll(model, valid_codes, valid_labels),
        "train": prior_nll(model, codes[:256], labels[:256]),
    }
    write_json(run.exp / "prior" / "valid.json", report)
    print(f"prior: {report}")


def stage_vocoder(run: FoleyRun) -> None:
    """5: train the run's vocoder kind on the training clips (HiFi-GAN: or import an official generator
    checkpoint; the student: its WaveNet teacher first, in ``<vocoder dir>/teacher``).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    if run.official is not None:
        import_official_vocoder(run)
        return
    section, mel_config = run.config.vocoder, recipe_front_end().config
    check_vocoder(mel_config, build_vocoder(section.kind, section.config).hop_length, section.config.num_mels,
                  f"vocoder {section.kind} {section.preset or 'custom'}")
    train = run.load_features("train")
    clips = {c.utt_id: c for c in read_foley_data_dir(run.data / "train")}
    wavs = load_clips([clips[u].path for u in train.utt_ids], mel_config)
    provenance = {"data": str(run.features / "train.npz"), "clips": len(wavs)}
    teacher = None
    if section.kind == "student":  # its WaveNet teacher first, in the student's keyed directory
        teacher = train_any_vocoder("wavenet", section.teacher, train.mels, wavs, section.train,
                                    run.vocoder_exp / "teacher", resume=run.resume, provenance=provenance)
    model = train_any_vocoder(section.kind, section.config, train.mels, wavs, section.train, run.vocoder_exp,
                              section.loss, resume=run.resume, provenance=provenance, teacher=teacher)
    write_json(run.vocoder_exp / "info.json", {"kind": section.kind, "parameters": count_parameters(model)})


def import_official_vocoder(run: FoleyRun) -> None:
    """5 with ``--official-checkpoint``: an official HiFi-GAN generator into ``run.vocoder_exp/model``.

    Raises:
        ConfigError: the run's vocoder kind is not HiFi-GAN.
        ValueError: the generator's hop or input bands differ from the mel front end's.
    """
    official, section = run.official, run.config.vocoder
    if section.kind != "hifigan":
        raise ConfigError(f"--official-checkpoint is a HiFi-GAN generator; this run's vocoder_kind is "
                          f"{section.kind}")
    config = (HiFiGANConfig.from_official(json.loads(Path(official.config).read_text()))
              if official.config else section.config)
    check_vocoder(recipe_front_end().config, config.hop_length, config.num_mels, str(official.checkpoint))
    model = load_official_generator(official.checkpoint, config)
    # a checkpoint saved after remove_weight_norm loads folded; stage 6 rebuilds a weight-normed
    # generator and loads strictly, so save the weight-normed layout (same function)
    model.restore_weight_norm()
    save_model_dir(run.vocoder_exp / "model", model, {"imported_from": str(official.checkpoint)})
    print(f"imported {official.checkpoint} -> {run.vocoder_exp / 'model'}")


def stage_dirs(run: FoleyRun) -> None:
    """Not a stage: prints the keyed vocoder and classifier directories and the run's path ("mel" or
    "codec"), one a line, for run.sh."""
    print(f"{run.vocoder_exp}\n{run.classifier_exp}\n{run.config.path}")
