"""DAC, the Descript Audio Codec (Kumar et al. 2023), as a ``CompressionModel``.

A non-causal SEANet-like encoder/decoder with Snake activations and weight-normalised convs, and a
factorized, L2-normalised residual VQ (``funcodec_lite.quantization.factorized``). Built from a released
checkpoint by ``funcodec_lite.convert.dac``; ``encode`` gives the codes of DAC's ``preprocess`` +
``encode`` exactly and ``decode`` its audio (``quantizer.from_codes`` + ``decode``).

Released configurations (``encoder_dim`` 64, ``decoder_dim`` 1536, ``latent_dim`` 1024, codebooks of
1024 entries in 8 dimensions): 16 kHz, rates (2, 4, 5, 8), 12 codebooks at 50 Hz; 24 kHz, rates
(2, 4, 5, 8), 32 codebooks at 75 Hz; 44.1 kHz, rates (2, 4, 8, 8), 9 codebooks at 86.13 Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.modules.dac_blocks import DACDecoder, DACEncoder
from funcodec_lite.quantization.factorized import FactorizedRVQ


@dataclass
class DACConfig:
    """The architecture of a DAC model (the keyword arguments of DAC's ``DAC`` class, same names).

    ``latent_dim`` None means ``encoder_dim · 2^len(encoder_rates)`` (DAC's default); ``codebook_dim`` is
    one dimension for every codebook or one per codebook. ``weight_norm`` False builds plain convs (for
    weights stored with weight normalisation already folded, as ``transformers`` stores them).
    """

    sample_rate: int = 44100
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 8, 8)
    latent_dim: int | None = None
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 8, 4, 2)
    n_codebooks: int = 9
    codebook_size: int = 1024
    codebook_dim: int | tuple[int, ...] = 8
    weight_norm: bool = True

    def __post_init__(self) -> None:
        self.encoder_rates = tuple(int(r) for r in self.encoder_rates)
        self.decoder_rates = tuple(int(r) for r in self.decoder_rates)
        if not isinstance(self.codebook_dim, int):
            self.codebook_dim = tuple(int(d) for d in self.codebook_dim)
        if self.latent_dim is None:
            self.latent_dim = self.encoder_dim * 2 ** len(self.encoder_rates)
        positive = {"sample_rate": self.sample_rate, "encoder_dim": self.encoder_dim,
                    "latent_dim": self.latent_dim, "decoder_dim": self.decoder_dim,
                    "n_codebooks": self.n_codebooks, "codebook_size": self.codebook_size}
        bad = [name for name, value in positive.items() if not isinstance(value, int) or value < 1]
        if bad:
            raise ValueError(f"DAC config: {bad[0]} must be a positive integer, got {positive[bad[0]]!r}")
        rates = self.encoder_rates + self.decoder_rates
        if not self.encoder_rates or not self.decoder_rates or min(rates) < 1:
            raise ValueError("DAC config: encoder_rates and decoder_rates must be non-empty, positive")
        if self.decoder_dim % 2 ** len(self.decoder_rates):
            raise ValueError(f"DAC config: decoder_dim {self.decoder_dim} is not divisible by "
                             f"2^{len(self.decoder_rates)} (it halves at each decoder rate)")
        dims = (self.codebook_dim,) if isinstance(self.codebook_dim, int) else self.codebook_dim
        if isinstance(self.codebook_dim, tuple) and len(dims) != self.n_codebooks:
            raise ValueError(f"DAC config: codebook_dim has {len(dims)} entries for {self.n_codebooks} "
                             "codebooks")
        if min(dims) < 1:
            raise ValueError("DAC config: codebook_dim must be positive")

    @property
    def hop_length(self) -> int:
        """Samples per frame: the product of ``encoder_rates``."""
        return math.prod(self.encoder_rates)


class DAC(CompressionModel):
    """DAC encoder, factorized RVQ and decoder behind the codec interface.

    Shapes: ``encode`` wav [B, 1, T] → codes long [B, K, ceil(T / hop)]; ``decode`` codes [B, K, N] →
    wav [B, 1, length] (default N · hop). DAC pads the input on the right with zeros to a multiple of the
    hop; with an odd decoder rate (the 16 and 24 kHz models) its decoder gives a few samples less than
    N · hop (8 for rates (8, 5, 4, 2)): ``decode`` then zero-pads to ``length``.
    """

    model_kind = "dac"
    config_class = DACConfig

    def __init__(self, config: DACConfig | None = None) -> None:
        super().__init__()
        self.config = config or DACConfig()
        c = self.config
        self.encoder = DACEncoder(c.encoder_dim, c.encoder_rates, c.latent_dim, c.weight_norm)
        self.quantizer = FactorizedRVQ(c.latent_dim, c.n_codebooks, c.codebook_size, c.codebook_dim,
                                       c.weight_norm)
        self.decoder = self._build_decoder()

    def _build_decoder(self) -> nn.Module:
        """The decoder of ``self.config`` (a family with DAC's encoder and quantizer, LAC, gives its own)."""
        c = self.config
        return DACDecoder(c.latent_dim, c.decoder_dim, c.decoder_rates, c.weight_norm)

    # ---------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return 1

    @property
    def samples_per_frame(self) -> int:
        return self.config.hop_length

    @property
    def n_q(self) -> int:
        return self.config.n_codebooks

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.codebook_size,) * self.config.n_codebooks

    # ---------------------------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, 1, T] → codes long [B, n_q, ceil(T / hop)] (default ``num_codebooks``).

        As DAC's ``preprocess`` then ``encode(audio, n_quantizers=n_q)`` (the codes of its first ``n_q``
        quantizers, which do not depend on the later ones).
        """
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"DAC encodes mono audio [B, 1, T], got {tuple(wav.shape)}")
        frames = self.num_frames(wav.shape[-1])
        if frames == 0:
            return torch.zeros(wav.shape[0], n_q, 0, dtype=torch.long, device=wav.device)
        wav = F.pad(wav, (0, frames * self.samples_per_frame - wav.shape[-1]))
        codes, _ = self.quantizer.encode(self.encoder(wav), n_q)
        return codes

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes long [B, K, N] (1 ≤ K ≤ n_q) → waveform [B, 1, length] (default N · hop).

        Audio beyond what the decoder gives (N · hop minus a few samples with odd decoder rates) is zeros.
        """
        self.check_codes(codes)
        frames = codes.shape[-1]
        length = frames * self.samples_per_frame if length is None else int(length)
        if frames == 0:
            wav = torch.zeros(codes.shape[0], 1, 0, device=codes.device, dtype=self._dtype())
        else:
            wav = self.decoder(self.quantizer.decode(codes))
        if wav.shape[-1] >= length:
            return wav[..., :length]
        return F.pad(wav, (0, length - wav.shape[-1]))

    def _dtype(self) -> torch.dtype:
        return self.quantizer.quantizers[0].codebook.weight.dtype

    # ---------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: rate, frames, codebooks, bit rate."""
        c = self.config
        return (f"{type(self).__name__} {c.sample_rate} Hz, {self.frame_rate:.2f} frames/s "
                f"(hop {c.hop_length}), "
                f"{c.n_codebooks} x {c.codebook_size} codebooks, {self.bandwidth(self.n_q):.2f} kbps")

