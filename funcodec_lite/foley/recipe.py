"""Stages of ``egs/dcase_foley/run.sh``: ``python -m funcodec_lite.foley.recipe <stage> [options]``.

Stages 0-5 (data, features, autoencoder, code maps, prior, vocoder) live here; 6 (generation) in
`funcodec_lite.foley.generation`, 7 (evaluation) in `funcodec_lite.foley.evaluation`, 8 (plots and the
listening page) in `funcodec_lite.foley.report`. Each stage reads what earlier stages wrote
and overwrites its own outputs, so any stage can be rerun alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.data.kaldi import DataDirError
from funcodec_lite.foley.data import (
    FoleyClip,
    FoleyDataError,
    FoleyFeatures,
    extract_features,
    load_clips,
    match_class_names,
    read_foley_data_dir,
    scan_class_folders,
    split_clips,
    write_foley_data_dir,
)
from funcodec_lite.foley.mel import check_vocoder, recipe_front_end
from funcodec_lite.foley.recipe_config import FoleyRunConfig
from funcodec_lite.foley.training import extract_code_maps, prior_nll, train_prior, train_vqvae, vqvae_error
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.utils.atomic import atomic_path, write_json
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.profile import count_parameters
from funcodec_lite.vocoders.training import build_vocoder, train_any_vocoder

SPLITS = ("train", "valid", "eval")


def stage_data(args: argparse.Namespace) -> None:
    """0: Kaldi data dirs (wav.scp, utt2class): train/valid from the dev set, eval from the eval set.

    The eval set's class folders may use the challenge's snake_case names (``dog_bark``): its utt2class
    holds the dev set's class names (``DogBark``).
    """
    clips = scan_class_folders(args.dev_root)
    train, valid = split_clips(clips, args.valid_fraction, args.seed)
    write_foley_data_dir(args.data / "train", train)
    write_foley_data_dir(args.data / "valid", valid)
    counts = {"train": len(train), "valid": len(valid)}
    if args.eval_root:
        evaluation = scan_class_folders(args.eval_root)
        names = match_class_names({c.class_name for c in evaluation}, sorted({c.class_name for c in clips}))
        evaluation = [FoleyClip(c.utt_id, c.path, names[c.class_name]) for c in evaluation]
        write_foley_data_dir(args.data / "eval", evaluation)
        counts["eval"] = len(evaluation)
    print("data dirs: " + ", ".join(f"{k} {v} clips" for k, v in counts.items()))


def stage_features(args: argparse.Namespace) -> None:
    """1: the baseline's log-mel (80 x 344) of every clip, one .npz per split."""
    mel = recipe_front_end()
    class_names = sorted({c.class_name for c in read_foley_data_dir(args.data / "train")})
    for split in SPLITS:
        if not (args.data / split / "wav.scp").is_file():
            continue
        features = extract_features(read_foley_data_dir(args.data / split), class_names, mel)
        features.save(args.features / f"{split}.npz")
        print(f"{split}: {len(features)} clips, mels {tuple(features.mels.shape)}")


def _features(args: argparse.Namespace, split: str) -> FoleyFeatures:
    path = args.features / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing, run stage 1 first")
    return FoleyFeatures.load(path)


def stage_vqvae(args: argparse.Namespace) -> None:
    """2: train the mel VQ-VAE / RVQ-VAE; reports held-out reconstruction error and codebook use."""
    config = FoleyRunConfig.from_yaml(args.config)
    train = _features(args, "train")
    model = train_vqvae(config.vqvae, train.mels, config.vqvae_train, args.exp / "vqvae", resume=args.resume,
                        provenance={"data": str(args.features / "train.npz"), "clips": len(train.utt_ids)})
    report = {
        "parameters": count_parameters(model),
        "code_map": list(config.vqvae.code_map_shape),
        "valid": vqvae_error(model, _features(args, "valid").mels),
    }
    write_json(args.exp / "vqvae" / "valid.json", report)
    print(f"vqvae: {report}")


def stage_codes(args: argparse.Namespace) -> None:
    """3: the code map of every clip, with its class: ``codes/<split>.npz`` (int16 codes, labels, ids)."""
    model = MelVQVAE.from_pretrained(args.exp / "vqvae" / "model")
    for split in ("train", "valid"):
        features = _features(args, split)
        maps = extract_code_maps(model, features.mels)
        path = args.exp / "codes" / f"{split}.npz"
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


def stage_prior(args: argparse.Namespace) -> None:
    """4: train the class-conditional PixelSNAIL on the training code maps."""
    config = FoleyRunConfig.from_yaml(args.config)
    codes, labels, class_names = load_code_maps(args.exp / "codes" / "train.npz")
    prior_config = config.prior_config(len(class_names))
    model = train_prior(prior_config, codes, labels, config.prior_train, args.exp / "prior",
                        resume=args.resume,
                        provenance={"data": str(args.exp / "codes" / "train.npz"), "clips": len(codes)})
    valid_codes, valid_labels, _ = load_code_maps(args.exp / "codes" / "valid.npz")
    report = {
        "parameters": count_parameters(model),
        "valid": prior_nll(model, valid_codes, valid_labels),
        "train": prior_nll(model, codes[:256], labels[:256]),
    }
    write_json(args.exp / "prior" / "valid.json", report)
    print(f"prior: {report}")


def stage_vocoder(args: argparse.Namespace) -> None:
    """5: train the run's vocoder kind on the training clips (HiFi-GAN: or import an official generator
    checkpoint; the student: its WaveNet teacher first, in ``<vocoder dir>/teacher``).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    from funcodec_lite.utils.weights import save_model_dir
    from funcodec_lite.vocoders.hifigan import HiFiGANConfig, load_official_generator

    config = FoleyRunConfig.from_yaml(args.config)
    mel_config = recipe_front_end().config
    if args.official_checkpoint:
        if config.vocoder_kind != "hifigan":
            raise ConfigError(f"--official-checkpoint is a HiFi-GAN generator; this run's vocoder_kind is "
                              f"{config.vocoder_kind}")
        vocoder_config = (
            HiFiGANConfig.from_official(json.loads(Path(args.official_config).read_text()))
            if args.official_config
            else config.vocoder_config()
        )
        check_vocoder(
            mel_config, vocoder_config.hop_length, vocoder_config.num_mels, str(args.official_checkpoint)
        )
        model = load_official_generator(args.official_checkpoint, vocoder_config)
        # a checkpoint saved after remove_weight_norm loads folded; stage 6 rebuilds a weight-normed
        # generator and loads strictly, so save the weight-normed layout (same function)
        model.restore_weight_norm()
        save_model_dir(args.vocoder_exp / "model", model, {"imported_from": str(args.official_checkpoint)})
        print(f"imported {args.official_checkpoint} -> {args.vocoder_exp / 'model'}")
        return
    vocoder_config = config.vocoder_config()
    check_vocoder(mel_config, build_vocoder(config.vocoder_kind, vocoder_config).hop_length,
                  vocoder_config.num_mels, f"vocoder {config.vocoder_kind} {config.vocoder}")
    train = _features(args, "train")
    clips = {c.utt_id: c for c in read_foley_data_dir(args.data / "train")}
    wavs = load_clips([clips[u].path for u in train.utt_ids], mel_config)
    provenance = {"data": str(args.features / "train.npz"), "clips": len(wavs)}
    teacher = None
    if config.vocoder_kind == "student":  # its WaveNet teacher first, in the student's keyed directory
        teacher = train_any_vocoder("wavenet", config.teacher_config(), train.mels, wavs,
                                    config.vocoder_train, args.vocoder_exp / "teacher", resume=args.resume,
                                    provenance=provenance)
    model = train_any_vocoder(config.vocoder_kind, vocoder_config, train.mels, wavs, config.vocoder_train,
                              args.vocoder_exp, config.vocoder_loss, resume=args.resume,
                              provenance=provenance, teacher=teacher)
    write_json(args.vocoder_exp / "info.json", {"kind": config.vocoder_kind,
                                                "parameters": count_parameters(model)})


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keyed_model_dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    """(vocoder dir, classifier dir) under ``exp/`` (the parent of ``--exp``), keyed by settings and data.

    ``exp/vocoder_<preset>_<hash>`` and ``exp/classifier_<hash>`` hash the model's settings and the
    content of the training features (`FoleyFeatures.digest`), so a run never reuses a model trained
    on other data or with other settings; an imported official vocoder is keyed by the checkpoint's and
    its config's bytes instead (``exp/vocoder_official_<hash>``).
    """
    if args.config is None or args.exp is None:
        raise ValueError("give --config and --exp (the model directories are keyed by the run's settings)")
    config = FoleyRunConfig.from_yaml(args.config)
    root = args.exp.parent
    data_key = _features(args, "train").digest()
    if args.official_checkpoint:
        files = [args.official_checkpoint, *([args.official_config] if args.official_config else [])]
        key = hashlib.sha256("".join(file_digest(f) for f in files).encode()).hexdigest()[:8]
        vocoder = root / f"vocoder_official_{key}"
    else:
        vocoder = root / config.vocoder_name(data_key)
    return vocoder, root / config.classifier_name(data_key)


def stage_dirs(args: argparse.Namespace) -> None:
    """Not a stage: prints the keyed vocoder and classifier directories and the run's path ("mel" or
    "codec"), one a line, for run.sh."""
    vocoder, classifier = keyed_model_dirs(args)
    print(f"{vocoder}\n{classifier}\n{FoleyRunConfig.from_yaml(args.config).path}")


STAGES = {
    "data": stage_data,
    "features": stage_features,
    "vqvae": stage_vqvae,
    "codes": stage_codes,
    "prior": stage_prior,
    "vocoder": stage_vocoder,
}
KEYED_STAGES = ("vocoder", "generate", "evaluate", "plot")  # read --vocoder-exp / --classifier-exp
CODEC_PATH_STAGES = ("codec", "tokens", "token_prior", "generate_codec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m funcodec_lite.foley.recipe", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "stage",
        choices=[*STAGES, "generate", "evaluate", "plot", "dirs", *CODEC_PATH_STAGES],
        help="a stage, or dirs: print the keyed vocoder and classifier directories; codec, tokens, "
        "token_prior and generate_codec are the codec-token path's (funcodec_lite.foley.codec_path)",
    )
    parser.add_argument("--config", type=Path, help="conf/<run>.yaml")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--features", type=Path, default=Path("exp/features"))
    parser.add_argument("--exp", type=Path, help="exp/<run>")
    parser.add_argument(
        "--vocoder-exp", type=Path, help="default: exp/vocoder_<preset>_<hash of its settings and data>"
    )
    parser.add_argument(
        "--classifier-exp", type=Path, help="default: exp/classifier_<hash of its settings and data>"
    )
    parser.add_argument("--dev-root", type=Path, help="DCASEFoleySoundSynthesisDevSet folder")
    parser.add_argument("--eval-root", type=Path, help="evaluation set folder (<Class>/*.wav)")
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--official-checkpoint", help="official HiFi-GAN g_XXXXXXXX to import instead of training"
    )
    parser.add_argument("--official-config", help="its config.json (default: the run's vocoder preset)")
    parser.add_argument("--vggish", help="VGGish weights (.pth/.safetensors) for challenge-style FAD")
    parser.add_argument("--resume", action="store_true",
                        help="training stages: continue from the newest checkpoint of the stage's exp dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from funcodec_lite.foley import codec_path, evaluation, generation, report

    stages = {
        **codec_path.STAGES,
        **STAGES,
        "generate": generation.stage_generate,
        "evaluate": evaluation.stage_evaluate,
        "plot": report.stage_plot,
        "dirs": stage_dirs,
    }
    try:
        if args.stage in KEYED_STAGES and (args.vocoder_exp is None or args.classifier_exp is None):
            vocoder, classifier = keyed_model_dirs(args)
            args.vocoder_exp = args.vocoder_exp or vocoder
            args.classifier_exp = args.classifier_exp or classifier
        stages[args.stage](args)
    except (ConfigError, DataDirError, FoleyDataError, FileNotFoundError, ValueError) as error:
        if args.debug:
            raise
        print(f"{args.stage}: " + " ".join(str(error).split()), file=sys.stderr)  # one line
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
