"""Two gloo processes with half a batch each must train the same codebooks as one process with all of it."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from funcodec_lite.quantization import ResidualVectorQuantizer, RVQConfig
from funcodec_lite.quantization.distributed import all_reduce_sum_, gather_rows, global_rows, is_distributed

BASE = dict(
    dim=8, n_q=3, codebook_size=32, kmeans_iters=8, threshold_ema_dead_code=0.0, dead_code_ratio=0.5,
    revival_grace=2, quantizer_dropout=True,
)
CONFIGS = {
    "per_batch": RVQConfig(**BASE, dropout_choices=[1, 2, 3]),
    "per_item": RVQConfig(**BASE, dropout_per_item=0.5),
}
STEPS = 4
BATCH = 6


def _batch(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(BATCH, 8, 25, generator=g) * torch.linspace(0.2, 2.0, 8)[None, :, None]


def _train(rvq: ResidualVectorQuantizer, rank: int, world: int) -> tuple[list[torch.Tensor], float]:
    """Train on this process's share of each batch; returns each step's codes and the revived count."""
    per = BATCH // world
    codes, revived = [], 0.0
    for step in range(STEPS):
        out = rvq(_batch(step)[rank * per : (rank + 1) * per])
        codes.append(out.codes)
        revived += sum(v.item() for k, v in out.metrics.items() if k.endswith("revived"))
    return codes, revived


def _worker(rank: int, world: int, port: int, path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # different global RNG per process must not matter
        results = {}
        for name, config in CONFIGS.items():
            rvq = ResidualVectorQuantizer(config).train()
            codes, _ = _train(rvq, rank, world)
            results[name] = {"state": rvq.state_dict(), "codes": codes}
        # helpers: all-reduce and global row bookkeeping
        t = torch.full((2,), float(rank + 1))
        all_reduce_sum_(t)
        offset, total = global_rows(3 + rank)
        local = torch.arange(3 + rank, dtype=torch.float32)[:, None] + 10 * rank
        rows = gather_rows(local, torch.tensor([0, 4, 6]), offset)
        extra = {"sum": t, "offset": offset, "total": total, "rows": rows, "distributed": is_distributed()}
        torch.save({**results, **extra}, f"{path}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    assert not is_distributed()
    for r in ranks:
        assert r["distributed"] and r["sum"].tolist() == [3.0, 3.0] and r["total"] == 7
        assert r["rows"][:, 0].tolist() == [0.0, 11.0, 13.0]  # global rows 0, 4, 6 of [0, 1, 2 | 10, .., 13]
    assert ranks[0]["offset"] == 0 and ranks[1]["offset"] == 3

    torch.manual_seed(123)
    for name, config in CONFIGS.items():
        single = ResidualVectorQuantizer(config).train()
        single_codes, revived = _train(single, 0, 1)
        reference = single.state_dict()
        assert revived > 0  # the run exercises dead-code revival too
        assert reference["step"].item() == STEPS
        states = [r[name]["state"] for r in ranks]
        # both processes hold exactly the same buffers
        for key, value in states[0].items():
            assert torch.equal(value, states[1][key]), (name, key)
        # ... equal to one process trained on whole batches (k-means init, EMA, revival, dropout)
        for key, value in reference.items():
            torch.testing.assert_close(states[0][key], value, rtol=1e-5, atol=1e-5, msg=f"{name} {key}")
        for step in range(STEPS):  # the same dropout draws and the same codes, split by item
            merged = torch.cat([ranks[0][name]["codes"][step], ranks[1][name]["codes"][step]])
            assert torch.equal(merged, single_codes[step]), (name, step)
    assert any(bool((c < 0).any()) for c in single_codes)  # per-item dropout did drop layers
