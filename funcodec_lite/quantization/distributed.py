"""Collective helpers for codebook statistics; each is a no-op when torch.distributed is not in use."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(*tensors: torch.Tensor) -> None:
    """Sum tensors in place over all processes (one collective for all of them).

    Args:
        *tensors (torch.Tensor): tensors of one dtype and device; any shapes.
    """
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    start = 0
    for t in tensors:
        t.copy_(flat[start : start + t.numel()].view_as(t))
        start += t.numel()


def global_rows(n_local: int, device: torch.device | str = "cpu") -> tuple[int, int]:
    """Place of this process's rows in the batch concatenated over processes in rank order.

    Args:
        n_local (int): number of rows held by this process.
        device: device for the collective (must suit the backend: CPU for gloo, CUDA for NCCL).

    Returns:
        tuple[int, int]: (offset of the first local row, total number of rows).
    """
    if not is_distributed():
        return 0, n_local
    counts = torch.zeros(dist.get_world_size(), dtype=torch.long, device=device)
    counts[dist.get_rank()] = n_local
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    rank = dist.get_rank()
    return int(counts[:rank].sum().item()), int(counts.sum().item())


def gather_rows(x_local: torch.Tensor, index: torch.Tensor, offset: int) -> torch.Tensor:
    """Rows of the global (rank-ordered) batch picked by global ``index``, identical on every process.

    Each process writes the rows it owns into a zero matrix and the matrices are summed, so every
    process receives exactly the rows a single process holding the whole batch would pick.

    Args:
        x_local (torch.Tensor): this process's rows, shape [n_local, D].
        index (torch.Tensor): global row indices, shape [M] (the same on every process).
        offset (int): global index of ``x_local[0]`` (from ``global_rows``).

    Returns:
        torch.Tensor: shape [M, D].
    """
    index = index.to(x_local.device)
    if not is_distributed():
        return x_local[index - offset]
    out = torch.zeros(index.shape[0], x_local.shape[1], dtype=x_local.dtype, device=x_local.device)
    local = index - offset
    mine = (local >= 0) & (local < x_local.shape[0])
    out[mine] = x_local[local[mine]]
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def draw_rows(total: int, num: int, generator: torch.Generator) -> torch.Tensor:
    """Global row indices for ``num`` random picks out of ``total`` rows (distinct when possible).

    Args:
        total (int): number of rows in the global batch (> 0).
        num (int): number of rows to pick.
        generator (torch.Generator): CPU generator seeded identically on every process.

    Returns:
        torch.Tensor: long indices of shape [num] (CPU).
    """
    if total >= num:
        return torch.randperm(total, generator=generator)[:num]
    return torch.randint(0, total, (num,), generator=generator)
