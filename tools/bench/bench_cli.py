"""Benchmark the command line: `codec encode` / `codec decode` speed and peak memory on long files, and
`codec tokenize` throughput with 1 and 2 data-loading workers.

Usage: python tools/bench/bench_cli.py [--model DIR] [--minutes 1,10] [--files 200] [--workers 1,2]
           [--threads N] [--device cpu] [--out results.md]

Every measurement is a fresh process running one `codec` command: the time is that of the command itself
(after importing torch and the package), the peak resident memory that of the whole process (`wait4`);
"× real time" is audio seconds / command seconds. The long files are
a speech-like synthetic signal (gliding harmonic tone, syllable envelope, noise) at the model's rate,
written block by block. Without --model the shipped default model is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from funcodec_lite.codec.loading import load_model, model_id, resolve_model_dir
from funcodec_lite.inference.chunking import ChunkConfig, decode_chunked, encode_chunked
from funcodec_lite.metrics import si_snr

# Runs one command in a fresh process and reports the seconds spent in `main` (start-up excluded).
RUNNER = ("import json, sys, time\n"
          "from funcodec_lite.cli import main\n"
          "start = time.perf_counter()\n"
          "code = main(json.loads(sys.argv[1]))\n"
          "print('BENCH_SECONDS', time.perf_counter() - start, flush=True)\n"
          "sys.exit(code)\n")


@dataclass
class Run:
    """One child process: seconds in the command (after start-up), peak RSS (MiB)."""

    seconds: float
    peak_mib: float


def run(argv: list[str], env: dict[str, str]) -> Run:
    """Runs ``codec <argv>`` in a fresh process; its peak RSS comes from ``wait4``."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(argv)], env=env, stdout=out,
                                   stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"command failed ({process.returncode}): codec {' '.join(argv)}\n{stderr[-2000:]}")
    seconds = float(next(line.split()[1] for line in stdout.splitlines() if line.startswith("BENCH_SECONDS")))
    return Run(seconds, usage.ru_maxrss / 1024)


def speechlike_file(path: Path, seconds: float, rate: int, seed: int = 0,
                    block_seconds: float = 10.0) -> None:
    """Writes ``seconds`` of a speech-like signal, block by block (never the whole file in memory)."""
    rng = np.random.default_rng(seed)
    base, glide = 100 + 80 * rng.random(), 20 + 40 * rng.random()
    phase, done, block = 0.0, 0, int(block_seconds * rate)
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as out:
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / rate
            f0 = base + glide * np.sin(2 * np.pi * 0.4 * t) + 3 * np.sin(2 * np.pi * 5.5 * t)
            phases = phase + 2 * np.pi * np.cumsum(f0) / rate
            phase = float(phases[-1])
            voiced = sum(np.sin(k * phases) / k for k in range(1, 12))
            envelope = np.clip(0.5 * (1 - np.cos(2 * np.pi * 3.0 * t)), 0.05, None)
            out.write((0.25 * envelope * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32))
            done += n


def bench_long_files(model: Path, minutes: list[float], device: str, env: dict, work: Path,
                     rate: int) -> list[str]:
    rows = ["| audio | encode (s) | encode × real time | encode peak RSS (MiB) | decode (s) | "
            "decode × real time | decode peak RSS (MiB) |", "|---|---|---|---|---|---|---|"]
    for m in minutes:
        wav, npz, out = work / f"long_{m:g}.wav", work / f"long_{m:g}.npz", work / f"long_{m:g}_dec.wav"
        speechlike_file(wav, m * 60, rate)
        encode = run(["encode", str(wav), str(npz), "--model", str(model), "--device", device, "-q"], env)
        decode = run(["decode", str(npz), str(out), "--model", str(model), "--device", device, "-q"], env)
        audio = m * 60
        rows.append(f"| {m:g} min | {encode.seconds:.1f} | {audio / encode.seconds:.1f} | "
                    f"{encode.peak_mib:.0f} | {decode.seconds:.1f} | {audio / decode.seconds:.1f} | "
                    f"{decode.peak_mib:.0f} |")
        print(rows[-1], flush=True)
        for path in (wav, npz, out):
            path.unlink()
    return rows


def bench_tokenize(model: Path, files: int, workers: list[int], device: str, env: dict, work: Path,
                   rate: int) -> list[str]:
    corpus = work / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(1)
    lines, total = [], 0.0
    for i in range(files):
        seconds = float(rng.uniform(2.0, 6.0))
        total += seconds
        speechlike_file(corpus / f"utt{i:04d}.wav", seconds, rate, seed=i)
        lines.append(f"utt{i:04d} {corpus / f'utt{i:04d}.wav'}")
    (work / "wav.scp").write_text("\n".join(lines) + "\n")
    rows = ["| workers | files | audio (s) | tokenize (s) | files/s | × real time | peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|"]
    for w in workers:
        argv = ["tokenize", "--scp", str(work / "wav.scp"), "--out-dir", str(work / f"tokens_{w}"),
                "--model", str(model), "--num-workers", str(w), "--device", device, "-q"]
        result = run(argv, env)
        rows.append(f"| {w} | {files} | {total:.0f} | {result.seconds:.1f} | {files / result.seconds:.1f} | "
                    f"{total / result.seconds:.1f} | {result.peak_mib:.0f} |")
        print(rows[-1], flush=True)
    return rows


def chunk_effect(model: Path, rate: int, work: Path) -> list[str]:
    """Codes and audio of chunked coding (the CLI's defaults) against whole-signal coding of 50 s."""
    codec = load_model(model)
    path = work / "effect.wav"
    speechlike_file(path, 50.0, rate, seed=7)
    wav = torch.from_numpy(sf.read(path, dtype="float32")[0])[None, None]
    config = ChunkConfig()
    with torch.inference_mode():
        whole = codec.encode(wav)
        whole_audio = codec.decode(whole)
    chunked = encode_chunked(codec, wav, config=config)
    audio = decode_chunked(codec, chunked, config=config)
    same = (chunked == whole).float().mean().item()
    first = (chunked[:, 0] == whole[:, 0]).float().mean().item()
    snr = si_snr(whole_audio[0, 0], audio[0, 0]).item()
    return [f"Chunked coding ({config.chunk_seconds:g} s windows, {config.context_seconds:g} s context) "
            f"against whole-signal coding of 50 s: {100 * same:.2f}% identical codes "
            f"({100 * first:.2f}% in codebook 0); SI-SNR of the decoded chunked codes against the decoded "
            f"whole-signal codes: {snr:.1f} dB."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--minutes", default="0.25", help="long-file lengths in minutes, e.g. 1,10")
    parser.add_argument("--files", type=int, default=20, help="files for the tokenize benchmark (e.g. 200)")
    parser.add_argument("--workers", default="1,2", help="tokenize --num-workers values")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the commands")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args()
    model = resolve_model_dir(args.model)
    codec = load_model(model)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    baseline = run(["info", str(model)], env)
    threads = env.get("OMP_NUM_THREADS", f"default ({torch.get_num_threads()})")
    header = [f"Model: {model} (id {model_id(codec)}, {codec.config.arch}, {codec.sample_rate} Hz, "
              f"{codec.frame_rate:g} frames/s, {codec.n_q} codebooks). torch {torch.__version__}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {threads}, "
              f"device {args.device}. Peak RSS of `codec info MODEL` (imports and model, no audio): "
              f"{baseline.peak_mib:.0f} MiB. Times exclude process start-up.", ""]
    print("\n".join(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = bench_long_files(model, [float(m) for m in args.minutes.split(",")], args.device, env, work,
                                codec.sample_rate)
        workers = [int(w) for w in args.workers.split(",")]
        rows += [""] + bench_tokenize(model, args.files, workers, args.device, env, work, codec.sample_rate)
        rows += [""] + chunk_effect(model, codec.sample_rate, work)
    print(rows[-1])
    if args.out:
        Path(args.out).write_text("\n".join(header + rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
