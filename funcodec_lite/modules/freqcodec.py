"""FreqCodec encoder and decoder: 2-D convolutions over STFT features (frequency × time) to a 1-D latent."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from funcodec_lite.modules.freq_blocks import (
    Downsample2d,
    PaddedConv2d,
    ResidualLSTM,
    ResUnit2d,
    Upsample2d,
    group_count,
    make_activation,
    normed,
    split_padding,
)

FEATURE_KINDS = {"mag_phase": 3, "mag_angle": 2}


@dataclass
class FreqCodecConfig:
    """Sizes of a FreqCodec encoder/decoder pair.

    Args:
        domain: ``mag_phase`` (log|X|, Xr/|X|, Xi/|X| per audio channel) or ``mag_angle`` (log|X|, angle);
            it fixes the decoder's output activations.
        in_channels: feature channels, 3 (mag_phase) or 2 (mag_angle) times the audio channels; the layout
            is interleaved per audio channel: [c0 kinds..., c1 kinds...].
        n_freq: STFT bins F (n_fft // 2 + 1; 257 for n_fft 512).
        base_channels: channels after the stem; block b outputs min(base·2^(b+1), max_channels).
        max_channels: cap on the channel growth.
        freq_strides, time_strides: per-block strides (encoder order); their products P_f, P_t.
        stem_kernel: odd kernel of the first encoder conv and the last decoder conv (7).
        res_kernel: odd kernel of the residual units (3).
        res_compress: hidden channels of a residual unit are C / res_compress.
        enc_group_size, dec_group_size: channels per group of the grouped convs (residual k×k and
            down/up-sampling convs); 0 = ungrouped, 1 = depthwise (groups = C_in), 8 = FunCodec's C_in/8.
        true_skip: identity shortcuts in the residual units instead of 1×1 convs.
        lstm_layers: residual LSTM layers over time on the flattened features (0 = none).
        proj_kernel: odd kernel of the 1-D convs between the flattened features and the latent.
        dimension: latent channels D.
        activation: ``torch.nn`` class name of the nonlinearity (ELU).
        norm: ``weight_norm`` or ``none``.
        causal: must be False (no causal FreqCodec).
        mag_eps: eps of the log magnitude log(|X| + eps); the decoder emits log(softplus(a) + mag_eps).
    """

    domain: str = "mag_phase"
    in_channels: int = 3
    n_freq: int = 257
    base_channels: int = 32
    max_channels: int = 512
    freq_strides: tuple[int, ...] = (4, 4, 4, 4)
    time_strides: tuple[int, ...] = (1, 2, 1, 1)
    stem_kernel: int = 7
    res_kernel: int = 3
    res_compress: int = 2
    enc_group_size: int = 0
    dec_group_size: int = 0
    true_skip: bool = False
    lstm_layers: int = 2
    proj_kernel: int = 7
    dimension: int = 128
    activation: str = "ELU"
    norm: str = "weight_norm"
    causal: bool = False
    mag_eps: float = 1e-5

    def __post_init__(self) -> None:
        self.freq_strides = tuple(int(s) for s in self.freq_strides)
        self.time_strides = tuple(int(s) for s in self.time_strides)
        if self.domain not in FEATURE_KINDS:
            raise ValueError(f"domain must be one of {tuple(FEATURE_KINDS)}, got {self.domain!r}")
        if self.in_channels % FEATURE_KINDS[self.domain]:
            raise ValueError(f"{self.domain} needs a multiple of {FEATURE_KINDS[self.domain]} channels")
        if len(self.freq_strides) != len(self.time_strides) or not self.freq_strides:
            raise ValueError("freq_strides and time_strides need the same, non-zero, number of blocks")
        if min(self.freq_strides + self.time_strides) < 1:
            raise ValueError("strides must be >= 1")
        if self.stem_kernel % 2 == 0 or self.proj_kernel % 2 == 0:
            raise ValueError("stem_kernel and proj_kernel must be odd")
        if self.causal:
            raise ValueError("FreqCodec is non-causal only (causal=False)")

    @classmethod
    def from_dict(cls, values: dict) -> FreqCodecConfig:
        """Builds a config from a YAML ``model:`` mapping, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown FreqCodecConfig keys: {sorted(unknown)}")
        return cls(**values)

    @property
    def kinds(self) -> int:
        """Feature channels per audio channel (3 for mag_phase, 2 for mag_angle)."""
        return FEATURE_KINDS[self.domain]

    @property
    def channels(self) -> list[int]:
        """Channels after the stem and after each block: [C_0, C_1, ..., C_B]."""
        return [min(self.base_channels * 2**b, self.max_channels) for b in range(len(self.freq_strides) + 1)]

    @property
    def hop(self) -> int:
        """Total time stride P_t: latent frames = ceil(feature frames / P_t)."""
        return math.prod(self.time_strides)

    @property
    def freq_bins(self) -> list[int]:
        """Frequency bins at the input, after the stem and after each block.

        The stem maps F to F_0 = P_f·ceil((F - 1) / P_f), P_f the product of the frequency strides, by
        zero-padding the frequency axis with (F_0 - F + k - 1) bins split (low, high) = (floor, ceil) and a
        'valid' k×k conv; each block then divides by its stride. For 257 bins, k = 7 and strides (4,4,4,4):
        pad (2 low, 3 high) -> 262 -> 7×7 conv -> 256 -> 64 -> 16 -> 4 -> 1.
        """
        p_f = math.prod(self.freq_strides)
        bins = [self.n_freq, p_f * math.ceil((self.n_freq - 1) / p_f)]
        for f in self.freq_strides:
            bins.append(bins[-1] // f)
        return bins

    @property
    def flat_dim(self) -> int:
        """Channels of the 1-D sequence after flattening (C_B × remaining bins)."""
        return self.channels[-1] * self.freq_bins[-1]

    def stem_freq_pad(self) -> tuple[int, int]:
        """(low, high) frequency padding of the encoder stem: F + pad - k + 1 = F_0."""
        return split_padding(self.freq_bins[1] - self.n_freq + self.stem_kernel - 1)

    def head_freq_pad(self) -> tuple[int, int]:
        """(low, high) frequency padding of the decoder's last conv: F_0 + pad - k + 1 = F."""
        return split_padding(self.n_freq - self.freq_bins[1] + self.stem_kernel - 1)


class FreqEncoder(nn.Module):
    """FreqCodec encoder: 7×7 stem, B blocks (residual unit, act, strided conv), flatten, LSTM, projection.

    Args:
        config: the ``FreqCodecConfig``.

    Shapes: features [B, C_in, F, N] -> latent [B, D, ceil(N / P_t)].
    """

    def __init__(self, config: FreqCodecConfig) -> None:
        super().__init__()
        self.config = cfg = config
        ch = cfg.channels
        k = cfg.stem_kernel
        self.stem = PaddedConv2d(
            cfg.in_channels, ch[0], (k, k), freq_pad=cfg.stem_freq_pad(), time_pad=(k // 2, k // 2),
            norm=cfg.norm,
        )
        blocks = []
        for b, stride in enumerate(zip(cfg.freq_strides, cfg.time_strides)):
            blocks.append(nn.Sequential(
                ResUnit2d(ch[b], cfg.res_kernel, cfg.res_compress, cfg.enc_group_size, cfg.true_skip,
                          cfg.activation, cfg.norm),
                make_activation(cfg.activation),
                Downsample2d(ch[b], ch[b + 1], stride, group_count(ch[b], ch[b + 1], cfg.enc_group_size),
                             cfg.norm),
            ))
        self.blocks = nn.Sequential(*blocks)
        self.lstm = ResidualLSTM(cfg.flat_dim, cfg.lstm_layers) if cfg.lstm_layers > 0 else nn.Identity()
        self.act = make_activation(cfg.activation)
        p = cfg.proj_kernel
        self.proj = normed(nn.Conv1d(cfg.flat_dim, cfg.dimension, p, padding=p // 2), cfg.norm)

    def forward(self, features: Tensor) -> Tensor:
        """Args:
        features: [B, C_in, F, N] STFT features (``config.domain`` layout).

        Returns:
            latent: [B, D, ceil(N / P_t)].
        """
        cfg = self.config
        if features.dim() != 4 or features.shape[1] != cfg.in_channels or features.shape[2] != cfg.n_freq:
            raise ValueError(
                f"expected features [B, {cfg.in_channels}, {cfg.n_freq}, N], got {tuple(features.shape)}"
            )
        x = self.blocks(self.stem(features))
        x = x.flatten(1, 2)  # [B, C_B, F_B, N'] -> [B, C_B·F_B, N'], channel-major
        return self.proj(self.act(self.lstm(x)))


class FreqDecoder(nn.Module):
    """FreqCodec decoder, the encoder's mirror: projection, LSTM, B blocks (act, transposed conv, residual
    unit), act, 7×7 head, output activations.

    Output layout per audio channel: mag_phase -> [log(softplus(a) + eps), p_r, p_i] (phase pair not
    renormalised); mag_angle -> [log(softplus(a) + eps), π·tanh(b)].

    Args:
        config: the ``FreqCodecConfig``.

    Shapes: latent [B, D, N'] and n_frames -> features [B, C_in, F, n_frames], n_frames <= N'·P_t.
    """

    def __init__(self, config: FreqCodecConfig) -> None:
        super().__init__()
        self.config = cfg = config
        ch = cfg.channels
        p = cfg.proj_kernel
        self.proj = normed(nn.Conv1d(cfg.dimension, cfg.flat_dim, p, padding=p // 2), cfg.norm)
        self.lstm = ResidualLSTM(cfg.flat_dim, cfg.lstm_layers) if cfg.lstm_layers > 0 else nn.Identity()
        blocks = []
        strides = list(zip(cfg.freq_strides, cfg.time_strides))
        for b in reversed(range(len(strides))):
            blocks.append(nn.Sequential(
                make_activation(cfg.activation),
                Upsample2d(ch[b + 1], ch[b], strides[b], group_count(ch[b + 1], ch[b], cfg.dec_group_size),
                           cfg.norm),
                ResUnit2d(ch[b], cfg.res_kernel, cfg.res_compress, cfg.dec_group_size, cfg.true_skip,
                          cfg.activation, cfg.norm),
            ))
        self.blocks = nn.Sequential(*blocks)
        self.act = make_activation(cfg.activation)
        k = cfg.stem_kernel
        self.head = PaddedConv2d(
            ch[0], cfg.in_channels, (k, k), freq_pad=cfg.head_freq_pad(), time_pad=(k // 2, k // 2),
            norm=cfg.norm,
        )

    def forward(self, latent: Tensor, n_frames: int) -> Tensor:
        """Args:
        latent: [B, D, N'].
        n_frames: N, the feature frames to return; (N' - 1)·P_t < N <= N'·P_t for an encoder latent.

        Returns:
            features: [B, C_in, F, n_frames].
        """
        cfg = self.config
        if n_frames < 1 or n_frames > latent.shape[-1] * cfg.hop:
            raise ValueError(f"n_frames must be in [1, {latent.shape[-1] * cfg.hop}], got {n_frames}")
        x = self.lstm(self.proj(latent))
        x = x.unflatten(1, (cfg.channels[-1], cfg.freq_bins[-1]))  # [B, C_B, F_B, N']
        x = self.head(self.act(self.blocks(x)))[..., :n_frames]
        return self.activate(x)

    def activate(self, raw: Tensor) -> Tensor:
        """Maps raw head outputs [B, C_in, F, N] to the feature layout of ``config.domain``."""
        cfg = self.config
        x = raw.unflatten(1, (cfg.in_channels // cfg.kinds, cfg.kinds))  # [B, C, kinds, F, N]
        log_mag = torch.log(nn.functional.softplus(x[:, :, :1]) + cfg.mag_eps)
        rest = x[:, :, 1:] if cfg.domain == "mag_phase" else math.pi * torch.tanh(x[:, :, 1:])
        return torch.cat([log_mag, rest], dim=2).flatten(1, 2)
