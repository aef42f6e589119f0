"""VampNet's own masked token model (kind ``vampnet_lm``): the released coarse and coarse-to-fine models.

Layers as VampNet builds them (github.com/hugofloresgarcia/vampnet, ``vampnet/modules/transformer.py``), so
that its checkpoints (converted by ``codec convert --from vampnet``) give its logits:

- a token of codebook k is the codec's own codebook vector (DAC: 8 dimensions) or, for MASK, a learned
  vector per codebook; the K vectors of a frame are concatenated and projected to the model width by a
  1x1 convolution;
- pre-norm blocks with RMSNorm, attention without biases whose logits get a T5-style relative position
  bias (bucketed key-minus-query offsets, one table shared by every layer), a GEGLU feed-forward (tanh GELU)
  of width 4D; no rotary positions, no LayerNorm;
- one 1x1 convolution to ``card`` logits per predicted codebook.

VampNet's LoRA adapters and its classifier's weight norm are folded into plain weights at conversion; its
FiLM layers hold no weights in the released models (``r_cond_dim`` 0) and are the identity. The class
exposes what `maskgit_generate` and `vamp` read of a `MaskedLM` (``config.n_q``, ``n_conditioning``,
``mask_id``, ``conditioner``, ``forward(codes, prefix, frames)``); it is for inference: there is no loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.lm.conditioning import Conditioner
from funcodec_lite.utils.config import build_dataclass


@dataclass
class VampNetLMConfig:
    """Shape of a VampNet model (its constructor's names in brackets).

    Args:
        n_q: codebooks the model reads (``n_codebooks``).
        n_conditioning: leading codebooks given, never predicted (``n_conditioning_codebooks``).
        card: codebook size; id ``card`` is MASK (``vocab_size``).
        latent_dim: dimension of the codec's codebook vectors (``latent_dim``).
        dim: model width (``embedding_dim``).
        n_layers, n_heads: of the transformer.
        num_buckets, max_distance: of the relative position bias (T5's 32 and 128 in VampNet).
        eps: of the RMSNorms.
    """

    n_q: int = 4
    n_conditioning: int = 0
    card: int = 1024
    latent_dim: int = 8
    dim: int = 1280
    n_layers: int = 20
    n_heads: int = 20
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.n_conditioning < self.n_q:
            raise ValueError(f"need 0 <= n_conditioning < n_q, got {self.n_conditioning} and {self.n_q}")
        if self.dim % self.n_heads or self.n_layers < 1:
            raise ValueError(f"dim {self.dim} must split into {self.n_heads} heads; need n_layers >= 1")
        if self.num_buckets < 4 or self.max_distance <= self.num_buckets // 4:
            raise ValueError("need num_buckets >= 4 and max_distance > num_buckets / 4")

    @classmethod
    def from_dict(cls, data: dict) -> VampNetLMConfig:
        return build_dataclass(cls, dict(data), "vampnet")

    @property
    def mask_id(self) -> int:
        return self.card


def relative_buckets(offsets: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's bidirectional buckets of key-minus-query offsets (long, any shape): half the buckets for
    positive offsets; in each half, exact buckets below a quarter of ``num_buckets``, log-spaced ones up to
    ``max_distance``, the last bucket beyond."""
    half = num_buckets // 2
    exact = half // 2
    bucket = (offsets > 0).long() * half
    distance = offsets.abs()
    far = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    far = far.clamp_max(half - 1)
    return bucket + torch.where(distance < exact, distance, far)


class RMSNorm(nn.Module):
    """x / rms(x) times a learned gain, over the last dimension."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class RelativeAttention(nn.Module):
    """Multi-head self-attention without biases; the position bias [1, H, S, S] is added to its logits."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, S, D], bias [1, H, S, S], key_mask [B, S] (True = real) or None -> [B, S, D]."""
        b, s, d = x.shape
        q, k, v = (layer(x).view(b, s, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for layer in (self.q, self.k, self.v))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads) + bias
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask[:, None, None, :], -1e9)
        y = torch.softmax(logits, dim=-1) @ v  # [B, H, S, Dh]
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class GatedFeedForward(nn.Module):
    """GEGLU: in -> 4D, the first half times tanh-GELU of the second half, -> D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, 4 * dim, bias=False)
        self.out = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.inp(x).chunk(2, dim=-1)
        return self.out(value * F.gelu(gate, approximate="tanh"))


class VampNetBlock(nn.Module):
    """x + attention(rmsnorm(x)), then x + feed-forward(rmsnorm(x))."""

    def __init__(self, config: VampNetLMConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(config.dim, config.eps), RMSNorm(config.dim, config.eps)
        self.attention = RelativeAttention(config.dim, config.n_heads)
        self.ff = GatedFeedForward(config.dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), bias, key_mask)
        return x + self.ff(self.norm2(x))


class VampNetLM(nn.Module):
    """Predicts the tokens of codebooks ``n_conditioning .. n_q-1`` (see the module docstring)."""

    model_kind = "vampnet_lm"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = VampNetLMConfig
    vampnet_draw_order = True  # maskgit_generate draws its random numbers as VampNet's generate does

    def __init__(self, config: VampNetLMConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        # the codec's codebook vectors (rows 0..card-1) and the MASK vector (row card) of each codebook
        self.latents = nn.Parameter(torch.zeros(c.n_q, c.card + 1, c.latent_dim))
        self.in_proj = nn.Conv1d(c.n_q * c.latent_dim, c.dim, 1)
        self.relative_bias = nn.Embedding(c.num_buckets, c.n_heads)
        self.blocks = nn.ModuleList(VampNetBlock(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.dim, c.eps)
        self.heads = nn.Conv1d(c.dim, (c.n_q - c.n_conditioning) * c.card, 1)  # rows codebook-major
        self.conditioner = Conditioner(c.dim)  # no conditions: an empty prefix

    @property
    def n_q(self) -> int:
        return self.config.n_q

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """[1, H, S, S]: the learned bias of each head for key position minus query position."""
        index = torch.arange(length, device=device)
        buckets = relative_buckets(index[None, :] - index[:, None], self.config.num_buckets,
                                   self.config.max_distance)
        return self.relative_bias(buckets).permute(2, 0, 1)[None]

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] (MASK = ``card``) -> the concatenated codebook vectors [B, K·latent_dim, T]."""
        vectors = [F.embedding(codes[:, q], self.latents[q]).transpose(1, 2) for q in range(codes.shape[1])]
        return torch.cat(vectors, dim=1)

    def forward(self, codes: torch.Tensor, prefix: tuple | None = None,
                frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, K - n_conditioning, T, card] of the predicted codebooks.

        Args:
            codes: [B, K, T], MASK (``card``) where a token is to be predicted.
            prefix: the `Conditioner`'s empty prefix (accepted for `maskgit_generate`; there is no condition).
            frames: [B] real frames (the rest is padding, never attended to), or None.
        """
        if prefix is not None and prefix[0].shape[1]:
            raise ValueError("a VampNet model takes no condition")
        b, k, t = codes.shape
        if k != self.config.n_q:
            raise ValueError(f"the model reads {self.config.n_q} codebooks, got {k}")
        x = self.in_proj(self.embed(codes)).transpose(1, 2)  # [B, T, D]
        key_mask = None
        if frames is not None:
            key_mask = torch.arange(t, device=codes.device)[None] < frames[:, None]
        bias = self.position_bias(t, codes.device)
        for block in self.blocks:
            x = block(x, bias, key_mask)
        logits = self.heads(self.norm(x).transpose(1, 2))  # [B, Kp·card, T]
        return logits.view(b, -1, self.config.card, t).transpose(2, 3)
