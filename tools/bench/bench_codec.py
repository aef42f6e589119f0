"""Benchmark EnCodec-24 kHz encode/decode: ours against the `encodec` package, same weights, side by side.

Usage: python tools/bench/bench_codec.py [--seconds 10] [--bandwidth 6] [--repeats 11] [--threads 1,all]
           [--bf16-repeats 3] [--onnx]

Both models hold the same (random) weights, with codebooks spread like real latents (as in
tests/test_encodec_compat.py). Ours has weight norm folded; encodec keeps its weight-norm hooks, as its
users run it. Everything runs under ``torch.inference_mode`` on one 10 s signal (batch 1). Timings are
interleaved (order rotated every round) and each ratio is the median over rounds of (ours / encodec) in
the same round, so load changes on a shared machine hit both sides alike.  ``--onnx`` also exports ours
(``codec export``, encoder emitting the timed bandwidth's codebooks) and times it under onnxruntime (CPU,
thread spinning off) against encodec in the same way, with the share of its codes equal to encodec's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial

import torch
from timing import interleaved_samples  # tools/bench/timing.py (scripts run from this folder)

from funcodec_lite import Codec
from funcodec_lite.convert import encodec_to_codec
from funcodec_lite.utils.profile import count_flops

SAMPLE_RATE = 24_000


def test_signal(seconds: float) -> torch.Tensor:
    """A chirp plus noise, [1, 1, T] at 24 kHz."""
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = torch.randn(1, 1, t.numel(), generator=torch.Generator().manual_seed(2))
    return 0.4 * torch.sin(2 * torch.pi * (200 + 90 * t) * t) + 0.05 * noise


def build_models(wav: torch.Tensor) -> tuple[torch.nn.Module, Codec, Codec]:
    """encodec's EncodecModel, our folded fp32 Codec and a bfloat16 copy, all with the same weights."""
    import encodec

    torch.manual_seed(0)
    ref = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    with torch.no_grad():
        frames = ref.encoder(wav).transpose(1, 2).reshape(-1, 128)
    mean, std = frames.mean(0), frames.std(0)
    generator = torch.Generator().manual_seed(1)
    for i, layer in enumerate(ref.quantizer.vq.layers):  # layer i at the scale of its residual
        book = layer._codebook
        noise = torch.randn(book.embed.shape, generator=generator) * std * 0.8**i
        book.embed.copy_(noise + (mean if i == 0 else 0))
        book.embed_avg.copy_(book.embed)
        book.inited.fill_(1.0)
    ours = encodec_to_codec(ref.state_dict())
    ours.fold_weight_norm()
    bf16 = Codec(ours.config).eval()
    bf16.fold_weight_norm()
    bf16.load_state_dict(ours.state_dict())
    return ref, ours, bf16.to(torch.bfloat16)


def time_rounds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved with the order rotated every round."""
    return interleaved_samples(fns, repeats)


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num / den (both timed in the same rounds)."""
    return statistics.median(a / b for a, b in zip(num, den))


def matmul_gflops(dtype: torch.dtype, repeats: int = 5) -> tuple[float, int]:
    """GFLOP/s of a square matmul in ``dtype``, and its size (doubled from 256 until a call takes 0.1 s)."""
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b
        start = time.perf_counter()
        a @ b
        if time.perf_counter() - start > 0.1 or n >= 4096:
            break
        n *= 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9, n


def snr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    """10 log10(|ref|^2 / |test - ref|^2)."""
    ref, test = ref.double(), test.double()
    return float(10 * torch.log10(ref.square().sum() / (test - ref).square().sum()))


def cpu_description() -> str:
    """CPU model name and the vector extensions that matter for fp32 / bf16 matmuls."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"]
    present = [f for f in wanted if f in flags] or ["none of " + ", ".join(wanted)]
    return f"{name} ({os.cpu_count()} CPUs; {', '.join(present)})"


def speed_table(fns: dict[str, Callable[[], object]], bf16_fns: dict[str, Callable[[], object]],
                thread_counts: list[int], repeats: int, bf16_repeats: int) -> dict[int, dict[str, float]]:
    """Prints the timing table; returns median seconds per thread count and step."""
    print("| threads | step | ours fp32 (ms) | encodec fp32 (ms) | ours / encodec "
          "| ours bf16 (ms) | bf16 / encodec |")
    print("|---|---|---|---|---|---|---|")
    measured: dict[int, dict[str, float]] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            t = time_rounds(fns, repeats)
            tb = time_rounds(bf16_fns, bf16_repeats) if bf16_repeats else {}
        measured[threads] = {}
        for step in ("encode", "decode"):
            mine, theirs = t[f"ours {step}"], t[f"encodec {step}"]
            measured[threads][step] = statistics.median(mine)
            row = (f"| {threads} | {step} | {statistics.median(mine) * 1e3:.0f} "
                   f"| {statistics.median(theirs) * 1e3:.0f} | {median_ratio(mine, theirs):.2f} |")
            if tb:
                low = tb[f"bf16 {step}"]
                measured[threads][f"bf16 {step}"] = statistics.median(low)
                ratio = median_ratio(low, tb[f"encodec {step}"])
                row += f" {statistics.median(low) * 1e3:.0f} | {ratio:.2f} |"
            else:
                row += " - | - |"
            print(row, flush=True)
    return measured


def compute_table(flops: dict[str, int], measured: dict[int, dict[str, float]]) -> None:
    """Prints the matmul rate per thread count and the fraction of it that encode and decode reach."""
    print("| threads | fp32 GEMM (GFLOP/s) | bf16 GEMM (GFLOP/s) | step | fp32 GFLOP/s (fraction) "
          "| bf16 GFLOP/s (fraction) |")
    print("|---|---|---|---|---|---|")
    for threads, times in measured.items():
        torch.set_num_threads(threads)
        (fp32_rate, n32), (bf16_rate, n16) = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
        for step in ("encode", "decode"):
            rate = flops[step] / times[step] / 1e9
            row = (f"| {threads} | {fp32_rate:.1f} (n={n32}) | {bf16_rate:.2f} (n={n16}) | {step} "
                   f"| {rate:.1f} ({rate / fp32_rate:.0%}) |")
            if f"bf16 {step}" in times:
                low = flops[step] / times[f"bf16 {step}"] / 1e9
                row += f" {low:.2f} ({low / bf16_rate:.0%}) |"
            else:
                row += " - |"
            print(row)


def agreement_table(ours: Codec, bf16: Codec, wav: torch.Tensor) -> None:
    """Prints, at full bandwidth, the fraction of bf16 codes equal to fp32 codes per codebook, and the
    SNR of bf16-decoded audio against fp32-decoded audio (same fp32 codes)."""
    with torch.inference_mode():
        full = ours.encode(wav)
        agree = (bf16.encode(wav) == full).double().mean(dim=(0, 2)).tolist()
        snr = snr_db(ours.decode(full), bf16.decode(full))
    print(f"bf16 vs fp32 at {ours.bandwidth(ours.n_q):g} kbps: decoded SNR {snr:.1f} dB; "
          "fraction of equal codes per codebook:")
    print()
    print("| codebooks | " + " | ".join(f"+{i}" for i in range(8)) + " |")
    print("|---|" + "---|" * 8)
    for first in range(0, len(agree), 8):
        values = " | ".join(f"{a:.3f}" for a in agree[first : first + 8])
        print(f"| {first + 1}-{first + 8} | {values} |")


def onnx_table(ours: Codec, ref: torch.nn.Module, wav: torch.Tensor, codes: torch.Tensor, ref_frames,
               thread_counts: list[int], repeats: int) -> None:
    """Prints onnxruntime (our exported graphs) against encodec, per thread count and step."""
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from funcodec_lite.inference.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(ours, tmp, n_q=codes.shape[1])
        print("| threads | step | onnxruntime (ms) | encodec fp32 (ms) | onnxruntime / encodec |")
        print("|---|---|---|---|---|")
        for threads in thread_counts:
            torch.set_num_threads(threads)
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            encoder, decoder = (ort.InferenceSession(str(Path(tmp) / name), options,
                                                     providers=["CPUExecutionProvider"])
                                for name in ("encoder.onnx", "decoder.onnx"))
            equal = (encoder.run(None, {"audio": wav.numpy()})[0] == codes.numpy()).mean(axis=(0, 2))
            shares = ", ".join(f"{e:.4f}" for e in equal)
            print(f"onnxruntime codes equal to encodec's, per codebook: {shares}")
            feed_wav, feed_codes = {"audio": wav.numpy()}, {"codes": codes.numpy()}
            with torch.inference_mode():
                t = time_rounds({
                    "onnx encode": partial(encoder.run, None, feed_wav),
                    "encodec encode": lambda: ref.encode(wav),
                    "onnx decode": partial(decoder.run, None, feed_codes),
                    "encodec decode": lambda: ref.decode(ref_frames),
                }, repeats)
            for step in ("encode", "decode"):
                mine, theirs = t[f"onnx {step}"], t[f"encodec {step}"]
                print(f"| {threads} | {step} | {statistics.median(mine) * 1e3:.0f} "
                      f"| {statistics.median(theirs) * 1e3:.0f} | {median_ratio(mine, theirs):.2f} |",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length")
    parser.add_argument("--bandwidth", type=float, default=6.0, help="kbps of the timed encode")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved rounds for fp32")
    parser.add_argument("--bf16-repeats", type=int, default=3, help="rounds for bfloat16 (0: skip)")
    parser.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    parser.add_argument("--onnx", action="store_true", help="also time our exported graphs in onnxruntime")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    wav = test_signal(args.seconds)
    ref, ours, bf16 = build_models(wav)
    ref.set_target_bandwidth(args.bandwidth)
    with torch.inference_mode():
        codes = ours.encode(wav, bandwidth=args.bandwidth)
        ref_frames = ref.encode(wav)
        same_codes = torch.equal(codes, ref_frames[0][0])
        same_latent = torch.equal(ours.encode_latent(wav), ref.encoder(wav))
        audio_diff = (ours.decode(codes) - ref.decode(ref_frames)).abs().max().item()
    fns = {
        "ours encode": lambda: ours.encode(wav, bandwidth=args.bandwidth),
        "encodec encode": lambda: ref.encode(wav),
        "ours decode": lambda: ours.decode(codes),
        "encodec decode": lambda: ref.decode(ref_frames),
    }
    bf16_fns = {
        "bf16 encode": lambda: bf16.encode(wav, bandwidth=args.bandwidth),
        "encodec encode": fns["encodec encode"],
        "bf16 decode": lambda: bf16.decode(codes),
        "encodec decode": fns["encodec decode"],
    }
    all_threads = os.cpu_count() or 1
    thread_counts = [all_threads if spec == "all" else int(spec) for spec in args.threads.split(",")]
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), {cpu_description()}")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; {args.seconds:g} s of 24 kHz "
          f"audio, batch 1, {args.bandwidth:g} kbps ({codes.shape[1]} codebooks), {args.repeats} fp32 "
          f"rounds, {args.bf16_repeats} bf16 rounds")
    print(f"codes identical to encodec: {same_codes}; latents identical: {same_latent}; "
          f"max |audio difference|: {audio_diff:.2e}")
    print()
    measured = speed_table(fns, bf16_fns, thread_counts, args.repeats, args.bf16_repeats)
    if args.onnx:
        print()
        onnx_table(ours, ref, wav, codes, ref_frames, thread_counts, args.repeats)

    with torch.inference_mode():
        latent = ours.quantizer.decode(codes)
    flops = {
        "encode": count_flops(lambda x: ours.encode(x, bandwidth=args.bandwidth), wav),
        "decode": count_flops(ours.decoder, latent),
    }
    per_second = {name: f / args.seconds / 1e9 for name, f in flops.items()}
    encoder_only = count_flops(ours.encoder, wav) / args.seconds / 1e9
    print()
    print(f"GFLOPs per second of audio: encoder {encoder_only:.2f}, "
          f"encode with RVQ {per_second['encode']:.2f}, decoder {per_second['decode']:.2f}")
    print()
    compute_table(flops, measured)
    print()
    torch.set_num_threads(all_threads)
    agreement_table(ours, bf16, wav)
    if not (same_codes and same_latent):
        raise SystemExit("ours differs from encodec")


if __name__ == "__main__":
    main()
