"""Semantic augmentation of the quantized latent (FunCodec Eq. 3): cat, add and residual modes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .rvq import QuantizerOutput, ResidualVectorQuantizer

MODES = ("cat", "add", "res")


@dataclass
class SemanticConfig:
    """Semantic augmentation settings.

    Attributes:
        mode: ``cat``: Concat(RVQ(V_a), V_s) on channels (2D channels); ``add``: RVQ(V_a) + V_s;
            ``res``: RVQ(V_a - V_s) + V_s.
        semantic_dim: D_s, channels of float semantic features (and of the token embedding).
        vocab_size: number of semantic token ids (e.g. phonemes); enables integer inputs.
        frontend: ``linear`` (this module: features or embedded ids, resampled to the frame count and
            projected) or ``funcodec`` (FunCodec's ``codec_semantic_aug``: ids, or the argmax of
            posteriors, embedded and downsampled by convs; `funcodec_semantic.FunCodecSemantic`).
        rate: ``funcodec`` only: semantic frames per code frame (FunCodec's ``ppg_ds_rate``).
        downsample: ``funcodec`` only: ``conv`` (FunCodec's ``ppg_ds_type``) or ``skip`` (every
            ``rate``-th frame).
    """

    mode: str = "res"
    semantic_dim: int | None = None
    vocab_size: int | None = None
    frontend: str = "linear"
    rate: int = 2
    downsample: str = "conv"


class SemanticAugmentation(nn.Module):
    """Combines the acoustic latent V_a with frame-aligned semantic features V_s.

    V_s comes as float features [B, T_s, D_s] or token ids [B, T_s]; it is resampled to the codec
    frame count T (linear interpolation for features, nearest frame for ids), ids are embedded,
    and a linear layer projects D_s to the latent dimension D.

    Args:
        config (SemanticConfig): settings.
        latent_dim (int): D.
    """

    def __init__(self, config: SemanticConfig, latent_dim: int):
        super().__init__()
        if config.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
        if config.semantic_dim is None and config.vocab_size is None:
            raise ValueError("set semantic_dim (float features) and/or vocab_size (token ids)")
        self.config = config
        self.latent_dim = latent_dim
        semantic_dim = config.semantic_dim or latent_dim
        self.embedding = nn.Embedding(config.vocab_size, semantic_dim) if config.vocab_size else None
        self.proj = nn.Linear(semantic_dim, latent_dim)

    @property
    def output_dim(self) -> int:
        """Channels of the combined output: 2D for ``cat``, D otherwise."""
        return 2 * self.latent_dim if self.config.mode == "cat" else self.latent_dim

    def semantic_features(self, semantic: torch.Tensor, frames: int) -> torch.Tensor:
        """V_s resampled to ``frames`` and projected to D.

        Args:
            semantic (torch.Tensor): float [B, T_s, D_s] or long ids [B, T_s].
            frames (int): codec frame count T.

        Returns:
            torch.Tensor: V_s of shape [B, D, T].
        """
        if semantic.is_floating_point():
            if semantic.dim() != 3:
                raise ValueError(f"semantic features must be [B, T_s, D_s], got {tuple(semantic.shape)}")
            feats = semantic.transpose(1, 2)
            if feats.shape[-1] != frames:
                feats = F.interpolate(feats, size=frames, mode="linear", align_corners=False)
            feats = feats.transpose(1, 2)
        else:
            if self.embedding is None:
                raise ValueError("token ids given but SemanticConfig.vocab_size is not set")
            if semantic.dim() != 2:
                raise ValueError(f"semantic ids must be [B, T_s], got {tuple(semantic.shape)}")
            if semantic.shape[-1] != frames:
                semantic = F.interpolate(semantic[:, None].float(), size=frames, mode="nearest")[:, 0].long()
            feats = self.embedding(semantic)
        return self.proj(feats).transpose(1, 2)

    def combine(self, quantized: torch.Tensor, semantic_features: torch.Tensor) -> torch.Tensor:
        """Output of the augmentation from the quantizer's output [B, D, T] and V_s [B, D, T]."""
        if self.config.mode == "cat":
            return torch.cat([quantized, semantic_features], dim=1)
        return quantized + semantic_features

    def forward(
        self,
        latent: torch.Tensor,
        semantic: torch.Tensor,
        quantizer: ResidualVectorQuantizer,
        n_q: int | None = None,
    ) -> tuple[torch.Tensor, QuantizerOutput]:
        """Quantize V_a (or V_a - V_s) and combine with V_s.

        Args:
            latent (torch.Tensor): V_a of shape [B, D, T].
            semantic (torch.Tensor): float [B, T_s, D_s] or long ids [B, T_s].
            quantizer (ResidualVectorQuantizer): the codec's quantizer.
            n_q (int, optional): layers to use.

        Returns:
            tuple: the combined latent [B, output_dim, T] and the quantizer's output.
        """
        vs = self.semantic_features(semantic, latent.shape[-1])
        q_in = latent - vs if self.config.mode == "res" else latent
        out = quantizer(q_in, n_q=n_q)
        return self.combine(out.quantized, vs), out

    @torch.no_grad()
    def encode(
        self,
        latent: torch.Tensor,
        semantic: torch.Tensor,
        quantizer: ResidualVectorQuantizer,
        n_q: int | None = None,
    ) -> torch.Tensor:
        """Codes at inference: codes of V_a - V_s for ``res``, of V_a otherwise.

        Args:
            latent (torch.Tensor): V_a of shape [B, D, T].
            semantic (torch.Tensor): float [B, T_s, D_s] or long ids [B, T_s].
            quantizer (ResidualVectorQuantizer): the codec's quantizer.
            n_q (int, optional): layers to use.

        Returns:
            torch.Tensor: long codes [B, n_q, T].
        """
        if self.config.mode == "res":
            latent = latent - self.semantic_features(semantic, latent.shape[-1])
        return quantizer.encode(latent, n_q=n_q)

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, semantic: torch.Tensor, quantizer: ResidualVectorQuantizer
    ) -> torch.Tensor:
        """Combined latent [B, output_dim, T] from codes [B, n, T] and the same semantic input."""
        quantized = quantizer.decode(codes)
        return self.combine(quantized, self.semantic_features(semantic, codes.shape[-1]))
