"""Exactness of the nearest-codeword search: brute force, tie-breaking and EnCodec bit-compatibility."""

from typing import Any

import pytest
import torch
from reference_libs import import_reference

from funcodec_lite.quantization import ResidualVectorQuantizer, RVQConfig, nearest_codes
from funcodec_lite.quantization.search import first_argmin


def _latents(batch: int, frames: int, dim: int = 128, seed: int = 0) -> torch.Tensor:
    """Latent-like data [B, D, T]: fixed channel scales over ~2 decades, smooth frames plus noise."""
    scale = torch.logspace(-1, 0.7, dim)[torch.randperm(dim, generator=torch.Generator().manual_seed(0))]
    g = torch.Generator().manual_seed(seed)
    smooth = torch.randn(batch, dim, frames + 4, generator=g).unfold(-1, 5, 1).mean(-1) * 2
    return (smooth + 0.5 * torch.randn(batch, dim, frames, generator=g)) * scale[None, :, None]


def test_nearest_codes_match_float64_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 32, generator=g) * 2
    embed = torch.randn(256, 32, generator=g)
    codes = nearest_codes(x, embed)
    exact = torch.cdist(x.double(), embed.double())
    best = exact.argmin(1)
    agree = (codes == best).float().mean().item()
    assert agree > 0.999
    # where they differ, the two codewords must be equally near up to float32 rounding
    gap = exact.gather(1, codes[:, None]) - exact.gather(1, best[:, None])
    assert gap.max().item() < 1e-4


def test_nearest_codes_brute_force_on_well_separated_codes():
    g = torch.Generator().manual_seed(1)
    embed = torch.randn(64, 16, generator=g) * 10
    truth = torch.randint(0, 64, (500,), generator=g)
    x = embed[truth] + 0.1 * torch.randn(500, 16, generator=g)
    assert torch.equal(nearest_codes(x, embed), truth)
    assert torch.equal(nearest_codes(x, embed), torch.cdist(x.double(), embed.double()).argmin(1))


def test_first_argmin_equals_argmin_with_ties():
    g = torch.Generator().manual_seed(2)
    dist = torch.randint(0, 5, (700, 1024), generator=g).float()  # many exact ties
    dist[3] = 0.0
    dist[4, 100:] = -1.0
    assert torch.equal(first_argmin(dist), dist.argmin(1))
    assert first_argmin(dist)[3].item() == 0 and first_argmin(dist)[4].item() == 100


def test_chunked_search_matches_whole():
    x = _latents(1, 900, 64, seed=3)[0].t()  # strided [T, D] like EnCodec's B = 1 layout
    embed = x[::7].clone()
    whole = nearest_codes(x, embed)
    assert torch.equal(nearest_codes(x, embed, max_rows=256), whole)
    assert torch.equal(nearest_codes(x.contiguous(), embed, max_rows=100), whole)


def _trained_pair(n_q: int) -> tuple[ResidualVectorQuantizer, Any]:
    """Our quantizer and EnCodec's with the same codebooks: per layer, samples of that layer's residual.

    Only these comparisons need the ``encodec`` package (a test extra): without it they are skipped and
    the search tests above still run.
    """
    encodec_rvq = import_reference("encodec.quantization").ResidualVectorQuantizer
    ours = ResidualVectorQuantizer(RVQConfig(dim=128, n_q=n_q, codebook_size=1024)).eval()
    ref = encodec_rvq(dimension=128, n_q=n_q, bins=1024).eval()
    residual = _latents(4, 600, seed=10).transpose(1, 2).reshape(-1, 128)
    g = torch.Generator().manual_seed(11)
    for i in range(n_q):
        # codewords near (not on) residual samples, so no residual collapses to exactly zero
        embed = residual[torch.randperm(residual.shape[0], generator=g)[:1024]]
        embed = embed + 0.3 * embed.std(0) * torch.randn(embed.shape, generator=g)
        embed[700] = embed[5]  # an exact duplicate: ties must resolve to the first index
        ours.layers[i].embed.copy_(embed)
        ours.layers[i].inited.fill_(1.0)
        ref.vq.layers[i]._codebook.embed.copy_(embed)
        ref.vq.layers[i]._codebook.inited.fill_(1.0)
        residual = residual - embed[nearest_codes(residual, embed)]
    return ours, ref


@pytest.fixture(scope="module")
def quantizer_pair() -> tuple[ResidualVectorQuantizer, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _trained_pair(32)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("n_q,kbps", [(2, 1.5), (8, 6.0), (32, 24.0)])
def test_codes_bit_identical_to_encodec(quantizer_pair, n_q, kbps):
    ours, ref = quantizer_pair
    assert ours.n_q_for_bandwidth(kbps, 75) == n_q
    for batch, frames, seed in [(1, 1500, 20), (2, 400, 21)]:  # B = 1 and B > 1 use different layouts
        x = _latents(batch, frames, seed=seed)
        x[0, :, 7] = ours.layers[0].embed[5]  # lands on a duplicated codeword
        expected = ref.encode(x, 75, kbps).permute(1, 0, 2)
        codes = ours.encode(x, n_q)
        assert codes.shape == (batch, n_q, frames)
        assert torch.equal(codes, expected)
        assert codes[0, 0, 7].item() == 5
        decoded = ref.decode(expected.permute(1, 0, 2))
        torch.testing.assert_close(ours.decode(codes), decoded, rtol=0, atol=1e-5)
        # the codes are not trivial: every layer uses many distinct codes
        assert min(codes[:, i].unique().numel() for i in range(n_q)) > 40


@pytest.mark.filterwarnings("ignore")
def test_codes_bit_identical_to_encodec_with_two_threads(quantizer_pair):
    ours, ref = quantizer_pair
    torch.set_num_threads(2)  # restored by the autouse fixture
    for batch, frames, seed in [(1, 900, 30), (2, 300, 31)]:
        x = _latents(batch, frames, seed=seed)
        assert torch.equal(ours.encode(x, 8), ref.encode(x, 75, 6.0).permute(1, 0, 2))
