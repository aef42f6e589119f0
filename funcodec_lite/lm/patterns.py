"""Codebook interleaving patterns: codec codes [B, K, T] <-> an autoregressive LM's sequence [B, K, S].

A pattern places every code (frame t, codebook k) at one step of the model sequence, always in row k,
so a sequence is a [B, K, S] tensor with a `special` token wherever no code sits. Step 0 is always the
empty start step: the model reads the sequence and its output at step s is the prediction for step
s + 1 (the next-token convention), so `revert_logits` picks, for code (t, k), the logits one step
before the code's own step. The one exception is a non-autoregressive stage (VALL-E's NAR codebooks),
whose logits are read at the code's own step. A loss is then the cross-entropy between
`revert_logits(logits)` [B, K, T, V] and the codes [B, K, T]: every position counts, nothing to mask.

The kinds, drawn for K = 3 codebooks (rows a, b, c) and T = 3 frames (`.` is the special token):

parallel (S = T + 1): step s + 1 holds frame s of every codebook::

    step 0  1  2  3
    k=0  .  a0 a1 a2
    k=1  .  b0 b1 b2
    k=2  .  c0 c1 c2

delay (MusicGen; S = T + max(delays) + 1): codebook k is shifted by delays[k] (default k), so step s
holds code (t = s - 1 - delays[k], k); steps whose t falls outside [0, T) are special::

    step 0  1  2  3  4  5
    k=0  .  a0 a1 a2 .  .
    k=1  .  .  b0 b1 b2 .
    k=2  .  .  .  c0 c1 c2

flatten (unroll; S = T * K + 1): every code gets its own step 1 + t * K + k, frame-major, so only one
row is valid at each step::

    step 0  1  2  3  4  5  6  7  8  9
    k=0  .  a0 .  .  a1 .  .  a2 .  .
    k=1  .  .  b0 .  .  b1 .  .  b2 .
    k=2  .  .  .  c0 .  .  c1 .  .  c2

valle (VALL-E; S = T + 1): the autoregressive stage is codebook 0 alone, laid out as `parallel`; the
non-autoregressive stage holds codebooks 1..K-1 frame-aligned with it (code (t, k) at step t + 1 too)
and its logits are read at that same step: codebook k is predicted for all frames at once,
conditioned on codebooks 0..k-1 (`Pattern.nar_codebooks`)::

    step 0  1  2  3
    k=0  .  a0 a1 a2
    k=1  .  b0 b1 b2
    k=2  .  c0 c1 c2

coarse_fine (AudioLM; S = T * K + 1): the first n_coarse codebooks (default K // 2, at least 1)
flattened frame-major as the coarse stage, then the other F = K - n_coarse codebooks flattened
frame-major as the fine stage, which follows (and so is conditioned on) the whole coarse stage. Code
(t, k) sits at step 1 + t * n_coarse + k if k < n_coarse, else 1 + T * n_coarse + t * F + k - n_coarse.
Here n_coarse = 1::

    step 0  1  2  3  4  5  6  7  8  9
    k=0  .  a0 a1 a2 .  .  .  .  .  .
    k=1  .  .  .  .  b0 .  b1 .  b2 .
    k=2  .  .  .  .  .  c0 .  c1 .  c2

The step tables are computed once per (pattern, T, device) (`functools.lru_cache`) with tensor
arithmetic, and build / revert are one scatter / gather each: no Python loop over B, K or T.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from torch import Tensor

KINDS: tuple[str, ...] = ("parallel", "delay", "flatten", "valle", "coarse_fine")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "parallel": (),
    "delay": ("delays",),
    "flatten": (),
    "valle": (),
    "coarse_fine": ("n_coarse",),
}


@dataclass(frozen=True)
class Stage:
    """A group of codebooks a model predicts the same way.

    Attributes:
        name: "ar", "nar", "coarse" or "fine".
        codebooks: the codebook indices k in this stage, in increasing order.
        autoregressive: True if a code is predicted from the previous step's output (next-token);
            False if it is predicted at its own step, all frames in parallel (VALL-E's NAR stage).
    """

    name: str
    codebooks: tuple[int, ...]
    autoregressive: bool


@dataclass(frozen=True)
class Pattern:
    """Where each (frame t, codebook k) sits in the model sequence (see the module docstring).

    Build one with `make_pattern`; a pattern is hashable and holds no tensors.

    Attributes:
        kind: one of KINDS.
        n_q: number of codebooks K (at least 1).
        delays: per-codebook shifts of the "delay" kind (K non-negative ints, default 0..K-1);
            empty for every other kind.
        n_coarse: number of coarse codebooks of the "coarse_fine" kind (1..K, default max(1, K // 2));
            0 for every other kind.
    """

    kind: str
    n_q: int
    delays: tuple[int, ...] = field(default=())
    n_coarse: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown pattern kind {self.kind!r}; known kinds: {', '.join(KINDS)}")
        if isinstance(self.n_q, bool) or not isinstance(self.n_q, int) or self.n_q < 1:
            raise ValueError(f"n_q must be an int >= 1, got {self.n_q!r}")
        delays = tuple(self.delays)
        if self.kind == "delay":
            delays = delays or tuple(range(self.n_q))
            if len(delays) != self.n_q:
                raise ValueError(f"delays needs one shift per codebook ({self.n_q}), got {len(delays)}")
            if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in delays):
                raise ValueError(f"delays must be non-negative ints, got {delays}")
        elif delays:
            raise ValueError(f"delays only applies to the 'delay' kind, not {self.kind!r}")
        object.__setattr__(self, "delays", delays)
        if self.kind == "coarse_fine":
            n_coarse = self.n_coarse or max(1, self.n_q // 2)
            if isinstance(n_coarse, bool) or not isinstance(n_coarse, int) or not 1 <= n_coarse <= self.n_q:
                raise ValueError(f"n_coarse must be an int in [1, {self.n_q}], got {self.n_coarse!r}")
            object.__setattr__(self, "n_coarse", n_coarse)
        elif self.n_coarse:
            raise ValueError(f"n_coarse only applies to the 'coarse_fine' kind, not {self.kind!r}")

    # --- stages -------------------------------------------------------------------------------------

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The codebook groups in the order a model generates them (empty stages left out)."""
        every = tuple(range(self.n_q))
        if self.kind == "valle":
            stages = (Stage("ar", (0,), True), Stage("nar", every[1:], False))
        elif self.kind == "coarse_fine":
            split = self.n_coarse
            stages = (Stage("coarse", every[:split], True), Stage("fine", every[split:], True))
        else:
            stages = (Stage("ar", every, True),)
        return tuple(stage for stage in stages if stage.codebooks)

    @property
    def nar_codebooks(self) -> tuple[int, ...]:
        """Codebooks predicted in parallel over frames, at their own step (VALL-E's 1..K-1; else empty)."""
        return tuple(k for stage in self.stages if not stage.autoregressive for k in stage.codebooks)

    # --- lengths ------------------------------------------------------------------------------------

    def sequence_length(self, frames: int) -> int:
        """Number of sequence steps S for `frames` frames T (T >= 0)."""
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise ValueError(f"frames must be an int >= 0, got {frames!r}")
        if self.kind in ("parallel", "valle"):
            return frames + 1
        if self.kind == "delay":
            return frames + max(self.delays) + 1
        return frames * self.n_q + 1

    def frames_for(self, length: int) -> int:
        """Number of frames T whose sequence has `length` steps S (the inverse of `sequence_length`).

        Raises:
            ValueError: if no T gives that S.
        """
        offset = max(self.delays) + 1 if self.kind == "delay" else 1
        per_frame = self.n_q if self.kind in ("flatten", "coarse_fine") else 1
        frames, rest = divmod(length - offset, per_frame)
        if length < offset or rest:
            raise ValueError(f"no frame count gives a {self.kind!r} sequence of {length} steps "
                             f"(K={self.n_q}: S = {per_frame} * T + {offset})")
        return frames

    # --- position tables ----------------------------------------------------------------------------

    def steps(self, frames: int) -> Tensor:
        """Sequence step of every code: LongTensor [K, T]; code (t, k) sits at sequence[:, k, steps[k, t]]."""
        return _tables(self, frames, torch.device("cpu"))[0].clone()

    def prediction_steps(self, frames: int) -> Tensor:
        """Output step whose logits predict each code: LongTensor [K, T] (steps - 1, or steps for NAR)."""
        return _tables(self, frames, torch.device("cpu"))[1].clone()

    def valid(self, frames: int) -> Tensor:
        """BoolTensor [K, S]: True where a code sits, False at special positions (K * T True in all)."""
        return _tables(self, frames, torch.device("cpu"))[2].clone()

    # --- conversions --------------------------------------------------------------------------------

    def build(self, codes: Tensor, special: int) -> tuple[Tensor, Tensor]:
        """Lay codes out as a model sequence.

        Args:
            codes (torch.Tensor): integer codes of shape [B, K, T].
            special (int): token written where no code sits (e.g. the cardinality).

        Returns:
            sequence (torch.Tensor): shape [B, K, S], dtype of `codes`, `special` where `valid` is False.
            valid (torch.Tensor): bool of shape [K, S] on the codes' device.
        """
        self._check(codes, 3, "codes [B, K, T]")
        batch, _, frames = codes.shape
        steps, _, valid = _tables(self, frames, codes.device)
        sequence = codes.new_full((batch, self.n_q, self.sequence_length(frames)), special)
        sequence.scatter_(2, steps.expand(batch, -1, -1), codes)
        return sequence, valid.clone()

    def revert(self, sequence: Tensor) -> Tensor:
        """Read the codes back from a sequence: [B, K, S] -> [B, K, T] with T = frames_for(S)."""
        self._check(sequence, 3, "sequence [B, K, S]")
        steps = _tables(self, self.frames_for(sequence.shape[-1]), sequence.device)[0]
        return sequence.gather(2, steps.expand(sequence.shape[0], -1, -1))

    def revert_logits(self, logits: Tensor) -> Tensor:
        """Pick each code's prediction from the model output: [B, K, S, V] -> [B, K, T, V].

        Args:
            logits (torch.Tensor): output of shape [B, K, S, V] for an input sequence of S steps;
                logits[:, k, s] is the prediction for step s + 1 of row k (for NAR codebooks: step s).

        Returns:
            torch.Tensor: [B, K, T, V] with T = frames_for(S); entry [b, k, t] predicts codes[b, k, t].
        """
        self._check(logits, 4, "logits [B, K, S, V]")
        batch, _, length, vocab = logits.shape
        predictions = _tables(self, self.frames_for(length), logits.device)[1]
        index = predictions[None, :, :, None].expand(batch, -1, -1, vocab)
        return logits.gather(2, index)

    def render(self, frames: int) -> str:
        """The layout as text, as drawn in the module docstring (codebook k as a letter; K <= 26)."""
        if self.n_q > 26:
            raise ValueError(f"render draws at most 26 codebooks, got {self.n_q}")
        length = self.sequence_length(frames)
        cells = [["." for _ in range(length)] for _ in range(self.n_q)]
        for k, row in enumerate(self.steps(frames).tolist()):
            for t, step in enumerate(row):
                cells[k][step] = f"{chr(ord('a') + k)}{t}"
        header = [str(s) for s in range(length)]
        width = max(len(cell) for cell in header + [c for row in cells for c in row])
        lines = [["step", *header]] + [[f"k={k}", *row] for k, row in enumerate(cells)]
        label = max(len(line[0]) for line in lines)
        return "\n".join(
            " ".join([line[0].ljust(label), *(c.ljust(width) for c in line[1:])]).rstrip() for line in lines
        )

    def _check(self, tensor: Tensor, ndim: int, what: str) -> None:
        if tensor.dim() != ndim or tensor.shape[1] != self.n_q:
            raise ValueError(f"expected {what} with K={self.n_q}, got shape {tuple(tensor.shape)}")


@functools.lru_cache(maxsize=256)
def _tables(pattern: Pattern, frames: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(steps [K, T], prediction_steps [K, T], valid [K, S]) for `frames` frames; shared, do not modify."""
    length = pattern.sequence_length(frames)
    n_q = pattern.n_q
    t = torch.arange(frames).unsqueeze(0)  # [1, T]
    k = torch.arange(n_q).unsqueeze(1)  # [K, 1]
    if pattern.kind in ("parallel", "valle"):
        steps = 1 + t + 0 * k
    elif pattern.kind == "delay":
        steps = 1 + t + torch.tensor(pattern.delays).unsqueeze(1)
    elif pattern.kind == "flatten":
        steps = 1 + t * n_q + k
    else:  # coarse_fine
        coarse, fine = pattern.n_coarse, n_q - pattern.n_coarse
        steps = torch.where(k < coarse, 1 + t * coarse + k, 1 + frames * coarse + t * fine + k - coarse)
    shift = torch.ones(n_q, 1, dtype=torch.long)
    shift[list(pattern.nar_codebooks)] = 0
    valid = torch.zeros(n_q, length, dtype=torch.bool).scatter_(1, steps, True)
    return steps.to(device), (steps - shift).to(device), valid.to(device)


def make_pattern(kind: str, n_q: int, **options: object) -> Pattern:
    """Build the pattern `kind` for `n_q` codebooks (the registry of KINDS).

    Args:
        kind (str): "parallel", "delay", "flatten", "valle" or "coarse_fine".
        n_q (int): number of codebooks K.
        **options: `delays` (list or tuple of K ints >= 0) for "delay"; `n_coarse` (int in [1, K])
            for "coarse_fine". Left out, they take the defaults of `Pattern`.

    Raises:
        ValueError: for an unknown kind, a bad n_q, an option the kind does not take or a bad value.
    """
    if kind not in _OPTIONS:
        raise ValueError(f"unknown pattern kind {kind!r}; known kinds: {', '.join(KINDS)}")
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(_OPTIONS[kind]) or "none"
        raise ValueError(f"pattern {kind!r} takes no option {', '.join(unknown)} (options: {allowed})")
    if "delays" in options:
        delays = options["delays"]
        if not isinstance(delays, (list, tuple)) or not delays:
            raise ValueError(f"delays must be a non-empty list or tuple of ints, got {delays!r}")
        options["delays"] = tuple(delays)
    if "n_coarse" in options and options["n_coarse"] in (0, False):
        raise ValueError(f"n_coarse must be an int >= 1, got {options['n_coarse']!r}")
    return Pattern(kind, n_q, **options)  # type: ignore[arg-type]
