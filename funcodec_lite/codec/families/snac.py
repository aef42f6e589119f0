"""SNAC, the Multi-Scale Neural Audio Codec (Siuzdak et al. 2024), as a ``CompressionModel``.

A DAC-like non-causal encoder/decoder (Snake, weight norm, optionally depthwise, local windowed attention
at the latent rate, noise injection in the decoder) and a residual VQ whose codebooks run at several
temporal resolutions (``funcodec_lite.quantization.multiscale_vq``). Built from a released checkpoint by
``funcodec_lite.convert.snac``: ``encode`` gives the codes of the ``snac`` package's ``SNAC.encode`` and
``decode`` its ``SNAC.decode`` audio.

Token layout: codebook k holds one token per ``vq_strides[k]`` frames of the finest rate (coarse first).
``encode`` returns codes [B, K, N] at the finest rate with each coarse token repeated over the frames it
spans (``codebook_strides``); ``split_codes`` gives SNAC's own list of [B, N / stride_k] tensors and
``join_codes`` takes it back.

Lengths: SNAC pads the input on the right with zeros to a multiple of hop · L, L = lcm(vq_strides, window
of the attention), so N = ceil(T / (hop · L)) · L (``num_frames``), not ceil(T / hop).

Noise: SNAC's decoder adds random noise after each upsampling (``noise: true`` in every released model).
By default ``decode`` draws it from torch's global RNG exactly as ``snac.SNAC.decode`` does, so under the
same RNG state (``torch.manual_seed``) both give the same audio. For a deterministic decoder, pass a
``torch.Generator`` to ``decode``, or ``set_noise_seed(seed)`` (each ``decode`` then draws from a fresh
generator seeded with it), or ``noise=False`` (no noise).

Released models (all mono, codebooks of 4096 entries in 8 dimensions, MIT licence):
``snac_24khz`` (speech; encoder_dim 48, rates (2, 4, 8, 8), decoder_dim 1024, no attention, vq_strides
(4, 2, 1): 12, 23, 47 Hz, 0.98 kbps), ``snac_32khz`` and ``snac_44khz`` (music; encoder_dim 64, rates
(2, 3, 8, 8), decoder_dim 1536, window 32, vq_strides (8, 4, 2, 1): 10-83 Hz, 1.9 kbps at 32 kHz;
14-115 Hz, 2.6 kbps at 44.1 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.modules.snac_blocks import SNACDecoder, SNACEncoder
from funcodec_lite.quantization.multiscale_vq import MultiScaleRVQ


@dataclass
class SNACConfig:
    """The architecture of a SNAC model: the keys of a released ``config.json`` (``SNAC.__init__``'s
    keyword arguments, same names).

    ``latent_dim`` None means ``encoder_dim · 2^len(encoder_rates)`` (SNAC's default);
    ``attn_window_size`` None means no local attention.
    """

    sampling_rate: int = 44100
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (3, 3, 7, 7)
    latent_dim: int | None = None
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (7, 7, 3, 3)
    attn_window_size: int | None = 32
    codebook_size: int = 4096
    codebook_dim: int = 8
    vq_strides: tuple[int, ...] = (8, 4, 2, 1)
    noise: bool = True
    depthwise: bool = True

    def __post_init__(self) -> None:
        self.encoder_rates = tuple(int(r) for r in self.encoder_rates)
        self.decoder_rates = tuple(int(r) for r in self.decoder_rates)
        self.vq_strides = tuple(int(s) for s in self.vq_strides)
        if self.latent_dim is None:
            self.latent_dim = self.encoder_dim * 2 ** len(self.encoder_rates)
        positive = {"sampling_rate": self.sampling_rate, "encoder_dim": self.encoder_dim,
                    "latent_dim": self.latent_dim, "decoder_dim": self.decoder_dim,
                    "codebook_size": self.codebook_size, "codebook_dim": self.codebook_dim}
        bad = [name for name, value in positive.items()
               if isinstance(value, bool) or not isinstance(value, int) or value < 1]
        if bad:
            raise ValueError(f"SNAC config: {bad[0]} must be a positive integer, got {positive[bad[0]]!r}")
        if not self.encoder_rates or not self.decoder_rates or not self.vq_strides:
            raise ValueError("SNAC config: encoder_rates, decoder_rates and vq_strides must be non-empty")
        if min(self.encoder_rates + self.decoder_rates + self.vq_strides) < 1:
            raise ValueError("SNAC config: rates and vq_strides must be positive")
        if math.prod(self.encoder_rates) != math.prod(self.decoder_rates):
            raise ValueError(f"SNAC config: encoder_rates {self.encoder_rates} and decoder_rates "
                             f"{self.decoder_rates} must have the same product (the hop)")
        if self.latent_dim != self.encoder_dim * 2 ** len(self.encoder_rates):
            raise ValueError(f"SNAC config: latent_dim {self.latent_dim} must be encoder_dim · "
                             f"2^len(encoder_rates) = {self.encoder_dim * 2 ** len(self.encoder_rates)} "
                             "(SNAC's encoder has no projection to another width)")
        if self.decoder_dim % 2 ** len(self.decoder_rates):
            raise ValueError(f"SNAC config: decoder_dim {self.decoder_dim} is not divisible by "
                             f"2^{len(self.decoder_rates)} (it halves at each decoder rate)")
        if self.attn_window_size is not None and (isinstance(self.attn_window_size, bool)
                                                  or int(self.attn_window_size) < 1):
            raise ValueError(f"SNAC config: attn_window_size must be positive or null, "
                             f"got {self.attn_window_size!r}")
        if self.attn_window_size is not None:
            for name, width in (("latent_dim", self.latent_dim), ("decoder_dim", self.decoder_dim)):
                if width % 64:
                    raise ValueError(f"SNAC config: with attention, {name} ({width}) must be a multiple of "
                                     "64 (the attention's head width)")

    @property
    def hop_length(self) -> int:
        """Samples per frame of the finest codebook: the product of ``encoder_rates``."""
        return math.prod(self.encoder_rates)

    @property
    def frame_multiple(self) -> int:
        """L: frames of the finest rate that the padded input always holds a multiple of."""
        return math.lcm(*self.vq_strides, self.attn_window_size or 1)


class SNAC(CompressionModel):
    """SNAC encoder, multi-scale RVQ and decoder behind the codec interface.

    Shapes: ``encode`` wav [B, 1, T] → codes long [B, K, N], N = ``num_frames(T)``; ``decode`` codes
    [B, K, N] → wav [B, 1, length] (default N · hop).
    """

    model_kind = "snac"
    config_class = SNACConfig

    def __init__(self, config: SNACConfig | None = None) -> None:
        super().__init__()
        self.config = config or SNACConfig()
        c = self.config
        self.encoder = SNACEncoder(c.encoder_dim, c.encoder_rates, c.depthwise, c.attn_window_size)
        self.quantizer = MultiScaleRVQ(c.latent_dim, c.codebook_size, c.codebook_dim, c.vq_strides)
        self.decoder = SNACDecoder(c.latent_dim, c.decoder_dim, c.decoder_rates, c.noise, c.depthwise,
                                   c.attn_window_size)
        self.noise_seed: int | None = None

    # ---------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def channels(self) -> int:
        return 1

    @property
    def samples_per_frame(self) -> int:
        return self.config.hop_length

    @property
    def n_q(self) -> int:
        return len(self.config.vq_strides)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.codebook_size,) * self.n_q

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        return self.config.vq_strides

    @property
    def frame_alignment(self) -> int:
        """L = lcm(vq_strides, attention window): windows of the codes start on multiples of it, and a
        whole code sequence holds a multiple of it (``decode`` pads shorter ones)."""
        return self.config.frame_multiple

    def num_frames(self, num_samples: int) -> int:
        """N = ceil(T / (hop · L)) · L frames for T samples (SNAC pads the input; 0 for an empty one)."""
        unit = self.config.frame_multiple
        return -(-num_samples // (self.samples_per_frame * unit)) * unit if num_samples > 0 else 0

    def set_noise_seed(self, seed: int | None) -> None:
        """Makes ``decode`` deterministic: its noise comes from a generator seeded with ``seed`` at each
        call (None, the default: torch's global RNG, as the ``snac`` package draws it)."""
        self.noise_seed = None if seed is None else int(seed)

    # ---------------------------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, 1, T] → codes long [B, n_q, N] (default ``num_codebooks``), coarse tokens repeated.

        As ``snac.SNAC.encode`` (its first ``n_q`` codebooks, which do not depend on the later ones),
        then ``join_codes``.
        """
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"SNAC encodes mono audio [B, 1, T], got {tuple(wav.shape)}")
        frames = self.num_frames(wav.shape[-1])
        if frames == 0:
            return torch.zeros(wav.shape[0], n_q, 0, dtype=torch.long, device=wav.device)
        wav = F.pad(wav.to(self._dtype()), (0, frames * self.samples_per_frame - wav.shape[-1]))
        return self.join_codes(self.quantizer.encode(self.encoder(wav), n_q))

    def decode(self, codes: torch.Tensor, length: int | None = None, generator: torch.Generator | None = None,
               noise: bool = True) -> torch.Tensor:
        """Codes long [B, K, N] (1 ≤ K ≤ n_q) → waveform [B, 1, length] (default N · hop).

        Codebook k is read at frames 0, stride_k, 2·stride_k, ... (``split_codes``). N need not be a
        multiple of L: shorter sequences are extended by repeating each codebook's last token and the audio
        is cut back. With all codebooks and N a multiple of L this is ``snac.SNAC.decode`` exactly.

        Args:
            codes: the codes.
            length: samples to return.
            generator: where the decoder's noise comes from (default: a generator seeded with
                ``noise_seed`` when set, else torch's global RNG).
            noise: False leaves the decoder's noise out.
        """
        self.check_codes(codes)
        frames = codes.shape[-1]
        length = frames * self.samples_per_frame if length is None else int(length)
        if frames == 0:
            return torch.zeros(codes.shape[0], 1, length, device=codes.device, dtype=self._dtype())
        unit = self.config.frame_multiple
        padded = -(-frames // unit) * unit
        levels = []
        for level, stride in zip(self.split_codes(codes), self.codebook_strides):
            missing = padded // stride - level.shape[-1]
            levels.append(torch.cat([level, level[:, -1:].expand(-1, missing)], dim=-1) if missing else level)
        if generator is None and self.noise_seed is not None:
            generator = torch.Generator(device=codes.device).manual_seed(self.noise_seed)
        wav = self.decoder(self.quantizer.decode(levels), generator, noise)
        if wav.shape[-1] >= length:
            return wav[..., :length]
        return F.pad(wav, (0, length - wav.shape[-1]))

    def _dtype(self) -> torch.dtype:
        return self.quantizer.quantizers[0].codebook.weight.dtype

    # ---------------------------------------------------------------------------------------------
    def prepare_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Called by the loader before ``load_state_dict``: weights saved after folding load folded."""
        if not any(".parametrizations.weight." in key for key in state):
            self.fold_weight_norm()

    def describe(self) -> str:
        """One line: rate, token rates, codebooks, bit rate."""
        c = self.config
        rates = ", ".join(f"{self.frame_rate / s:.3g}" for s in c.vq_strides)
        return (f"SNAC {c.sampling_rate} Hz, tokens at {rates} Hz (hop {c.hop_length}, strides "
                f"{list(c.vq_strides)}), {self.n_q} x {c.codebook_size} codebooks, "
                f"{self.bandwidth(self.n_q):.2f} kbps")
