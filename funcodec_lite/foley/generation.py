"""Stages 6-8 of the Foley recipe: generate clips per class, evaluate them (FAD, class accuracy), plot."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.foley.classifier import FoleyClassifier, accuracy, embed_features, train_classifier
from funcodec_lite.foley.data import CHALLENGE_FOLDERS, FoleyFeatures, read_foley_data_dir
from funcodec_lite.foley.mel import FoleyMel, check_vocoder, fit_length, recipe_front_end
from funcodec_lite.foley.recipe_config import FoleyRunConfig
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.lm import PixelSNAIL, sample_incremental
from funcodec_lite.metrics.fad import fad_matrix
from funcodec_lite.metrics.vggish import embed_wav_files, load_vggish_weights
from funcodec_lite.utils.atomic import atomic_path
from funcodec_lite.utils.weights import load_model_dir, save_model_dir
from funcodec_lite.vocoders.hifigan_training import load_vocoder


def output_folder(class_name: str) -> str:
    """The challenge's folder for a class (the class name itself for classes outside the challenge)."""
    return CHALLENGE_FOLDERS.get(class_name, class_name)


def load_prior(directory: Path) -> PixelSNAIL:
    """A PixelSNAIL model directory, in eval mode."""
    return load_model_dir(directory, PixelSNAIL.model_kind)


@torch.no_grad()
def stage_generate(args: argparse.Namespace) -> None:
    """6: ``clips_per_class`` clips per class: sample code maps, decode mels, vocode, write 16-bit wavs.

    The clips have the mel front end's rate and length (`recipe_front_end`: 22,050 Hz, 88,200 samples).

    Raises:
        ValueError: the vocoder's hop or input bands differ from the mel front end's.
    """
    config = FoleyRunConfig.from_yaml(args.config).generate
    mel_config = recipe_front_end().config
    # one position per step is too little work to split across threads: extra CPU threads only add
    # synchronisation (3-10x slower sampling measured on 2 busy cores)
    torch.set_num_threads(1)
    with np.load(args.exp / "codes" / "train.npz", allow_pickle=False) as archive:
        class_names = archive["class_names"].tolist()
    prior, vqvae = (
        load_prior(args.exp / "prior" / "model"),
        MelVQVAE.from_pretrained(args.exp / "vqvae" / "model"),
    )
    vocoder = load_vocoder(args.vocoder_exp / "model")
    check_vocoder(mel_config, vocoder.hop_length, vocoder.config.num_mels, str(args.vocoder_exp))
    out_root = args.exp / "generated"
    generator = torch.Generator().manual_seed(config.seed)
    timing = {"sample": 0.0, "decode": 0.0, "vocode": 0.0}
    for label, name in enumerate(class_names):
        folder = out_root / output_folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, config.clips_per_class, config.batch_size):
            count = min(config.batch_size, config.clips_per_class - start)
            t0 = time.perf_counter()
            maps = sample_incremental(prior, torch.full((count,), label), generator, config.temperature)
            t1 = time.perf_counter()
            mels = vqvae.decode_codes(maps).reshape(count, vqvae.config.n_mels, vqvae.config.n_frames)
            t2 = time.perf_counter()
            wavs = vocoder(mels)[:, 0]
            timing["sample"] += t1 - t0
            timing["decode"] += t2 - t1
            timing["vocode"] += time.perf_counter() - t2
            wavs = fit_length(wavs, mel_config.num_samples)  # 344 frames x 256 = 88,064 samples, padded
            for k, wav in enumerate(wavs):
                save_audio(folder / f"{start + k:03d}.wav", wav, mel_config.sample_rate, "PCM_16")
        print(f"{name}: {config.clips_per_class} clips -> {folder}")
    _write_json(args.exp / "generated" / "timing.json", timing)


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def generated_files(exp: Path, class_names: list[str]) -> dict[str, list[Path]]:
    """Class -> its generated wavs (sorted)."""
    files = {name: sorted((exp / "generated" / output_folder(name)).glob("*.wav")) for name in class_names}
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise FileNotFoundError(f"{exp / 'generated'}: no clips for {empty}; run stage 6 first")
    return files


def _mels_of(paths: list[Path], mel: FoleyMel) -> torch.Tensor:
    wavs = torch.stack([load_audio(p, mel.config.sample_rate, channels=1)[0][0] for p in paths])
    return torch.cat([mel(wavs[i : i + 32]) for i in range(0, len(wavs), 32)])


def _classifier(args: argparse.Namespace, config: FoleyRunConfig, train: FoleyFeatures) -> FoleyClassifier:
    """The recipe's classifier, trained on the real training clips once and reused by every run with the
    same classifier settings and training data (``--classifier-exp`` defaults to a directory keyed by
    both, see `funcodec_lite.foley.recipe.keyed_model_dirs`)."""
    directory = args.classifier_exp / "model"
    if (directory / "model.safetensors").is_file():
        return load_model_dir(directory, FoleyClassifier.model_kind)
    classifier_config = dataclasses.replace(config.classifier, num_classes=len(train.class_names))
    with torch.enable_grad():  # stage_evaluate runs under no_grad
        model = train_classifier(train.mels, train.labels, classifier_config, seed=0,
                                 provenance={"data": str(args.features / "train.npz"),
                                             "clips": len(train.utt_ids)})
    save_model_dir(directory, model, {"data": str(args.features / "train.npz"), "clips": len(train.utt_ids)})
    return model


@torch.no_grad()
def stage_evaluate(args: argparse.Namespace) -> None:
    """7: FAD per class (generated vs real evaluation clips) and the classifier's accuracy on generations.

    Without an eval split (no ``--eval-root`` at stage 0) the real reference is the valid split (held
    out of every model's training, but a tenth of the dev set): a line says so, and fad.json
    (``"reference": "valid"``, ``"reference_note"``) and fad.md record it.
    """
    config = FoleyRunConfig.from_yaml(args.config)
    train = FoleyFeatures.load(args.features / "train.npz")
    reference_split = "eval" if (args.features / "eval.npz").is_file() else "valid"
    note = None
    if reference_split == "valid":
        note = (f"no eval split ({args.features / 'eval.npz'}): FAD and held-out accuracy use the valid "
                "split (dev-set clips held out of training), not the challenge's evaluation set")
        print(f"evaluate: {note}")
    reference = FoleyFeatures.load(args.features / f"{reference_split}.npz")
    names = train.class_names
    classifier = _classifier(args, config, train)
    files = generated_files(args.exp, names)
    mel = recipe_front_end()
    generated = {name: _mels_of(files[name], mel) for name in names}
    held_out = accuracy(classifier, reference.mels, reference.labels)
    # the same real clips through the autoencoder (encode, decode): what the prior can at best reproduce
    autoencoder = MelVQVAE.from_pretrained(args.exp / "vqvae" / "model")
    reconstructed = torch.cat([
        autoencoder.decode_codes(autoencoder.encode(reference.mels[i : i + 32, None])).flatten(1, 2)
        for i in range(0, len(reference.mels), 32)
    ])
    per_class_reconstructed = {
        name: accuracy(classifier, reconstructed[mask], reference.labels[mask])
        for i, name in enumerate(names)
        for mask in [reference.labels == i]
    }
    per_class_acc = {
        name: accuracy(classifier, generated[name], torch.full((len(files[name]),), i))
        for i, name in enumerate(names)
    }
    if args.vggish:
        model = load_vggish_weights(args.vggish)
        real_clips = {c.utt_id: c.path for c in read_foley_data_dir(args.data / reference_split)}
        real = {
            name: embed_wav_files(
                model,
                [
                    real_clips[u]
                    for u, label in zip(reference.utt_ids, reference.labels.tolist())
                    if label == i
                ],
            )
            for i, name in enumerate(names)
        }
        fake = {name: embed_wav_files(model, files[name]) for name in names}
        embedding = "VGGish (official evaluator conventions)"
    else:
        real = {
            name: embed_features(classifier, reference.mels[reference.labels == i]).double().numpy()
            for i, name in enumerate(names)
        }
        fake = {name: embed_features(classifier, generated[name]).double().numpy() for name in names}
        embedding = "the recipe's classifier (NOT comparable with challenge FAD)"
    matrix = fad_matrix(real, fake)
    matched = matrix.matched_is_nearest()
    report = {
        "embedding": embedding,
        "reference": reference_split,
        **({"reference_note": note} if note else {}),
        "fad": {name: matrix.get(name, name) for name in names},
        "fad_average": float(np.mean([matrix.get(name, name) for name in names])),
        "matched_is_nearest": matched,
        "classes_matched": int(sum(matched.values())),
        "classifier_accuracy_generated": per_class_acc,
        "classifier_accuracy_generated_mean": float(np.mean(list(per_class_acc.values()))),
        "classifier_accuracy_real_heldout": held_out,
        "classifier_accuracy_reconstructed": per_class_reconstructed,
        "fad_matrix": matrix.values.tolist(),
    }
    _write_json(args.exp / "fad.json", report)
    write_fad_table(args.exp / "fad.md", report, names)
    print((args.exp / "fad.md").read_text())


def write_fad_table(path: Path, report: dict, names: list[str]) -> None:
    """Markdown: per-class FAD, the nearest-class check and classifier accuracy, then the FAD matrix."""
    lines = [
        f"FAD embedding: {report['embedding']}; reference: real {report['reference']} clips.",
        *([f"Note: {report['reference_note']}."] if report.get("reference_note") else []),
        "",
        "| class | FAD | nearest real class is its own | classifier accuracy "
        "| accuracy on autoencoded real clips |",
        "|---|---|---|---|---|",
    ]
    recon = report["classifier_accuracy_reconstructed"]
    for name in names:
        lines.append(
            f"| {name} | {report['fad'][name]:.3f} | {'yes' if report['matched_is_nearest'][name] else 'no'}"
            f" | {report['classifier_accuracy_generated'][name]:.2f} | {recon[name]:.2f} |"
        )
    lines.append(
        f"| **average** | **{report['fad_average']:.3f}** | {report['classes_matched']}/{len(names)} | "
        f"{report['classifier_accuracy_generated_mean']:.2f} | {float(np.mean(list(recon.values()))):.2f} |"
    )
    lines += [
        "",
        f"Classifier accuracy on real held-out clips: {report['classifier_accuracy_real_heldout']:.2f}",
        "",
        "FAD(generated row, real column):",
        "",
        "| generated \\ real | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for name, row in zip(names, report["fad_matrix"]):
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def stage_plot(args: argparse.Namespace) -> None:
    """8: a grid of log-mel spectrograms, one row per class, ``columns`` generated clips per row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with np.load(args.exp / "codes" / "train.npz", allow_pickle=False) as archive:
        names = archive["class_names"].tolist()
    files = generated_files(args.exp, names)
    columns, mel = 4, recipe_front_end()
    figure = Figure(figsize=(3 * columns, 1.6 * len(names)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(names), columns, squeeze=False)
    for row, name in enumerate(names):
        mels = _mels_of(files[name][:columns], mel)
        for col in range(columns):
            ax = axes[row][col]
            if col < len(mels):
                ax.imshow(
                    mels[col].numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=2.0, cmap="magma"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    figure.tight_layout()
    path = args.exp / "plots" / "generated_mels.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    print(f"wrote {path}")
