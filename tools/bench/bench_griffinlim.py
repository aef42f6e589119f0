"""Griffin-Lim settings side by side on real held-out Foley clips, judged by the waveform judge.

Each variant resynthesises the real evaluation clips' log-mels (no autoencoder, no prior: the vocoder
alone). Per variant: seconds, the waveform judge's accuracy (`funcodec_lite.metrics.waveform_judge`, fitted
on the real training clips), the per-class median loudness gap to the real clips (LUFS) and the log-mel L1.
Two references bound it: the real clips, and the real clips low-passed at the mel's 8 kHz (what a perfect
vocoder of this mel without the band above 8 kHz could do at best).

With ``--autoencoder exp/<run>/vqvae/model`` a last row resynthesises the clips after a round trip through a
trained mel VQ-VAE (wideband Griffin-Lim): the level and judge accuracy the autoencoder costs.

Needs the Foley recipe's stages 0-1 (data, features):
    cd egs/dcase_foley && ./run.sh --stop-stage 1 && cd -
    OMP_NUM_THREADS=1 python tools/bench/bench_griffinlim.py --clips-per-class 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from funcodec_lite.audio.io import load_audio
from funcodec_lite.audio.mel_frontend import recipe_front_end
from funcodec_lite.foley.data import read_foley_data_dir
from funcodec_lite.foley.generator import remove_dc
from funcodec_lite.metrics.waveform_judge import batch_features, fit_judge
from funcodec_lite.recipes.dcase_foley.judging import level_stats
from funcodec_lite.vocoders.griffinlim import GriffinLimConfig, GriffinLimVocoder, fit_griffinlim_high_band

SR = 22050
VARIANTS = {  # name -> config (the recipe's default preset is the first)
    "32 iterations, momentum 0.99 (preset default)": GriffinLimConfig(),
    "32 iterations, momentum 0 (classic)": GriffinLimConfig(momentum=0.0),
    "64 iterations, momentum 0.99": GriffinLimConfig(n_iter=64),
    "32 iterations + band above 8 kHz (preset wideband)": GriffinLimConfig(high_band=True),
}


def load_split(recipe: Path, split: str,
               per_class: int | None = None) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Clips [N, T] of a data dir (the first ``per_class`` of each class), labels [N], class names."""
    clips = read_foley_data_dir(recipe / "data" / split)
    names = sorted({c.class_name for c in clips})
    if per_class:
        clips = [c for name in names for c in [x for x in clips if x.class_name == name][:per_class]]
    wavs = torch.stack([load_audio(c.path, SR, channels=1)[0][0] for c in clips])
    return wavs, np.array([names.index(c.class_name) for c in clips]), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=Path("egs/dcase_foley"))
    parser.add_argument("--clips-per-class", type=int, default=8, help="held-out clips resynthesised")
    parser.add_argument("--autoencoder", type=Path, help="a mel VQ-VAE model dir: adds its round trip")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, train_labels, names = load_split(args.recipe, "train")
    wavs, labels, _ = load_split(args.recipe, "eval", args.clips_per_class)
    judge = fit_judge(batch_features(train.double().numpy()), train_labels, len(names))
    mel = recipe_front_end()
    mels = mel(wavs)
    real_levels = [level_stats(wavs[labels == k], SR)["lufs_median"] for k in range(len(names))]
    rows = {}

    def measure(name: str, audio: torch.Tensor, seconds: float) -> None:
        audio = remove_dc(audio, SR).clamp(-1, 1)
        predicted = judge.predict(batch_features(audio.double().numpy()))
        accuracy = {n: float(np.mean(predicted[labels == k] == k)) for k, n in enumerate(names)}
        gaps = {n: level_stats(audio[labels == k], SR)["lufs_median"] - real_levels[k]
                for k, n in enumerate(names)}
        rows[name] = {"seconds": seconds, "judge_accuracy": accuracy,
                      "judge_mean": float(np.mean(list(accuracy.values()))), "loudness_gap_db": gaps,
                      "mel_l1": float((mel(audio) - mels).abs().mean())}
        print(f"{name}: {seconds:.1f} s, judge {rows[name]['judge_mean']:.2f}, "
              f"mel L1 {rows[name]['mel_l1']:.3f}", flush=True)

    measure("real clips", wavs, 0.0)
    spectrum = torch.stft(wavs, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    spectrum[:, 372:] = 0  # the bins above the mel's fmax
    lowpassed = torch.istft(spectrum, 1024, 256, window=torch.hann_window(1024), length=wavs.shape[-1])
    measure("real clips low-passed at 8 kHz", lowpassed, 0.0)
    for name, config in VARIANTS.items():
        vocoder = GriffinLimVocoder(config)
        start = time.perf_counter()
        if config.high_band:
            fit_griffinlim_high_band(vocoder, mel(train), train)
            wideband = vocoder
        with torch.no_grad():
            audio = vocoder.synthesize(mels, generator=torch.Generator().manual_seed(0))[:, 0]
        measure(name, audio, time.perf_counter() - start)
    if args.autoencoder:
        from funcodec_lite.foley.vqvae import MelVQVAE

        autoencoder = MelVQVAE.from_pretrained(args.autoencoder)
        start = time.perf_counter()
        with torch.no_grad():
            decoded = autoencoder.decode_codes(autoencoder.encode(mels[:, None])).flatten(1, 2)
            audio = wideband.synthesize(decoded, generator=torch.Generator().manual_seed(0))[:, 0]
        measure("mel VQ-VAE round trip + wideband", audio, time.perf_counter() - start)
    header = ("| variant | seconds | judge accuracy | " + " | ".join(names)
              + " | loudness gap (dB) per class | mel L1 |")
    lines = [header, "|---" * (len(names) + 5) + "|"]
    for name, row in rows.items():
        gaps = " ".join(f"{row['loudness_gap_db'][n]:+.1f}" for n in names)
        accuracies = " | ".join(f"{row['judge_accuracy'][n]:.2f}" for n in names)
        lines.append(f"| {name} | {row['seconds']:.0f} | {row['judge_mean']:.2f} | {accuracies} | {gaps} "
                     f"| {row['mel_l1']:.3f} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
