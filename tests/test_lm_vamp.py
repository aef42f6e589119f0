"""Vamping past the training length: windows overlap and agree exactly on the prompt region; the
coarse-to-fine pass regenerates the fine codebooks only where the coarse changed or the mask asks."""

import torch

from funcodec_lite.lm.masked import MaskedLM, MaskedLMConfig
from funcodec_lite.lm.maskgit import MaskGITConfig
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.lm.vamp import VampConfig, fill_windows, vamp, window_starts

SMALL = TransformerConfig(dim=16, n_layers=1, n_heads=2, causal=False)


def _model(n_q: int, n_conditioning: int = 0, seed: int = 0) -> MaskedLM:
    torch.manual_seed(seed)
    return MaskedLM(MaskedLMConfig(n_q=n_q, n_conditioning=n_conditioning, card=8, transformer=SMALL)).eval()


def test_window_starts_cover_everything_with_the_overlap():
    assert window_starts(10, 16, 4) == [0] and window_starts(40, 0, 0) == [0]
    starts = window_starts(40, 16, 4)
    assert starts == [0, 12, 24]
    covered = torch.zeros(40, dtype=torch.bool)
    for s in starts:
        covered[s : s + 16] = True
    assert covered.all() and starts[-1] + 16 == 40


def test_windows_agree_on_the_prompt_region():
    model = _model(4)
    codes = torch.randint(0, 8, (2, 4, 45), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(codes, dtype=torch.bool)
    trace = []
    out = fill_windows(model, codes, mask, window=16, overlap=5, config=MaskGITConfig(steps=4),
                       generator=torch.Generator().manual_seed(1), trace=trace)
    assert [s for s, _ in trace] == window_starts(45, 16, 5) and len(trace) > 2
    for (s0, a), (s1, b) in zip(trace, trace[1:]):
        shared = s0 + a.shape[-1] - s1  # frames both windows hold
        assert shared >= 5
        assert torch.equal(b[:, :, :shared], a[:, :, s1 - s0 :])  # the later window kept them as its prompt
    for s, piece in trace:
        assert torch.equal(out[:, :, s : s + piece.shape[-1]], piece)
    assert (out < 8).all()


def test_coarse_to_fine_touches_only_what_changed():
    coarse, c2f = _model(2), _model(4, n_conditioning=2, seed=1)
    codes = torch.randint(0, 8, (1, 4, 20), generator=torch.Generator().manual_seed(2))
    mask = torch.zeros_like(codes, dtype=torch.bool)
    mask[:, :, 5:9] = True  # inpaint frames 5..8 in every codebook
    out = vamp(coarse, c2f, codes, mask, VampConfig(window=0, c2f_window=0, maskgit=MaskGITConfig(steps=3)),
               generator=torch.Generator().manual_seed(3))
    assert out.shape == (1, 4, 20)
    keep = torch.ones(20, dtype=torch.bool)
    keep[5:9] = False
    assert torch.equal(out[:, :, keep], codes[:, :, keep])  # the prompt frames, all codebooks, as given
    coarse_only = vamp(coarse, None, codes, mask, VampConfig(window=0, maskgit=MaskGITConfig(steps=3)),
                       generator=torch.Generator().manual_seed(3))
    assert coarse_only.shape == (1, 2, 20) and torch.equal(coarse_only, out[:, :2])
