"""LSTM over the time axis of a [B, C, T] feature map, with a skip connection and streaming."""

from __future__ import annotations

import torch
from torch import nn

from funcodec_lite.modules.streaming import StreamingModule


class StreamableLSTM(StreamingModule):
    """Unidirectional LSTM on conv-layout features, ``y = LSTM(x) + x``.

    Args:
        dimension: channels C (input and hidden size).
        num_layers: stacked LSTM layers.
        skip: add the input to the output.

    Shapes: input [B, C, T], output [B, C, T].  In streaming mode the hidden state is carried across
    chunks, so chunked output equals whole-signal output.
    """

    def __init__(self, dimension: int, num_layers: int = 2, skip: bool = True) -> None:
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dimension, dimension, num_layers)

    def _new_state(self) -> dict:
        return {"hidden": None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)  # [T, B, C]: the layout nn.LSTM expects without batch_first
        if self._state is None:
            y, _ = self.lstm(seq)
        elif seq.shape[0] == 0:
            return x
        else:
            y, self._state["hidden"] = self.lstm(seq, self._state["hidden"])
        if self.skip:
            y = y + seq
        return y.permute(1, 2, 0)

    def flush(self) -> None:
        self._state = self._new_state()
        return None
