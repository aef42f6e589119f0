"""PixelSNAIL prior: causality, class conditioning, cached sampling equal to the naive loop, training."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from funcodec_lite.lm import (
    PixelSNAIL,
    PixelSNAILConfig,
    incremental_logits,
    sample_incremental,
    sample_naive,
)
from funcodec_lite.lm.pixelsnail import PixelBlock

H, W, CODES = 6, 10, 16


def small_config(attention: bool = True, **changes) -> PixelSNAILConfig:
    """A 6 x 10 map, 16 codes, 3 classes, 2 blocks of 2 residual blocks at width 16."""
    config = PixelSNAILConfig(height=H, width=W, n_codes=CODES, n_classes=3, channel=16, n_block=2,
                              n_res_block=2, res_channel=16, n_head=2, class_dim=8, attention=attention)
    return dataclasses.replace(config, **changes)


def small_model(attention: bool = True, seed: int = 0, **changes) -> PixelSNAIL:
    """A small model in eval mode, with its zero-initialised class maps set to random values."""
    torch.manual_seed(seed)
    model = PixelSNAIL(small_config(attention, **changes)).eval()
    if model.class_map is not None:
        with torch.no_grad():
            model.class_map.normal_()
    return model


def random_codes(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(0, CODES, (batch, H, W), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_baseline_block_size():
    model = small_model()
    codes, labels = random_codes(3, 0), torch.tensor([0, 1, 2])
    assert model(codes, labels).shape == (3, CODES, H, W)
    assert model(codes[:, :2], labels).shape == (3, CODES, 2, W)  # the rows decoded so far
    with pytest.raises(ValueError):
        model(codes[:, :, :5], labels)
    # One baseline-size block: the DCASE baseline's 82.66 M parameters for 4 blocks (its spatial class
    # condition included), plus this model's class-embedding projections (256 -> 512) in 4 residual blocks.
    block = PixelBlock(PixelSNAILConfig())
    projections = 4 * (256 * 512 + 512)
    assert sum(p.numel() for p in block.parameters()) - projections == 82_659_392 // 4


@pytest.mark.parametrize("attention", [True, False])
def test_logits_depend_only_on_earlier_positions(attention):
    model = small_model(attention)
    labels = torch.tensor([1])
    one_hot = F.one_hot(random_codes(1, 1), CODES).permute(0, 3, 1, 2).float().requires_grad_()
    logits = model.forward_one_hot(one_hot, labels)
    seen = torch.zeros(H * W, H * W, dtype=torch.bool)  # seen[p, q]: logits at p depend on the code at q
    for p in range(H * W):
        (grad,) = torch.autograd.grad(logits[0, :, p // W, p % W].sum(), one_hot, retain_graph=True)
        seen[p] = grad[0].abs().sum(0).flatten() > 0
    assert not seen.triu().any()  # nothing at or after p, exactly
    # The local neighbourhood is always seen: left in the row, and two rows above from j - 2 to j + 2.
    for i, j in [(0, 1), (3, 0), (3, 5), (5, 9)]:
        near = [(i, j - 1), (i, j - 2)] + [(i - a, j + b) for a in (1, 2) for b in range(-2, 3)]
        assert all(seen[i * W + j, r * W + c] for r, c in near if 0 <= r and 0 <= c < W)
    # Counts of (p, q) pairs, out of 1770 causal ones: attention widens the view beyond the convolutions.
    assert int(seen.sum()) == (1735 if attention else 1522)
    assert seen[H * W - 1, : H * W - 1].all()


@pytest.mark.parametrize("attention", [True, False])
def test_changing_later_codes_leaves_earlier_logits_unchanged(attention):
    model = small_model(attention)
    codes, labels = random_codes(2, 2), torch.tensor([0, 2])
    with torch.no_grad():
        logits = model(codes, labels).flatten(2)
        for p in (0, 13, 30, 59):
            changed = codes.flatten(1).clone()
            changed[:, p:] = (changed[:, p:] + 1 + torch.arange(H * W - p) % 5) % CODES
            other = model(changed.view_as(codes), labels).flatten(2)
            assert torch.equal(other[:, :, : p + 1], logits[:, :, : p + 1])
            if p < H * W - 1:
                assert (other[:, :, p + 1 :] - logits[:, :, p + 1 :]).abs().max() > 1e-2


@pytest.mark.parametrize("class_map", [True, False])
def test_class_changes_logits(class_map):
    model = small_model(class_map=class_map)
    codes = random_codes(1, 3).expand(3, -1, -1)
    with torch.no_grad():
        logits = model(codes, torch.tensor([0, 1, 2]))
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        assert (logits[a] - logits[b]).abs().mean() > 0.02
    if not class_map:
        # Only the class embedding: the same class gives the same logits.
        with torch.no_grad():
            torch.testing.assert_close(model(codes[:1], torch.tensor([1])), logits[1:2])


@pytest.mark.parametrize("attention", [True, False])
def test_incremental_logits_equal_forward(attention):
    model = small_model(attention)
    codes, labels = random_codes(2, 4), torch.tensor([2, 0])
    with torch.no_grad():
        full = model(codes, labels)
    stepped = incremental_logits(model, codes, labels)
    assert full.abs().max() > 0.5  # not vacuous
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", [True, False])
def test_incremental_sampler_draws_the_naive_samples(attention):
    model = small_model(attention).train()
    labels = torch.tensor([0, 1, 2, 1])
    for seed, temperature in [(0, 1.0), (1, 0.7)]:
        naive = sample_naive(model, labels, torch.Generator().manual_seed(seed), temperature)
        fast = sample_incremental(model, labels, torch.Generator().manual_seed(seed), temperature)
        assert torch.equal(fast, naive)
        assert naive.unique().numel() == CODES  # real draws, not a constant map
    assert model.training  # the samplers switch dropout off and restore the mode
    # The naive loop's logits at each position (a forward pass over the rows so far) against the cached ones.
    stepped = incremental_logits(model, naive, labels)
    with torch.no_grad():
        model.eval()
        for p in (0, 9, 10, 31, 59):
            i, j = divmod(p, W)
            naive_logits = model(naive[:, : i + 1], labels)[:, :, i, j]
            torch.testing.assert_close(stepped[:, :, i, j], naive_logits, atol=1e-5, rtol=1e-5)


def test_other_seed_gives_other_samples_and_step_needs_eval():
    model = small_model()
    labels = torch.tensor([0, 1])
    a = sample_incremental(model, labels, torch.Generator().manual_seed(0))
    b = sample_incremental(model, labels, torch.Generator().manual_seed(1))
    assert (a != b).float().mean() > 0.8
    with pytest.raises(RuntimeError):
        model.train().start(labels)


def test_config_validation():
    with pytest.raises(ValueError):
        PixelSNAILConfig(n_cond_res_block=3)
    with pytest.raises(ValueError):
        PixelSNAILConfig(kernel_size=4)
    with pytest.raises(ValueError):
        PixelSNAILConfig(channel=20, n_head=8)


def toy_codes(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """code(i, j) = (3 * class + i + 2 * j) mod 16, with 10% of the codes replaced by uniform noise."""
    rows, cols = torch.arange(H)[:, None], torch.arange(W)[None]
    codes = (3 * labels[:, None, None] + rows + 2 * cols) % CODES
    noise = torch.randint(0, CODES, codes.shape, generator=generator)
    return torch.where(torch.rand(codes.shape, generator=generator) < 0.1, noise, codes)


def test_a_few_training_steps_learn_a_toy_distribution():
    torch.manual_seed(0)
    model = PixelSNAIL(small_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    history = []
    for _ in range(20):
        labels = torch.randint(0, 3, (16,), generator=generator)
        out = model.loss(toy_codes(labels, generator), labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.append((out.loss.item(), out.accuracy.item()))
    assert history[0][0] == pytest.approx(2.86, abs=0.1)  # about log(16) = 2.77 at the start
    assert history[0][1] < 0.1
    assert history[-1][0] < 1.6  # measured 1.37
    assert history[-1][1] > 0.7  # measured 0.77


def test_attention_dropout_defaults_to_dropout_and_can_be_switched_off():
    from funcodec_lite.lm.pixelsnail_layers import CausalAttention

    def rates(**overrides):
        model = PixelSNAIL(PixelSNAILConfig(height=4, width=5, n_codes=8, n_classes=2, channel=8, n_block=2,
                                            n_res_block=1, res_channel=8, n_head=2, class_dim=4,
                                            dropout=0.3, **overrides))
        return {m.dropout for m in model.modules() if isinstance(m, CausalAttention)}

    assert rates() == {0.3} and rates(attention_dropout=0.0) == {0.0}
    model = PixelSNAIL(PixelSNAILConfig(height=4, width=5, n_codes=8, n_classes=2, channel=8, n_block=1,
                                        n_res_block=1, res_channel=8, n_head=2, class_dim=4, dropout=0.0,
                                        attention_dropout=0.0)).train()
    codes, labels = torch.randint(0, 8, (2, 4, 5)), torch.tensor([0, 1])
    torch.testing.assert_close(model(codes, labels), model.eval()(codes, labels))  # no dropout left at all


def test_column_raster_is_the_row_model_on_transposed_maps():
    """raster="column": the same weights as a row-raster model of the W x H map, run on transposed maps;
    the causal order is time-major (column by column, top to bottom), every other call takes H x W maps."""
    column = small_model(raster="column")
    row = PixelSNAIL(small_config(height=W, width=H)).eval()
    row.load_state_dict(column.state_dict())  # same parameter shapes: the class map is W x H in both
    codes, labels = random_codes(3, 5), torch.tensor([2, 0, 1])
    assert torch.equal(column.from_raster(column.to_raster(codes)), codes)  # an exact permutation
    assert torch.equal(column.to_raster(codes), codes.transpose(1, 2))
    with torch.no_grad():
        logits = column(codes, labels)
        assert logits.shape == (3, CODES, H, W)
        assert torch.equal(logits, row(codes.transpose(1, 2), labels).transpose(2, 3))
    # causality in the time-major order: changing the code at (i, j) moves the logits after it only
    order = torch.arange(H * W).view(W, H).t()  # order[i, j]: when (i, j) is generated
    with torch.no_grad():
        for i, j in [(0, 0), (4, 3), (5, 6), (2, 9)]:
            changed = codes.clone()
            changed[:, i, j] = (changed[:, i, j] + 3) % CODES
            moved = (column(changed, labels) - logits).abs().amax(dim=(0, 1)) > 0
            assert not moved[order <= order[i, j]].any()  # nothing at or before it in time-major order
            later = order > order[i, j]
            assert moved[later].float().mean() > 0.8  # and most of what comes after
            if i < H - 1:  # the next row of the same time step: the model's left neighbour
                assert moved[i + 1, j]
    # both samplers walk the same order and return H x W maps
    naive = sample_naive(column, labels, torch.Generator().manual_seed(7))
    fast = sample_incremental(column, labels, torch.Generator().manual_seed(7))
    assert naive.shape == (3, H, W) and torch.equal(fast, naive)
    torch.testing.assert_close(incremental_logits(column, naive, labels), column(naive, labels), atol=1e-5,
                               rtol=1e-5)
    with pytest.raises(ValueError):
        PixelSNAILConfig(raster="diagonal")


def test_label_dropout_trains_a_no_class_label_and_guidance_moves_samples_toward_the_class():
    """label_dropout: in training a fraction of labels become the "no class" label n_classes (exactly that
    label's eval-mode logits); guidance c + g (c - u) at sampling raises log p(x | class) - log p(x)."""
    model = small_model(label_dropout=0.3, dropout=0.0)
    null = model.config.n_classes
    assert model.class_embed.num_embeddings == model.class_map.shape[0] == 4
    codes, labels = random_codes(64, 8), torch.arange(64) % 3
    torch.manual_seed(1)
    with torch.no_grad():
        trained = model.train()(codes, labels)
        model.eval()
        conditional, unconditional = model(codes, labels), model(codes, torch.full_like(labels, null))
    as_class = (trained - conditional).abs().amax(dim=(1, 2, 3)) < 1e-6
    as_null = (trained - unconditional).abs().amax(dim=(1, 2, 3)) < 1e-6
    assert torch.equal(as_class, ~as_null)  # each example is one or the other
    assert 0.15 < as_null.float().mean() < 0.45  # about label_dropout of them (19 of 64 here)

    def class_gain(maps: torch.Tensor) -> float:
        """mean over maps of log p(maps | class) - log p(maps | no class), nats per map."""
        with torch.no_grad():
            own = -F.cross_entropy(model(maps, labels[:12]), maps, reduction="none").sum((1, 2))
            free = -F.cross_entropy(model(maps, torch.full((12,), null)), maps, reduction="none").sum((1, 2))
        return float((own - free).mean())

    plain = sample_incremental(model, labels[:12], torch.Generator().manual_seed(0))
    guided = sample_incremental(model, labels[:12], torch.Generator().manual_seed(0), guidance=3.0)
    naive = sample_naive(model, labels[:12], torch.Generator().manual_seed(0), guidance=3.0)
    assert torch.equal(guided, naive)
    assert class_gain(guided) > class_gain(plain) + 15.0  # 32.0 against 6.3 nats a map
    with pytest.raises(ValueError, match="label_dropout"):
        sample_incremental(small_model(), labels[:2], guidance=1.0)
