"""Benchmark exported ONNX graphs under onnxruntime against PyTorch eager, encode and decode, side by side.

Usage: python tools/bench/bench_export.py [--seconds 5] [--repeats 5] [--threads 1,2]
           [--models default,encodec_24khz]

Models: ``default`` (the shipped frame-rate codec, 16 kHz) and any preset name (random weights, codebooks
drawn from the model's own latents so codes spread as in a trained model; e.g. ``encodec_24khz``). Each is
exported once with ``export_onnx`` (which also checks onnxruntime against PyTorch); then, per thread count,
PyTorch (``torch.set_num_threads``, ``torch.inference_mode``, weight norm folded) and onnxruntime (CPU
provider, ``intra_op_num_threads``, thread spinning off as ``OMP_WAIT_POLICY=PASSIVE`` for PyTorch) encode
one signal (batch 1, all codebooks) and decode its codes.  Calls are interleaved with the order rotated each
round; a ratio is the median over rounds of (onnxruntime / PyTorch) in the same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import warnings
from pathlib import Path

import torch
from timing import interleaved_samples  # tools/bench/timing.py (scripts run from this folder)

from funcodec_lite import Codec, CodecConfig
from funcodec_lite.codec.loading import load_model
from funcodec_lite.inference.export import export_onnx


def build(name: str) -> Codec:
    """The shipped model (``default``) or a preset with random weights and codebooks spread like its latents
    (layer i: per-dimension latent mean and 0.8^i times its spread, as in bench_codec.py)."""
    if name == "default":
        return load_model("default")
    torch.manual_seed(0)
    codec = Codec(CodecConfig.from_yaml(name)).eval()
    codec.fold_weight_norm()
    generator = torch.Generator().manual_seed(1)
    wav = 0.3 * torch.randn(1, codec.channels, 2 * codec.sample_rate, generator=generator)
    with torch.no_grad():
        rows = codec.encode_latent(wav).transpose(1, 2).reshape(-1, codec.quantizer.config.dim)
        mean, std = rows.mean(0), rows.std(0)
        for i, layer in enumerate(codec.quantizer.layers):
            noise = torch.randn(layer.embed.shape, generator=generator) * std * 0.8**i
            layer.embed.copy_(noise + (mean if i == 0 else 0))
            layer.inited.fill_(1.0)
    return codec


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_steps(name: str, codec: Codec, folder: Path, wav: torch.Tensor, threads: int, repeats: int) -> None:
    """Prints the encode and decode rows of one model at one thread count."""
    torch.set_num_threads(threads)
    encoder, decoder = session(folder / "encoder.onnx", threads), session(folder / "decoder.onnx", threads)
    with torch.inference_mode():
        codes = codec.encode(wav)
        feed_wav, feed_codes = {"audio": wav.numpy()}, {"codes": codes.numpy()}
        times = interleaved_samples({
            "torch encode": lambda: codec.encode(wav),
            "ort encode": lambda: encoder.run(None, feed_wav),
            "torch decode": lambda: codec.decode(codes),
            "ort decode": lambda: decoder.run(None, feed_codes),
        }, repeats)
    for step in ("encode", "decode"):
        mine, theirs = times[f"ort {step}"], times[f"torch {step}"]
        ratio = statistics.median(a / b for a, b in zip(mine, theirs))
        print(f"| {name} | {threads} | {step} | {statistics.median(theirs) * 1e3:.0f} "
              f"| {statistics.median(mine) * 1e3:.0f} | {ratio:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per thread count")
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--models", default="default,encodec_24khz", help="'default' and/or preset names")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import onnxruntime as ort

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; "
          f"{args.seconds:g} s of audio, batch 1, all codebooks, {args.repeats} rounds")
    print()
    print("| model | threads | step | PyTorch (ms) | onnxruntime (ms) | onnxruntime / PyTorch |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            codec = build(name)
            manifest = export_onnx(codec, Path(tmp) / name)
            checked = manifest["verified"]
            wav = 0.3 * torch.randn(1, codec.channels, int(args.seconds * codec.sample_rate),
                                    generator=torch.Generator().manual_seed(2))
            for threads in (int(t) for t in args.threads.split(",")):
                time_steps(name, codec, Path(tmp) / name, wav, threads, args.repeats)
            print(f"<!-- {name}: onnxruntime codes equal {checked['codes_equal']:.3f}, audio within "
                  f"{checked['audio_max_abs_diff']:.1e} -->", flush=True)


if __name__ == "__main__":
    main()
