"""FunCodec's frequency-domain codec (``model: freq_codec``, Du et al. 2023) as a ``CompressionModel``.

STFT features (mag/phase or mag/angle, `funcodec_lite.audio.funcodec_domain`) → FunCodec's 2-D SEANet
encoder with GroupNorm (`funcodec_lite.modules.funcodec_freq`) → residual VQ (our
``ResidualVectorQuantizer``, the same codebook search) → the 2-D decoder → inverse STFT. Built from a
released ``model.pth`` + ``config.yaml`` by ``codec convert --from funcodec``; ``encode`` gives the codes
FunCodec writes (``inference_encoding``, cut to ceil(T / hop) frames as its ``codecs.txt``) and
``decode`` the audio of its ``inference_decoding``.

Not FunCodec's: ``audio_normalize`` (FunCodec scales each input to unit RMS before encoding) is left to
the caller, as for the converted time-domain models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from funcodec_lite.audio.funcodec_domain import FUNCODEC_DOMAINS, FunCodecSpectralDomain
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.modules.funcodec_freq import (
    FunCodecFreqDecoder,
    FunCodecFreqEncoder,
    FunCodecFreqNetConfig,
)
from funcodec_lite.quantization.rvq import ResidualVectorQuantizer, RVQConfig


@dataclass
class FunCodecFreqConfig:
    """A FunCodec FreqCodec: sample rate, spectral domain, STFT, the 2-D SEANet and the RVQ."""

    sample_rate: int = 16000
    domain: str = "mag_phase"
    n_fft: int = 512
    hop_length: int = 160
    net: FunCodecFreqNetConfig = field(default_factory=FunCodecFreqNetConfig)
    quantizer: RVQConfig = field(default_factory=RVQConfig)
    name: str = ""

    def __post_init__(self) -> None:
        if self.domain not in FUNCODEC_DOMAINS:
            raise ValueError(f"domain must be one of {sorted(FUNCODEC_DOMAINS)}, got {self.domain!r}")
        if self.net.in_channels != FUNCODEC_DOMAINS[self.domain]:
            raise ValueError(f"domain {self.domain} has {FUNCODEC_DOMAINS[self.domain]} feature channels, "
                             f"the net takes {self.net.in_channels}")
        if self.quantizer.kind != "rvq" or self.quantizer.dim != self.net.dimension:
            raise ValueError(f"quantizer must be an rvq of dim {self.net.dimension}")
        bins = self.n_fft // 2 + 1
        if self.net.encoded_bins(bins) != 1 or self.net.decoded_bins() != bins:
            raise ValueError(f"frequency ratios {self.net.ratios} take {bins} bins to "
                             f"{self.net.encoded_bins(bins)} (not 1) or give back {self.net.decoded_bins()}")

    @property
    def samples_per_frame(self) -> int:
        return self.hop_length * self.net.hop


class FunCodecFreq(CompressionModel):
    """FunCodec's FreqCodec behind the codec interface (mono, non-causal).

    Shapes: ``encode`` wav [B, 1, T] → codes long [B, K, ceil(T / hop)] (hop = STFT hop × time stride,
    320 for the released models); ``decode`` codes [B, K, N] → wav [B, 1, length] (default N · hop).
    The GroupNorm layers normalise over the whole signal, so a batch gives each item the codes it gets
    alone only when the items have the same length (as here: one tensor).
    """

    model_kind = "funcodec_freq"
    config_class = FunCodecFreqConfig

    def __init__(self, config: FunCodecFreqConfig | None = None) -> None:
        super().__init__()
        self.config = config or FunCodecFreqConfig()
        c = self.config
        self.domain = FunCodecSpectralDomain(c.domain, c.n_fft, c.hop_length)
        self.encoder = FunCodecFreqEncoder(c.net)
        self.quantizer = ResidualVectorQuantizer(c.quantizer)
        self.decoder = FunCodecFreqDecoder(c.net)

    # ---------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return 1

    @property
    def samples_per_frame(self) -> int:
        return self.config.samples_per_frame

    @property
    def n_q(self) -> int:
        return self.config.quantizer.n_q

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (int(self.config.quantizer.codebook_size),) * self.n_q

    @property
    def min_samples(self) -> int:
        """n_fft / 2 + 1: the centred STFT reflects n_fft / 2 samples at each end (FunCodec fails below)."""
        return self.config.n_fft // 2 + 1

    # ---------------------------------------------------------------------------------------------
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, 1, T] → encoder output [B, D, ceil((1 + T // stft_hop) / time_stride)].

        The STFT runs in float32 (or float64) whatever the weights' dtype (``torch.stft`` has no bfloat16).
        """
        features = self.domain(wav.to(torch.promote_types(wav.dtype, torch.float32)))
        return self.encoder(features.to(self._dtype()))

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, 1, T] → codes long [B, n_q, ceil(T / hop)] (default ``num_codebooks``).

        FunCodec's encoder gives one frame more when T is a multiple of the hop; its inference script
        drops it (``codecs.txt`` holds ceil(T / hop) frames), and so does this.
        """
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"FunCodec's FreqCodec encodes mono audio [B, 1, T], got {tuple(wav.shape)}")
        if wav.shape[-1] < self.min_samples:
            raise ValueError(f"FunCodec's FreqCodec needs at least {self.min_samples} samples, "
                             f"got {wav.shape[-1]}")
        frames = math.ceil(wav.shape[-1] / self.samples_per_frame)
        return self.quantizer.encode(self.encode_latent(wav), n_q)[..., :frames]

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes long [B, K, N] (1 ≤ K ≤ n_q) → waveform [B, 1, length] (default N · hop).

        FunCodec's ``inference_decoding`` gives N · hop − stft_hop samples; the last stft_hop samples
        of the default length come from the same inverse STFT (the last frame's window still covers
        them); samples beyond N · hop are zeros.
        """
        self.check_codes(codes)
        frames = codes.shape[-1]
        length = frames * self.samples_per_frame if length is None else int(length)
        if frames == 0:
            return torch.zeros(codes.shape[0], 1, length, device=codes.device, dtype=self._dtype())
        out = self.decoder(self.quantizer.decode(codes).to(self._dtype()))
        natural = out.shape[-1] * self.config.hop_length
        wav = self.domain.inverse(out.to(torch.promote_types(out.dtype, torch.float32)), min(length, natural))
        return torch.nn.functional.pad(wav, (0, length - wav.shape[-1])) if wav.shape[-1] < length else wav

    def _dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    # ---------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: domain, rate, frames, codebooks, bit rate."""
        c = self.config
        return (f"FunCodec FreqCodec ({c.domain}) {c.sample_rate} Hz, {self.frame_rate:g} frames/s "
                f"(hop {self.samples_per_frame}), {self.n_q} x {self.codebook_size} codebooks, "
                f"{self.bandwidth(self.n_q):.1f} kbps")
