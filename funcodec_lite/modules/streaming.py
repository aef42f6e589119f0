"""Streaming support: modules that keep per-stream state between chunks.

A ``StreamingModule`` computes the whole-signal result in ``forward`` when no stream is open.  Inside
``with module.streaming():`` every streaming descendant holds a state object, ``forward`` consumes one
chunk and returns the part of the output that is fully determined so far, and ``flush()`` returns the
rest at the end of the stream.  Concatenating the chunk outputs and the flush output gives the
whole-signal output.  The state lives on the module instances (no global state) and is dropped when
the context closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class StreamingModule(nn.Module):
    """Base class for modules with a streaming mode.

    Subclasses implement ``_new_state()``, use ``self._state`` in ``forward`` when it is not None, and
    implement ``flush()``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._state: Any = None

    @property
    def is_streaming(self) -> bool:
        return self._state is not None

    def _new_state(self) -> Any:
        raise NotImplementedError

    def flush(self) -> torch.Tensor | None:
        """Returns the output still held back at the end of a stream ([B, C, T_rest]), or None.

        The module is ready for a new stream afterwards."""
        raise NotImplementedError

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Opens a stream on this module and every streaming descendant."""
        modules = [m for m in self.modules() if isinstance(m, StreamingModule)]
        for module in modules:
            module._state = module._new_state()
        try:
            yield
        finally:
            for module in modules:
                module._state = None


def empty_like_time(x: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """An empty [B, C, 0] tensor with the batch, dtype and device of ``x``."""
    return x.new_zeros(x.shape[0], x.shape[1] if channels is None else channels, 0)


class StreamingSequential(StreamingModule):
    """A sequence of layers that streams: a chunk runs through every layer in turn.

    Args:
        layers: the layers, applied in order.  Layers that are not ``StreamingModule`` must be
            stateless and pointwise in time (activations).
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def _new_state(self) -> dict:
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def flush(self) -> torch.Tensor | None:
        carry: torch.Tensor | None = None
        for layer in self.layers:
            if carry is not None:
                carry = layer(carry)
            if isinstance(layer, StreamingModule):
                rest = layer.flush()
                if rest is not None:
                    carry = rest if carry is None else torch.cat([carry, rest], dim=-1)
        return carry


class StreamingAdd(StreamingModule):
    """Adds two streams that may lag each other by a few samples, aligning them in time."""

    def _new_state(self) -> dict:
        return {"left": None, "right": None}

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if self._state is None:
            return left + right
        if self._state["left"] is not None:
            left = torch.cat([self._state["left"], left], dim=-1)
        if self._state["right"] is not None:
            right = torch.cat([self._state["right"], right], dim=-1)
        n = min(left.shape[-1], right.shape[-1])
        self._state["left"], self._state["right"] = left[..., n:], right[..., n:]
        return left[..., :n] + right[..., :n]

    def flush(self) -> torch.Tensor | None:
        left, right = self._state["left"], self._state["right"]
        self._state = self._new_state()
        if left is None or right is None:
            return None
        if left.shape[-1] != right.shape[-1]:
            raise RuntimeError(f"streams ended misaligned: {left.shape[-1]} vs {right.shape[-1]} samples")
        return left + right if left.shape[-1] else None
