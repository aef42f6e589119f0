"""The masked token model and MaskGIT decoding: training masks, loss on masked tokens only, the per-example
re-mask count, prompts kept exactly, determinism, and a model that learns to fill a token process."""

import math

import pytest
import torch
from tiny_models import counting_codes
from torch.nn import functional as F

from funcodec_lite.lm.codec_lm import LMBatch
from funcodec_lite.lm.masked import MaskedLM, MaskedLMConfig, gamma
from funcodec_lite.lm.maskgit import MaskGITConfig, maskgit_generate
from funcodec_lite.lm.transformer import TransformerConfig

SMALL = TransformerConfig(dim=32, n_layers=2, n_heads=2, causal=False)


def _model(n_q=4, n_conditioning=0, card=8, seed=0, **changes) -> MaskedLM:
    torch.manual_seed(seed)
    return MaskedLM(MaskedLMConfig(n_q=n_q, n_conditioning=n_conditioning, card=card, transformer=SMALL,
                                   **changes))


def test_training_masks_follow_the_cosine_schedule():
    model = _model(n_q=4, n_conditioning=1)
    frames = torch.full((64,), 200)
    torch.manual_seed(0)
    for r in (0.0, 0.3, 0.7):
        mask = model.training_mask(64, 200, frames, torch.full((64,), r))
        assert not mask[:, 0].any()  # conditioning codebook
        assert mask[:, 1:].float().mean().item() == pytest.approx(float(gamma(r)), abs=0.01)
    one = model.training_mask(64, 200, frames, torch.ones(64))  # γ(1) = 0: one token forced per example
    assert one.flatten(1).sum(dim=1).tolist() == [1] * 64
    short = model.training_mask(2, 10, torch.tensor([10, 4]), torch.zeros(2))
    assert not short[1, :, 4:].any()  # padding never masked


def test_loss_is_the_cross_entropy_of_the_masked_tokens_only():
    model = _model(label_smoothing=0.0).eval()
    codes = torch.randint(0, 8, (2, 4, 6), generator=torch.Generator().manual_seed(1))
    batch = LMBatch(codes, torch.tensor([6, 6]), torch.zeros(2, dtype=torch.long))
    mask = torch.rand(2, 4, 6, generator=torch.Generator().manual_seed(2)) < 0.5
    loss = model.loss(batch, mask=mask)
    logits = model(torch.where(mask, torch.full_like(codes, 8), codes), model.conditioner(2, codes.device))
    expected = F.cross_entropy(logits[mask], codes[mask])
    torch.testing.assert_close(loss.loss, expected)
    assert loss.tokens.item() == mask.sum().item()


def test_remask_count_is_per_example():
    """Two examples with different prompts (8 and 40 tokens to generate): each follows ⌊γ(r)·n_b⌋ of its own
    n_b, as a batch and alone; VampNet's batch-summed count (48) would keep the first example masked."""
    model = _model().eval()
    codes = torch.randint(0, 8, (2, 4, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(2, 4, 12, dtype=torch.bool)
    mask[0, :, :2] = True  # 8 tokens
    mask[1, :, :10] = True  # 40 tokens
    config = MaskGITConfig(steps=6)
    out = maskgit_generate(model, codes, mask, config, generator=torch.Generator().manual_seed(0))
    for b, n in enumerate((8, 40)):
        expected = [max(1, math.floor(float(gamma((s + 1) / 6)) * n)) for s in range(5)] + [0]
        remaining = n
        for s in range(6):
            expected[s] = min(expected[s], max(0, remaining - 1)) if s < 5 else 0
            remaining = expected[s]
        assert out.masked_counts[:, b].tolist() == expected
        alone = maskgit_generate(model, codes[b : b + 1], mask[b : b + 1], config,
                                 generator=torch.Generator().manual_seed(0))
        assert alone.masked_counts[:, 0].tolist() == expected
    assert out.masked_counts[0, 0] < math.floor(float(gamma(1 / 6)) * 48)  # the batch-summed count


def test_prompt_tokens_are_kept_and_decoding_is_deterministic():
    model = _model().eval()
    codes = torch.randint(0, 8, (3, 4, 10), generator=torch.Generator().manual_seed(4))
    mask = torch.rand(3, 4, 10, generator=torch.Generator().manual_seed(5)) < 0.6
    runs = [maskgit_generate(model, codes, mask, MaskGITConfig(steps=4),
                             generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(runs[0].codes[~mask], codes[~mask])
    assert (runs[0].codes < 8).all()  # nothing left masked
    assert torch.equal(runs[0].codes, runs[1].codes) and not torch.equal(runs[0].codes, runs[2].codes)
    c2f = _model(n_conditioning=2).eval()
    with pytest.raises(ValueError, match="cannot be masked"):
        maskgit_generate(c2f, codes, torch.ones_like(mask))


def test_the_masked_model_learns_to_fill_a_token_process():
    model = _model(card=8, label_smoothing=0.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(400):
        codes = counting_codes(16, 12, 8, generator)
        loss = model.loss(LMBatch(codes, torch.full((16,), 12), torch.zeros(16, dtype=torch.long)))
        optimizer.zero_grad()
        loss.loss.backward()
        optimizer.step()
        losses.append(loss.loss.item())
    # examples drawn with r near 0 have (almost) every token masked: ln 8 per token is their floor
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    codes = counting_codes(4, 12, 8, generator)
    mask = torch.ones_like(codes, dtype=torch.bool)
    mask[:, :, ::4] = False  # a periodic prompt: every 4th frame
    out = maskgit_generate(model, codes, mask, MaskGITConfig(steps=12, temperature=0.3, mask_temperature=0.5),
                           generator=torch.Generator().manual_seed(1))
    assert (out.codes == codes).float().mean() > 0.95
