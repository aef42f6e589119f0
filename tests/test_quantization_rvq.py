"""Residual vector quantizer: training, gradients, commitment loss, dropout, bitrate and metrics."""

import copy
import math

import pytest
import torch

from funcodec_lite.quantization import ResidualVectorQuantizer, RVQConfig


def _config(**kw) -> RVQConfig:
    base = dict(dim=8, n_q=4, codebook_size=16, kmeans_iters=5)
    base.update(kw)
    return RVQConfig(**base)


def _latent(batch: int = 4, frames: int = 20, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, dim, frames, generator=torch.Generator().manual_seed(seed))


def _trained(config: RVQConfig, steps: int = 1) -> ResidualVectorQuantizer:
    rvq = ResidualVectorQuantizer(config).train()
    for step in range(steps):
        rvq(_latent(seed=100 + step))
    return rvq


def _snapshot(rvq: ResidualVectorQuantizer) -> ResidualVectorQuantizer:
    """Evaluation copy of the codebooks as they are now (a training forward updates them after use)."""
    return copy.deepcopy(rvq).eval()


def test_first_training_batch_initialises_every_layer_and_counts_steps():
    rvq = ResidualVectorQuantizer(_config())
    assert all(not layer.is_initialised for layer in rvq.layers)
    out = rvq.train()(_latent())
    assert all(layer.is_initialised for layer in rvq.layers)
    assert rvq.step.item() == 1 and out.n_q == 4 and out.codes.shape == (4, 4, 20)
    rvq.eval()(_latent())
    assert rvq.step.item() == 1  # evaluation does not advance the step


def test_error_decreases_with_layers():
    rvq = _trained(_config(n_q=6, codebook_size=32), steps=3).eval()
    x = _latent(seed=5)
    errors = [(rvq.decode(rvq.encode(x, n)) - x).pow(2).mean().item() for n in range(1, 7)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 0.6 * errors[0]


def test_eval_forward_equals_encode_and_decode():
    rvq = _trained(_config()).eval()
    x = _latent(seed=7)
    out = rvq(x, n_q=3)
    codes = rvq.encode(x, 3)
    assert torch.equal(out.codes, codes)
    assert torch.equal(out.quantized, rvq.decode(codes))
    assert out.n_q == 3 and codes.dtype == torch.long


def test_ste_passes_decoder_gradient_unchanged():
    rvq = _trained(_config())
    x = _latent(seed=8).requires_grad_(True)
    used = _snapshot(rvq)
    out = rvq(x)
    g = torch.randn(out.quantized.shape, generator=torch.Generator().manual_seed(9))
    (grad,) = torch.autograd.grad(out.quantized, x, g)
    assert torch.equal(grad, g)
    torch.testing.assert_close(out.quantized.detach(), used.decode(out.codes), rtol=0, atol=1e-6)


def test_every_layer_commitment_term_reaches_the_encoder():
    rvq = _trained(_config(threshold_ema_dead_code=0))
    x = _latent(seed=10).requires_grad_(True)
    used = _snapshot(rvq)
    out = rvq(x)
    layer_q = [used.layers[i].decode(out.codes[:, i]).transpose(1, 2) for i in range(4)]
    before = x.detach().clone()
    for i in range(4):
        (grad,) = torch.autograd.grad(out.metrics[f"layer{i}/commit"], x, retain_graph=True)
        # d/dV mse(Q_{i-1}, VQ_i(Q_{i-1})) = 2 (Q_{i-1} - VQ_i(Q_{i-1})) / numel, with Q_i the residual
        before = before - layer_q[i]
        assert grad.abs().max().item() > 1e-4
        torch.testing.assert_close(grad, 2 * before / x.numel())
    # the codebooks get no gradient (they are buffers)
    assert all(not b.requires_grad for b in rvq.buffers())


def test_commit_loss_is_funcodec_eq6():
    rvq = _trained(_config())
    x = _latent(seed=11)
    used = _snapshot(rvq)
    out = rvq(x)
    residual, terms = x.clone(), []
    for i in range(4):
        q = used.layers[i].decode(out.codes[:, i]).transpose(1, 2)
        terms.append((residual - q).pow(2).mean())
        residual = residual - q
    expected = (x - out.quantized).pow(2).mean() + torch.stack(terms).mean()
    torch.testing.assert_close(out.commit_loss, expected)
    torch.testing.assert_close(out.commit_loss, residual.pow(2).mean() + torch.stack(terms).mean())
    assert out.commit_loss.dim() == 0


def test_caller_n_q_is_honoured_in_training_despite_dropout():
    rvq = _trained(_config(quantizer_dropout=True))
    for n in (1, 3):
        out = rvq(_latent(seed=12), n_q=n)
        assert out.n_q == n and out.codes.shape[1] == n and bool((out.codes >= 0).all())
    with pytest.raises(ValueError):
        rvq(_latent(), n_q=5)


def test_batch_dropout_draws_from_choices_and_is_reproducible():
    config = _config(n_q=8, quantizer_dropout=True, dropout_choices=[1, 2, 4, 8])
    a = _trained(config)
    b = ResidualVectorQuantizer(config).train()
    b.load_state_dict(a.state_dict())
    drawn_a = [a(_latent(seed=s)).n_q for s in range(24)]
    drawn_b = [b(_latent(seed=s)).n_q for s in range(24)]
    assert drawn_a == drawn_b  # same step counter -> same draws (as on every DDP process)
    assert set(drawn_a) == {1, 2, 4, 8}
    uniform = ResidualVectorQuantizer(_config(n_q=8, quantizer_dropout=True)).train()
    assert len({uniform(_latent(seed=s)).n_q for s in range(40)}) >= 6  # uniform over 1..8
    assert a.eval()(_latent()).n_q == 8  # no dropout in evaluation


def test_per_item_dropout_uses_each_items_first_layers():
    config = _config(n_q=6, quantizer_dropout=True, dropout_per_item=0.5, threshold_ema_dead_code=0)
    rvq = _trained(config)
    x = _latent(batch=32, seed=13).requires_grad_(True)
    used = _snapshot(rvq)
    out = rvq(x)
    item_n = (out.codes[:, :, 0] >= 0).sum(1)
    assert torch.equal((out.codes >= 0).all(2), out.codes[:, :, 0] >= 0)  # whole items drop
    full = int((item_n == 6).sum())
    assert 8 <= full < 32 and int(item_n.min()) < 6
    for b in range(32):  # codes are a prefix: layers < n_b present, the rest -1
        assert bool((out.codes[b, : item_n[b]] >= 0).all()) and bool((out.codes[b, item_n[b] :] == -1).all())
    torch.testing.assert_close(out.quantized.detach(), used.decode(out.codes), rtol=0, atol=1e-6)
    # per-item Eq. 6: each item averages its own n_b layer terms
    residual, per_item = x.detach().clone(), torch.zeros(32)
    for i in range(6):
        q = used.layers[i].decode(out.codes[:, i].clamp(min=0)).transpose(1, 2)
        active = (item_n > i).float()
        per_item += (residual - q).pow(2).mean((1, 2)) * active / item_n
        residual = residual - q * active[:, None, None]
    per_item += residual.pow(2).mean((1, 2))
    torch.testing.assert_close(out.commit_loss, per_item.mean())


def test_n_q_for_bandwidth():
    rvq = ResidualVectorQuantizer(RVQConfig(n_q=32, codebook_size=1024))
    assert [rvq.n_q_for_bandwidth(kbps, 75) for kbps in (1.5, 3.0, 6.0, 12.0, 24.0)] == [2, 4, 8, 16, 32]
    assert rvq.n_q_for_bandwidth(2.0, 50) == 4 and rvq.n_q_for_bandwidth(8.0, 50) == 16  # FunCodec ds320
    assert rvq.n_q_for_bandwidth(1.0, 75) == 1 and rvq.n_q_for_bandwidth(0.1, 75) == 1
    assert rvq.n_q_for_bandwidth(100.0, 75) == 32
    assert rvq.n_q_for_bandwidth(4.35, 50) == 8  # 4350 / 500 = 8.7


def test_metrics_entropy_and_perplexity():
    rvq = ResidualVectorQuantizer(_config(n_q=2, codebook_size=4, dim=2)).eval()
    embed = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    rvq.layers[0].embed.copy_(embed)
    rvq.layers[1].embed.copy_(embed * 0.0 + torch.tensor([[0.0, 0.0]]))
    x = embed.repeat(3, 1).t().unsqueeze(0)  # [1, 2, 12]: each code 3 times
    out = rvq(x)
    torch.testing.assert_close(out.metrics["layer0/entropy"], torch.tensor(2.0))
    torch.testing.assert_close(out.metrics["layer0/perplexity"], torch.tensor(4.0))
    torch.testing.assert_close(out.metrics["layer1/entropy"], torch.tensor(0.0))  # residual 0 -> code 0
    torch.testing.assert_close(out.metrics["layer1/perplexity"], torch.tensor(1.0))
    skewed = rvq(torch.tensor([[[0.0, 0.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]]]))  # codes 0, 0, 0, 1
    p = torch.tensor([0.75, 0.25])
    torch.testing.assert_close(skewed.metrics["layer0/entropy"], -(p * p.log2()).sum())


def test_training_metrics_report_revived_codes():
    rvq = ResidualVectorQuantizer(_config(codebook_size=64, threshold_ema_dead_code=2.0)).train()
    out = rvq(_latent(batch=2, frames=10))  # 20 vectors for 64 codes: most codes stay empty
    assert out.metrics["layer0/revived"].item() >= 40
    assert set(out.metrics) >= {"layer3/entropy", "layer3/perplexity", "layer3/commit", "layer3/revived"}


def test_state_dict_names_and_loading_without_step():
    rvq = _trained(_config())
    state = rvq.state_dict()
    names = {"step", "layers.0.inited", "layers.0.cluster_size", "layers.0.embed", "layers.0.embed_avg"}
    assert names <= set(state)
    assert state["layers.3.embed"].shape == (16, 8) and state["layers.3.inited"].shape == (1,)
    fresh = ResidualVectorQuantizer(_config())
    fresh.load_state_dict({k: v for k, v in state.items() if k != "step"})  # e.g. converted from EnCodec
    assert fresh.step.item() == 0
    assert torch.equal(fresh.eval().encode(_latent()), rvq.eval().encode(_latent()))


def test_decode_skips_dropped_layers():
    rvq = _trained(_config()).eval()
    codes = rvq.encode(_latent(seed=14))
    partial = codes.clone()
    partial[1, 2:] = -1
    out = rvq.decode(partial)
    torch.testing.assert_close(out[1], rvq.decode(codes[1:2, :2])[0])
    torch.testing.assert_close(out[0], rvq.decode(codes[:1])[0])
    assert math.isfinite(out.abs().sum().item())


def test_training_under_bf16_autocast_picks_the_float32_codes():
    rvq = _trained(_config(codebook_size=256, threshold_ema_dead_code=0, dead_code_ratio=0))
    x = (_latent(batch=8, frames=64, seed=21) * 3).to(torch.bfloat16)  # an encoder output under autocast
    reference = _snapshot(rvq).encode(x)  # inference searches in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rvq(x)
    assert torch.equal(out.codes, reference)
    assert out.quantized.dtype == torch.float32
