"""WaveNet sampling: the incremental sampler (per-layer queues) against the naive full-recompute loop.

Both draw the same samples for a seed (checked here on every run: μ-law classes equal); the naive loop
reruns the whole network over the whole prefix for every new sample, so its cost grows with the square of
the length, the incremental one's linearly. The tiny μ-law preset (60 k parameters), random weights.

Usage (from the repository root):
    OMP_NUM_THREADS=1 python tools/bench/bench_wavenet.py [--frames 4 8] [--naive-limit 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from funcodec_lite.vocoders.wavenet import WaveNetVocoder, wavenet_tiny
from funcodec_lite.vocoders.wavenet_sampling import incremental_sample, naive_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 86], help="mel frames (256 samples)")
    parser.add_argument("--naive-limit", type=int, default=8, help="naive loop up to this many frames")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = WaveNetVocoder(wavenet_tiny()).eval()
    print(f"tiny WaveNet (μ-law), {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| samples | incremental s | naive s | naive / incremental | same samples |")
    print("|---|---|---|---|---|")
    for frames in args.frames:
        mel = torch.randn(1, 80, frames)
        start = time.perf_counter()
        fast = incremental_sample(model, mel, generator=torch.Generator().manual_seed(1))
        fast_s = time.perf_counter() - start
        if frames <= args.naive_limit:
            start = time.perf_counter()
            slow = naive_sample(model, mel, generator=torch.Generator().manual_seed(1))
            slow_s = time.perf_counter() - start
            print(f"| {fast.shape[-1]:,} | {fast_s:.2f} | {slow_s:.2f} | {slow_s / fast_s:.1f} | "
                  f"{torch.equal(fast, slow)} |")
        else:
            print(f"| {fast.shape[-1]:,} | {fast_s:.2f} | (not run) | | |")


if __name__ == "__main__":
    main()
