"""UniAudio's multi-scale LM: cached global/local stacks equal whole forwards, no peeking at the targets, the
loss's targets, cached and uncached sampling give identical tokens, EOS at once or never, the number of
model calls, the model-directory round trip, and a model that learns a token process."""

import pytest
import torch
from tiny_models import learns_and_continues_counting

from funcodec_lite import load_model_dir
from funcodec_lite.lm.codec_lm import LMBatch
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.lm.multiscale import MultiScaleConfig, MultiScaleLM, generate_multiscale
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.utils.weights import save_model_dir

GLOBAL = TransformerConfig(dim=32, n_layers=2, n_heads=2)
LOCAL = TransformerConfig(dim=16, n_layers=1, n_heads=2)


def _model(n_q=4, card=16, seed=0, global_transformer=GLOBAL, **changes) -> MultiScaleLM:
    torch.manual_seed(seed)
    config = MultiScaleConfig(n_q=n_q, card=card, global_transformer=global_transformer,
                              local_transformer=LOCAL, **changes)
    return MultiScaleLM(config).eval()


def _phoneme_prefix(model: MultiScaleLM):
    phonemes = torch.tensor([[1, 2, 3, 4], [2, 0, 0, 0]])
    return model.condition(torch.tensor([0, 2]), phonemes, torch.tensor([4, 1]), 2, torch.device("cpu"))


def test_cached_stacks_equal_the_whole_forward():
    model = _model(n_classes=3, n_phonemes=5)
    prefix = _phoneme_prefix(model)  # item 1's phonemes are padded: its frames start at another position
    frames = torch.randint(0, 16, (2, 4, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model.global_hidden(frames, prefix)
        cache = model.global_transformer.new_cache()
        first = prefix[1].sum(dim=1)
        parts = [model.global_hidden(frames[:, :, :3], prefix, cache, first)]
        parts += [model.global_hidden(frames[:, :, i : i + 1], prefix, cache, first + i) for i in range(3, 7)]
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
        context = model.to_local(whole[:, -1])  # [2, K, D_l]
        codes = frames[:, :, -1]
        local = model.local_logits(context, codes)
        cache = model.local_transformer.new_cache()
        steps = [model.local_logits(context, codes, q, q + 1, cache) for q in range(4)]
        torch.testing.assert_close(torch.cat(steps, dim=1), local, atol=1e-5, rtol=1e-5)


def test_no_code_sees_itself_or_later_codes():
    model = _model()
    prefix = model.condition(None, None, None, 1, torch.device("cpu"))
    codes = torch.randint(0, 16, (1, 4, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(codes, prefix)
        for t, q in [(0, 0), (2, 1), (3, 3), (5, 2)]:
            changed = codes.clone()
            changed[0, q, t] = (changed[0, q, t] + 5) % 16
            diff = (model(changed, prefix) - base).abs().amax(dim=-1)[0]  # [K, T]
            earlier = torch.zeros(4, 6, dtype=torch.bool)
            earlier[:, :t] = True
            earlier[: q + 1, t] = True  # the frame's codes up to q do not see code q
            assert diff[earlier].max() == 0, (t, q)
            assert diff[~earlier].min() > 0, (t, q)  # and every later code does


def test_loss_targets_are_the_codes_after_the_prompt_and_eos():
    model = _model()
    codes = torch.randint(0, 16, (3, 4, 8), generator=torch.Generator().manual_seed(2))
    batch = LMBatch(codes, torch.tensor([8, 5, 3]), torch.tensor([2, 0, 3]))
    out = model.loss(batch)
    assert out.tokens == 4 * (6 + 5 + 0) + 3 and out.nll_per_codebook.shape == (4,)
    padded = codes.clone()
    padded[1, :, 5:] = 0  # padding past item 1's length
    torch.testing.assert_close(model.loss(batch._replace(codes=padded)).loss, out.loss)
    extended, weight = model.training_codes(batch)
    assert extended[:, 0, 8].tolist() == [17, 16, 16] and extended[1, 0, 5] == 17 and extended[2, 0, 3] == 17
    assert weight[:, 0].sum(dim=1).tolist() == [7, 6, 1] and weight[:, 1].sum(dim=1).tolist() == [6, 5, 0]


@pytest.mark.parametrize("cfg_coef", [1.0, 2.5])
def test_cached_and_uncached_sampling_give_identical_tokens(cfg_coef):
    model = _model(n_classes=3)
    prompt = torch.randint(0, 16, (3, 4, 4), generator=torch.Generator().manual_seed(3))
    runs = {}
    for cached in (True, False):
        config = SamplingConfig(temperature=1.5, top_k=8, cfg_coef=cfg_coef, use_cache=cached)
        runs[cached] = generate_multiscale(model, 3, 10, config, prompt=prompt,
                                           labels=torch.tensor([0, 1, 2]),
                                           generator=torch.Generator().manual_seed(5))
    assert torch.equal(runs[True].codes, runs[False].codes)
    assert torch.equal(runs[True].frames, runs[False].frames) and runs[True].reasons == runs[False].reasons
    assert runs[True].codes.shape == (3, 4, 10) and runs[True].steps == runs[False].steps
    assert runs[True].codes.unique().numel() > 4  # real samples, not a constant


def _eos_bias(model: MultiScaleLM, value: float) -> None:
    with torch.no_grad():
        model.heads[0].bias[model.config.card] = value


def test_eos_at_once_and_never():
    model = _model()
    _eos_bias(model, 50.0)  # EOS is all but certain at the first frame
    out = generate_multiscale(model, 2, 10, generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [0, 0] and out.reasons == ["eos", "eos"] and out.codes.shape == (2, 4, 10)
    assert out.steps == 1 + 4  # one frame: one global and four local calls
    out = generate_multiscale(model, 2, 10, SamplingConfig(min_frames=4),
                              generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [4, 4] and out.reasons == ["eos", "eos"]
    _eos_bias(model, -50.0)  # never
    out = generate_multiscale(model, 2, torch.tensor([3, 7]), generator=torch.Generator().manual_seed(0))
    assert out.frames.tolist() == [3, 7] and out.reasons == ["max_length"] * 2
    assert out.codes[0, :, 3:].abs().sum() == 0 and out.codes.shape == (2, 4, 7)  # padded past the length
    assert generate_multiscale(model, 2, 0).codes.shape == (2, 4, 0)


@pytest.mark.parametrize("cached", [True, False])
def test_model_calls_one_global_and_k_local_per_frame(cached):
    model = _model(n_q=3, n_classes=2, global_transformer=TransformerConfig(dim=48, n_layers=2, n_heads=2))
    _eos_bias(model, -50.0)
    calls = {"global": [], "local": []}
    hooks = [stack.register_forward_hook(lambda _m, args, _o, name=name: calls[name].append(args[0].shape[1]))
             for name, stack in (("global", model.global_transformer), ("local", model.local_transformer))]
    prompt = torch.randint(0, 16, (2, 3, 5), generator=torch.Generator().manual_seed(4))
    config = SamplingConfig(use_cache=cached, cfg_coef=3.0)
    out = generate_multiscale(model, 2, torch.tensor([2, 6]), config, prompt=prompt,
                              labels=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    for hook in hooks:
        hook.remove()
    assert out.frames.tolist() == [2, 6] and out.steps == 6 * (1 + 3)
    assert len(calls["global"]) == 6 and len(calls["local"]) == 6 * 3
    if cached:  # the class token, the start frame and the prompt in one call, then one frame a call
        assert calls["global"] == [1 + 1 + 5] + [1] * 5 and calls["local"] == [1] * 18
    else:  # everything recomputed
        assert calls["global"] == [1 + 1 + 5 + t for t in range(6)] and calls["local"] == [1, 2, 3] * 6


def test_model_directory_round_trip(tmp_path):
    model = _model(n_classes=2, label_smoothing=0.1)
    save_model_dir(tmp_path / "lm", model)
    loaded = load_model_dir(tmp_path / "lm", "multiscale_lm")
    assert isinstance(loaded, MultiScaleLM) and loaded.config == model.config
    runs = [generate_multiscale(m, 2, 5, labels=torch.tensor([0, 1]),
                                generator=torch.Generator().manual_seed(1)) for m in (model, loaded)]
    assert torch.equal(runs[0].codes, runs[1].codes)
    data = {"n_q": 2, "card": 8, "global_transformer": {"dim": 16, "n_heads": 2}}
    config = MultiScaleConfig.from_dict(data)
    assert config.global_transformer.dim == 16 and config.local_transformer.n_layers == 2
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleConfig(n_q=3, global_transformer=GLOBAL)


def test_the_lm_learns_a_token_process_and_samples_it():
    model = _model(card=8).train()
    learns_and_continues_counting(model, generate_multiscale)
