"""FunCodec's semantic augmentation (``codec_semantic_aug``) as a ``SemanticConfig(frontend="funcodec")``.

FunCodec conditions its codec on phoneme posteriors ("ppg"): ids (or the argmax of posteriors) [B, T_s] at
``rate`` frames per code frame are embedded to the latent width D, downsampled by a GroupNorm conv
(kernel 7), an ELU and a strided conv (kernel 2·rate), or by taking every ``rate``-th frame, and cut to
the code frames (the last one repeated when short). The modes then act as ours do (`semantic.py`): ``res``
quantizes V_a − V_s and decodes RVQ + V_s, ``add`` decodes RVQ(V_a) + V_s, and ``cat`` joins V_s and
RVQ(V_a) on channels and maps them back to D with a kernel-3 conv (FunCodec's ``ppg_cond_layer``), so the
decoder keeps its width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.conv import StreamableConv1d

from .semantic import SemanticAugmentation, SemanticConfig


class FunCodecSemantic(SemanticAugmentation):
    """FunCodec's ppg front end and combination (see the module docstring); the ``SemanticAugmentation``
    interface (``forward``, ``encode``, ``decode``, ``semantic_features``, ``output_dim``).

    Args:
        config (SemanticConfig): ``frontend: funcodec``, ``vocab_size`` (FunCodec's ``ppg_dim``), ``rate``,
            ``downsample``, ``mode``.
        latent_dim (int): D.
    """

    def __init__(self, config: SemanticConfig, latent_dim: int):
        nn.Module.__init__(self)  # none of SemanticAugmentation's layers: this front end has its own
        if not config.vocab_size or config.semantic_dim is not None:
            raise ValueError("frontend funcodec needs vocab_size (the phoneme classes) and no semantic_dim")
        if config.downsample not in ("conv", "skip") or config.rate < 1:
            raise ValueError(f"downsample must be 'conv' or 'skip' and rate >= 1, got {config.downsample!r}, "
                             f"{config.rate}")
        self.config, self.latent_dim = config, latent_dim
        d, rate = latent_dim, config.rate
        self.embedding = nn.Embedding(config.vocab_size, d)
        self.downsample = (nn.Sequential(StreamableConv1d(d, d, 7, norm="time_group_norm"), nn.ELU(1.0),
                                         StreamableConv1d(d, d, 2 * rate, stride=rate))
                           if config.downsample == "conv" else None)
        self.cond = StreamableConv1d(2 * d, d, 3) if config.mode == "cat" else None

    @property
    def output_dim(self) -> int:
        """D in every mode (``cat`` maps the joined 2D channels back to D)."""
        return self.latent_dim

    def semantic_features(self, semantic: torch.Tensor, frames: int) -> torch.Tensor:
        """V_s [B, D, frames] from ids [B, T_s] or posteriors [B, T_s, vocab_size] (their argmax)."""
        if semantic.dim() == 3:
            semantic = semantic.argmax(dim=-1)
        if semantic.dim() != 2 or semantic.is_floating_point():
            raise ValueError(f"semantic input must be ids [B, T_s] or posteriors [B, T_s, "
                             f"{self.config.vocab_size}], got {tuple(semantic.shape)} {semantic.dtype}")
        if semantic.numel() and (semantic.min() < 0 or semantic.max() >= self.config.vocab_size):
            raise ValueError(f"semantic ids must lie in 0..{self.config.vocab_size - 1}")
        feats = self.embedding(semantic).transpose(1, 2)
        feats = self.downsample(feats) if self.downsample is not None else feats[:, :, ::self.config.rate]
        feats = feats[:, :, :frames]
        if feats.shape[-1] == 0:
            raise ValueError("semantic input gives no frame")
        if feats.shape[-1] < frames:
            feats = F.pad(feats, (0, frames - feats.shape[-1]), mode="replicate")
        return feats

    def combine(self, quantized: torch.Tensor, semantic_features: torch.Tensor) -> torch.Tensor:
        if self.cond is not None:
            return self.cond(torch.cat([semantic_features, quantized.to(semantic_features.dtype)], dim=1))
        return quantized + semantic_features
