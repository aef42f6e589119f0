"""Prompt masks: every builder against a naive loop, the combinators' truth tables and the spec syntax."""

import itertools

import pytest
import torch

from funcodec_lite.lm import prompts as P
from funcodec_lite.lm.mask_spec import PRESETS, MaskSpecError, parse_mask_spec


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def naive_keep_frames(B, K, T, keep):
    """Mask from a per-(b, t) keep predicate, written out with loops."""
    mask = torch.ones(B, K, T, dtype=torch.bool)
    for b, k, t in itertools.product(range(B), range(K), range(T)):
        if keep(b, t):
            mask[b, k, t] = False
    return mask


def test_full_and_empty():
    assert P.full(2, 3, 5).dtype == torch.bool and P.full(2, 3, 5).all()
    assert P.empty(2, 3, 5).shape == (2, 3, 5) and not P.empty(2, 3, 5).any()


def test_random_matches_naive_loop_and_rate():
    B, K, T = 3, 4, 50
    p = torch.tensor([0.0, 0.3, 1.0])
    mask = P.random(B, K, T, p, gen(1))
    u = torch.rand(B, K, T, generator=gen(1))
    for b, k, t in itertools.product(range(B), range(K), range(T)):
        assert bool(mask[b, k, t]) == bool(u[b, k, t] < p[b])
    assert not mask[0].any() and mask[2].all()
    assert torch.equal(mask, P.random(B, K, T, p, gen(1)))  # deterministic for a generator
    big = P.random(1, 8, 4000, 0.25, gen(2))
    assert abs(big.float().mean().item() - 0.25) < 0.01


def test_cosine_random_is_bernoulli_of_cos():
    B, K, T = 4, 2, 30
    r = torch.tensor([0.0, 0.25, 0.5, 1.0])
    mask = P.cosine_random(B, K, T, r, gen(3))
    u = torch.rand(B, K, T, generator=gen(3))
    for b, k, t in itertools.product(range(B), range(K), range(T)):
        p = max(torch.cos(r[b] * torch.pi / 2).item(), 1e-10)
        assert bool(mask[b, k, t]) == bool(u[b, k, t] < p)
    assert mask[0].all() and not mask[3].any()


@pytest.mark.parametrize("period,width,T", [(1, 1, 9), (3, 1, 10), (7, 1, 30), (7, 2, 30), (5, 3, 23),
                                            (4, 6, 17), (40, 3, 12)])
def test_periodic_matches_naive_loop(period, width, T):
    def keep(b, t):
        return any(a - (width - 1) // 2 <= t <= a + width // 2 for a in range(0, T, period))

    assert torch.equal(P.periodic(2, 3, T, period, width), naive_keep_frames(2, 3, T, keep))


def test_periodic_zero_masks_everything_and_counts():
    assert P.periodic(2, 3, 20, 0).all()
    mask = P.periodic(1, 1, 70, 7)
    assert (~mask).sum().item() == 10
    assert torch.equal((~mask[0, 0]).nonzero().flatten(), torch.arange(0, 70, 7))


def test_periodic_roll_differs_per_example_but_keeps_the_count():
    B, K, T, period = 8, 2, 50, 7
    base = P.periodic(1, K, T, period, width=2)[0]
    mask = P.periodic(B, K, T, period, width=2, roll=True, generator=gen(4))
    assert torch.equal(mask, P.periodic(B, K, T, period, width=2, roll=True, generator=gen(4)))
    kept = (~mask).sum(dim=(1, 2))
    assert (kept == (~base).sum()).all()
    shifts = []
    for b in range(B):  # each row is the unrolled pattern rolled by 0..P-1 frames
        shift = [s for s in range(period) if torch.equal(mask[b], base.roll(s, dims=-1))]
        assert shift, f"row {b} is not a roll of the base pattern"
        shifts.append(shift[0])
    assert len(set(shifts)) > 1


def test_inpaint_prefix_and_suffix_in_seconds_at_50hz():
    B, K, T, fps = 2, 3, 200, 50
    mask = parse_mask_spec("inpaint:1.0,0.5").build(B, K, T, fps)
    assert torch.equal(mask, naive_keep_frames(B, K, T, lambda b, t: t < 50 or t >= 175))
    assert torch.equal(parse_mask_spec("prefix:1.0").build(B, K, T, fps), P.inpaint(B, K, T, 50, 0))
    assert torch.equal(parse_mask_spec("suffix:0.5").build(B, K, T, fps), P.inpaint(B, K, T, 0, 25))
    assert torch.equal(parse_mask_spec("inpaint:0.1").build(B, K, T, fps), P.inpaint(B, K, T, 5, 5))  # not 6
    assert not P.inpaint(1, 2, 10, 6, 6).any()


def test_upper_keeps_exactly_the_lowest_codebooks():
    B, K, T = 2, 8, 6
    for n in (0, 1, 4, 8, 10):
        mask = P.upper(B, K, T, n)
        for b, k, t in itertools.product(range(B), range(K), range(T)):
            assert bool(mask[b, k, t]) == (k >= n)


def test_onsets_and_beats_match_naive_loops():
    B, K, T = 2, 2, 40
    frames = [[0, 10, 38, 55], [5, -2]]
    mask = P.onsets(frames, B, K, T, width=3)
    assert torch.equal(mask, naive_keep_frames(B, K, T, lambda b, t: any(f <= t < f + 3 for f in frames[b])))
    mask = P.beats(frames, B, K, T, before=1, after=2)
    expected = naive_keep_frames(B, K, T, lambda b, t: any(f - 1 <= t <= f + 2 for f in frames[b]))
    assert torch.equal(mask, expected)
    shared = P.onsets([[4]], B, K, T, width=1)
    assert torch.equal(shared, naive_keep_frames(B, K, T, lambda b, t: t == 4))
    with pytest.raises(ValueError):
        P.onsets([[1], [2], [3]], B, K, T)


def test_and_or_truth_tables():
    a = torch.tensor([0, 0, 1, 1]).reshape(1, 1, 4)
    b = torch.tensor([0, 1, 0, 1]).reshape(1, 1, 4)
    assert P.mask_and(a, b).flatten().tolist() == [0, 0, 0, 1]
    assert P.mask_or(a, b).flatten().tolist() == [0, 1, 1, 1]
    assert P.mask_and(a, b).dtype == torch.long  # long masks stay long
    assert P.mask_and(a.bool(), b.bool()).flatten().tolist() == [False, False, False, True]
    assert P.mask_or(a.bool(), b).dtype == torch.bool
    with pytest.raises(ValueError):
        P.mask_and(a, torch.zeros(1, 1, 5))


def test_dropout_only_remasks_kept_tokens():
    mask = P.periodic(2, 4, 500, 2)  # half the frames kept
    out = P.dropout(mask, 0.3, gen(5))
    assert out[mask].all()  # masked stays masked
    remasked = out[~mask].float().mean().item()
    assert abs(remasked - 0.3) < 0.04
    assert torch.equal(out, P.dropout(mask, 0.3, gen(5)))
    assert torch.equal(P.dropout(mask, 0.0, gen(5)), mask) and P.dropout(mask, 1.0, gen(5)).all()


def test_apply_mask_fills_only_masked_tokens():
    codes = torch.arange(24).reshape(2, 3, 4)
    mask = P.upper(2, 3, 4, 1)
    out = P.apply_mask(codes, mask.long(), mask_token=1024)
    assert torch.equal(out[:, 0], codes[:, 0]) and (out[:, 1:] == 1024).all()
    assert codes.max() == 23  # the input is untouched


def test_times_to_frames():
    assert P.times_to_frames([0.0, 0.101, 0.1, 1.5, -0.2, 9.0], 50, num_frames=100) == [0, 5, 75]
    assert P.seconds_to_frames(0.075, 50) == 4 and P.seconds_to_frames(0.1, 50) == 5


def test_spec_matches_combinators():
    B, K, T, fps = 3, 8, 60, 50
    spec = parse_mask_spec("periodic:7,width:1 & upper:4")
    expected = P.mask_and(P.periodic(B, K, T, 7, 1), P.upper(B, K, T, 4))
    assert torch.equal(spec.build(B, K, T, fps), expected)
    spec = parse_mask_spec("(upper:4 | periodic:8) & inpaint:0.2,0.2")
    expected = P.mask_and(P.mask_or(P.upper(B, K, T, 4), P.periodic(B, K, T, 8)), P.inpaint(B, K, T, 10, 10))
    assert torch.equal(spec.build(B, K, T, fps), expected)
    left_to_right = parse_mask_spec("upper:4 | periodic:8 & inpaint:0.2,0.2")
    assert left_to_right == spec
    grouped = parse_mask_spec("upper:4 | (periodic:8 & inpaint:0.2,0.2)")
    assert grouped != spec
    expected = P.mask_or(P.upper(B, K, T, 4), P.mask_and(P.periodic(B, K, T, 8), P.inpaint(B, K, T, 10, 10)))
    assert torch.equal(grouped.build(B, K, T, fps), expected)
    onsets, beats = [[3, 30]] * B, [[10, 40]] * B
    spec = parse_mask_spec("onset:width=2 & beat:after=0.04,before=0.02")
    expected = P.mask_and(P.onsets(onsets, B, K, T, 2), P.beats(beats, B, K, T, before=1, after=2))
    assert torch.equal(spec.build(B, K, T, fps, onsets=onsets, beats=beats), expected)
    assert spec.needs_onsets and spec.needs_beats and not parse_mask_spec("full").needs_onsets


def test_spec_randomness_comes_from_the_generator():
    B, K, T = 2, 4, 40
    spec = parse_mask_spec("periodic:5,width:2,roll & random:0.5 & dropout:0.2")
    g = gen(6)
    expected = P.periodic(B, K, T, 5, 2, roll=True, generator=g)
    expected = P.mask_and(expected, P.random(B, K, T, 0.5, g))
    expected = P.dropout(expected, 0.2, g)
    assert torch.equal(spec.build(B, K, T, 50, gen(6)), expected)


@pytest.mark.parametrize("text", ["full", "empty", "random:0.5", "periodic:7", "periodic:7,width:2,roll",
                                  "prefix:1.0", "suffix:0.5", "inpaint:1.0,1.0", "upper:4", "onset:width=3",
                                  "onset:3", "beat:after=0.075", "beat:0.05,0.01", "periodic:7 & dropout:0.1",
                                  "(upper:4 | periodic:8) & random:0.3", "upper:4 | (periodic:8 & onset)",
                                  "inpaint-1s & compress-4"])
def test_spec_round_trips(text):
    spec = parse_mask_spec(text)
    assert parse_mask_spec(str(spec)) == spec
    assert parse_mask_spec(str(spec)).build(2, 6, 120, 50, gen(7), onsets=[[3]], beats=[[9]]).equal(
        spec.build(2, 6, 120, 50, gen(7), onsets=[[3]], beats=[[9]]))


def test_spec_spellings_agree():
    assert parse_mask_spec("onset:3") == parse_mask_spec("onset:width=3") == parse_mask_spec("onset")
    spaced = parse_mask_spec(" periodic : 7 , width=2 , roll=true ")
    assert parse_mask_spec("periodic:7,width:2,roll") == spaced
    assert parse_mask_spec("beat:0.05") == parse_mask_spec("beat:after=0.05")


BAD_SPECS = [("foo:3", "foo:3"), ("periodic:x", "periodic:x"), ("random:1.5", "random:1.5"),
             ("upper:4,5", "upper:4,5"), ("periodic", "periodic"), ("periodic:7 & bogus", "bogus"),
             ("& full", "&"), ("full |", "|"), ("(full", "("), ("full)", ")"), ("dropout:0.1", "dropout:0.1"),
             ("onset:width=0", "onset:width=0"), ("prefix:-1", "prefix:-1"), ("", "")]


@pytest.mark.parametrize("text,bad", BAD_SPECS)
def test_bad_spec_names_the_term(text, bad):
    with pytest.raises(MaskSpecError) as err:
        parse_mask_spec(text)
    message = str(err.value)
    assert f"bad mask term {bad!r}" in message and "\n" not in message
    assert "known terms: full, empty, random:P, periodic:P" in message and "beat-driven" in message
    assert isinstance(err.value, ValueError)


def test_build_needs_onsets_and_beats():
    with pytest.raises(MaskSpecError, match="onset:width=5.*needs onset frames"):
        parse_mask_spec("periodic-5").build(1, 4, 50, 50, gen())
    with pytest.raises(MaskSpecError, match="needs beat frames"):
        parse_mask_spec("beat-driven").build(1, 4, 50, 50)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_parse_and_build(name):
    spec = parse_mask_spec(name)
    assert spec == parse_mask_spec(PRESETS[name]) and spec.source == name
    mask = spec.build(2, 8, 300, 50, gen(8), onsets=[[10, 100], [50]], beats=[[0, 25, 50]])
    assert mask.shape == (2, 8, 300) and mask.dtype == torch.bool and mask.any()
    assert name == "unconditional" or not mask.all()


def test_preset_contents():
    B, K, T, fps = 1, 8, 300, 50
    assert parse_mask_spec("unconditional").build(B, K, T, fps).all()
    compress = parse_mask_spec("compress-4").build(B, K, T, fps)
    kept = (~compress[0]).nonzero()
    assert set(kept[:, 0].tolist()) == {0, 1, 2, 3} and set(kept[:, 1].tolist()) == set(range(0, T, 8))
    beat = parse_mask_spec("beat-driven").build(B, K, T, fps, beats=[[100]])
    assert (~beat[0, 0]).nonzero().flatten().tolist() == [100, 101, 102, 103, 104]  # 75 ms at 50 Hz: 4 frames
    inp = parse_mask_spec("inpaint-1s").build(B, K, T, fps)
    assert (~inp[0, 0]).sum() == 100
