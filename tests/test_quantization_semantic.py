"""Semantic augmentation (FunCodec Eq. 3): shapes, resampling and the cat/add/res identities."""

import pytest
import torch

from funcodec_lite.quantization import (
    ResidualVectorQuantizer,
    RVQConfig,
    SemanticAugmentation,
    SemanticConfig,
)

D, T, B = 8, 12, 2


def _exact_quantizer(targets: torch.Tensor) -> ResidualVectorQuantizer:
    """A 2-layer RVQ that is exact on ``targets`` [B, D, T]: layer 0 holds every target vector,
    layer 1 holds the zero vector (so the residual 0 stays 0)."""
    rows = targets.transpose(1, 2).reshape(-1, D)
    rvq = ResidualVectorQuantizer(RVQConfig(dim=D, n_q=2, codebook_size=rows.shape[0] + 1)).eval()
    rvq.layers[0].embed.copy_(torch.cat([rows, rows[:1] + 100.0]))
    rvq.layers[1].embed.zero_()
    return rvq


def _semantic(mode: str, **kw) -> SemanticAugmentation:
    torch.manual_seed(0)
    return SemanticAugmentation(SemanticConfig(mode=mode, **kw), latent_dim=D)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, T, generator=g), torch.randn(B, 2 * T, 5, generator=g)


@torch.no_grad()
def test_res_mode_is_exact_when_rvq_is_exact():
    aug = _semantic("res", semantic_dim=5)
    latent, feats = _inputs()
    vs = aug.semantic_features(feats, T)
    rvq = _exact_quantizer(latent - vs)
    out, q = aug(latent, feats, rvq)
    assert out.shape == (B, D, T) and aug.output_dim == D
    torch.testing.assert_close(out, latent, rtol=0, atol=1e-5)  # RVQ(V_a - V_s) + V_s = V_a
    codes = aug.encode(latent, feats, rvq)
    assert torch.equal(codes, q.codes)  # codes of V_a - V_s
    torch.testing.assert_close(aug.decode(codes, feats, rvq), latent, rtol=0, atol=1e-5)
    # the codes are not those of V_a itself
    assert not torch.equal(rvq.encode(latent), codes)


@torch.no_grad()
def test_add_mode_adds_semantic_features():
    aug = _semantic("add", semantic_dim=5)
    latent, feats = _inputs(1)
    rvq = _exact_quantizer(latent)
    out, q = aug(latent, feats, rvq)
    torch.testing.assert_close(out, latent + aug.semantic_features(feats, T), rtol=0, atol=1e-5)
    assert torch.equal(aug.encode(latent, feats, rvq), q.codes)
    torch.testing.assert_close(aug.decode(q.codes, feats, rvq), out)


@torch.no_grad()
def test_cat_mode_concatenates_channels():
    aug = _semantic("cat", semantic_dim=5)
    latent, feats = _inputs(2)
    rvq = _exact_quantizer(latent)
    out, _ = aug(latent, feats, rvq)
    assert aug.output_dim == 2 * D and out.shape == (B, 2 * D, T)
    torch.testing.assert_close(out[:, :D], latent, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, D:], aug.semantic_features(feats, T))


@torch.no_grad()
def test_token_ids_are_resampled_nearest_and_embedded():
    aug = _semantic("res", vocab_size=10)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 7, 8, 8, 9, 9]])
    vs = aug.semantic_features(ids, 12)  # 6 ids -> 12 frames: each id repeated twice
    expected = aug.proj(aug.embedding(ids.repeat_interleave(2, dim=1))).transpose(1, 2)
    torch.testing.assert_close(vs, expected)
    down = aug.semantic_features(torch.arange(8).view(1, 8) % 10, 4)  # 8 ids -> 4 frames: ids 0, 2, 4, 6
    torch.testing.assert_close(down, aug.proj(aug.embedding(torch.tensor([[0, 2, 4, 6]]))).transpose(1, 2))


@torch.no_grad()
def test_float_features_are_resampled_linearly():
    aug = _semantic("add", semantic_dim=1)
    aug.proj.weight.fill_(1.0)
    aug.proj.bias.zero_()
    ramp = torch.arange(4, dtype=torch.float32).view(1, 4, 1)  # values 0, 1, 2, 3
    up = aug.semantic_features(ramp, 8)[0, 0]
    # half-pixel linear interpolation: interior points halfway, ends clamped
    torch.testing.assert_close(up, torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]))
    same = aug.semantic_features(ramp, 4)[0, 0]
    torch.testing.assert_close(same, torch.tensor([0.0, 1.0, 2.0, 3.0]))


def test_gradients_reach_the_semantic_projection_in_training():
    aug = _semantic("res", semantic_dim=5)
    latent, feats = _inputs(3)
    rvq = ResidualVectorQuantizer(RVQConfig(dim=D, n_q=2, codebook_size=8, kmeans_iters=3)).train()
    latent.requires_grad_(True)
    out, q = aug(latent, feats, rvq, n_q=1)
    assert q.n_q == 1 and q.codes.shape == (B, 1, T)
    (out.sum() + q.commit_loss).backward()
    assert latent.grad.abs().sum() > 0 and aug.proj.weight.grad.abs().sum() > 0


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError):
        SemanticAugmentation(SemanticConfig(mode="concat", semantic_dim=4), D)
    with pytest.raises(ValueError):
        SemanticAugmentation(SemanticConfig(mode="res"), D)
    aug = _semantic("res", semantic_dim=5)
    with pytest.raises(ValueError):
        aug.semantic_features(torch.zeros(1, 4, dtype=torch.long), 4)  # ids without a vocabulary
