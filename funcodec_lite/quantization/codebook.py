"""Euclidean codebook with k-means initialisation, EMA updates and dead-code revival."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import all_reduce_sum_, draw_rows, gather_rows, global_rows
from .kmeans import cluster_sums, kmeans
from .search import DEFAULT_MAX_ROWS, nearest_codes, squared_norms


class CodebookUpdate(NamedTuple):
    """Statistics of one training update of a codebook.

    Attributes:
        counts (torch.Tensor): codes used per codeword in the batch (summed over processes), shape [K].
        revived (int): codewords replaced because they were dead.
    """

    counts: torch.Tensor
    revived: int


class EuclideanCodebook(nn.Module):
    """A codebook of K vectors of dimension D, trained without gradients.

    Buffers (names match EnCodec's, so its state dicts load unchanged):
        inited (torch.Tensor): [1], 1.0 once the codebook has been initialised.
        cluster_size (torch.Tensor): [K], EMA of the number of vectors assigned to each code.
        embed (torch.Tensor): [K, D], the codewords.
        embed_avg (torch.Tensor): [K, D], EMA of the sum of vectors assigned to each code.

    Args:
        dim (int): D.
        codebook_size (int): K.
        decay (float): EMA decay of ``cluster_size`` and ``embed_avg``.
        epsilon (float): Laplace smoothing of cluster sizes.
        kmeans_init (bool): initialise by k-means on the first training batch; otherwise random
            codewords (which, having zero usage, are replaced by batch vectors on the first step).
        kmeans_iters (int): k-means iterations.
        threshold_ema_dead_code (float): absolute dead-code threshold: codes whose ``cluster_size``
            falls below this count are revived (EnCodec's rule; 0 disables it).
        dead_code_ratio (float): relative dead-code threshold: codes whose ``cluster_size`` falls
            below this fraction of the uniform share (``cluster_size.sum() / K``, the EMA of the
            vectors per step over K) are revived (Mimi's rule; 0 disables it). Unlike an absolute
            count it means the same at any batch size. A code is dead under the larger threshold.
        revival_grace (int): steps a revived code survives without being used: its count is reset
            to at least ``threshold / decay ** revival_grace`` (and to at least the mean count), so
            the EMA decay cannot mark it dead again before then.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: float = 2.0,
        dead_code_ratio: float = 0.0,
        revival_grace: int = 100,
    ):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        self.dead_code_ratio = dead_code_ratio
        self.revival_grace = revival_grace
        embed = torch.zeros(codebook_size, dim) if kmeans_init else torch.randn(codebook_size, dim)
        self.register_buffer("inited", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    @property
    def is_initialised(self) -> bool:
        return bool(self.inited.item() > 0)

    def encode(
        self, x: torch.Tensor, max_rows: int = DEFAULT_MAX_ROWS, scratch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Nearest codeword of each vector (exact; see `nearest_codes`).

        Args:
            x (torch.Tensor): vectors of shape [N, D].
            max_rows (int): rows per distance block.
            scratch (torch.Tensor, optional): reusable distance buffer (see `nearest_codes`).

        Returns:
            torch.Tensor: long codes of shape [N].
        """
        embed = self.embed.to(x.dtype)
        return nearest_codes(x, embed, squared_norms(embed), max_rows=max_rows, scratch=scratch)

    def subtract_(self, residual: torch.Tensor, codes: torch.Tensor) -> None:
        """``residual -= decode(codes)`` in place, gathering codewords in ``residual``'s layout.

        Args:
            residual (torch.Tensor): [N, D], contiguous or a transposed view of a [D, N] matrix.
            codes (torch.Tensor): long codes of shape [N].
        """
        if residual.dim() == 2 and residual.stride(0) == 1 and residual.t().is_contiguous():
            residual.t().sub_(self.embed.t().contiguous().index_select(1, codes))
        else:
            residual.sub_(self.decode(codes))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords for codes of any shape [...] -> [..., D]."""
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def initialise(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """k-means initialisation from a batch (all processes call this together).

        Args:
            x (torch.Tensor): this process's vectors, shape [N, D].
            generator (torch.Generator): CPU generator seeded identically on every process.
        """
        means, counts = kmeans(x.detach().float(), self.codebook_size, self.kmeans_iters, generator)
        self.embed.copy_(means)
        self.embed_avg.copy_(means * counts.unsqueeze(1))
        self.cluster_size.copy_(counts)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor, generator: torch.Generator) -> CodebookUpdate:
        """One training step: EMA update of the statistics, then dead-code revival.

        All processes must call this together; counts and sums are all-reduced so the buffers stay
        identical everywhere. Revival runs after the EMA step and resets the revived codes'
        statistics (``embed_avg = v * n``, ``cluster_size = n``, with ``n`` from `revival_count`),
        so the next EMA steps keep the new vector ``v`` instead of restoring the stale codeword, and
        the code stays alive for ``revival_grace`` steps even if it is not used.

        Args:
            x (torch.Tensor): this process's vectors, shape [N, D].
            codes (torch.Tensor): their codes, shape [N].
            generator (torch.Generator): CPU generator seeded identically on every process.

        Returns:
            CodebookUpdate: global code counts and the number of revived codes.
        """
        x = x.detach().float()
        counts, sums = cluster_sums(x, codes, self.codebook_size)
        all_reduce_sum_(counts, sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self._refresh_embed()
        revived = self._revive(x, generator) if self.revives else 0
        return CodebookUpdate(counts, revived)

    @property
    def revives(self) -> bool:
        """True when either dead-code threshold is on."""
        return self.threshold_ema_dead_code > 0 or self.dead_code_ratio > 0

    def dead_threshold(self) -> float:
        """The EMA count below which a code is dead now: max(absolute, ratio * sum / K)."""
        relative = self.dead_code_ratio * float(self.cluster_size.sum().item()) / self.codebook_size
        return max(float(self.threshold_ema_dead_code), relative)

    def revival_count(self, threshold: float) -> float:
        """EMA count given to a revived code: high enough to outlive ``revival_grace`` unused steps."""
        mean = float(self.cluster_size.mean().item())
        return max(mean, threshold / self.decay**self.revival_grace)

    def _refresh_embed(self) -> None:
        total = self.cluster_size.sum()
        k_eps = self.codebook_size * self.epsilon
        smoothed = (self.cluster_size + self.epsilon) / (total + k_eps) * total
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))

    def _revive(self, x: torch.Tensor, generator: torch.Generator) -> int:
        threshold = self.dead_threshold()
        dead = self.cluster_size < threshold
        n_dead = int(dead.sum().item())
        if n_dead == 0:
            return 0
        offset, total = global_rows(x.shape[0], x.device)
        if total == 0:
            return 0
        new = gather_rows(x, draw_rows(total, n_dead, generator), offset)
        reset = self.revival_count(threshold)
        self.embed[dead] = new
        self.embed_avg[dead] = new * reset
        self.cluster_size[dead] = reset
        return n_dead
