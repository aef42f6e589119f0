"""ONNX export of a codec: an encoder graph (audio → codes) and a decoder graph (codes → audio).

``export_onnx(model, out_dir)`` writes ``encoder.onnx`` (input ``audio`` float [B, C, T], output ``codes``
int64 [B, n_q, N]), ``decoder.onnx`` (input ``codes`` int64 [B, K ≤ n_q, N], output ``audio`` float
[B, C, N · samples_per_frame]; trim it to the input's length) and ``manifest.json``, with dynamic batch and
length.  The graphs are traced from a copy of the model whose length-dependent layers are swapped for
exportable forms (`onnx_layers`, over the operations of `onnx_ops`: STFT and inverse STFT as convolutions,
padding computed from the traced length, RVQ search as argmin); the model itself is not changed.  After
writing, both graphs are run with onnxruntime (when installed) on two lengths against PyTorch and the
agreement is stored in the manifest.

For causal SEANet codecs it also writes the streaming step (`onnx_stream`): ``encoder_step.onnx`` and
``decoder_step.onnx``, chunk + state → codes / audio + state.

Our ``Codec`` exports in every architecture (SEANet, FreqCodec, the frame-rate ``vocos`` codec) with a
residual VQ; other codec kinds are traced through their ``encode`` / ``decode`` as they are.  A model the
exporter cannot take raises ``ExportError`` with one line naming the layer.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.onnx_layers import exportable_codec
from funcodec_lite.inference.onnx_ops import RVQLookup, RVQSearch
from funcodec_lite.inference.onnx_stream import (
    DECODER_STEP_FILE,
    ENCODER_STEP_FILE,
    export_step_graphs,
    streams,
)
from funcodec_lite.inference.onnx_trace import DEFAULT_OPSET, ExportError, export_graph
from funcodec_lite.quantization import ResidualVectorQuantizer

FORMATS = ("onnx",)
ENCODER_FILE, DECODER_FILE, MANIFEST_FILE = "encoder.onnx", "decoder.onnx", "manifest.json"
EXPORT_FILES = (ENCODER_FILE, DECODER_FILE, MANIFEST_FILE)
STEP_FILES = (ENCODER_STEP_FILE, DECODER_STEP_FILE)  # written for causal SEANet codecs


# ------------------------------------------------------------------------------------------------
# The two graphs
def _codebooks(codec: Codec) -> torch.Tensor:
    if codec.semantic is not None:
        raise ExportError("layer semantic (SemanticAugmentation): semantic features are an extra model "
                          "input; export supports codecs without semantic augmentation")
    if not isinstance(codec.quantizer, ResidualVectorQuantizer):
        raise ExportError(f"layer quantizer ({type(codec.quantizer).__name__}): only the residual VQ "
                          "(quantizer kind rvq) exports")
    return torch.stack([layer.embed.detach().float() for layer in codec.quantizer.layers])


class CodecEncoderGraph(nn.Module):
    """Audio [B, C, T] → codes int64 [B, n_q, N] (the first ``n_q`` codebooks, default all: ``encode``)."""

    def __init__(self, codec: Codec, n_q: int | None = None) -> None:
        super().__init__()
        self.codec = exportable_codec(codec)
        self.search = RVQSearch(_codebooks(codec)[: n_q or codec.n_q])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.search(self.codec.encode_latent(audio))


class CodecDecoderGraph(nn.Module):
    """Codes int64 [B, K ≤ n_q, N] → audio [B, C, N · samples_per_frame]."""

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = exportable_codec(codec)
        self.lookup = RVQLookup(_codebooks(codec))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.decode_latent(self.lookup(codes)).float()


class _ModelEncode(nn.Module):
    """Any codec kind, traced through its own ``encode``."""

    def __init__(self, model: nn.Module, n_q: int | None = None) -> None:
        super().__init__()
        self.model, self.n_q = model, n_q or model.n_q

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.encode(audio, self.n_q)


class _ModelDecode(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes).float()


def export_graphs(model: nn.Module, n_q: int | None = None) -> tuple[nn.Module, nn.Module]:
    """The encoder (first ``n_q`` codebooks, default all) and decoder graphs of a codec, ready for
    ``torch.onnx.export`` (eval mode)."""
    if n_q is not None and not 1 <= n_q <= model.n_q:
        raise ExportError(f"n_q must be in 1..{model.n_q}, got {n_q}")
    if isinstance(model, Codec):
        return CodecEncoderGraph(model, n_q).eval(), CodecDecoderGraph(model).eval()
    model = copy.deepcopy(model).float().eval()
    return _ModelEncode(model, n_q).eval(), _ModelDecode(model).eval()


# ------------------------------------------------------------------------------------------------
# The whole export
def _verify(model: nn.Module, encoder_path: Path, decoder_path: Path, lengths: list[int],
            n_q: int) -> dict | None:
    """Runs both graphs with onnxruntime (CPU) against the model; None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = ort.InferenceSession(str(encoder_path), options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(decoder_path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    agree, audio_diff = 1.0, 0.0
    for length in lengths:
        wav = 0.3 * torch.randn(2, model.channels, length, generator=generator)
        with torch.no_grad():
            codes = model.encode(wav, n_q)
            audio = model.decode(codes).float()
        onnx_codes = encoder.run(None, {"audio": wav.numpy()})[0]
        onnx_audio = decoder.run(None, {"codes": codes.numpy()})[0]
        if onnx_codes.shape != tuple(codes.shape) or onnx_audio.shape != tuple(audio.shape):
            raise ExportError(f"the exported graphs give shapes {onnx_codes.shape} / {onnx_audio.shape} for "
                              f"{length} samples, PyTorch {tuple(codes.shape)} / {tuple(audio.shape)}: a "
                              "length is fixed in the graph")
        agree = min(agree, float((torch.from_numpy(onnx_codes) == codes).double().mean()))
        audio_diff = max(audio_diff, float((torch.from_numpy(onnx_audio) - audio).abs().max()))
    if agree < 0.99 or audio_diff > 1e-3:
        raise ExportError(f"the exported graphs disagree with PyTorch (codes equal: {agree:.3f}, audio max "
                          f"difference {audio_diff:.2e})")
    return {"lengths": lengths, "codes_equal": agree, "audio_max_abs_diff": audio_diff}


def _codebook_sizes(model: nn.Module) -> list[int]:
    sizes = getattr(model, "codebook_sizes", None) or [model.codebook_size] * model.n_q
    return [int(size) for size in sizes]


def export_onnx(model: nn.Module, out_dir: str | os.PathLike, opset: int = DEFAULT_OPSET, verify: bool = True,
                model_id: str | None = None, n_q: int | None = None) -> dict:
    """Writes ``encoder.onnx``, ``decoder.onnx`` and ``manifest.json`` to ``out_dir``; returns the manifest.

    Args:
        model: a codec (``CompressionModel``) in eval mode; it is not modified.
        out_dir: the folder (created); files already there are replaced.
        opset: ONNX opset (17: LayerNormalization and STFT-free graphs).
        verify: run the graphs with onnxruntime on two lengths and record the agreement.
        model_id: stored in the manifest (``funcodec_lite.codec.loading.model_id``).
        n_q: codebooks the encoder emits (default all; the decoder takes any number up to all).

    Raises:
        ExportError: a layer that cannot be exported, or graphs that disagree with PyTorch.
    """
    out_dir = Path(out_dir)
    encoder, decoder = export_graphs(model, n_q)
    n_q = n_q or int(model.n_q)
    spf = int(model.samples_per_frame)
    example = 0.1 * torch.randn(2, model.channels, 7 * spf + 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = encoder(example)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        export_graph(encoder, example, staging / ENCODER_FILE, "audio", "codes",
                     {0: "batch", 2: "samples"}, {0: "batch", 2: "frames"}, opset)
        export_graph(decoder, codes, staging / DECODER_FILE, "codes", "audio",
                     {0: "batch", 1: "codebooks", 2: "frames"}, {0: "batch", 2: "samples"}, opset)
        streaming = (export_step_graphs(model, staging, _codebooks(model), n_q, opset, verify)
                     if streams(model) else None)
        checked = (_verify(model, staging / ENCODER_FILE, staging / DECODER_FILE,
                           [3 * spf + 1, int(model.sample_rate) + spf // 2 + 7], n_q) if verify else None)
        manifest = {
            "format": "onnx", "opset": opset, "model_id": model_id,
            "sample_rate": int(model.sample_rate), "channels": int(model.channels),
            "samples_per_frame": spf, "frame_rate": float(model.frame_rate), "n_q": int(model.n_q),
            "codebook_sizes": _codebook_sizes(model), "encoder_n_q": n_q,
            "encoder": {"file": ENCODER_FILE, "input": "audio float32 [batch, channels, samples]",
                        "output": "codes int64 [batch, encoder_n_q, frames], frames = ceil(samples / "
                                  "samples_per_frame)"},
            "decoder": {"file": DECODER_FILE, "input": "codes int64 [batch, codebooks <= n_q, frames]",
                        "output": "audio float32 [batch, channels, frames * samples_per_frame] (trim to the "
                                  "input's length)"},
            "verified": checked,
            "streaming": streaming,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for name in EXPORT_FILES + (STEP_FILES if streaming else ()):
            os.replace(staging / name, out_dir / name)
        for name in () if streaming else STEP_FILES:  # left by an earlier export of a causal model
            (out_dir / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
