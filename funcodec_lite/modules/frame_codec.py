"""Frame-rate codec (Vocos style at both ends): STFT front end, ConvNeXt blocks at the code frame rate.

Every layer of this encoder runs at the code frame rate (50 Hz at hop 320), so its work is matrix
products over frames instead of full-rate convolutions with few channels: the SEANet encoder spends
most of its time in 16-32 channel convolutions at 16 kHz, which a CPU runs far below its GEMM rate.
The matching decoder is `ISTFTDecoder` (ConvNeXt blocks, then log-magnitude and phase for an inverse
STFT); `Codec` pairs them when ``arch: vocos``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.istft_head import ConvNeXtBlock


@dataclass
class VocosConfig:
    """Sizes of a frame-rate encoder/decoder pair.

    Args:
        hop_length: samples per code frame (320 at 16 kHz: 50 frames/s).
        dimension: latent channels D (the quantizer's dim).
        enc_n_fft: FFT size of the encoder's STFT (window length).
        enc_stack: STFT frames per code frame: the encoder's STFT hop is hop_length / enc_stack and
            enc_stack consecutive frames are stacked into one frame's features (time detail within a
            code frame).
        compress: the complex spectrum enters as |X|^compress · e^{iφ} (real and imaginary parts) beside
            log|X|; 0.3 is the usual power-law compression of speech enhancement.
        enc_width, enc_blocks: channels and ConvNeXt blocks of the encoder.
        dec_width, dec_blocks: channels and ConvNeXt blocks of the decoder.
        dec_n_fft: FFT size of the decoder's inverse STFT (hop = hop_length / dec_upsample); None: 4 hops.
        dec_upsample: 1, or an even factor by which the decoder raises the frame rate after its blocks
            (a transposed conv, then ``dec_up_blocks`` ConvNeXt blocks at that rate) before the inverse STFT.
        dec_up_blocks: ConvNeXt blocks at the raised rate (with ``dec_upsample`` > 1).
        kernel_size: depthwise kernel of the ConvNeXt blocks (odd).
        causal: must be False (the STFT windows and the blocks look ahead).
    """

    hop_length: int = 320
    dimension: int = 64
    enc_n_fft: int = 640
    enc_stack: int = 2
    compress: float = 0.3
    enc_width: int = 256
    enc_blocks: int = 6
    dec_width: int = 384
    dec_blocks: int = 8
    dec_n_fft: int | None = None
    dec_upsample: int = 1
    dec_up_blocks: int = 2
    kernel_size: int = 7
    causal: bool = False

    def __post_init__(self) -> None:
        if self.causal:
            raise ValueError("the vocos architecture is non-causal (STFT windows and blocks look ahead)")
        if self.enc_stack < 1 or self.hop_length % self.enc_stack:
            raise ValueError(f"enc_stack must divide hop_length ({self.hop_length}), got {self.enc_stack}")
        stft_hop = self.hop_length // self.enc_stack
        if self.enc_n_fft < stft_hop or (self.enc_n_fft - stft_hop) % 2:
            raise ValueError(f"enc_n_fft must be >= the STFT hop ({stft_hop}) and differ from it by an "
                             f"even number, got {self.enc_n_fft}")
        if self.dec_upsample < 1 or (self.dec_upsample > 1 and (self.dec_upsample % 2
                                                               or self.hop_length % self.dec_upsample)):
            raise ValueError(f"dec_upsample must be 1 or an even divisor of hop_length ({self.hop_length}), "
                             f"got {self.dec_upsample}")
        n_fft, hop = self.decoder_n_fft, self.decoder_hop
        if n_fft <= hop or (n_fft - hop) % 2:
            raise ValueError(f"dec_n_fft must exceed the decoder's hop ({hop}) by an even number, "
                             f"got {n_fft}")
        if min(self.enc_width, self.enc_blocks, self.dec_width, self.dec_blocks, self.dimension) < 1:
            raise ValueError("widths, block counts and dimension must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not 0 < self.compress <= 1:
            raise ValueError(f"compress must be in (0, 1], got {self.compress}")

    @property
    def decoder_hop(self) -> int:
        """Samples per frame of the decoder's inverse STFT."""
        return self.hop_length // self.dec_upsample

    @property
    def decoder_n_fft(self) -> int:
        return 4 * self.decoder_hop if self.dec_n_fft is None else self.dec_n_fft

    @property
    def stft_hop(self) -> int:
        return self.hop_length // self.enc_stack


class STFTFeatures(nn.Module):
    """Waveform → per-code-frame spectral features: log|X| and the compressed complex spectrum.

    STFT frame m (hop h = hop_length / enc_stack) is centred on sample m·h + h/2, so code frame n
    stacks STFT frames n·enc_stack ... n·enc_stack + enc_stack - 1: exactly the samples
    [n·hop, (n + 1)·hop) are the centres it covers (the decoder's inverse STFT uses the same "same"
    alignment).  Signals are zero-padded to whole code frames.

    Args:
        config: the encoder's sizes.
        channels: audio channels C.

    Shapes: input [B, C, T], output [B, C · enc_stack · 3 · (enc_n_fft // 2 + 1), ceil(T / hop)].
    """

    def __init__(self, config: VocosConfig, channels: int) -> None:
        super().__init__()
        self.config, self.channels = config, channels
        self.freq_bins = config.enc_n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(config.enc_n_fft), persistent=False)

    @property
    def out_channels(self) -> int:
        return self.channels * self.config.enc_stack * 3 * self.freq_bins

    @property
    def edge(self) -> int:
        """Zeros added before the signal (and after its last whole code frame): (enc_n_fft - STFT hop) / 2."""
        return (self.config.enc_n_fft - self.config.stft_hop) // 2

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        batch, channels, length = wav.shape
        n_frames = -(-length // cfg.hop_length)
        total = n_frames * cfg.hop_length
        # the FFT runs in float32 (or float64) whatever the weights' dtype: there is no bfloat16 FFT
        dtype = wav.dtype if wav.dtype in (torch.float32, torch.float64) else torch.float32
        x = F.pad(wav.reshape(batch * channels, length).to(dtype), (self.edge, self.edge + total - length))
        spec = torch.stft(x, cfg.enc_n_fft, cfg.stft_hop, window=self.window.to(dtype), center=False,
                          return_complex=True)  # [B·C, F, n_frames · enc_stack]
        return self.stack(spec.real, spec.imag, batch, n_frames).to(wav.dtype)

    def stack(self, real: torch.Tensor, imag: torch.Tensor, batch: int, n_frames: int) -> torch.Tensor:
        """Features of the STFT [B·C, F, n_frames · enc_stack], given as real and imaginary parts (real
        tensors: an exported graph computes the STFT its own way), stacked per code frame.

        Returns:
            [B, C · enc_stack · 3 · F, n_frames].
        """
        cfg = self.config
        power = real.square() + imag.square()
        log_mag = 0.5 * (power + 1e-10).log()
        # |X|^c · e^{iφ} = X · |X|^(c - 1); the 1e-10 keeps the gradient finite where |X| = 0
        scale = (power + 1e-10).pow(0.5 * (cfg.compress - 1.0))
        feats = torch.stack([log_mag, real * scale, imag * scale], dim=1)  # [B·C, 3, F, M]
        feats = feats.reshape(batch, self.channels * 3 * self.freq_bins, n_frames, cfg.enc_stack)
        return feats.permute(0, 3, 1, 2).reshape(batch, -1, n_frames)


class VocosEncoder(nn.Module):
    """Waveform → latent frames: STFT features, a linear embedding, ConvNeXt blocks, a projection.

    Args:
        config: the encoder's sizes.
        channels: audio channels C.

    Shapes: input [B, C, T], output [B, D, ceil(T / hop_length)].
    """

    def __init__(self, config: VocosConfig, channels: int = 1) -> None:
        super().__init__()
        self.features = STFTFeatures(config, channels)
        width = config.enc_width
        self.embed = nn.Conv1d(self.features.out_channels, width, 1)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(width, layer_scale=1 / config.enc_blocks,
                                                  kernel_size=config.kernel_size)
                                    for _ in range(config.enc_blocks))
        self.final_norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Conv1d(width, config.dimension, 1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.features(wav))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.proj(self.final_norm(x.transpose(1, 2)).transpose(1, 2))
