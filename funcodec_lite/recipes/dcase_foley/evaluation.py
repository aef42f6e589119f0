"""Stage 7 of the Foley recipe: FAD per class, classifier accuracy, autoencoded real clips, noise floors, and
the independent waveform judge with the clips' levels (`funcodec_lite.recipes.dcase_foley.judging`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.io import load_audio
from funcodec_lite.audio.mel_frontend import FoleyMel, recipe_front_end
from funcodec_lite.foley.classifier import FoleyClassifier, accuracy, embed_features, train_classifier
from funcodec_lite.foley.data import FoleyFeatures, output_folder, read_foley_data_dir
from funcodec_lite.foley.vqvae import MelVQVAE
from funcodec_lite.metrics.fad import fad_matrix
from funcodec_lite.metrics.vggish import embed_wav_files, load_vggish_weights
from funcodec_lite.recipes.dcase_foley.codec_path import reconstruct_clips
from funcodec_lite.recipes.dcase_foley.judging import judge_report, judge_table
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.atomic import atomic_path, write_json
from funcodec_lite.utils.weights import load_model_dir, save_model_dir

SILENCE_PERCENTILE = 10


def noise_floor_db(wavs: torch.Tensor) -> float:
    """The clips' noise floor: the median over clips [N, T] of the 10th percentile of |x|, in dBFS.

    Real Foley clips are silent between events (|x| ~ 1e-4, -80 dBFS on the toy data); a vocoder's DC offset
    or hiss shows here long before it moves FAD or accuracy.
    """
    floors = torch.quantile(wavs.abs().float(), SILENCE_PERCENTILE / 100, dim=-1)
    return float(20 * torch.log10(floors.median().clamp_min(1e-7)))


def _wavs_of(paths: list[Path], sample_rate: int) -> torch.Tensor:
    return torch.stack([load_audio(p, sample_rate, channels=1)[0][0] for p in paths])


def generated_files(exp: Path, class_names: list[str]) -> dict[str, list[Path]]:
    """Class -> its generated wavs (sorted)."""
    files = {name: sorted((exp / "generated" / output_folder(name)).glob("*.wav")) for name in class_names}
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise FileNotFoundError(f"{exp / 'generated'}: no clips for {empty}; run stage 6 first")
    return files


def _mels(wavs: torch.Tensor, mel: FoleyMel) -> torch.Tensor:
    return torch.cat([mel(wavs[i : i + 32]) for i in range(0, len(wavs), 32)])


def reconstructed_mels(run: FoleyRun, reference: FoleyFeatures, real_wavs: torch.Tensor,
                       mel: FoleyMel) -> torch.Tensor:
    """The real reference clips through the run's autoencoder (what the prior can at best reproduce):
    mel path: the mel VQ-VAE's encode/decode; codec path: the codec's, measured on the decoded audio."""
    if run.config.path == "codec":
        return _mels(reconstruct_clips(run, real_wavs), mel)
    autoencoder = MelVQVAE.from_pretrained(run.exp / "vqvae" / "model")
    return torch.cat([
        autoencoder.decode_codes(autoencoder.encode(reference.mels[i : i + 32, None])).flatten(1, 2)
        for i in range(0, len(reference.mels), 32)
    ])


def load_or_train_classifier(run: FoleyRun, train: FoleyFeatures) -> FoleyClassifier:
    """The recipe's classifier, trained on the real training clips once and reused by every run with the
    same classifier settings and training data (``--classifier-exp`` defaults to a directory keyed by
    both, `FoleyRun.classifier_exp`)."""
    directory = run.classifier_exp / "model"
    if (directory / "model.safetensors").is_file():
        return load_model_dir(directory, FoleyClassifier.model_kind)
    classifier_config = dataclasses.replace(run.config.classifier, num_classes=len(train.class_names))
    with torch.enable_grad():  # stage_evaluate runs under no_grad
        model = train_classifier(train.mels, train.labels, classifier_config, seed=0,
                                 provenance={"data": str(run.features / "train.npz"),
                                             "clips": len(train.utt_ids)})
    save_model_dir(directory, model, {"data": str(run.features / "train.npz"), "clips": len(train.utt_ids)})
    return model


@torch.no_grad()
def stage_evaluate(run: FoleyRun) -> None:
    """7: FAD per class (generated vs real evaluation clips) and the classifier's accuracy on generations.

    Without an eval split (no ``--eval-root`` at stage 0) the real reference is the valid split (held
    out of every model's training, but a tenth of the dev set): a line says so, and fad.json
    (``"reference": "valid"``, ``"reference_note"``) and fad.md record it.
    """
    train = run.load_features("train")
    reference_split = "eval" if (run.features / "eval.npz").is_file() else "valid"
    note = None
    if reference_split == "valid":
        note = (f"no eval split ({run.features / 'eval.npz'}): FAD and held-out accuracy use the valid "
                "split (dev-set clips held out of training), not the challenge's evaluation set")
        print(f"evaluate: {note}")
    reference = run.load_features(reference_split)
    names = train.class_names
    classifier = load_or_train_classifier(run, train)
    files = generated_files(run.exp, names)
    mel = recipe_front_end()
    real_clips = {c.utt_id: c.path for c in read_foley_data_dir(run.data / reference_split)}
    real_wavs = _wavs_of([real_clips[u] for u in reference.utt_ids], mel.config.sample_rate)
    generated_wavs = {name: _wavs_of(files[name], mel.config.sample_rate) for name in names}
    generated = {name: _mels(generated_wavs[name], mel) for name in names}
    noise_floor = {name: {"real": noise_floor_db(real_wavs[reference.labels == i]),
                          "generated": noise_floor_db(generated_wavs[name])} for i, name in enumerate(names)}
    held_out = accuracy(classifier, reference.mels, reference.labels)
    reconstructed = reconstructed_mels(run, reference, real_wavs, mel)
    per_class_reconstructed = {
        name: accuracy(classifier, reconstructed[mask], reference.labels[mask])
        for i, name in enumerate(names)
        for mask in [reference.labels == i]
    }
    per_class_acc = {
        name: accuracy(classifier, generated[name], torch.full((len(files[name]),), i))
        for i, name in enumerate(names)
    }
    if run.vggish:
        model = load_vggish_weights(run.vggish)
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
    train_clips = {c.utt_id: c.path for c in read_foley_data_dir(run.data / "train")}
    judge = judge_report(_wavs_of([train_clips[u] for u in train.utt_ids], mel.config.sample_rate),
                         train.labels, real_wavs, reference.labels, generated_wavs, mel.config.sample_rate)
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
        "noise_floor_db": noise_floor,
        "fad_matrix": matrix.values.tolist(),
        "waveform_judge": judge,
    }
    write_json(run.exp / "fad.json", report)
    write_fad_table(run.exp / "fad.md", report, names)
    print((run.exp / "fad.md").read_text())


def write_fad_table(path: Path, report: dict, names: list[str]) -> None:
    """Markdown: per-class FAD, the nearest-class check, classifier accuracy, noise floors; the waveform
    judge and the levels (`judge_table`, when the report has them); then the FAD matrix. The noise floor is
    `noise_floor_db`, for the generated clips and the real reference clips."""
    lines = [
        f"FAD embedding: {report['embedding']}; reference: real {report['reference']} clips.",
        *([f"Note: {report['reference_note']}."] if report.get("reference_note") else []),
        "",
        "| class | FAD | nearest real class is its own | classifier accuracy "
        "| accuracy on autoencoded real clips | noise floor generated / real (dBFS) |",
        "|---|---|---|---|---|---|",
    ]
    recon, floor = report["classifier_accuracy_reconstructed"], report["noise_floor_db"]
    for name in names:
        lines.append(
            f"| {name} | {report['fad'][name]:.3f} | {'yes' if report['matched_is_nearest'][name] else 'no'}"
            f" | {report['classifier_accuracy_generated'][name]:.2f} | {recon[name]:.2f} "
            f"| {floor[name]['generated']:.1f} / {floor[name]['real']:.1f} |"
        )
    lines.append(
        f"| **average** | **{report['fad_average']:.3f}** | {report['classes_matched']}/{len(names)} | "
        f"{report['classifier_accuracy_generated_mean']:.2f} | {float(np.mean(list(recon.values()))):.2f} | |"
    )
    lines += [
        "",
        f"Classifier accuracy on real held-out clips: {report['classifier_accuracy_real_heldout']:.2f}",
        "",
        *([*judge_table(report["waveform_judge"], names), ""] if "waveform_judge" in report else []),
        "FAD(generated row, real column):",
        "",
        "| generated \\ real | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for name, row in zip(names, report["fad_matrix"]):
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


