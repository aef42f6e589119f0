"""The vocoder family side by side: same data, same CPU budget per model, speed and quality of each.

Every kind's ``tiny`` preset (the student: distilled from a ``tiny_gaussian`` WaveNet teacher that gets the
same budget first; Griffin-Lim trains nothing) is trained on the Foley recipe's training clips for
``--minutes`` of wall time, one after the other in one process. Then, for each: parameters, training
minutes and steps, synthesis real-time factor (seconds of compute per second of audio, lower is faster) with
1 thread and with all threads, the log-mel L1 distance of resynthesized held-out clips to the real ones, and
the recipe's classifier accuracy on those resynthesized clips (the real clips' accuracy is printed too).

Needs the Foley recipe's stages 0-1 (data, features) and a classifier dir (stage 7 writes one):
    cd egs/dcase_foley && ./run.sh --stop-stage 1 && cd -
    OMP_NUM_THREADS=2 python tools/bench/bench_vocoders.py --minutes 4 --json exp_vocoders.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from funcodec_lite import load_model_dir
from funcodec_lite.audio.mel_frontend import recipe_front_end
from funcodec_lite.foley.classifier import accuracy
from funcodec_lite.foley.data import FoleyFeatures, load_clips, read_foley_data_dir
from funcodec_lite.foley.generator import remove_dc
from funcodec_lite.utils.profile import count_parameters
from funcodec_lite.utils.weights import read_provenance
from funcodec_lite.vocoders.training import load_any_vocoder, loop_config, train_any_vocoder, vocoder_config

KINDS = ("griffinlim", "hifigan", "wavenet", "waveglow", "flowavenet", "student")
BATCH = {"hifigan": 4, "wavenet": 4, "waveglow": 4, "flowavenet": 4, "student": 2}


def train_kind(kind: str, mels: torch.Tensor, wavs: torch.Tensor, minutes: float, exp: Path,
               teacher: torch.nn.Module | None = None) -> torch.nn.Module:
    """The kind's tiny preset trained for ``minutes`` (Griffin-Lim: written as it is)."""
    preset = "default" if kind == "griffinlim" else "tiny_gaussian" if kind == "teacher" else "tiny"
    model_kind = "wavenet" if kind == "teacher" else kind
    loop = None
    if model_kind != "griffinlim":
        settings = {"steps": 10**7, "max_minutes": minutes, "batch_size": BATCH.get(model_kind, 4),
                    "log_every": 50, "checkpoint_every": 10**7}
        if model_kind == "hifigan":  # HiFi-GAN's tiny run of the Foley recipe (its 1 s segments)
            settings.update(segment_frames=32, lr=1e-3)
        loop = loop_config(model_kind, settings)
    loss = None
    if model_kind == "hifigan":
        from funcodec_lite.utils.config import build_dataclass
        from funcodec_lite.vocoders.hifigan_loss import HiFiGANLossConfig

        loss = build_dataclass(HiFiGANLossConfig, {"discriminator": {  # conf/tiny_vq.yaml's
            "kinds": ["mpd", "msd"], "mpd": {"periods": [2, 3, 5], "channels": [8, 16, 16, 16, 16]},
            "msd": {"scales": 1, "channels": [8, 16, 16, 32, 32, 32, 32], "groups": [1, 4, 4, 4, 4, 4, 1]}}},
            "loss")
    return train_any_vocoder(model_kind, vocoder_config(model_kind, preset), mels, wavs, loop, exp / kind,
                             loss, teacher=teacher)


def synthesize(model: torch.nn.Module, mels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """[N, n_mels, F] -> [N, F·hop] (DC removed, clipped), one clip batch at a time."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = [model.synthesize(mels[i:i + 8], generator=generator)[:, 0] for i in range(0, len(mels), 8)]
    return remove_dc(torch.cat(out), 22050).clamp(-1, 1)


def real_time_factor(model: torch.nn.Module, mel: torch.Tensor, threads: int) -> float:
    """Seconds of compute per second of audio for one clip [1, n_mels, F], at ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        synthesize(model, mel[:, :, :8])  # warm-up
        start = time.perf_counter()
        synthesize(model, mel)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return seconds / (mel.shape[-1] * 256 / 22050)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=Path("egs/dcase_foley"))
    parser.add_argument("--classifier", type=Path, help="classifier model dir (default: the recipe's newest)")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--clips-per-class", type=int, default=2, help="held-out clips resynthesized")
    parser.add_argument("--rtf-seconds", type=float, default=1.0, help="audio length of the RTF measurement")
    parser.add_argument("--exp", type=Path, default=Path("exp_vocoders"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reuse", action="store_true",
                        help="load each kind's model from --exp when it is there instead of training it "
                             "(e.g. to measure the real-time factors again with other thread counts)")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    mel_config = recipe_front_end().config
    features = args.recipe / "exp" / "features"
    train = FoleyFeatures.load(features / "train.npz")
    clips = {c.utt_id: c.path for c in read_foley_data_dir(args.recipe / "data" / "train")}
    wavs = load_clips([clips[u] for u in train.utt_ids], mel_config)
    held_split = "eval" if (features / "eval.npz").is_file() else "valid"
    held = FoleyFeatures.load(features / f"{held_split}.npz")
    picks = [i for c in range(len(held.class_names))
             for i in (held.labels == c).nonzero()[:, 0][: args.clips_per_class].tolist()]
    held_mels, held_labels = held.mels[picks], held.labels[picks]
    classifier_dir = args.classifier or max((args.recipe / "exp").glob("classifier_*/model"),
                                            key=lambda p: p.stat().st_mtime)
    classifier = load_model_dir(classifier_dir, "foley_classifier")
    mel = recipe_front_end()
    frames = round(args.rtf_seconds * 22050 / 256)
    rows = []
    teacher = None
    for kind in args.kinds:
        torch.manual_seed(0)
        minutes = 0.0
        if kind == "student":
            reused = args.reuse and (args.exp / "teacher" / "model" / "config.yaml").is_file()
            teacher = (load_any_vocoder(args.exp / "teacher" / "model") if reused
                       else train_kind("teacher", train.mels, wavs, args.minutes, args.exp))
            minutes += read_provenance(args.exp / "teacher" / "model")["train_minutes"]
        if args.reuse and (args.exp / kind / "model" / "config.yaml").is_file():
            model = load_any_vocoder(args.exp / kind / "model")
        else:
            model = train_kind(kind, train.mels, wavs, args.minutes, args.exp, teacher).eval()
        provenance = read_provenance(args.exp / kind / "model")
        minutes += provenance.get("train_minutes", 0.0)
        if hasattr(model, "remove_weight_norm"):
            model.remove_weight_norm()
        resynth = synthesize(model, held_mels)
        resynth_mels = mel(resynth)
        row = {
            "kind": kind, "parameters": count_parameters(model), "train_minutes": round(minutes, 2),
            "steps": provenance.get("steps", 0),
            "rtf_1_thread": round(real_time_factor(model, held_mels[:1, :, :frames], 1), 4),
            f"rtf_{threads}_threads": round(real_time_factor(model, held_mels[:1, :, :frames], threads), 4),
            "mel_l1": round(float((resynth_mels - held_mels).abs().mean()), 4),
            "accuracy": round(accuracy(classifier, resynth_mels, held_labels), 3),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    real_accuracy = accuracy(classifier, held_mels, held_labels)
    print(f"\nheld-out: {len(picks)} {held_split} clips; classifier accuracy on the real clips "
          f"{real_accuracy:.3f}; training budget {args.minutes} min per model; {threads} threads\n")
    print(f"| vocoder | parameters | train min (steps) | RTF 1 thread | RTF {threads} threads | mel L1 "
          "| accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['parameters']:,} | {r['train_minutes']} ({r['steps']}) | "
              f"{r['rtf_1_thread']} | {r[f'rtf_{threads}_threads']} | {r['mel_l1']} | {r['accuracy']} |")
    if args.json:
        summary = {"rows": rows, "real_accuracy": real_accuracy, "minutes": args.minutes, "threads": threads,
                   "held_out": held_split}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
