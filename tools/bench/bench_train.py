"""Time one training step by phase, and count its STFTs, for the recipe's configs.

For each config the step is split into: generator forward (encoder, RVQ, decoder), discriminator
forward + loss (with the MS-STFT spectrograms of the real and decoded batch), discriminator backward
+ update, generator losses (time L1, multi-scale spectral, commitment, adversarial and feature
matching through the updated discriminator) and generator backward + update. The discriminators are
on from the first step (and update every ``schedule.disc_every`` steps, as the config says). The
"GAN / G-only" column is the mean full step over the mean generator-only step (the discriminators
off, as before ``disc_start_step``), the two kinds of step interleaved in one run. A second table
counts the `torch.stft` calls of one step per
(signal, resolution): "max repeats" 1 means no STFT is computed twice.

Usage (from the repository root):
    OMP_NUM_THREADS=1 python tools/bench/bench_train.py [--configs tiny_time,funcodec_ds320_16k]
        [--steps 3] [--batch-size B] [--segment-seconds S]
    OMP_NUM_THREADS=1 python tools/bench/bench_train.py --throughput --configs tiny_freq,tiny_vocos \
        [--steps 5]

``--throughput`` measures training throughput as the issue asks for it: seconds of audio trained per
CPU-second of generator-only steps (the discriminators off, as the tiny recipes train), every config's
steps interleaved round-robin in one process so that a load on the machine slows all of them alike; the
last column is the ratio to the first config. A config may carry its own overrides,
``name:key=value;key=value`` (values without commas).

Batch size and segment length default to each config's own, except for the FunCodec-size config
whose batch of 32 one-second clips is for a GPU: on CPU it defaults to 2 x 1 s (say so in reports).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.codec.training.task import Trainer
from funcodec_lite.utils.profile import PhaseTimer, STFTCallCounter, count_parameters

CONF = Path(__file__).resolve().parents[2] / "egs" / "speech_codec" / "conf"
PHASES = ["generator_forward", "discriminator_forward", "discriminator_backward", "generator_losses",
          "generator_backward"]
CPU_BATCH = {"funcodec_ds320_16k": 2}


def make_data_dir(root: Path, sample_rate: int, count: int = 8, seconds: float = 2.0) -> Path:
    """A data dir of voiced-speech-like clips (harmonic glides with noise) for timing only."""
    rng = np.random.default_rng(0)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    for i in range(count):
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        wav = sum(np.sin(k * phase) / k for k in range(1, 10)) * 0.1 + 0.005 * rng.standard_normal(t.size)
        path = root / "wav" / f"u{i:02d}.wav"
        sf.write(path, wav.astype(np.float32), sample_rate)
        lines.append(f"u{i:02d} {path}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    return root


def bench_config(name: str, steps: int, batch_size: int | None, segment: float | None,
                 extra: list[str] | None = None) -> dict:
    """Mean phase times over ``steps`` steps (after one warm-up step) and the STFT count of a step."""
    overrides = ["schedule.disc_start_step=0", "data.num_workers=0", "schedule.mixed_precision=no",
                 *(extra or [])]
    batch = batch_size or CPU_BATCH.get(name)
    if batch:
        overrides.append(f"data.batch_size={batch}")
    if segment:
        overrides.append(f"data.segment_seconds={segment}")
    config = TrainConfig.from_yaml(CONF / f"{name}.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp) / "data", 16000)
        trainer = Trainer(config, data, None, Path(tmp) / "exp")
        batches = trainer.batches()
        trainer.train_step(next(batches))  # warm-up (k-means initialisation of the codebooks)
        per_phase: dict[str, list[float]] = {p: [] for p in PHASES}
        gan_steps, generator_steps = [], []
        schedule = trainer.config.schedule
        for _ in range(steps):
            timer = PhaseTimer()
            trainer.train_step(next(batches), timer)
            trainer.step += 1  # so that disc_every cycles
            gan_steps.append(sum(timer.seconds.values()))
            for p in PHASES:
                per_phase[p].append(timer.seconds.get(p, 0.0))
            schedule.disc_start_step, start = 10**9, schedule.disc_start_step
            timer = PhaseTimer()
            trainer.train_step(next(batches), timer)
            generator_steps.append(sum(timer.seconds.values()))
            schedule.disc_start_step = start
        with STFTCallCounter() as counter:
            trainer.train_step(next(batches))
        return {
            "name": name,
            "batch": f"{config.data.batch_size} x {config.data.segment_seconds:g} s",
            "params": (count_parameters(trainer.generator), count_parameters(trainer.discriminator)),
            "phases": {p: statistics.mean(v) for p, v in per_phase.items()},
            "disc_every": schedule.disc_every,
            "gan_ratio": statistics.mean(gan_steps) / statistics.mean(generator_steps),
            "stft_total": counter.total,
            "stft_pairs": len(counter.calls),
            "stft_max": counter.max_repeats,
        }


def throughput(names: list[str], steps: int, extra: list[str] | None = None) -> list[dict]:
    """Generator-only steps of every config, interleaved: seconds per step and audio seconds per second."""
    overrides = ["schedule.disc_start_step=1000000000", "data.num_workers=0", "schedule.mixed_precision=no",
                 *(extra or [])]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp) / "data", 16000, count=32)  # batches up to 32
        runs = []
        for index, spec in enumerate(names):
            # ``name`` or ``name:key=value;key=value`` (a config with its own overrides)
            name, _, own = spec.partition(":")
            own_overrides = [item for item in own.split(";") if item]
            config = TrainConfig.from_yaml(CONF / f"{name}.yaml", overrides + own_overrides)
            trainer = Trainer(config, data, None, Path(tmp) / f"exp-{index}")
            batches = trainer.batches()
            trainer.train_step(next(batches))  # warm-up (k-means initialisation of the codebooks)
            audio = config.data.batch_size * config.data.segment_seconds
            runs.append({"name": spec, "trainer": trainer, "batches": batches, "audio": audio, "times": [],
                         "params": count_parameters(trainer.generator)})
        for _ in range(steps):
            for run in runs:
                batch = next(run["batches"])
                start = time.process_time()
                run["trainer"].train_step(batch)
                run["times"].append(time.process_time() - start)
    return [{"name": r["name"], "params": r["params"], "audio": r["audio"],
             "step": statistics.median(r["times"])} for r in runs]


def throughput_table(results: list[dict]) -> str:
    lines = ["| config | G params | audio per step (s) | CPU-s per step (median) | audio s per CPU-s "
             "| ratio |", "|---|---|---|---|---|---|"]
    base = results[0]["audio"] / results[0]["step"]
    for r in results:
        rate = r["audio"] / r["step"]
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['audio']:g} | {r['step']:.3f} | "
                     f"{rate:.2f} | {rate / base:.2f}x |")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    head = ("| config | batch | G / D params | D every | step (s) | GAN / G-only | "
            + " | ".join(p.replace("_", " ") for p in PHASES) + " |")
    lines = [head, "|" + "---|" * (6 + len(PHASES))]
    for r in results:
        total = sum(r["phases"].values())
        cells = [f"{r['phases'][p]:.3f} ({100 * r['phases'][p] / total:.0f}%)" for p in PHASES]
        g, d = r["params"]
        lines.append(f"| {r['name']} | {r['batch']} | {g / 1e6:.2f} M / {d / 1e6:.2f} M | "
                     f"{r['disc_every']} | {total:.3f} | {r['gan_ratio']:.2f}x | " + " | ".join(cells) + " |")
    lines += ["", "| config | STFT calls per step | distinct (signal, resolution) | max repeats |",
              "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['stft_total']} | {r['stft_pairs']} | {r['stft_max']} |" for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny_time,tiny_freq,funcodec_ds320_16k")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--segment-seconds", type=float)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every config, e.g. schedule.disc_every=2")
    parser.add_argument("--throughput", action="store_true",
                        help="audio seconds per CPU-second of generator steps, configs interleaved")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.throughput:
        print(throughput_table(throughput(args.configs.split(","), args.steps, args.set)))
        return
    results = [bench_config(name, args.steps, args.batch_size, args.segment_seconds, args.set)
               for name in args.configs.split(",")]
    print(table(results))


if __name__ == "__main__":
    main()
