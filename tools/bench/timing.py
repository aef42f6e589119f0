"""Side-by-side timing shared by the benchmarks: interleaved calls, order rotated every round."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved_samples(fns: dict[str, Callable[[], object]], repeats: int,
                        warmup: bool = True) -> dict[str, list[float]]:
    """Seconds per call of each function over ``repeats`` rounds, after one warm-up call each (unless
    ``warmup`` is False: the caller has run each already).

    The calls of a round are interleaved and the order rotates every round, so changes in the machine's
    load hit all implementations alike; compare them round by round (ratios) rather than in absolute time.
    """
    names = list(fns)
    for name in names if warmup else []:
        fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return samples
