"""Exact nearest-codeword search by expanded squared distance, bit-compatible with EnCodec."""

from __future__ import annotations

import torch

# Row block processed per distance matrix; bounds memory to max_rows * K floats.
DEFAULT_MAX_ROWS = 65536
# Column block for the two-level argmin (see `first_argmin`).
_ARGMIN_BLOCK = 32


def squared_norms(embed: torch.Tensor) -> torch.Tensor:
    """|c|^2 per codeword, computed in the same op order as EnCodec.

    Args:
        embed (torch.Tensor): codebook of shape [K, D].

    Returns:
        torch.Tensor: shape [1, K].
    """
    return embed.t().pow(2).sum(0, keepdim=True)


def first_argmin(dist: torch.Tensor) -> torch.Tensor:
    """Index of the first minimum of each row, equal to ``dist.argmin(1)``.

    ``argmin`` over a contiguous last dimension is not vectorised on CPU; the block minimum
    (``amin``) is. We take block minima over groups of ``_ARGMIN_BLOCK`` columns, pick the first
    block that holds the row minimum, then the first position inside that block. The first block
    holding the minimum contains its first occurrence, so ties resolve exactly as ``argmin`` does.

    Args:
        dist (torch.Tensor): contiguous matrix of shape [N, K].

    Returns:
        torch.Tensor: long indices of shape [N].
    """
    n, k = dist.shape
    if k % _ARGMIN_BLOCK or k <= _ARGMIN_BLOCK or not dist.is_contiguous() or dist.device.type != "cpu":
        return dist.argmin(1)
    per_row = k // _ARGMIN_BLOCK
    block = dist.view(n, per_row, _ARGMIN_BLOCK).amin(2).argmin(1)
    first_rows = torch.arange(0, n * per_row, per_row, device=dist.device)
    inside = dist.view(n * per_row, _ARGMIN_BLOCK).index_select(0, first_rows + block)
    return block * _ARGMIN_BLOCK + inside.argmin(1)


def nearest_codes(
    x: torch.Tensor,
    embed: torch.Tensor,
    embed_sq: torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Index of the nearest codeword (squared Euclidean distance) for each row of ``x``.

    The distance is ``|x|^2 - 2 x.c + |c|^2`` with one matrix product. Every intermediate is
    rounded exactly as in EnCodec's ``EuclideanCodebook.quantize`` (same operands, same memory
    layout, same order of operations), so the returned codes are bit-identical to EnCodec's for the
    same input layout. The speed comes from reusing one distance buffer, doing the two additions
    in place, and a vectorised argmin; no extra rounding step is introduced.

    Args:
        x (torch.Tensor): vectors of shape [N, D], any strides.
        embed (torch.Tensor): codebook of shape [K, D].
        embed_sq (torch.Tensor, optional): ``squared_norms(embed)`` of shape [1, K] if already known.
        max_rows (int): rows per distance block ([max_rows, K] floats of scratch memory).
        scratch (torch.Tensor, optional): reusable buffer of at least min(N, max_rows) * K elements
            of ``x``'s dtype and device (saves an allocation when called once per RVQ layer).

    Returns:
        torch.Tensor: long codes of shape [N].
    """
    if embed_sq is None:
        embed_sq = squared_norms(embed)
    n, k = x.shape[0], embed.shape[0]
    codes = torch.empty(n, dtype=torch.long, device=x.device)
    if n == 0:
        return codes
    embed_t = embed.t()
    rows = min(n, max_rows)
    if scratch is None or scratch.numel() < rows * k:
        scratch = torch.empty(rows * k, dtype=x.dtype, device=x.device)
    for start in range(0, n, rows):
        xs = x[start : start + rows]
        dist = scratch.view(-1)[: xs.shape[0] * k].view(xs.shape[0], k)
        x_sq = xs.pow(2).sum(1, keepdim=True)
        torch.mm(2 * xs, embed_t, out=dist)
        torch.sub(x_sq, dist, out=dist)  # |x|^2 - 2 x.c, rounded once as in EnCodec
        dist.add_(embed_sq)  # ... + |c|^2
        codes[start : start + rows] = first_argmin(dist)
    return codes
