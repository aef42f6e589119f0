"""Benchmark PixelSNAIL sampling: the DCASE baseline's naive loop against the cached incremental sampler.

The naive loop runs one forward pass over the rows decoded so far for each of the H * W positions; at
the baseline's size that takes hours on a CPU, so by default its time is estimated: the per-position
work (forward pass over r rows, softmax, multinomial draw) is timed at a few row counts r, interpolated
linearly in r, and summed as W * sum_{r=1..H} t(r), which is exactly the loop's sequence of passes.
``--check`` first runs the real naive loop on a small map and prints it next to its estimate.
The incremental sampler is always run in full (median of 3 runs for the tiny config, 1 for the baseline
size; the naive passes likewise).

Usage: python tools/bench/bench_pixelsnail.py [--batch 4] [--configs tiny,baseline] [--maps 20x86,40x43]
    [--threads 1] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import interleaved_samples  # tools/bench/timing.py (scripts run from this folder)

from funcodec_lite.lm import PixelSNAIL, PixelSNAILConfig, sample_incremental, sample_naive

CONFIGS: dict[str, dict[str, object]] = {
    "tiny": dict(channel=32, res_channel=32, n_block=2, n_res_block=2, n_head=2, class_dim=32),
    "baseline": {},  # PixelSNAILConfig defaults: the DCASE 2023 Task 7 baseline's sizes
}


@dataclass
class Result:
    config: str
    height: int
    width: int
    params_m: float
    incremental_s: float
    naive_s: float
    naive_how: str


def build(name: str, height: int, width: int) -> PixelSNAIL:
    torch.manual_seed(0)
    config = PixelSNAILConfig(height=height, width=width, **CONFIGS[name])
    return PixelSNAIL(config).eval()


def labels_for(batch: int) -> torch.Tensor:
    return torch.arange(batch) % 7


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def naive_pass(model: PixelSNAIL, labels: torch.Tensor, rows: int) -> Callable[[], object]:
    """The naive loop's work at one position of row ``rows - 1``: forward over ``rows`` rows and a draw."""
    codes = torch.zeros(labels.shape[0], model.config.height, model.config.width, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            logits = model(codes[:, :rows], labels)[:, :, rows - 1, -1]
            return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)

    return run


def naive_estimate(model: PixelSNAIL, labels: torch.Tensor, points: int, repeats: int) -> float:
    """W * sum over r = 1..H of the per-position time t(r), t measured at ``points`` row counts."""
    height, width = model.config.height, model.config.width
    grid = sorted({round(1 + k * (height - 1) / (points - 1)) for k in range(points)})
    fns = {r: naive_pass(model, labels, r) for r in grid}
    if repeats > 1:
        per_pass = {r: statistics.median(ts) for r, ts in interleaved_samples(fns, repeats).items()}
    else:
        fns[grid[0]]()  # warm-up on the cheapest pass
        per_pass = {r: time_once(fn) for r, fn in fns.items()}
    total = 0.0
    for r in range(1, height + 1):
        hi = next(g for g in grid if g >= r)
        lo = max(g for g in grid if g <= r)
        t = per_pass[lo] if hi == lo else per_pass[lo] + (per_pass[hi] - per_pass[lo]) * (r - lo) / (hi - lo)
        total += width * t
    return total


def run_incremental(model: PixelSNAIL, labels: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``repeats`` full incremental samplings."""
    return statistics.median(
        time_once(lambda: sample_incremental(model, labels, torch.Generator().manual_seed(0)))
        for _ in range(repeats)
    )


def check_estimate(batch: int) -> None:
    """The real naive loop next to its estimate, tiny config on a 6 x 43 map."""
    model, labels = build("tiny", 6, 43), labels_for(batch)
    measured = time_once(lambda: sample_naive(model, labels, torch.Generator().manual_seed(0)))
    estimate = naive_estimate(model, labels, points=4, repeats=5)
    print(f"check (tiny, 6x43, batch {batch}): naive loop measured {measured:.2f} s, estimated "
          f"{estimate:.2f} s ({estimate / measured:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--configs", default="tiny,baseline")
    parser.add_argument("--maps", default="20x86,40x43")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--points", type=int, default=5, help="row counts at which a naive pass is timed")
    parser.add_argument("--check", action="store_true", help="validate the naive estimate on a small map")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}")
    if args.check:
        check_estimate(args.batch)

    results = []
    for name in args.configs.split(","):
        for spec in args.maps.split(","):
            height, width = (int(v) for v in spec.split("x"))
            model, labels = build(name, height, width), labels_for(args.batch)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            repeats = 3 if name == "tiny" else 1
            incremental = run_incremental(model, labels, repeats)
            naive = naive_estimate(model, labels, args.points, repeats)
            how = f"estimated from passes at {args.points} row counts"
            results.append(Result(name, height, width, params, incremental, naive, how))
            print(f"  done {name} {spec}: incremental {incremental:.1f} s, naive ~{naive:.0f} s", flush=True)

    print()
    print("| config | map | params | incremental (s) | ms / position | naive loop (s) | naive loop timing "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        per_step = 1e3 * r.incremental_s / (r.height * r.width)
        print(f"| {r.config} | {r.height}x{r.width} | {r.params_m:.1f} M | {r.incremental_s:.1f} | "
              f"{per_step:.1f} | {r.naive_s:.0f} | {r.naive_how} | {r.naive_s / r.incremental_s:.0f}x |")


if __name__ == "__main__":
    main()
