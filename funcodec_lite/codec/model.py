"""The Codec model: domain transform → encoder → (semantic augmentation) → RVQ → decoder → inverse."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from funcodec_lite.audio.transforms import build_transform
from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.streaming import StreamingDecoder, StreamingEncoder
from funcodec_lite.modules.frame_codec import VocosEncoder
from funcodec_lite.modules.freqcodec import FreqDecoder, FreqEncoder
from funcodec_lite.modules.istft_head import ISTFTDecoder
from funcodec_lite.modules.seanet import SEANetDecoder, SEANetEncoder
from funcodec_lite.quantization import build_quantizer, build_semantic
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.weights import CONFIG_FILE, WEIGHTS_FILE

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "Codec", "CodecOutput"]


class CodecOutput(NamedTuple):
    """Result of ``Codec.forward``; unpacks as ``wav_hat, codes, commit_loss, metrics``.

    Attributes:
        wav: reconstruction [B, C, T] (same length as the input).
        codes: code indices [B, n_q, N].
        commit_loss: the quantizer's commitment loss (scalar).
        metrics: per-layer quantizer statistics.
    """

    wav: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


class Codec(CompressionModel):
    """Neural audio codec: waveform ↔ discrete codes (a ``CompressionModel``).

    Args:
        config: the whole model description (see ``CodecConfig``).

    Shapes: waveforms are [B, C, T] at ``sample_rate``; codes are [B, n_q, N] with
    N = ceil(T / samples_per_frame).

    ``config.input_gain`` g scales the signal the model works on: the encoder sees ``wav * g`` and the
    decoder's output is divided by g (``encode_latent`` / ``decode_latent``, ``scale_input`` /
    ``scale_output`` for the streaming paths), so callers always see audio at its own level.

    Inference in bfloat16 (time-domain codecs): ``codec.to(torch.bfloat16)``.  ``encode`` casts the
    waveform to the encoder's dtype and searches the codebooks in float32; ``decode`` returns bfloat16
    audio.  This is fast only where bfloat16 arithmetic is native (GPUs, CPUs with AVX512-BF16 or
    AMX); on other CPUs PyTorch emulates it, many times slower than float32.  See docs/benchmarks.md
    for its speed and for how often its codes equal the float32 model's.
    """

    model_kind = "codec"
    config_class = CodecConfig

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        model, quantizer = config.model, config.quantizer
        if quantizer.dim != model.dimension:
            raise ConfigError(f"quantizer.dim ({quantizer.dim}) must equal "
                              f"model.dimension ({model.dimension})")
        self.transform = build_transform(config.domain, config.stft)
        self.semantic = (build_semantic(config.semantic, model.dimension)
                         if config.semantic is not None else None)
        decoder_dim = self.semantic.output_dim if self.semantic is not None else model.dimension
        if config.arch == "seanet":
            self.encoder: nn.Module = SEANetEncoder(config.channels, model)
            if model.decoder_head == "istft":
                self.decoder: nn.Module = ISTFTDecoder(
                    config.channels, decoder_dim, model.hop_length, model.istft_channels, model.istft_blocks,
                    model.istft_fft_size, model.kernel_size, model.final_activation)
            else:
                self.decoder = SEANetDecoder(config.channels, model, input_dim=decoder_dim)
            self._samples_per_frame = model.hop_length
        elif config.arch == "vocos":
            self.encoder = VocosEncoder(model, config.channels)
            self.decoder = ISTFTDecoder(config.channels, decoder_dim, model.hop_length, model.dec_width,
                                        model.dec_blocks, model.decoder_n_fft, model.kernel_size,
                                        upsample=model.dec_upsample, up_blocks=model.dec_up_blocks)
            self._samples_per_frame = model.hop_length
        else:
            expected = config.channels * self.transform.feature_channels
            if model.in_channels != expected or model.domain != config.domain:
                raise ConfigError(f"model.in_channels must be {expected} and model.domain {config.domain!r} "
                                  f"for {config.channels}-channel {config.domain} features")
            if model.n_freq != config.stft.freq_bins:
                raise ConfigError(f"model.n_freq ({model.n_freq}) must equal "
                                  f"n_fft // 2 + 1 = {config.stft.freq_bins}")
            self.encoder = FreqEncoder(model)
            self.decoder = FreqDecoder(dataclasses.replace(model, dimension=decoder_dim))
            self._samples_per_frame = config.stft.hop_length * model.hop
        self.quantizer = build_quantizer(quantizer)

    # ----------------------------------------------------------------------------------------------
    # Properties a tokenizer user needs
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per code frame (the encoder's hop)."""
        return self._samples_per_frame

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.codebook_size,) * self.n_q

    @property
    def n_q(self) -> int:
        """Number of codebooks in the quantizer (the most a caller can ask for)."""
        return self.config.quantizer.n_q

    @property
    def is_causal(self) -> bool:
        """Causal time-domain models without semantic augmentation stream."""
        return (self.config.arch == "seanet" and bool(self.config.model.causal)
                and self.semantic is None)

    @property
    def min_samples(self) -> int:
        """1, or n_fft // 2 + 1 for the reflect-padded STFT of frequency-domain models."""
        return 1 if self.config.domain == "time" else self.config.stft.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Code frames of ``num_samples`` samples: whole hops (time domain, zero-padded) or the frames of
        the centred STFT grouped by the model's hop (frequency domain)."""
        if num_samples <= 0:
            return 0
        if self.config.domain == "time":
            return -(-num_samples // self.samples_per_frame)
        feature_frames = num_samples // self.config.stft.hop_length + 1
        return -(-feature_frames // self.config.model.hop)

    def n_q_for_bandwidth(self, kbps: float) -> int:
        """Codebooks that fit in ``kbps``: floor(kbps·1000 / (log2(codebook_size) · frame_rate))."""
        return self.quantizer.n_q_for_bandwidth(kbps, self.frame_rate)

    def streaming_encoder(self, n_q: int | None = None) -> StreamingEncoder:
        """A ``StreamingEncoder`` (causal time-domain models only; ValueError otherwise)."""
        return StreamingEncoder(self, n_q)

    def streaming_decoder(self) -> StreamingDecoder:
        """A ``StreamingDecoder`` (causal time-domain models only; ValueError otherwise)."""
        return StreamingDecoder(self)

    # ----------------------------------------------------------------------------------------------
    def _resolve_n_q(self, n_q: int | None, bandwidth: float | None) -> int | None:
        if n_q is not None and bandwidth is not None:
            raise ValueError("give n_q or bandwidth, not both")
        if bandwidth is not None:
            return self.n_q_for_bandwidth(bandwidth)
        return n_q  # its range is the quantizer's to check (`ResidualVectorQuantizer.encode`)

    def _check_wav(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"expected a waveform [B, {self.channels}, T], got {tuple(wav.shape)}")

    def _need(self, semantic: torch.Tensor | None) -> torch.Tensor:
        if semantic is None:
            raise ValueError("this codec has semantic augmentation: pass the semantic features")
        return semantic

    def scale_input(self, wav: torch.Tensor) -> torch.Tensor:
        """The waveform [B, C, T] in the encoder's dtype, multiplied by ``input_gain``."""
        wav = wav.to(_weight_dtype(self.encoder))
        return wav if self.config.input_gain == 1.0 else wav * self.config.input_gain

    def scale_output(self, wav: torch.Tensor) -> torch.Tensor:
        """Decoder output [B, C, T] divided by ``input_gain`` (back to the caller's level)."""
        return wav if self.config.input_gain == 1.0 else wav / self.config.input_gain

    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """Continuous encoder output (of ``wav * input_gain``).

        Args:
            wav: [B, C, T].
        Returns:
            latent [B, D, N].
        """
        self._check_wav(wav)
        return self.encoder(self.transform(self.scale_input(wav)))

    def decode_latent(self, latent: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Decoder path from (quantized) latent [B, D', N] to a waveform [B, C, length].

        The latent is cast to the decoder's weight dtype; the waveform comes out in that dtype, divided
        by ``input_gain``.
        """
        latent = latent.to(_weight_dtype(self.decoder))
        n_frames = latent.shape[-1]
        full_length = n_frames * self.samples_per_frame
        if self.config.arch != "freqcodec":
            wav = self.decoder(latent)
        else:
            frames = n_frames * self.config.model.hop
            features = self.decoder(latent, frames)
            # frames * stft_hop samples: the last frame's centre plus one hop, all covered by its
            # window (asking for only (frames - 1) * hop zeroed the tail of odd-length clips)
            wav = self.transform.inverse(features, full_length)
        return self.scale_output(wav[..., : full_length if length is None else length])

    def encode(self, wav: torch.Tensor, n_q: int | None = None, bandwidth: float | None = None,
               semantic: torch.Tensor | None = None) -> torch.Tensor:
        """Waveform → codes.

        Args:
            wav: [B, C, T] at ``sample_rate``.
            n_q: codebooks to use (default: ``num_codebooks``, all unless ``set_num_codebooks``); or
                ``bandwidth`` in kbps.
            semantic: frame-aligned semantic features [B, T_s, D_s] or ids [B, T_s] when the model
                has semantic augmentation in ``res`` mode (codes are of the acoustic minus semantic part).
        Returns:
            codes [B, n_q, N] (int64).
        """
        n_q = self._resolve_n_q(n_q, bandwidth) or self.num_codebooks
        latent = self.encode_latent(wav)
        if self.semantic is not None:
            return self.semantic.encode(latent, self._need(semantic), self.quantizer, n_q)
        return self.quantizer.encode(latent, n_q)

    def decode(self, codes: torch.Tensor, length: int | None = None,
               semantic: torch.Tensor | None = None) -> torch.Tensor:
        """Codes → waveform.

        Args:
            codes: [B, n_q, N] with 1 ≤ n_q ≤ ``self.n_q``.
            length: samples to return (default N · samples_per_frame).
            semantic: the semantic features given to ``encode``, for models with semantic augmentation.
        Returns:
            wav [B, C, length].
        """
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"expected codes [B, 1..{self.n_q}, N], got {tuple(codes.shape)}")
        if self.semantic is not None:
            latent = self.semantic.decode(codes, self._need(semantic), self.quantizer)
        else:
            latent = self.quantizer.decode(codes)
        return self.decode_latent(latent, length)

    def forward(self, wav: torch.Tensor, n_q: int | None = None, bandwidth: float | None = None,
                semantic: torch.Tensor | None = None) -> CodecOutput:
        """Training/analysis pass: encode, quantize (with dropout in training), decode.

        Args:
            wav: [B, C, T].
            n_q / bandwidth: fixed number of codebooks (honoured in train and eval mode); when None the
                quantizer's dropout picks it in training and all codebooks are used in eval.
            semantic: semantic features for models with semantic augmentation.
        """
        n_q = self._resolve_n_q(n_q, bandwidth)
        latent = self.encode_latent(wav)
        if self.semantic is not None:
            quantized, result = self.semantic(latent, self._need(semantic), self.quantizer, n_q)
        else:
            result = self.quantizer(latent, n_q)
            quantized = result.quantized
        wav_hat = self.decode_latent(quantized, wav.shape[-1])
        return CodecOutput(wav_hat, result.codes, result.commit_loss, result.metrics)

    # ----------------------------------------------------------------------------------------------
    def prepare_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Called by the loader before ``load_state_dict``: weights saved after folding load folded."""
        if not any(".parametrizations.weight." in key for key in state):
            self.fold_weight_norm()


def _weight_dtype(module: nn.Module) -> torch.dtype:
    """Floating-point dtype of a module's first parameter (float32 when it has none)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)

