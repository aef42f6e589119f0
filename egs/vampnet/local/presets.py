"""Recipe stage 4: VampNet's demo presets and token-domain compression on held-out clips.

For each clip and preset: the mask (funcodec_lite/lm/prompts.py), the vamped audio (coarse + c2f models),
the bitrate the mask keeps, the mel distance to the clip, the share of prompt tokens reproduced exactly,
and a "noisy tokens" baseline (masked tokens replaced by random codes, VampNet's baseline). Then the
compression table: the codec alone at 1, 2, 4, 8 codebooks against codec + vamp at the masks' bitrates.
Writes OUT/<preset>/<utt>.wav, OUT/<preset>.png (first clip), OUT/results.json and OUT/results.md.
"""

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import torch

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.audio.rhythm import detect_onsets, track_beats
from funcodec_lite.audio.spectral import mel_distance
from funcodec_lite.cli.vamp import load_masked_models
from funcodec_lite.lm.maskgit import MaskGITConfig
from funcodec_lite.lm.prompts import PRESETS, parse_mask_spec, times_to_frames
from funcodec_lite.lm.vamp import VampConfig, vamp
from funcodec_lite.metrics import save_spectrogram_png

DEMO = ["unconditional", "periodic-21", "periodic-17", "periodic-13", "periodic-5", "beat-driven",
        "inpaint-1s", "coarse-to-fine", "compress-4", "compress-4-p16", "compress-4-p32"]
EXTRA = {"upper-1": "upper:1", "upper-2": "upper:2"}

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--coarse", required=True)
parser.add_argument("--c2f", required=True)
parser.add_argument("--data", required=True, type=Path, help="held-out data dir (wav.scp)")
parser.add_argument("--clips", type=int, default=6)
parser.add_argument("--steps", type=int, default=24)
parser.add_argument("--mask-temperature", type=float, default=10.5)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True, type=Path)
args = parser.parse_args()
try:
    coarse, c2f, codec, _ = load_masked_models(args.coarse, args.c2f, None, torch.device("cpu"))
except ValueError as err:
    sys.exit(f"presets: error: {err}")
torch.set_num_threads(1)
scp = [line.split(maxsplit=1) for line in (args.data / "wav.scp").read_text().splitlines() if line.strip()]
bits = math.log2(codec.codebook_size)
config = VampConfig(window=500, overlap=100, c2f_window=150, c2f_overlap=30,
                    maskgit=MaskGITConfig(steps=args.steps, mask_temperature=args.mask_temperature))
specs = {name: PRESETS[name] for name in DEMO} | EXTRA
rows: dict[str, list[dict]] = defaultdict(list)
for index, (utt, path) in enumerate(scp[: args.clips]):
    wav, rate = load_audio(path, codec.sample_rate, channels=1)
    with torch.no_grad():
        codes = codec.encode(wav[None])[:, : c2f.config.n_q]  # [1, K, N]
    seconds = wav.shape[-1] / rate
    onsets = [times_to_frames(detect_onsets(wav[0], rate), codec.frame_rate)]
    beats = [times_to_frames(track_beats(wav[0], rate), codec.frame_rate)]
    for n_q in (1, 2, 4, 8):  # the codec alone
        with torch.no_grad():
            decoded = codec.decode(codes[:, :n_q], length=wav.shape[-1])[0]
        rows[f"codec n_q={n_q}"].append({"kbps": n_q * bits * codec.frame_rate / 1000,
                                         "mel": float(mel_distance(wav, decoded, rate))})
    for name, spec_text in specs.items():
        generator = torch.Generator().manual_seed(args.seed * 1000 + index)
        mask = parse_mask_spec(spec_text).build(1, codes.shape[1], codes.shape[-1], codec.frame_rate,
                                                generator, onsets, beats)
        out = vamp(coarse, c2f, codes, mask, config, generator=generator)
        random_codes = torch.randint(0, codec.codebook_size, codes.shape, generator=generator)
        noisy = torch.where(mask, random_codes, codes)
        with torch.no_grad():
            audio = codec.decode(out, length=wav.shape[-1])[0].clamp(-1, 1)
            noise_audio = codec.decode(noisy, length=wav.shape[-1])[0].clamp(-1, 1)
        kept = ~mask
        (args.out / name).mkdir(parents=True, exist_ok=True)
        save_audio(args.out / name / f"{utt}.wav", audio, rate)
        if index == 0:
            save_spectrogram_png(args.out / f"{name}.png", {"original": wav[0], name: audio[0]}, rate)
        rows[name].append({
            "kbps": float(kept.sum()) * bits / seconds / 1000,
            "mel": float(mel_distance(wav, audio, rate)),
            "mel_noisy_tokens": float(mel_distance(wav, noise_audio, rate)),
            "prompt_exact": float((out[kept] == codes[kept]).float().mean()) if kept.any() else 1.0,
            "generated": float(mask.float().mean()),
        })
    print(f"{utt}: done", flush=True)


def mean(name: str, key: str) -> float:
    values = [row[key] for row in rows[name] if key in row]
    return sum(values) / len(values) if values else float("nan")


summary = {name: {key: mean(name, key) for key in rows[name][0]} for name in rows}
args.out.mkdir(parents=True, exist_ok=True)
(args.out / "results.json").write_text(json.dumps({"clips": min(args.clips, len(scp)), "steps": args.steps,
                                                   "summary": summary, "per_clip": rows}, indent=1) + "\n")
lines = [f"{min(args.clips, len(scp))} held-out clips, {args.steps} MaskGIT steps, mask temperature "
         f"{args.mask_temperature}.", "",
         "| preset | mask | kept kbps | generated | mel distance | noisy-token baseline "
         "| prompt tokens kept |",
         "|---|---|---|---|---|---|---|"]
for name, spec_text in specs.items():
    s = summary[name]
    lines.append(f"| {name} | `{spec_text}` | {s['kbps']:.3f} | {s['generated']:.0%} | {s['mel']:.3f} | "
                 f"{s['mel_noisy_tokens']:.3f} | {s['prompt_exact']:.1%} |")
lines += ["", "Compression: bitrate -> mel distance, codec alone vs codec + vamp (and the noisy-token "
          "baseline).",
          "", "| system | kbps | mel distance |", "|---|---|---|"]
points = [(summary[f"codec n_q={n}"]["kbps"], f"codec alone, {n} codebooks",
           summary[f"codec n_q={n}"]["mel"]) for n in (1, 2, 4, 8)]
points += [(summary[n]["kbps"], f"codec + vamp, `{specs[n]}`", summary[n]["mel"])
           for n in ("coarse-to-fine", "upper-2", "upper-1", "compress-4", "compress-4-p16",
                     "compress-4-p32")]
points += [(summary[n]["kbps"], f"noisy tokens, `{specs[n]}`", summary[n]["mel_noisy_tokens"])
           for n in ("upper-1", "compress-4", "compress-4-p32")]
for kbps, label, mel in sorted(points, key=lambda p: -p[0]):
    lines.append(f"| {label} | {kbps:.3f} | {mel:.3f} |")
(args.out / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
