"""Stage 4 of the VampNet recipe: VampNet's demo presets and token-domain compression on held-out clips.

For each clip and preset: the mask (`funcodec_lite.lm.prompts`), the vamped audio (coarse + c2f models),
the bitrate the mask keeps, the mel distance to the clip, the share of prompt tokens reproduced exactly,
and a "noisy tokens" baseline (masked tokens replaced by random codes, VampNet's baseline). Then the
compression table: the codec alone at 1, 2, 4, 8 codebooks against codec + vamp at the masks' bitrates.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import torch

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.audio.rhythm import detect_onsets, track_beats
from funcodec_lite.audio.spectral import mel_distance
from funcodec_lite.data.kaldi import read_scp
from funcodec_lite.lm.mask_spec import PRESETS, parse_mask_spec
from funcodec_lite.lm.maskgit import MaskGITConfig
from funcodec_lite.lm.prompts import times_to_frames
from funcodec_lite.lm.vamp import VampConfig, load_masked_models, vamp
from funcodec_lite.metrics import save_spectrogram_png

DEMO = ["unconditional", "periodic-21", "periodic-17", "periodic-13", "periodic-5", "beat-driven",
        "inpaint-1s", "coarse-to-fine", "compress-4", "compress-4-p16", "compress-4-p32"]
EXTRA = {"upper-1": "upper:1", "upper-2": "upper:2"}
CODEC_N_Q = (1, 2, 4, 8)  # the codec alone, for the compression table
SPECS = {name: PRESETS[name] for name in DEMO} | EXTRA


def stage_presets(coarse_dir: Path, c2f_dir: Path, data: Path, out: Path, clips: int = 6, steps: int = 24,
                  mask_temperature: float = 10.5, seed: int = 0) -> dict:
    """Runs every preset on the first ``clips`` utterances of ``data/wav.scp``; writes
    ``out/<preset>/<utt>.wav``, ``out/<preset>.png`` (the first clip), ``out/results.json`` and
    ``out/results.md``, and returns the per-preset means (``kbps``, ``mel``, ...).

    Raises:
        ValueError: models that do not fit together (`load_masked_models`), a bad data dir.
    """
    coarse, c2f, codec, _ = load_masked_models(coarse_dir, c2f_dir, None, torch.device("cpu"))
    torch.set_num_threads(1)
    chosen = read_scp(data / "wav.scp")[:clips]
    config = VampConfig(window=500, overlap=100, c2f_window=150, c2f_overlap=30,
                        maskgit=MaskGITConfig(steps=steps, mask_temperature=mask_temperature))
    rows: dict[str, list[dict]] = defaultdict(list)
    for index, (utt, path) in enumerate(chosen):
        for name, row in _clip_rows(coarse, c2f, codec, config, utt, path, index, seed, out).items():
            rows[name].append(row)
        print(f"{utt}: done", flush=True)
    summary = {name: {key: _mean(values, key) for key in values[0]} for name, values in rows.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"clips": len(chosen), "steps": steps, "summary": summary,
                                                  "per_clip": rows}, indent=1) + "\n")
    lines = [f"{len(chosen)} held-out clips, {steps} MaskGIT steps, mask temperature {mask_temperature}.", "",
             *_presets_table(summary), "", *_compression_table(summary)]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


@torch.no_grad()
def _clip_rows(coarse, c2f, codec, config: VampConfig, utt: str, path: str, index: int, seed: int,
               out: Path) -> dict[str, dict]:
    """One clip: a row for the codec alone at each of `CODEC_N_Q` and one per preset (its audio written)."""
    wav, rate = load_audio(path, codec.sample_rate, channels=1)
    codes = codec.encode(wav[None])[:, : c2f.config.n_q]  # [1, K, N]
    seconds, bits = wav.shape[-1] / rate, math.log2(codec.codebook_size)
    onsets = [times_to_frames(detect_onsets(wav[0], rate), codec.frame_rate)]
    beats = [times_to_frames(track_beats(wav[0], rate), codec.frame_rate)]
    rows = {}
    for n_q in CODEC_N_Q:
        decoded = codec.decode(codes[:, :n_q], length=wav.shape[-1])[0]
        rows[f"codec n_q={n_q}"] = {"kbps": n_q * bits * codec.frame_rate / 1000,
                                    "mel": float(mel_distance(wav, decoded, rate))}
    for name, spec_text in SPECS.items():
        generator = torch.Generator().manual_seed(seed * 1000 + index)
        mask = parse_mask_spec(spec_text).build(1, codes.shape[1], codes.shape[-1], codec.frame_rate,
                                                generator, onsets, beats)
        vamped = vamp(coarse, c2f, codes, mask, config, generator=generator)
        random_codes = torch.randint(0, codec.codebook_size, codes.shape, generator=generator)
        noisy = torch.where(mask, random_codes, codes)
        audio = codec.decode(vamped, length=wav.shape[-1])[0].clamp(-1, 1)
        noise_audio = codec.decode(noisy, length=wav.shape[-1])[0].clamp(-1, 1)
        kept = ~mask
        (out / name).mkdir(parents=True, exist_ok=True)
        save_audio(out / name / f"{utt}.wav", audio, rate)
        if index == 0:
            save_spectrogram_png(out / f"{name}.png", {"original": wav[0], name: audio[0]}, rate)
        rows[name] = {
            "kbps": float(kept.sum()) * bits / seconds / 1000,
            "mel": float(mel_distance(wav, audio, rate)),
            "mel_noisy_tokens": float(mel_distance(wav, noise_audio, rate)),
            "prompt_exact": float((vamped[kept] == codes[kept]).float().mean()) if kept.any() else 1.0,
            "generated": float(mask.float().mean()),
        }
    return rows


def _mean(rows: list[dict], key: str) -> float:
    values = [row[key] for row in rows if key in row]
    return sum(values) / len(values) if values else float("nan")


def _presets_table(summary: dict[str, dict]) -> list[str]:
    lines = ["| preset | mask | kept kbps | generated | mel distance | noisy-token baseline "
             "| prompt tokens kept |",
             "|---|---|---|---|---|---|---|"]
    for name, spec_text in SPECS.items():
        s = summary[name]
        lines.append(f"| {name} | `{spec_text}` | {s['kbps']:.3f} | {s['generated']:.0%} | {s['mel']:.3f} | "
                     f"{s['mel_noisy_tokens']:.3f} | {s['prompt_exact']:.1%} |")
    return lines


def _compression_table(summary: dict[str, dict]) -> list[str]:
    """Bitrate -> mel distance, codec alone vs codec + vamp (and the noisy-token baseline), by bitrate."""
    lines = ["Compression: bitrate -> mel distance, codec alone vs codec + vamp (and the noisy-token "
             "baseline).",
             "", "| system | kbps | mel distance |", "|---|---|---|"]
    codec = {n: summary[f"codec n_q={n}"] for n in CODEC_N_Q}
    points = [(codec[n]["kbps"], f"codec alone, {n} codebooks", codec[n]["mel"]) for n in CODEC_N_Q]
    points += [(summary[n]["kbps"], f"codec + vamp, `{SPECS[n]}`", summary[n]["mel"])
               for n in ("coarse-to-fine", "upper-2", "upper-1", "compress-4", "compress-4-p16",
                         "compress-4-p32")]
    points += [(summary[n]["kbps"], f"noisy tokens, `{SPECS[n]}`", summary[n]["mel_noisy_tokens"])
               for n in ("upper-1", "compress-4", "compress-4-p32")]
    points.sort(key=lambda point: -point[0])
    return lines + [f"| {label} | {kbps:.3f} | {mel:.3f} |" for kbps, label, mel in points]
