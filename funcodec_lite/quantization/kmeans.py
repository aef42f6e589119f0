"""Lloyd's k-means for codebook initialisation, synchronised over processes by all-reduce."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .distributed import all_reduce_sum_, draw_rows, gather_rows, global_rows
from .search import nearest_codes


class KMeansResult(NamedTuple):
    """Result of `kmeans`.

    Attributes:
        means (torch.Tensor): cluster centres, shape [K, D].
        counts (torch.Tensor): float number of samples per cluster in the last assignment, shape [K].
    """

    means: torch.Tensor
    counts: torch.Tensor


def cluster_sums(
    x: torch.Tensor, codes: torch.Tensor, num_clusters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sample counts and vector sums.

    Args:
        x (torch.Tensor): samples, shape [N, D].
        codes (torch.Tensor): cluster index per sample, shape [N].
        num_clusters (int): K.

    Returns:
        tuple: counts [K] (dtype of ``x``) and sums [K, D].
    """
    counts = torch.bincount(codes, minlength=num_clusters).to(x.dtype)
    sums = torch.zeros(num_clusters, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, codes, x)
    return counts, sums


def kmeans(
    samples: torch.Tensor, num_clusters: int, num_iters: int, generator: torch.Generator
) -> KMeansResult:
    """Cluster ``samples`` with Lloyd's algorithm.

    Initial centres are distinct random samples; a cluster left empty by an iteration is re-seeded
    with a random sample. The returned counts come from a final assignment to the returned means, so
    a cluster re-seeded in the last iteration has the count of the samples nearest to its new centre
    (not 0). Under torch.distributed each process passes its own rows: counts and sums
    are all-reduced and random picks index the batch concatenated over processes in rank order
    (`gather_rows`), so every process ends with the same centres as one process given the whole
    batch, provided ``generator`` is seeded identically everywhere.

    Args:
        samples (torch.Tensor): this process's samples, shape [N, D] (N may be 0 on some processes).
        num_clusters (int): K.
        num_iters (int): Lloyd iterations.
        generator (torch.Generator): CPU generator, seeded identically on every process.

    Returns:
        KMeansResult: means [K, D] and counts [K].
    """
    samples = samples.detach()
    offset, total = global_rows(samples.shape[0], samples.device)
    if total == 0:
        raise ValueError("kmeans needs at least one sample")
    means = gather_rows(samples, draw_rows(total, num_clusters, generator), offset)
    counts = torch.zeros(num_clusters, dtype=samples.dtype, device=samples.device)
    for _ in range(num_iters):
        counts, sums = cluster_sums(samples, nearest_codes(samples, means), num_clusters)
        all_reduce_sum_(counts, sums)
        means = sums / counts.clamp(min=1.0).unsqueeze(1)
        empty = counts == 0
        n_empty = int(empty.sum().item())
        if n_empty:
            reseed = torch.randint(0, total, (n_empty,), generator=generator)
            means[empty] = gather_rows(samples, reseed, offset)
    if num_iters > 0:
        counts, _ = cluster_sums(samples, nearest_codes(samples, means), num_clusters)
        all_reduce_sum_(counts)
    return KMeansResult(means, counts)
