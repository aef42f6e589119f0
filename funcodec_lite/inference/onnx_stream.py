"""The streaming step of a causal SEANet codec as graphs with explicit state: chunk + state → codes + state.

``StepEncoderGraph``: (audio [B, C, n · hop], started [1], *state) → (codes [B, n_q, n], started', *state');
``StepDecoderGraph``: (codes [B, K, n], started [1], *state) → (audio [B, C, n · hop], started', *state').
``started`` is 0 for the first chunk of a stream and 1 afterwards (the graphs return 1); ``initial_state``
gives the zero state a stream starts from.  The state holds, per causal convolution, the last
``padding_total`` input samples it has seen (on the first chunk the graph reflects the chunk's own start
instead, as the whole-signal path pads it), per transposed convolution the overlap it still owes the next
chunk, and per LSTM its hidden and cell state.

Every chunk is a whole number of code frames; the first must be long enough for the deepest reflect padding
(``min_first_frames``).  The codes (audio) of the chunks of a signal whose length is a whole number of frames,
concatenated, equal those of encoding (decoding) it at once, up to float rounding.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.onnx_ops import RVQLookup, RVQSearch
from funcodec_lite.inference.onnx_trace import ExportError, export_graph
from funcodec_lite.modules.conv import StreamableConv1d, StreamableConvTranspose1d
from funcodec_lite.modules.lstm import StreamableLSTM
from funcodec_lite.modules.seanet import SEANetResnetBlock
from funcodec_lite.modules.streaming import StreamingSequential


class _Step(nn.Module):
    """A layer of a step graph: ``forward(x, state, first) -> (y, state')``, ``state`` a list of tensors."""

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return []

    def min_input(self) -> int:
        """Samples this layer needs in its input on the first chunk."""
        return 1


class _Pointwise(_Step):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, state, first):
        return self.layer(x), []


class _StepConv(_Step):
    """Causal ``StreamableConv1d``: the last ``padding_total`` input samples are carried to the next chunk."""

    def __init__(self, layer: StreamableConv1d) -> None:
        super().__init__()
        self.conv, self.context, self.pad_mode = layer.conv, layer.padding_total, layer.pad_mode
        self.in_channels = layer.conv.in_channels

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, self.in_channels, self.context)] if self.context else []

    def min_input(self) -> int:
        return self.context + 1 if self.pad_mode == "reflect" else 1

    def forward(self, x, state, first):
        if not self.context:
            return self.conv(x), []
        if self.pad_mode == "reflect":  # (zero-padded so later, shorter chunks give the same shape)
            start = F.pad(x, (0, self.context))[..., 1 : self.context + 1].flip(-1)
        elif self.pad_mode == "replicate":
            start = x[..., :1].expand(-1, -1, self.context)
        else:
            start = torch.zeros_like(state[0])
        full = torch.cat([torch.where(first, start, state[0]), x], dim=-1)
        return self.conv(full), [full[..., -self.context :]]


class _StepConvTranspose(_Step):
    """Causal ``StreamableConvTranspose1d``: the overlap past the chunk's end is added to the next chunk."""

    def __init__(self, layer: StreamableConvTranspose1d) -> None:
        super().__init__()
        self.convtr, self.stride, self.overlap = layer.convtr, layer.stride, layer.padding_total

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, self.convtr.out_channels, self.overlap)] if self.overlap else []

    def forward(self, x, state, first):
        y = F.conv_transpose1d(x, self.convtr.weight, None, self.stride, groups=self.convtr.groups)
        bias = 0.0 if self.convtr.bias is None else self.convtr.bias[:, None]
        if not self.overlap:
            return y + bias, []
        head = y[..., : self.overlap] + state[0]
        y = torch.cat([head, y[..., self.overlap :]], dim=-1)
        return y[..., : -self.overlap] + bias, [y[..., -self.overlap :]]


class _StepLSTM(_Step):
    def __init__(self, layer: StreamableLSTM) -> None:
        super().__init__()
        self.lstm, self.skip = layer.lstm, layer.skip

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        shape = (self.lstm.num_layers, batch, self.lstm.hidden_size)
        return [torch.zeros(shape), torch.zeros(shape)]

    def forward(self, x, state, first):
        seq = x.permute(2, 0, 1)
        y, (h, c) = self.lstm(seq, (state[0], state[1]))
        if self.skip:
            y = y + seq
        return y.permute(1, 2, 0), [h, c]


class _StepSequence(_Step):
    """Layers in turn, each with its slice of the state."""

    def __init__(self, steps: list[_Step]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.sizes = [len(step.initial_state(1)) for step in steps]

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [tensor for step in self.steps for tensor in step.initial_state(batch)]

    def forward(self, x, state, first):
        new, at = [], 0
        for step, size in zip(self.steps, self.sizes):
            x, out = step(x, state[at : at + size], first)
            new += out
            at += size
        return x, new


class _StepResidual(_Step):
    def __init__(self, block: SEANetResnetBlock) -> None:
        super().__init__()
        self.block = _StepSequence([step_module(layer) for layer in block.block.layers])
        self.shortcut = step_module(block.shortcut)
        self.split = len(self.shortcut.initial_state(1))

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return self.shortcut.initial_state(batch) + self.block.initial_state(batch)

    def min_input(self) -> int:
        return max(self.shortcut.min_input(), *(step.min_input() for step in self.block.steps))

    def forward(self, x, state, first):
        skip, skip_state = self.shortcut(x, state[: self.split], first)
        main, main_state = self.block(x, state[self.split :], first)
        return skip + main, skip_state + main_state


def step_module(layer: nn.Module) -> _Step:
    """The step form of a causal SEANet layer (convolutions, LSTM, residual blocks, pointwise layers)."""
    if isinstance(layer, StreamableConv1d):
        if not layer.causal:
            raise ValueError("the streaming step needs a causal codec (causal: true)")
        return _StepConv(layer)
    if isinstance(layer, StreamableConvTranspose1d):
        if not layer.causal:
            raise ValueError("the streaming step needs a causal codec (causal: true)")
        return _StepConvTranspose(layer)
    if isinstance(layer, StreamableLSTM):
        return _StepLSTM(layer)
    if isinstance(layer, SEANetResnetBlock):
        return _StepResidual(layer)
    if isinstance(layer, StreamingSequential):
        return _StepSequence([step_module(sub) for sub in layer.layers])
    return _Pointwise(layer)


def _min_first_frames(sequence: _StepSequence, hop: int, downsampling: bool) -> int:
    """Code frames the first chunk needs so every reflect padding has enough samples."""
    factor, frames = 1 if downsampling else hop, 1
    for step in sequence.steps:
        rate = hop // factor if downsampling else factor  # samples per frame at this layer's input
        frames = max(frames, math.ceil(step.min_input() / rate))
        if isinstance(step, _StepConv) and step.conv.stride[0] > 1:
            factor *= step.conv.stride[0]
        if isinstance(step, _StepConvTranspose):
            factor //= step.stride
    return frames


class _StepGraph(nn.Module):
    def __init__(self, codec: Codec, network: nn.Module, downsampling: bool) -> None:
        super().__init__()
        if codec.config.arch != "seanet" or not codec.config.model.causal:
            raise ValueError("the streaming step needs a causal SEANet codec (arch seanet, causal: true)")
        self.codec = codec
        self.steps = step_module(network)
        self.min_first_frames = _min_first_frames(self.steps, codec.samples_per_frame, downsampling)

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        """``started`` (0) and the zero state of every layer, for a stream of ``batch`` signals."""
        return [torch.zeros(1), *self.steps.initial_state(batch)]

    @property
    def state_names(self) -> list[str]:
        return [f"state{i}" for i in range(len(self.steps.initial_state(1)))]


class StepEncoderGraph(_StepGraph):
    """(audio chunk [B, C, n · hop], started [1], *state) → (codes [B, n_q, n], started', *state')."""

    def __init__(self, codec: Codec, search: nn.Module) -> None:
        super().__init__(codec, codec.encoder, downsampling=True)
        self.search = search

    def forward(self, audio: torch.Tensor, started: torch.Tensor, *state: torch.Tensor):
        first = started < 0.5
        latent, new = self.steps(self.codec.scale_input(audio), list(state), first)
        return (self.search(latent), torch.ones_like(started), *new)


class StepDecoderGraph(_StepGraph):
    """(codes [B, K, n], started [1], *state) → (audio chunk [B, C, n · hop], started', *state')."""

    def __init__(self, codec: Codec, lookup: nn.Module) -> None:
        super().__init__(codec, codec.decoder, downsampling=False)
        self.lookup = lookup

    def forward(self, codes: torch.Tensor, started: torch.Tensor, *state: torch.Tensor):
        first = started < 0.5
        audio, new = self.steps(self.lookup(codes), list(state), first)
        return (self.codec.scale_output(audio), torch.ones_like(started), *new)


ENCODER_STEP_FILE, DECODER_STEP_FILE = "encoder_step.onnx", "decoder_step.onnx"


def streams(codec: nn.Module) -> bool:
    """True for the codecs whose streaming step exports: causal SEANet ``Codec`` with a residual VQ."""
    return (isinstance(codec, Codec) and codec.config.arch == "seanet" and codec.config.model.causal
            and codec.semantic is None and hasattr(codec.quantizer, "layers"))


def _batch_axes(graph: _StepGraph) -> list[int]:
    """Batch axis of each state tensor: where its shapes at batch 1 and 2 differ."""
    one, two = graph.initial_state(1)[1:], graph.initial_state(2)[1:]
    return [next(axis for axis, (a, b) in enumerate(zip(x.shape, y.shape)) if a != b)
            for x, y in zip(one, two)]


def _state_axes(graph: _StepGraph, suffix: str) -> dict[str, dict[int, str]]:
    return {f"{name}_{suffix}": {axis: "batch"} for name, axis in zip(graph.state_names, _batch_axes(graph))}


def export_step_graphs(codec: Codec, folder: Path, codebooks: torch.Tensor, n_q: int, opset: int,
                       verify: bool) -> dict:
    """Writes ``encoder_step.onnx`` and ``decoder_step.onnx`` of a causal codec to ``folder``; returns their
    manifest entry (files, inputs and outputs, state shapes, ``min_first_frames``, the agreement found)."""
    encoder = StepEncoderGraph(codec, RVQSearch(codebooks[:n_q])).eval()
    decoder = StepDecoderGraph(codec, RVQLookup(codebooks)).eval()
    hop, first = codec.samples_per_frame, max(encoder.min_first_frames, decoder.min_first_frames)
    wav = 0.1 * torch.randn(2, codec.channels, first * hop, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = encoder(wav, *encoder.initial_state(2))[0]
    entry: dict = {"min_first_frames": first}
    graphs = ((ENCODER_STEP_FILE, encoder, wav, "audio", "codes"),
              (DECODER_STEP_FILE, decoder, codes, "codes", "audio"))
    for name, graph, example, source, target in graphs:
        axes = {"audio": {0: "batch", 2: "samples"}, "codes": {0: "batch", 1: "codebooks", 2: "frames"}}
        inputs = [source, "started_in", *(f"{n}_in" for n in graph.state_names)]
        outputs = [target, "started_out", *(f"{n}_out" for n in graph.state_names)]
        export_graph(graph, (example, *graph.initial_state(2)), folder / name, inputs, outputs,
                     {source: axes[source], **_state_axes(graph, "in")},
                     {target: axes[target], **_state_axes(graph, "out")}, opset)
        entry[name.removesuffix(".onnx")] = {
            "file": name, "inputs": inputs, "outputs": outputs,
            "state_shapes_at_batch_1": [list(t.shape) for t in graph.initial_state(1)[1:]],
            "state_batch_axes": _batch_axes(graph)}
    entry["usage"] = ("feed started_in = [0] and zero states (shapes above, batch axes resized) on the first "
                      "chunk, then each step's outputs; chunks are whole frames, the first at least "
                      "min_first_frames")
    if verify:
        entry["verified"] = _verify_steps(codec, folder, (encoder, decoder), n_q, first)
    return entry


def _verify_steps(codec: Codec, folder: Path, graphs: tuple[_StepGraph, _StepGraph], n_q: int,
                  first: int) -> dict | None:
    """Streams a signal through both step graphs in onnxruntime, in chunks of ``first``, then 1, 5, 3, ...
    frames, against ``encode`` / ``decode`` of the whole signal."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    hop, frames = codec.samples_per_frame, first + 20
    wav = 0.3 * torch.randn(2, codec.channels, frames * hop, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        codes = codec.encode(wav, n_q)
        audio = codec.decode(codes).float()
    bounds = [0, first]
    while bounds[-1] < frames:
        bounds.append(min(frames, bounds[-1] + (3, 1, 5)[len(bounds) % 3]))
    streamed = []
    for name, graph, source, scale in ((ENCODER_STEP_FILE, graphs[0], wav, hop),
                                       (DECODER_STEP_FILE, graphs[1], codes, 1)):
        session = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        state = [t.numpy() for t in graph.initial_state(2)]
        pieces = []
        for start, end in zip(bounds, bounds[1:]):
            chunk = source[..., start * scale : end * scale].numpy()
            result = session.run(None, dict(zip(names, [chunk, *state])))
            pieces.append(result[0])
            state = result[1:]
        streamed.append(torch.from_numpy(np.concatenate(pieces, axis=-1)))
    agree = float((streamed[0] == codes).double().mean())
    diff = float((streamed[1] - audio).abs().max())
    # a wrong state shows as gross errors; float rounding (chunked LSTM and convolutions) can only flip
    # near-tied codes, which random or synthetic codebooks have many of
    if agree < 0.5 or diff > 1e-3:
        raise ExportError(f"the streaming step graphs disagree with PyTorch (codes equal: {agree:.3f}, audio "
                          f"max difference {diff:.2e})")
    return {"chunk_frames": [b - a for a, b in zip(bounds, bounds[1:])], "codes_equal": agree,
            "audio_max_abs_diff": diff}
