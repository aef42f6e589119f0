"""k-means initialisation, EMA updates and dead-code revival of the Euclidean codebook."""

import torch

from funcodec_lite.quantization import EuclideanCodebook, kmeans


def _blobs(centres: torch.Tensor, per: int, spread: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = centres.repeat_interleave(per, 0)
    return x + spread * torch.randn(x.shape, generator=g)


def test_kmeans_converges_to_a_lloyd_fixed_point_covering_all_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 20.0]])
    x = _blobs(centres, 40, 0.5, seed=0)
    means, counts = kmeans(x, 10, 30, torch.Generator().manual_seed(1))
    # every true centre (10 apart) has a mean within 1.0 (a blob may be split between two means)
    assert torch.cdist(centres, means).min(1).values.max().item() < 1.0
    # fixed point: each mean is the average of the points nearest to it, counts match
    codes = torch.cdist(x, means).argmin(1)
    assert torch.equal(torch.bincount(codes, minlength=10).float(), counts)
    for k in range(10):
        torch.testing.assert_close(means[k], x[codes == k].mean(0))
    # and far better than the random samples it started from
    start = x[torch.randperm(200, generator=torch.Generator().manual_seed(1))[:10]]
    sse = (x - means[codes]).pow(2).sum().item()
    assert sse < 0.5 * torch.cdist(x, start).min(1).values.pow(2).sum().item()


def test_kmeans_reseeds_empty_clusters_from_data():
    x = torch.arange(10, dtype=torch.float32).view(10, 1) * torch.ones(1, 3)
    means, counts = kmeans(x, 16, 5, torch.Generator().manual_seed(0))
    # more clusters than points: every mean is still a data point, none left at a stale value
    assert torch.cdist(means, x).min(1).values.max().item() == 0.0
    assert counts.sum().item() == 10.0
    assert set(means[:, 0].tolist()) == set(range(10))


def test_initialise_makes_statistics_consistent():
    x = _blobs(torch.randn(8, 4, generator=torch.Generator().manual_seed(2)) * 5, 25, 0.3, seed=3)
    cb = EuclideanCodebook(4, 16, kmeans_iters=10)
    assert not cb.is_initialised
    cb.initialise(x, torch.Generator().manual_seed(4))
    assert cb.is_initialised and cb.inited.item() == 1.0
    torch.testing.assert_close(cb.embed_avg, cb.embed * cb.cluster_size[:, None])
    assert cb.cluster_size.sum().item() == 200.0
    # the codebook quantizes its own training data well: error below the blobs' variance (4 * 0.3^2)
    err = (cb.decode(cb.encode(x)) - x).pow(2).sum(1).mean().item()
    assert err < 4 * 0.3**2


def test_ema_update_matches_formula():
    cb = EuclideanCodebook(2, 3, decay=0.9, epsilon=1e-5, kmeans_init=False, threshold_ema_dead_code=0)
    cb.embed.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    cb.cluster_size.copy_(torch.tensor([2.0, 3.0, 4.0]))
    cb.embed_avg.copy_(cb.embed * cb.cluster_size[:, None])
    x = torch.tensor([[0.2, 0.0], [0.0, 0.4], [1.2, 1.0], [4.0, 6.0]])
    codes = cb.encode(x)
    assert codes.tolist() == [0, 0, 1, 2]
    old_size, old_avg = cb.cluster_size.clone(), cb.embed_avg.clone()
    update = cb.update(x, codes, torch.Generator())
    assert update.counts.tolist() == [2.0, 1.0, 1.0] and update.revived == 0
    size = 0.9 * old_size + 0.1 * torch.tensor([2.0, 1.0, 1.0])
    sums = torch.tensor([[0.2, 0.4], [1.2, 1.0], [4.0, 6.0]])
    avg = 0.9 * old_avg + 0.1 * sums
    smoothed = (size + 1e-5) / (size.sum() + 3e-5) * size.sum()
    torch.testing.assert_close(cb.cluster_size, size)
    torch.testing.assert_close(cb.embed_avg, avg)
    torch.testing.assert_close(cb.embed, avg / smoothed[:, None])


def _dead_code_setup() -> tuple[EuclideanCodebook, torch.Tensor]:
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    x = _blobs(centres, 10, 1.0, seed=5)
    cb = EuclideanCodebook(2, 4, decay=0.99, kmeans_init=False, threshold_ema_dead_code=2.0)
    cb.embed.copy_(torch.cat([centres, torch.tensor([[100.0, 100.0]])]))
    cb.cluster_size.copy_(torch.tensor([10.0, 10.0, 10.0, 0.5]))  # code 3 is dead
    cb.embed_avg.copy_(cb.embed * cb.cluster_size[:, None])
    return cb, x


def test_revived_code_survives_next_ema_steps_and_is_used():
    cb, x = _dead_code_setup()
    first = cb.update(x, cb.encode(x), torch.Generator().manual_seed(0))
    assert first.counts[3].item() == 0.0 and first.revived == 1
    new = cb.embed[3].clone()
    assert torch.cdist(new[None], x).min().item() == 0.0  # replaced by a batch vector
    assert cb.cluster_size[3].item() >= 2.0
    torch.testing.assert_close(cb.embed_avg[3], new * cb.cluster_size[3])
    for step in range(3):
        codes = cb.encode(x)
        used = int((codes == 3).sum())
        assert used >= 1  # the revived code now takes part of a cluster
        update = cb.update(x, codes, torch.Generator().manual_seed(1 + step))
        assert update.revived == 0
        # the stale codeword (100, 100) does not come back: the code stays among the data
        assert (cb.embed[3] - new).norm().item() < 2.0
        assert cb.cluster_size[3].item() > 2.0


def _mixture_batch(centres: torch.Tensor, rows: int, g: torch.Generator) -> torch.Tensor:
    pick = torch.randint(0, centres.shape[0], (rows,), generator=g)
    return centres[pick] + 0.05 * torch.randn(rows, centres.shape[1], generator=g)


def _revival_run(steps: int, **rule) -> tuple[list[int], torch.Tensor]:
    """The shipped batch (320 vectors per step) on 1024 codes; returns revived per step and last counts."""
    g = torch.Generator().manual_seed(7)
    centres = torch.randn(3000, 8, generator=g)
    cb = EuclideanCodebook(8, 1024, kmeans_iters=5, **rule)
    cb.initialise(_mixture_batch(centres, 320, g), torch.Generator().manual_seed(8))
    revived, recent = [], torch.zeros(1024)
    for step in range(steps):
        x = _mixture_batch(centres, 320, g)
        update = cb.update(x, cb.encode(x), torch.Generator().manual_seed(100 + step))
        revived.append(update.revived)
        if step >= steps - 100:
            recent += update.counts
    return revived, recent


def test_relative_threshold_revives_under_two_percent_at_small_batches_and_keeps_codes_used():
    revived, counts = _revival_run(600, threshold_ema_dead_code=0.0, dead_code_ratio=0.1)
    after_warmup = revived[300:]
    assert sum(after_warmup) / len(after_warmup) < 0.02 * 1024
    p = counts / counts.sum()
    perplexity = torch.exp(-(p * p.clamp(min=1e-12).log()).sum()).item()
    assert perplexity > 500  # the codebook covers the data instead of collapsing onto a few codes
    # EnCodec's absolute count of 2 marks nearly every code dead at 320 vectors per step
    old, _ = _revival_run(150, threshold_ema_dead_code=2.0, dead_code_ratio=0.0, revival_grace=0)
    assert sum(old[100:]) / 50 > 0.5 * 1024


def test_revived_unused_code_survives_its_grace_steps_then_dies():
    cb, x = _dead_code_setup()
    cb.decay, cb.revival_grace = 0.9, 20
    cb.update(x, cb.encode(x), torch.Generator().manual_seed(0))  # code 3 revived
    g = torch.Generator().manual_seed(1)
    revivals, last = [], cb.cluster_size[3].item()
    for step in range(100):
        batch = 0.01 * torch.randn(30, 2, generator=g)
        codes = torch.zeros(30, dtype=torch.long)  # every vector goes to code 0: code 3 stays unused
        cb.update(batch, codes, torch.Generator().manual_seed(step))
        if cb.cluster_size[3].item() > last:  # unused, its count only falls, except when revived
            revivals.append(step)
        last = cb.cluster_size[3].item()
    # an unused revived code is revived again only once the EMA has decayed its count below the
    # threshold, at least `revival_grace` steps later (EnCodec's rule revives it again at once)
    assert len(revivals) >= 2
    assert revivals[0] >= 19 and all(b - a >= 20 for a, b in zip(revivals, revivals[1:]))


def test_kmeans_counts_match_the_final_assignment_after_reseeding():
    from funcodec_lite.quantization.search import nearest_codes

    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(3))
    for seed in range(5):
        means, counts = kmeans(x, 64, 2, torch.Generator().manual_seed(seed))  # empty clusters reseeded
        assert torch.equal(counts, torch.bincount(nearest_codes(x, means), minlength=64).float())
