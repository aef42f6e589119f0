"""The transformer core and the autoregressive codec LM: a cached forward equals the whole forward, cached and
uncached sampling give identical tokens, EOS at once or never, prompts, per-item lengths, guidance, and a
model that learns a token process."""

import pytest
import torch
from tiny_models import learns_and_continues_counting

from funcodec_lite.lm.codec_lm import CodecLM, CodecLMConfig
from funcodec_lite.lm.generate import SamplingConfig, generate
from funcodec_lite.lm.sampling import filter_logits
from funcodec_lite.lm.transformer import Transformer, TransformerConfig

SMALL = TransformerConfig(dim=32, n_layers=2, n_heads=2, dropout=0.0)


def _model(pattern="delay", n_q=4, card=16, seed=0, **changes) -> CodecLM:
    torch.manual_seed(seed)
    return CodecLM(CodecLMConfig(n_q=n_q, card=card, pattern=pattern, transformer=SMALL, **changes)).eval()


def test_cached_transformer_equals_the_whole_sequence():
    torch.manual_seed(0)
    model = Transformer(SMALL).eval()
    x = torch.randn(2, 9, 32)
    key_mask = torch.ones(2, 9, dtype=torch.bool)
    key_mask[1, 2] = False  # a padded prefix position of item 1
    prefix = torch.tensor([3, 3])
    whole = model(x, key_mask, prefix=prefix)
    cache = model.new_cache()
    parts = [model(x[:, :3], key_mask[:, :3], prefix=prefix, cache=cache)]
    parts += [model(x[:, i : i + 1], cache=cache) for i in range(3, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
    # causal: changing the last input leaves the earlier outputs alone; the prefix is seen whole
    y = x.clone()
    y[:, -1] += torch.randn(32)  # (a constant shift would vanish in the LayerNorm)
    torch.testing.assert_close(model(y, key_mask, prefix=prefix)[:, :-1], whole[:, :-1])
    z = x.clone()
    z[:, 2] += torch.randn(32)  # a prefix token: position 0 sees it (bidirectional prefix) for item 0 only
    changed = (model(z, key_mask, prefix=prefix) - whole).abs().amax(dim=-1)
    assert changed[0, 0] > 1e-4 and changed[1, 0] == 0  # item 1's position 2 is padding


@pytest.mark.parametrize("pattern", ["parallel", "delay", "flatten"])
def test_cached_and_uncached_sampling_give_identical_tokens(pattern):
    model = _model(pattern, n_classes=3)
    runs = {}
    for cached in (True, False):
        config = SamplingConfig(temperature=1.5, top_k=8, use_cache=cached)
        runs[cached] = generate(model, 3, 12, config, labels=torch.tensor([0, 1, 2]),
                                generator=torch.Generator().manual_seed(5))
    assert torch.equal(runs[True].codes, runs[False].codes)
    assert torch.equal(runs[True].frames, runs[False].frames)
    assert runs[True].codes.shape[:2] == (3, 4) and runs[True].steps == runs[False].steps


def _eos_bias(model: CodecLM, value: float) -> None:
    with torch.no_grad():
        model.heads[0].bias[model.config.card] = value


def test_eos_at_once_and_never():
    model = _model("delay")
    _eos_bias(model, 50.0)  # EOS is all but certain at the first frame
    out = generate(model, 2, 10, generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [0, 0] and out.reasons == ["eos", "eos"] and out.codes.shape[-1] == 10
    out = generate(model, 2, 10, SamplingConfig(min_frames=4), generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [4, 4] and out.reasons == ["eos", "eos"]
    _eos_bias(model, -50.0)  # never
    out = generate(model, 2, torch.tensor([3, 7]), generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [3, 7] and out.reasons == ["max_length"] * 2
    assert out.codes[0, :, 3:].abs().sum() == 0  # padded past the item's length
    # the delay pattern's last code (frame 6 of codebook 3) sits at step 1 + 6 + 3: 10 model calls
    assert out.steps == 7 + 3


def test_prompt_is_continued_not_rewritten():
    model = _model("delay", card=16)
    prompt = torch.randint(0, 16, (2, 4, 5), generator=torch.Generator().manual_seed(3))
    out = generate(model, 2, 6, SamplingConfig(), prompt=prompt, generator=torch.Generator().manual_seed(1))
    assert out.codes.shape == (2, 4, 6)
    # the same draws with the prompt changed give another continuation: the model conditions on it
    other = generate(model, 2, 6, SamplingConfig(), prompt=(prompt + 1) % 16,
                     generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out.codes, other.codes)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, 2, 0.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.81)).tolist() == [[False, False, False, True]]


def test_the_lm_learns_a_token_process_and_samples_it():
    torch.manual_seed(0)
    model = _model("delay", card=8).train()
    learns_and_continues_counting(model, generate)
