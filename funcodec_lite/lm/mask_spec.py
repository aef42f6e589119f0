"""The mask spec language of VampNet-style prompts: terms, presets, ``&`` and ``|`` over the builders of
`funcodec_lite.lm.prompts`.

Spec syntax (``parse_mask_spec``; also the ``--mask`` strings of the CLI)::

    spec     := expr | PRESET
    expr     := operand (('&' | '|') operand)*        evaluated left to right
    operand  := TERM | PRESET | '(' expr ')'
    TERM     := NAME [':' arg (',' arg)*]            arg := VALUE | KEY '=' VALUE | KEY ':' VALUE | FLAG

``a & b`` generates only where both generate (the union of the two prompts), ``a | b`` generates where
either does (the intersection of the prompts). Times are in seconds and become frames at build time
(``ceil(seconds * frame_rate)``). Terms:

- ``full`` / ``empty``: generate everything / nothing.
- ``random:P``: generate each token with probability P (VampNet's "random mask intensity").
- ``periodic:P[,width:W][,roll]``: keep W frames centred on every P-th frame, all codebooks; ``roll``
  shifts the pattern circularly by a random 0..P-1 frames per example; P = 0 generates everything.
- ``prefix:S``, ``suffix:S``, ``inpaint:S1[,S2]``: keep the first S1 and last S2 seconds (S2 defaults to S1).
- ``upper:N``: keep the lowest N codebooks at every frame, generate the rest. Compression keeps the
  lowest N codebooks only at every P-th frame: ``upper:N | periodic:P``.
- ``onset[:W]`` or ``onset:width=W``: keep W frames (default 3) from each onset frame on.
- ``beat[:A[,B]]`` or ``beat:after=A,before=B``: keep the beat frame, A seconds after it (default 0.075,
  the paper's 75 ms) and B seconds before it (default 0).
- ``dropout:P``: a modifier, not a mask: re-masks each kept token of everything to its left with
  probability P (``periodic:7 & dropout:0.1``; ``&`` or ``|`` in front of it means the same).

Onset and beat frames come from the caller (``MaskSpec.build(..., onsets=, beats=)``, frame indices per
example; :func:`times_to_frames` converts the seconds of ``funcodec_lite.audio.rhythm``).

Presets (names usable alone or as operands), after VampNet's demo:

- ``unconditional``: ``full``.
- ``periodic-5`` / ``-13`` / ``-17`` / ``-21``: ``periodic:P,roll & onset:5``, "slight" to "very strong"
  periodic variation: every P-th frame (random phase) plus 5 frames after each onset are kept.
- ``beat-driven``: ``beat:after=0.075``, 75 ms after each beat (the paper's best-FAD prompt).
- ``beat-driven-tight``: ``beat:after=0.02``.
- ``inpaint-1s``: ``inpaint:1.0,1.0``; ``prefix-2s``: ``prefix:2.0`` (continuation of a window).
- ``coarse-to-fine``: ``upper:4`` (regenerate the fine codebooks only).
- ``compress-4``, ``compress-4-p16``, ``compress-4-p32``: ``upper:4 | periodic:P`` with P = 8, 16, 32:
  only the lowest 4 codebooks of every P-th frame are kept (≈100 / 50 / 25 bps in VampNet's demo).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from funcodec_lite.lm.prompts import (
    Device,
    beats,
    dropout,
    empty,
    full,
    inpaint,
    mask_and,
    mask_or,
    onsets,
    periodic,
    random,
    resolve_device,
    seconds_to_frames,
    upper,
)


class MaskSpecError(ValueError):
    """A mask spec that does not parse or cannot be built."""


# term name -> ordered (parameter, type, default); a default of ... means required.
_TERMS: dict[str, tuple[tuple[str, type, object], ...]] = {
    "full": (),
    "empty": (),
    "random": (("p", float, ...),),
    "periodic": (("period", int, ...), ("width", int, 1), ("roll", bool, False)),
    "prefix": (("seconds", float, ...),),
    "suffix": (("seconds", float, ...),),
    "inpaint": (("prefix", float, ...), ("suffix", float, None)),
    "upper": (("keep", int, ...),),
    "onset": (("width", int, 3),),
    "beat": (("after", float, 0.075), ("before", float, 0.0)),
    "dropout": (("p", float, ...),),
}
_KNOWN = ("full, empty, random:P, periodic:P[,width:W][,roll], prefix:S, suffix:S, inpaint:S1[,S2], "
          "upper:N, onset[:W], beat[:after=S][,before=S], dropout:P")

PRESETS: dict[str, str] = {
    "unconditional": "full",
    "periodic-5": "periodic:5,roll & onset:5",
    "periodic-13": "periodic:13,roll & onset:5",
    "periodic-17": "periodic:17,roll & onset:5",
    "periodic-21": "periodic:21,roll & onset:5",
    "beat-driven": "beat:after=0.075",
    "beat-driven-tight": "beat:after=0.02",
    "inpaint-1s": "inpaint:1.0,1.0",
    "prefix-2s": "prefix:2.0",
    "coarse-to-fine": "upper:4",
    "compress-4": "upper:4 | periodic:8",
    "compress-4-p16": "upper:4 | periodic:16",
    "compress-4-p32": "upper:4 | periodic:32",
}


@dataclass(frozen=True)
class Term:
    """One mask term: its name and its arguments in the order of `_TERMS` (defaults filled in)."""

    name: str
    args: tuple[tuple[str, object], ...] = ()

    def __str__(self) -> str:
        parts = []
        for key, _, default in _TERMS[self.name]:
            value = dict(self.args)[key]
            if default is ...:
                parts.append(str(value))
            elif value != default:
                parts.append(key if value is True else f"{key}={value}")
        return f"{self.name}:{','.join(parts)}" if parts else self.name


@dataclass(frozen=True)
class Combine:
    """`left op right` with op '&' (both generate) or '|' (either generates)."""

    op: str
    left: Term | Combine
    right: Term | Combine

    def __str__(self) -> str:
        mixed = isinstance(self.left, Combine) and self.left.op != self.op  # parenthesised only for readers
        left = f"({self.left})" if mixed else str(self.left)
        right = f"({self.right})" if isinstance(self.right, Combine) else str(self.right)
        return f"{left} {self.op} {right}"


def _fail(term: str, why: str) -> MaskSpecError:
    presets = ", ".join(PRESETS)
    return MaskSpecError(f"bad mask term {term!r}: {why}; known terms: {_KNOWN}; presets: {presets}")


def _convert(term: str, key: str, kind: type, raw: str) -> object:
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        value = kind(raw)
    except ValueError:
        raise _fail(term, f"{key} must be {kind.__name__}, got {raw!r}") from None
    if value < 0 or (kind is float and not math.isfinite(value)):
        raise _fail(term, f"{key} must be >= 0, got {raw!r}")
    return value


def _parse_term(text: str) -> Term:
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in _TERMS:
        raise _fail(text, f"unknown term {name!r}")
    schema = _TERMS[name]
    kinds = {key: kind for key, kind, _ in schema}
    values: dict[str, object] = {}
    positional = 0
    for raw in [a.strip() for a in rest.split(",")] if rest.strip() else []:
        match = re.fullmatch(r"([a-z_]+)\s*[=:]\s*(.+)", raw)
        if match and match.group(1) in kinds:
            key, value = match.group(1), match.group(2).strip()
        elif kinds.get(raw) is bool:
            key, value = raw, "true"
        elif match is None and positional < len(schema):
            key, value = schema[positional][0], raw
            positional += 1
        else:
            takes = ", ".join(kinds) or "no arguments"
            raise _fail(text, f"unexpected argument {raw!r} (takes {takes})")
        if key in values:
            raise _fail(text, f"{key} given twice")
        values[key] = _convert(text, key, kinds[key], value)
    for key, _, default in schema:
        if key not in values:
            if default is ...:
                raise _fail(text, f"missing {key}")
            values[key] = default
    if name in ("random", "dropout") and values["p"] > 1:
        raise _fail(text, f"p must be in [0, 1], got {values['p']}")
    if name in ("periodic", "onset") and values["width"] < 1:
        raise _fail(text, "width must be >= 1")
    return Term(name, tuple((key, values[key]) for key, _, _ in schema))


def _parse_expr(tokens: list[str], pos: int, depth: int) -> tuple[Term | Combine, int]:
    node: Term | Combine | None = None
    op = None
    while pos < len(tokens):
        tok = tokens[pos]
        if tok == ")":
            if depth == 0:
                raise _fail(")", "unbalanced parenthesis")
            break
        if tok in "&|":
            if node is None or op is not None:
                raise _fail(tok, "operator without a term on its left")
            op, pos = tok, pos + 1
            continue
        if node is not None and op is None:
            raise _fail(tok, "two terms without '&' or '|' between them")
        if tok == "(":
            operand, pos = _parse_expr(tokens, pos + 1, depth + 1)
            if pos >= len(tokens) or tokens[pos] != ")":
                raise _fail("(", "unbalanced parenthesis")
            pos += 1
        elif tok in PRESETS:
            operand = _parse_expr(_tokenize(PRESETS[tok]), 0, 0)[0]
            pos += 1
        else:
            operand, pos = _parse_term(tok), pos + 1
        if node is None and isinstance(operand, Term) and operand.name == "dropout":
            raise _fail(tok, "dropout needs a mask on its left")
        node = operand if node is None else Combine(op, node, operand)
        op = None
    if node is None:
        raise _fail("()" if depth else "", "empty expression")
    if op is not None:
        raise _fail(op, "operator without a term on its right")
    return node, pos


def _tokenize(spec: str) -> list[str]:
    return [t.strip() for t in re.split(r"([&|()])", spec) if t.strip()]


@dataclass(frozen=True)
class MaskSpec:
    """A parsed mask spec; equal specs build equal masks. `str(spec)` parses back to an equal spec."""

    root: Term | Combine
    source: str = field(default="", compare=False)

    def __str__(self) -> str:
        return str(self.root)

    def terms(self) -> list[Term]:
        """The terms of the spec, left to right."""
        stack, out = [self.root], []
        while stack:
            node = stack.pop()
            if isinstance(node, Combine):
                stack.extend([node.right, node.left])
            else:
                out.append(node)
        return out

    @property
    def needs_onsets(self) -> bool:
        """Whether `build` needs onset frames."""
        return any(t.name == "onset" for t in self.terms())

    @property
    def needs_beats(self) -> bool:
        """Whether `build` needs beat frames."""
        return any(t.name == "beat" for t in self.terms())

    def build(self, B: int, K: int, T: int, frame_rate: float, generator: torch.Generator | None = None,
              onsets: Sequence[Sequence[int]] | None = None, beats: Sequence[Sequence[int]] | None = None,
              device: Device = None) -> torch.Tensor:
        """Build the bool mask [B, K, T] (True = generate).

        Args:
            frame_rate: codec frames per second, converts the seconds of prefix/suffix/inpaint/beat.
            generator: the only source of randomness (random, periodic roll, dropout).
            onsets, beats: frame indices per example (B lists or one shared list), needed by onset/beat terms.
        """
        dev = resolve_device(device, generator)

        def build(node: Term | Combine) -> torch.Tensor:
            if isinstance(node, Combine):
                left = build(node.left)
                if isinstance(node.right, Term) and node.right.name == "dropout":
                    return dropout(left, float(node.right.args[0][1]), generator)
                right = build(node.right)
                return mask_and(left, right) if node.op == "&" else mask_or(left, right)
            a = dict(node.args)
            sec = lambda s: seconds_to_frames(float(s), frame_rate)  # noqa: E731
            if node.name == "full":
                return full(B, K, T, dev)
            if node.name == "empty":
                return empty(B, K, T, dev)
            if node.name == "random":
                return random(B, K, T, a["p"], generator, dev)
            if node.name == "periodic":
                return periodic(B, K, T, a["period"], a["width"], a["roll"], generator, dev)
            if node.name == "prefix":
                return inpaint(B, K, T, sec(a["seconds"]), 0, dev)
            if node.name == "suffix":
                return inpaint(B, K, T, 0, sec(a["seconds"]), dev)
            if node.name == "inpaint":
                suffix = a["prefix"] if a["suffix"] is None else a["suffix"]
                return inpaint(B, K, T, sec(a["prefix"]), sec(suffix), dev)
            if node.name == "upper":
                return upper(B, K, T, a["keep"], dev)
            if node.name == "onset":
                if onsets is None:
                    raise _fail(str(node), "needs onset frames (MaskSpec.build(..., onsets=...))")
                return _with_frames(_onset_mask, str(node), onsets, B, K, T, a["width"], device=dev)
            if node.name == "beat":
                if beats is None:
                    raise _fail(str(node), "needs beat frames (MaskSpec.build(..., beats=...))")
                return _with_frames(_beat_mask, str(node), beats, B, K, T, sec(a["before"]),
                                    sec(a["after"]), device=dev)
            raise _fail(str(node), "dropout needs a mask on its left")

        return build(self.root)


_onset_mask, _beat_mask = onsets, beats  # MaskSpec.build's arguments shadow the builders' names


def _with_frames(builder, term: str, frames, *args, **kwargs) -> torch.Tensor:
    try:
        return builder(frames, *args, **kwargs)
    except ValueError as err:
        raise _fail(term, str(err)) from None


def parse_mask_spec(spec: str) -> MaskSpec:
    """Parse a mask spec or preset name (see the module docstring). Raises MaskSpecError on a bad spec."""
    text = spec.strip()
    if not text:
        raise _fail(spec, "empty spec")
    root, _ = _parse_expr(_tokenize(PRESETS.get(text, text)), 0, 0)
    return MaskSpec(root, source=spec)
