"""Mimi, Kyutai's streaming speech codec (Moshi's audio tokenizer), as a ``CompressionModel``.

24 kHz mono audio → a causal SEANet encoder (hop 960: 25 Hz) → a causal transformer (RoPE, 250-frame
window, layer scale) → a learnt strided convolution down to 12.5 Hz → a split residual VQ (one semantic
codebook, 31 acoustic ones, 2048 entries each, with their own projections) and the mirror image back:
the sum of the codewords, a grouped transposed convolution up to 25 Hz, a transformer and a causal SEANet
decoder.  Every part is causal, so the model streams frame by frame (80 ms: 1920 samples per code frame)
and the streamed codes and audio equal the whole-signal ones.

Built from a released checkpoint by ``funcodec_lite.convert.mimi`` (Kyutai's safetensors, or a
``transformers`` ``MimiModel`` directory).  ``encode`` gives the codes of ``moshi``'s ``MimiModel.encode``
and ``decode`` its audio; with ``pad_to_frame: false`` they are those of ``transformers``' ``MimiModel``,
which pads the end of each convolution's input instead of the signal (the codes differ only in the last
frame of a signal that is not a whole number of frames).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.modules.conv import StreamableConv1d, StreamableConvTranspose1d
from funcodec_lite.modules.seanet import SEANetConfig, SEANetDecoder, SEANetEncoder
from funcodec_lite.modules.transformer import CausalTransformer, TransformerConfig
from funcodec_lite.quantization.split_rvq import SplitResidualVQ


def mimi_seanet() -> SEANetConfig:
    """Mimi's SEANet: 64 filters, ratios (8, 6, 5, 4), 512 channels, causal, no norm or LSTM, zero padding."""
    return SEANetConfig(n_filters=64, ratios=[8, 6, 5, 4], dimension=512, n_residual_layers=1, kernel_size=7,
                        last_kernel_size=3, residual_kernel_size=3, dilation_base=2, compress=2, lstm=0,
                        causal=True, norm="none", pad_mode="constant", true_skip=True)


@dataclass
class MimiConfig:
    """The architecture of a Mimi model (defaults: the released ``tokenizer-e351c8d8-checkpoint125``).

    Attributes:
        sample_rate, channels: of the audio.
        frame_rate: code frames per second; the encoder's own rate (``sample_rate / hop``) is brought down
            to it by a learnt convolution of stride ``encoder rate / frame_rate`` (an integer), and back up
            by a transposed convolution with ``upsample_groups`` groups (None: one per channel, as released).
        seanet: encoder and decoder (causal, conv decoder).
        transformer: the transformer after the encoder and the one before the decoder (same shape).
        n_q, n_q_semantic, bins, codebook_dim: the split RVQ: ``n_q`` codebooks of ``bins`` entries, the
            first ``n_q_semantic`` in the semantic group, vectors of ``codebook_dim``.
        pad_to_frame: zero-pad the signal to whole frames before encoding (``moshi``); False: each
            convolution pads the end of its own input (``transformers``).
        num_codebooks: codebooks ``encode`` gives by default (None: all; Moshi uses 8).
    """

    sample_rate: int = 24000
    channels: int = 1
    frame_rate: float = 12.5
    seanet: SEANetConfig = field(default_factory=mimi_seanet)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    n_q: int = 32
    n_q_semantic: int = 1
    bins: int = 2048
    codebook_dim: int = 256
    upsample_groups: int | None = None
    pad_to_frame: bool = True
    num_codebooks: int | None = None

    def __post_init__(self) -> None:
        if not self.seanet.causal or self.seanet.decoder_head != "conv":
            raise ValueError("Mimi needs a causal SEANet with the conv decoder (seanet.causal: true)")
        stride = self.encoder_frame_rate / self.frame_rate
        if stride < 1 or abs(stride - round(stride)) > 1e-9:
            raise ValueError(f"frame_rate {self.frame_rate} must divide the encoder's rate "
                             f"{self.encoder_frame_rate:g} by a whole number")
        if not 1 <= self.n_q_semantic < self.n_q:
            raise ValueError(f"n_q_semantic must be in 1..{self.n_q - 1}, got {self.n_q_semantic}")
        if self.upsample_groups is not None and self.seanet.dimension % self.upsample_groups:
            raise ValueError(f"upsample_groups {self.upsample_groups} must divide {self.seanet.dimension}")
        if self.num_codebooks is not None and not self.n_q_semantic <= self.num_codebooks <= self.n_q:
            raise ValueError(f"num_codebooks must be in {self.n_q_semantic}..{self.n_q}")

    @property
    def encoder_frame_rate(self) -> float:
        return self.sample_rate / self.seanet.hop_length

    @property
    def resample_stride(self) -> int:
        """Encoder frames per code frame (2 for Mimi: 25 Hz → 12.5 Hz)."""
        return round(self.encoder_frame_rate / self.frame_rate)


class Mimi(CompressionModel):
    """Mimi codec: waveform [B, C, T] ↔ codes long [B, K, ceil(T / 1920)] at 12.5 Hz (released config).

    Args:
        config: the architecture (default: the released model's).
    """

    model_kind = "mimi"
    config_class = MimiConfig

    def __init__(self, config: MimiConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MimiConfig()
        dim, stride = config.seanet.dimension, config.resample_stride
        self.encoder = SEANetEncoder(config.channels, config.seanet)
        self.encoder_transformer = CausalTransformer(dim, config.transformer)
        self.downsample = self.upsample = None
        if stride > 1:
            self.downsample = StreamableConv1d(dim, dim, 2 * stride, stride, bias=False, causal=True,
                                               pad_mode="replicate")
            self.upsample = StreamableConvTranspose1d(dim, dim, 2 * stride, stride, bias=False, causal=True,
                                                      groups=config.upsample_groups or dim)
        self.quantizer = SplitResidualVQ(dim, config.codebook_dim, config.n_q, config.n_q_semantic,
                                         config.bins)
        self.decoder_transformer = CausalTransformer(dim, config.transformer)
        self.decoder = SEANetDecoder(config.channels, config.seanet)
        if config.num_codebooks is not None:
            self.set_num_codebooks(config.num_codebooks)

    # ---------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def samples_per_frame(self) -> int:
        return self.config.seanet.hop_length * self.config.resample_stride

    @property
    def n_q(self) -> int:
        return self.config.n_q

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.bins,) * self.config.n_q

    @property
    def is_causal(self) -> bool:
        return True

    def set_num_codebooks(self, n: int) -> None:
        if not self.config.n_q_semantic <= int(n) <= self.n_q:
            raise ValueError(f"num_codebooks must be in {self.config.n_q_semantic}..{self.n_q}, got {n}")
        super().set_num_codebooks(n)

    # ---------------------------------------------------------------------------------------------
    def _resolve_n_q(self, n_q: int | None) -> int:
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not self.config.n_q_semantic <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in {self.config.n_q_semantic}..{self.n_q}, got {n_q}")
        return n_q

    def _check_wav(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"Mimi encodes audio [B, {self.channels}, T], got {tuple(wav.shape)}")

    def _latent_frames(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, C, t] → unquantized latent [B, D, n] at the code frame rate (streams)."""
        latent = self.encoder_transformer(self.encoder(wav.to(self.quantizer.semantic.codebooks.dtype)))
        if self.downsample is not None and latent.shape[-1]:
            latent = self.downsample(latent)
        return latent

    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, C, T] → the unquantized latent [B, D, N] that ``encode`` quantizes."""
        self._check_wav(wav)
        if self.encoder.is_streaming:
            raise RuntimeError("a Mimi streaming encoder is open: flush() or close() it before encode()")
        if self.config.pad_to_frame:
            wav = F.pad(wav, (0, self.num_frames(wav.shape[-1]) * self.samples_per_frame - wav.shape[-1]))
        if wav.shape[-1] == 0:
            return wav.new_zeros(wav.shape[0], self.config.seanet.dimension, 0)
        return self._latent_frames(wav)

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, C, T] → codes long [B, n_q, ceil(T / samples_per_frame)] (default num_codebooks)."""
        n_q = self._resolve_n_q(n_q)
        latent = self.encode_latent(wav)
        if latent.shape[-1] == 0:
            return torch.zeros(wav.shape[0], n_q, 0, dtype=torch.long, device=wav.device)
        return self.quantizer.encode(latent, n_q)

    def _decode_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, n] → waveform [B, C, n · samples_per_frame] (streams)."""
        latent = self.quantizer.decode(codes)
        if self.upsample is not None:
            latent = self.upsample(latent)
        return self.decoder(self.decoder_transformer(latent))

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes long [B, K, N] (n_q_semantic ≤ K ≤ n_q) → waveform [B, C, length] (default N · 1920).

        Samples asked for beyond N · samples_per_frame are zeros.
        """
        self.check_codes(codes)
        if self.decoder.is_streaming:
            raise RuntimeError("a Mimi streaming decoder is open: flush() or close() it before decode()")
        if codes.shape[1] < self.config.n_q_semantic:
            raise ValueError(f"Mimi decodes at least {self.config.n_q_semantic} codebooks, "
                             f"got {codes.shape[1]}")
        frames = codes.shape[-1]
        length = frames * self.samples_per_frame if length is None else int(length)
        if frames == 0:
            wav = torch.zeros(codes.shape[0], self.channels, 0, device=codes.device,
                              dtype=self.quantizer.semantic.codebooks.dtype)
        else:
            wav = self._decode_frames(codes)
        if wav.shape[-1] >= length:
            return wav[..., :length]
        return F.pad(wav, (0, length - wav.shape[-1]))

    def streaming_encoder(self, n_q: int | None = None) -> MimiStreamingEncoder:
        """Encodes audio pushed in chunks of any length; the codes equal ``encode`` of the whole signal."""
        return MimiStreamingEncoder(self, self._resolve_n_q(n_q))

    def streaming_decoder(self) -> MimiStreamingDecoder:
        """Decodes codes pushed a few frames at a time; the audio equals ``decode`` of all codes at once."""
        return MimiStreamingDecoder(self)

    # ---------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: rate, frames, codebooks, bit rate."""
        c = self.config
        return (f"Mimi {c.sample_rate} Hz, {self.frame_rate:g} frames/s ({self.samples_per_frame} samples), "
                f"{c.n_q} x {c.bins} codebooks ({c.n_q_semantic} semantic), {self.num_codebooks} used: "
                f"{self.bandwidth():.2f} kbps")


class MimiStreamingEncoder:
    """``push(chunk [B, C, t]) -> codes [B, n_q, t']`` then ``flush() -> codes``; a context manager.

    Codes come out as soon as whole frames have arrived (t' may be 0).  With ``pad_to_frame`` the samples
    of an incomplete frame wait in a buffer and ``flush`` zero-pads them to a frame, as ``encode`` pads
    the whole signal; without it each convolution pads its own end at ``flush``.
    """

    def __init__(self, model: Mimi, n_q: int) -> None:
        self.model, self.n_q = model, n_q
        self._stack = ExitStack()
        for module in (model.encoder, model.encoder_transformer, model.downsample):
            if module is not None:
                self._stack.enter_context(module.streaming())
        self._pending: torch.Tensor | None = None
        self._started = False
        self._batch, self._device = 1, model.quantizer.semantic.codebooks.device

    def _codes(self, latent: torch.Tensor | None) -> torch.Tensor:
        if latent is None or latent.shape[-1] == 0:
            return torch.zeros(self._batch, self.n_q, 0, dtype=torch.long, device=self._device)
        return self.model.quantizer.encode(latent, self.n_q)

    @torch.no_grad()
    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        self.model._check_wav(chunk)
        self._batch, self._device = chunk.shape[0], chunk.device
        if self.model.config.pad_to_frame:
            if self._pending is not None:
                chunk = torch.cat([self._pending, chunk], dim=-1)
            whole = chunk.shape[-1] // self.model.samples_per_frame * self.model.samples_per_frame
            self._pending, chunk = chunk[..., whole:], chunk[..., :whole]
        if chunk.shape[-1] == 0:
            return self._codes(None)
        self._started = True
        return self._codes(self.model._latent_frames(chunk))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Codes of the last frames; the stream is closed afterwards."""
        model = self.model
        pending = self._pending
        try:
            if model.config.pad_to_frame:
                if pending is None or pending.shape[-1] == 0:
                    return self._codes(None)
                return self._codes(model._latent_frames(F.pad(pending, (0, model.samples_per_frame
                                                                        - pending.shape[-1]))))
            if not self._started:
                return self._codes(None)
            rest = model.encoder.flush()
            parts = []
            if rest is not None and rest.shape[-1]:
                rest = model.encoder_transformer(rest)
                parts.append(model.downsample(rest) if model.downsample is not None else rest)
            if model.downsample is not None:
                last = model.downsample.flush()
                if last is not None:
                    parts.append(last)
            return self._codes(torch.cat(parts, dim=-1) if parts else None)
        finally:
            self.close()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> MimiStreamingEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MimiStreamingDecoder:
    """``push(codes [B, K, n]) -> wav [B, C, n · samples_per_frame]``, then ``flush()`` (holds nothing)."""

    def __init__(self, model: Mimi) -> None:
        self.model = model
        self._stack = ExitStack()
        for module in (model.upsample, model.decoder_transformer, model.decoder):
            if module is not None:
                self._stack.enter_context(module.streaming())
        self._empty = model.quantizer.semantic.codebooks.new_zeros(1, model.channels, 0)

    @torch.no_grad()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        self.model.check_codes(codes)
        self._empty = self._empty.new_zeros(codes.shape[0], self.model.channels, 0)
        if codes.shape[-1] == 0:
            return self._empty
        return self.model._decode_frames(codes)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Audio still held back: none for Mimi's causal decoder ([B, C, 0]); closes the stream."""
        self.close()
        return self._empty

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> MimiStreamingDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

