"""Codebook patterns: exact round trips, layouts equal to a naive per-definition loop, logits picking."""

import pytest
import torch

from funcodec_lite.lm import patterns as patterns_module
from funcodec_lite.lm.patterns import KINDS, Pattern, Stage, make_pattern

CARD = 16
SPECIAL = CARD
BATCH = 2
KS = (1, 4, 8)
TS = (1, 2, 7)


def random_codes(n_q: int, frames: int, seed: int = 0) -> torch.Tensor:
    """[BATCH, K, T] codes in [0, CARD) from a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, CARD, (BATCH, n_q, frames), generator=generator)


def naive_order(kind: str, n_q: int, frames: int, delays=None, n_coarse=None) -> list[list[tuple[int, int]]]:
    """The published definitions, one step at a time: order[s] lists the codes (t, k) at step s."""
    if kind in ("parallel", "valle", "delay"):
        delays = list(delays) if delays is not None else (list(range(n_q)) if kind == "delay" else [0] * n_q)
        length = frames + max(delays) + 1
        order = []
        for s in range(length):
            here = []
            for k in range(n_q):
                t = s - 1 - delays[k]
                if 0 <= t < frames:
                    here.append((t, k))
            order.append(here)
        return order
    order = [[]]  # the empty start step
    if kind == "flatten":
        for t in range(frames):
            for k in range(n_q):
                order.append([(t, k)])
        return order
    assert kind == "coarse_fine"
    n_coarse = n_coarse if n_coarse is not None else max(1, n_q // 2)
    for t in range(frames):
        for k in range(n_coarse):
            order.append([(t, k)])
    for t in range(frames):
        for k in range(n_coarse, n_q):
            order.append([(t, k)])
    return order


def naive_step(order: list[list[tuple[int, int]]], t: int, k: int) -> int:
    """The step of code (t, k) in a naive order, found by a linear search."""
    (step,) = [s for s, here in enumerate(order) if (t, k) in here]
    return step


@pytest.mark.parametrize("frames", TS)
@pytest.mark.parametrize("n_q", KS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_exact(kind: str, n_q: int, frames: int) -> None:
    pattern = make_pattern(kind, n_q)
    codes = random_codes(n_q, frames, seed=n_q * 100 + frames)
    sequence, valid = pattern.build(codes, SPECIAL)
    assert sequence.shape == (BATCH, n_q, pattern.sequence_length(frames))
    assert valid.shape == (n_q, pattern.sequence_length(frames)) and valid.dtype == torch.bool
    assert pattern.frames_for(sequence.shape[-1]) == frames
    reverted = pattern.revert(sequence)
    assert reverted.dtype == codes.dtype
    assert torch.equal(reverted, codes)


@pytest.mark.parametrize("frames", TS)
@pytest.mark.parametrize("n_q", KS)
@pytest.mark.parametrize("kind", KINDS)
def test_valid_positions_number_k_times_t(kind: str, n_q: int, frames: int) -> None:
    _, valid = make_pattern(kind, n_q).build(random_codes(n_q, frames), SPECIAL)
    assert int(valid.sum()) == n_q * frames
    assert not valid[:, 0].any()  # the start step is empty


@pytest.mark.parametrize("frames", TS)
@pytest.mark.parametrize("n_q", KS)
@pytest.mark.parametrize("kind", KINDS)
def test_layout_matches_naive_definition(kind: str, n_q: int, frames: int) -> None:
    pattern = make_pattern(kind, n_q)
    codes = random_codes(n_q, frames, seed=1)
    sequence, valid = pattern.build(codes, SPECIAL)
    order = naive_order(kind, n_q, frames)
    assert pattern.sequence_length(frames) == len(order)
    expected = [[SPECIAL] * len(order) for _ in range(n_q)]
    for s, here in enumerate(order):
        for t, k in here:
            expected[k][s] = int(codes[0, k, t])
    assert sequence[0].tolist() == expected
    for b in range(BATCH):
        for s, here in enumerate(order):
            for k in range(n_q):
                hit = [t for t, kk in here if kk == k]
                assert bool(valid[k, s]) == bool(hit)
                if hit:
                    assert int(sequence[b, k, s]) == int(codes[b, k, hit[0]])
    if kind in ("flatten", "coarse_fine"):
        assert valid.sum(dim=0).tolist() == [0] + [1] * (n_q * frames)  # one row per step


@pytest.mark.parametrize("frames", TS)
@pytest.mark.parametrize("n_q", KS)
@pytest.mark.parametrize("kind", KINDS)
def test_revert_logits_picks_the_predicting_step(kind: str, n_q: int, frames: int) -> None:
    pattern = make_pattern(kind, n_q)
    length = pattern.sequence_length(frames)
    logits = torch.zeros(BATCH, n_q, length, 3)  # each entry encodes its own (k, s, b)
    logits[..., 0] = torch.arange(n_q).view(1, n_q, 1).float()
    logits[..., 1] = torch.arange(length).view(1, 1, length).float()
    logits[..., 2] = torch.arange(BATCH).view(BATCH, 1, 1).float()
    picked = pattern.revert_logits(logits)
    assert picked.shape == (BATCH, n_q, frames, 3)
    order = naive_order(kind, n_q, frames)
    for b in range(BATCH):
        for k in range(n_q):
            nar = kind == "valle" and k >= 1  # VALL-E's NAR codebooks: logits at the code's own step
            for t in range(frames):
                step = naive_step(order, t, k) - (0 if nar else 1)
                assert picked[b, k, t].tolist() == [float(k), float(step), float(b)]


@pytest.mark.parametrize("n_q", KS)
@pytest.mark.parametrize("kind", KINDS)
def test_special_token_exactly_at_invalid_positions(kind: str, n_q: int) -> None:
    pattern = make_pattern(kind, n_q)
    codes = random_codes(n_q, 7, seed=3)
    sequence, valid = pattern.build(codes, SPECIAL)
    assert torch.equal(sequence == SPECIAL, (~valid).expand_as(sequence))
    assert int((sequence == SPECIAL).sum()) == BATCH * (n_q * pattern.sequence_length(7) - n_q * 7)
    assert torch.equal(pattern.valid(7), valid)


@pytest.mark.parametrize(
    ("delays", "length"),
    [((0, 0, 1, 1), 7 + 2), ((2, 0, 1), 7 + 3), ((0, 0, 0), 7 + 1), ((3,), 7 + 4), ((0, 5, 0, 2), 7 + 6)],
)
def test_delay_with_custom_delays(delays: tuple[int, ...], length: int) -> None:
    n_q = len(delays)
    pattern = make_pattern("delay", n_q, delays=list(delays))
    assert pattern.delays == delays
    codes = random_codes(n_q, 7, seed=4)
    sequence, valid = pattern.build(codes, SPECIAL)
    assert sequence.shape[-1] == pattern.sequence_length(7) == length
    assert pattern.frames_for(length) == 7
    order = naive_order("delay", n_q, 7, delays=delays)
    for k in range(n_q):
        for t in range(7):
            step = naive_step(order, t, k)
            assert step == 1 + t + delays[k]
            assert int(sequence[1, k, step]) == int(codes[1, k, t])
    assert int(valid.sum()) == n_q * 7
    assert torch.equal(pattern.revert(sequence), codes)
    picked = pattern.revert_logits(torch.arange(length).float().view(1, 1, length, 1).expand(2, n_q, -1, -1))
    assert picked[0, :, :, 0].tolist() == [[float(t + d) for t in range(7)] for d in delays]


def test_zero_delays_equal_parallel() -> None:
    codes = random_codes(4, 7, seed=5)
    delayed = make_pattern("delay", 4, delays=[0, 0, 0, 0]).build(codes, SPECIAL)
    parallel = make_pattern("parallel", 4).build(codes, SPECIAL)
    assert torch.equal(delayed[0], parallel[0]) and torch.equal(delayed[1], parallel[1])


@pytest.mark.parametrize(("n_q", "n_coarse", "default"), [(1, None, 1), (4, None, 2), (8, None, 4), (8, 3, 3),
                                                          (3, None, 1), (4, 4, 4)])
def test_coarse_fine_stages(n_q: int, n_coarse, default: int) -> None:
    options = {} if n_coarse is None else {"n_coarse": n_coarse}
    pattern = make_pattern("coarse_fine", n_q, **options)
    assert pattern.n_coarse == default
    stages = [Stage("coarse", tuple(range(default)), True), Stage("fine", tuple(range(default, n_q)), True)]
    assert list(pattern.stages) == [stage for stage in stages if stage.codebooks]
    assert pattern.nar_codebooks == ()
    codes = random_codes(n_q, 7, seed=6)
    sequence, _ = pattern.build(codes, SPECIAL)
    assert torch.equal(pattern.revert(sequence), codes)
    order = naive_order("coarse_fine", n_q, 7, n_coarse=default)
    steps = pattern.steps(7)
    assert steps.tolist() == [[naive_step(order, t, k) for t in range(7)] for k in range(n_q)]
    coarse_end = 1 + 7 * default  # the fine stage starts after every coarse code
    assert int(steps[:default].max()) == coarse_end - 1
    if default < n_q:
        assert int(steps[default:].min()) == coarse_end


@pytest.mark.parametrize("n_q", KS)
def test_valle_stages_and_frame_aligned_nar(n_q: int) -> None:
    pattern = make_pattern("valle", n_q)
    assert pattern.nar_codebooks == tuple(range(1, n_q))
    assert pattern.stages[0] == Stage("ar", (0,), True)
    if n_q > 1:
        assert pattern.stages[1] == Stage("nar", tuple(range(1, n_q)), False)
    else:
        assert len(pattern.stages) == 1
    steps, predictions = pattern.steps(7), pattern.prediction_steps(7)
    assert steps.tolist() == [[t + 1 for t in range(7)]] * n_q  # every codebook aligned with codebook 0
    assert predictions[0].tolist() == list(range(7))  # AR: the previous step predicts
    assert torch.equal(predictions[1:], steps[1:])  # NAR: predicted at its own step
    assert pattern.sequence_length(7) == 8


@pytest.mark.parametrize("kind", ("parallel", "delay", "flatten"))
def test_single_stage_kinds_are_autoregressive_over_every_codebook(kind: str) -> None:
    pattern = make_pattern(kind, 4)
    assert pattern.stages == (Stage("ar", (0, 1, 2, 3), True),)
    assert pattern.nar_codebooks == ()
    assert torch.equal(pattern.prediction_steps(7), pattern.steps(7) - 1)


@pytest.mark.parametrize("kind", KINDS)
def test_docstring_examples_are_the_real_layouts(kind: str) -> None:
    doc_lines = [line.strip() for line in patterns_module.__doc__.splitlines()]
    drawn = [line.strip() for line in make_pattern(kind, 3).render(3).splitlines()]
    starts = [i for i in range(len(doc_lines)) if doc_lines[i : i + len(drawn)] == drawn]
    assert starts, f"the module docstring does not draw {kind!r}:\n" + "\n".join(drawn)


@pytest.mark.parametrize(("kind", "n_q", "frames"), [("parallel", 4, 7), ("delay", 4, 7), ("flatten", 4, 7),
                                                     ("valle", 8, 1), ("coarse_fine", 8, 7), ("delay", 1, 0)])
def test_frames_for_inverts_sequence_length(kind: str, n_q: int, frames: int) -> None:
    pattern = make_pattern(kind, n_q)
    assert pattern.frames_for(pattern.sequence_length(frames)) == frames


def test_lengths_per_kind() -> None:
    assert make_pattern("parallel", 4).sequence_length(7) == 8
    assert make_pattern("delay", 4).sequence_length(7) == 11
    assert make_pattern("flatten", 4).sequence_length(7) == 29
    assert make_pattern("valle", 8).sequence_length(7) == 8
    assert make_pattern("coarse_fine", 8).sequence_length(7) == 57


def test_tables_are_cached_and_not_shared_with_callers() -> None:
    patterns_module._tables.cache_clear()
    pattern = make_pattern("delay", 4)
    codes = random_codes(4, 7)
    _, valid = pattern.build(codes, SPECIAL)
    pattern.revert(pattern.build(codes, SPECIAL)[0])
    info = patterns_module._tables.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    assert make_pattern("delay", 4) == pattern and hash(make_pattern("delay", 4)) == hash(pattern)
    valid.fill_(True)  # a caller's edit must not reach the cache
    assert int(pattern.build(codes, SPECIAL)[1].sum()) == 28


def test_build_keeps_the_dtype_and_batch_items_apart() -> None:
    pattern = make_pattern("flatten", 4)
    codes = random_codes(4, 7).to(torch.int32)
    codes[1] = CARD - 1 - codes[0]
    sequence, valid = pattern.build(codes, -1)
    assert sequence.dtype == torch.int32
    assert torch.equal(sequence[1][valid], (CARD - 1 - sequence[0])[valid])
    assert torch.equal(pattern.revert(sequence), codes)


@pytest.mark.parametrize(
    ("kind", "n_q", "options"),
    [("nope", 4, {}), ("parallel", 0, {}), ("parallel", -1, {}), ("delay", True, {}), ("flatten", 2.0, {}),
     ("delay", 3, {"delays": [0, 1]}), ("delay", 2, {"delays": [0, -1]}), ("delay", 2, {"delays": []}),
     ("delay", 2, {"delays": 1}), ("delay", 2, {"delays": [0, 1.5]}), ("parallel", 2, {"delays": [0, 1]}),
     ("coarse_fine", 4, {"n_coarse": 0}), ("coarse_fine", 4, {"n_coarse": 5}), ("valle", 4, {"n_coarse": 1}),
     ("flatten", 4, {"flattening": [0, 1]})],
)
def test_bad_patterns_are_refused(kind: str, n_q, options: dict) -> None:
    with pytest.raises(ValueError):
        make_pattern(kind, n_q, **options)


def test_direct_construction_is_checked_too() -> None:
    assert Pattern("delay", 3).delays == (0, 1, 2)
    assert Pattern("coarse_fine", 5).n_coarse == 2
    with pytest.raises(ValueError, match="unknown pattern kind"):
        Pattern("unroll", 3)
    with pytest.raises(ValueError, match="n_coarse only applies"):
        Pattern("flatten", 3, n_coarse=1)


def test_bad_tensors_are_refused() -> None:
    pattern = make_pattern("flatten", 4)
    with pytest.raises(ValueError, match="K=4"):
        pattern.build(random_codes(3, 7), SPECIAL)
    with pytest.raises(ValueError, match="K=4"):
        pattern.build(random_codes(4, 7)[0], SPECIAL)
    with pytest.raises(ValueError, match="no frame count"):
        pattern.revert(torch.zeros(1, 4, 30, dtype=torch.long))  # S = 4 T + 1 has no T for 30
    with pytest.raises(ValueError, match="no frame count"):
        make_pattern("delay", 4).frames_for(3)  # shorter than max delay + 1
    with pytest.raises(ValueError, match="K=4"):
        pattern.revert_logits(torch.zeros(1, 4, 29))
    with pytest.raises(ValueError, match="frames"):
        pattern.sequence_length(-1)
