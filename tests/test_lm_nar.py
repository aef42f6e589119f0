"""VALL-E's non-autoregressive stage: it learns codebooks 1..K-1 from codebook 0 and fills them in K-1
passes."""

import torch

from funcodec_lite.lm.codec_lm import LMBatch
from funcodec_lite.lm.nar import NARCodecLM, NARConfig
from funcodec_lite.lm.transformer import TransformerConfig


def _batch(n: int, frames: int, card: int, generator: torch.Generator, prompt: int = 0) -> LMBatch:
    """Codebook k of frame t is (c_t + 3k) mod card, c_t random: each codebook follows from codebook 0."""
    base = torch.randint(0, card, (n, 1, frames), generator=generator)
    codes = (base + 3 * torch.arange(4)[None, :, None]) % card
    return LMBatch(codes, torch.full((n,), frames), torch.full((n,), prompt),
                   phonemes=torch.randint(0, 5, (n, 3), generator=generator),
                   phoneme_lengths=torch.full((n,), 3))


def test_nar_learns_the_upper_codebooks_and_fills_them():
    torch.manual_seed(0)
    config = NARConfig(n_q=4, card=8, n_phonemes=5, cond_dropout=0.2,
                       transformer=TransformerConfig(dim=32, n_layers=2, n_heads=2, causal=False))
    model = NARCodecLM(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    first = last = None
    for step in range(200):
        loss = model.loss(_batch(16, 6, 8, generator, prompt=2))
        optimizer.zero_grad()
        loss.loss.backward()
        optimizer.step()
        first = loss.loss.item() if step == 0 else first
        last = loss.loss.item()
    assert last < 0.05 * first
    assert loss.nll_per_codebook[0] == 0 and (loss.nll_per_codebook[1:] < 0.2).all()
    batch = _batch(3, 7, 8, generator, prompt=2)
    scrambled = batch.codes.clone()
    scrambled[:, 1:, 2:] = 0  # only codebook 0 of the target frames is known
    filled = model.fill(scrambled, batch.frames, batch.prompt_frames, phonemes=batch.phonemes,
                        phoneme_lengths=batch.phoneme_lengths)
    assert torch.equal(filled, batch.codes)
    assert torch.equal(filled[:, :, :2], batch.codes[:, :, :2])  # the prompt is never rewritten


def test_stage_sees_only_lower_codebooks():
    torch.manual_seed(1)
    small = TransformerConfig(dim=16, n_layers=1, n_heads=2, causal=False)
    config = NARConfig(n_q=4, card=8, transformer=small)
    model = NARCodecLM(config).eval()
    codes = torch.randint(0, 8, (1, 4, 5))
    prefix = model.conditioner(1, codes.device)
    frames, prompt = torch.tensor([5]), torch.tensor([0])
    stage = torch.tensor([2])
    logits = model(codes, frames, prompt, stage, prefix)
    changed = codes.clone()
    changed[:, 2:] = (changed[:, 2:] + 1) % 8  # codebooks >= the stage do not matter
    torch.testing.assert_close(model(changed, frames, prompt, stage, prefix), logits)
    changed[:, 1] = (changed[:, 1] + 1) % 8  # codebook 1 < 2 does
    assert (model(changed, frames, prompt, stage, prefix) - logits).abs().max() > 1e-3
