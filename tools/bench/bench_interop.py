"""Converted codec families against their reference packages: encode and decode times, codes checked.

Usage: python tools/bench/bench_interop.py [--families encodec,dac16,...] [--seconds 5] [--repeats 3]
           [--long-seconds dac44=2] [--threads 1] [--out exp/bench_interop.md]

For each family (`interop_refs.BUILDERS`: EnCodec 24 kHz via ``encodec``, FunCodec's time-domain model and
FreqCodec via ``funcodec``, DAC 16/24/44.1 kHz via ``dac``, Mimi via ``moshi``, SNAC 24 kHz via ``snac``,
and transformers' EncodecModel / DacModel / MimiModel) the reference is built with random seeded weights at
its release shapes and converted with our converter functions. On the same audio (a chirp plus noise,
batch 1) the script first checks that our codes are identical to the reference's (it stops if not) and
measures the largest audio difference; then it times encode and decode of both, interleaved with the order
rotated every round (``timing.interleaved_samples``), under ``torch.no_grad``. Ratios are the median over
rounds of ours / reference timed in the same round (below 1: ours is faster). The checking call is
the warm-up of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from interop_refs import BUILDERS, InteropPair, test_signal  # tools/bench/ (scripts run from this folder)
from timing import interleaved_samples


def check(pair: InteropPair, wav: torch.Tensor) -> tuple[torch.Tensor, object, float, int]:
    """(our codes, the reference's native encoding, max |audio difference|, distinct codes); exits when
    the codes differ."""
    native = pair.ref_encode(wav)
    expected = pair.ref_codes(native)
    codes = pair.ours.encode(pair.ours_input(wav), pair.n_q)
    if codes.shape != expected.shape or not torch.equal(codes, expected):
        same = (codes == expected).float().mean().item() if codes.shape == expected.shape else 0.0
        sys.exit(f"{pair.family}: codes differ from {pair.reference} (shapes {tuple(codes.shape)} vs "
                 f"{tuple(expected.shape)}, {100 * same:.2f}% equal)")
    torch.manual_seed(0)
    reference = pair.ref_decode(native)
    torch.manual_seed(0)
    ours = pair.ours.decode(codes)
    n = min(reference.shape[-1], ours.shape[-1])
    diff = (ours[..., :n].reshape(-1, n) - reference[..., :n].reshape(-1, n)).abs().max().item()
    return codes, native, diff, len(torch.unique(codes))


def run_family(name: str, seconds: float, repeats: int) -> dict:
    start = time.perf_counter()
    pair = BUILDERS[name]()
    built = time.perf_counter() - start
    wav = test_signal(pair.sample_rate, seconds, seed=1)
    codes, native, diff, distinct = check(pair, wav)
    ours_in = pair.ours_input(wav)
    enc = interleaved_samples({"ours": lambda: pair.ours.encode(ours_in, pair.n_q),
                               "ref": lambda: pair.ref_encode(wav)}, repeats, warmup=False)
    dec = interleaved_samples({"ours": lambda: pair.ours.decode(codes),
                               "ref": lambda: pair.ref_decode(native)}, repeats, warmup=False)
    row = {"family": pair.family, "reference": pair.reference, "seconds": seconds,
           "codes": "x".join(str(s) for s in codes.shape[1:]), "distinct": distinct, "diff": diff,
           "build_s": built, "total_s": time.perf_counter() - start}
    for step, samples in (("encode", enc), ("decode", dec)):
        row[f"{step}_ours"] = statistics.median(samples["ours"]) * 1e3
        row[f"{step}_ref"] = statistics.median(samples["ref"]) * 1e3
        row[f"{step}_ratio"] = statistics.median(o / r for o, r in zip(samples["ours"], samples["ref"]))
    return row


def table(rows: list[dict]) -> str:
    lines = ["| family | reference | audio (s) | codes K x N (distinct) | encode ours / ref (ms) | ratio | "
             "decode ours / ref (ms) | ratio | codes | max audio diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["family"], r["reference"], f"{r['seconds']:g}", f"{r['codes']} ({r['distinct']})"]
        for step in ("encode", "decode"):
            cells += [f"{r[step + '_ours']:.0f} / {r[step + '_ref']:.0f}", f"{r[step + '_ratio']:.2f}"]
        lines.append("| " + " | ".join(cells + ["identical", f"{r['diff']:.1e}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(n for n in BUILDERS if n != "hf_dac"),
                        help=f"of {', '.join(BUILDERS)} (default: all but hf_dac, DAC 16 kHz again)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--long-seconds", default="dac16=2,dac24=2,dac44=2,hf_dac=2",
                        help="per-family audio length overrides, e.g. dac44=2,dac24=3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: float(v) for k, v in (item.split("=") for item in args.long_seconds.split(",") if item)}
    names = [n for n in args.families.split(",") if n]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {', '.join(BUILDERS)}")
    start, rows = time.perf_counter(), []
    with torch.no_grad():
        for name in names:
            row = run_family(name, overrides.get(name, args.seconds), args.repeats)
            print(f"{name}: {row['total_s']:.1f} s (build {row['build_s']:.1f} s); encode ratio "
                  f"{row['encode_ratio']:.2f}, decode ratio {row['decode_ratio']:.2f}", flush=True)
            rows.append(row)
    machine = platform.processor() or platform.machine()
    text = (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {machine}, OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS')}, total {time.perf_counter() - start:.0f} s\n\n"
            + table(rows))
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
