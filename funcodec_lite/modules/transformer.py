"""Causal streaming transformer over latent frames: RoPE, a sliding context window, layer scale.

The transformer layers that Mimi (Moshi's codec) puts between its SEANet and its quantizer: pre-norm
blocks (LayerNorm → self-attention → layer scale, LayerNorm → GELU MLP → layer scale), no biases in the
projections, rotary position embeddings with interleaved (real, imaginary) pairs, and attention limited
to the last ``context`` frames (the frame itself included).

The whole-signal ``forward`` masks the attention; inside ``with transformer.streaming():`` each chunk
attends to the keys and values kept from earlier chunks (the last ``context - 1`` frames), so
the concatenated chunk outputs equal the whole-signal output for any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.rotary import apply_rotary, rope_frequencies
from funcodec_lite.modules.streaming import StreamingModule


@dataclass
class TransformerConfig:
    """Architecture of a ``CausalTransformer``.

    Attributes:
        d_model: width of the layers (input and output projections are added when it differs from the
            latent width the transformer is given).
        num_heads: attention heads (``d_model`` must be a multiple).
        num_layers: transformer blocks.
        dim_feedforward: hidden width of the MLP.
        context: frames each position attends to, itself included (None: all earlier frames).
        max_period: longest period of the rotary embedding.
        layer_scale: initial value of the per-channel residual scales (None: no layer scale).
        norm_eps: LayerNorm epsilon.
    """

    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 8
    dim_feedforward: int = 2048
    context: int | None = 250
    max_period: float = 10000.0
    layer_scale: float | None = 0.01
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.num_heads} heads of even width")
        if self.context is not None and self.context < 1:
            raise ValueError(f"context must be >= 1 or None, got {self.context}")


def apply_rope(q: torch.Tensor, k: torch.Tensor, offset: int,
               max_period: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates queries and keys by their positions (interleaved pairs: channels 2i, 2i + 1 form one complex).

    Args:
        q, k: [B, H, T, D] for positions ``offset .. offset + T - 1``.
        offset: position of the first frame.
        max_period: longest rotation period.
    Returns:
        the rotated q and k, same shapes and dtype.
    """
    length, dim = q.shape[-2:]
    times = offset + torch.arange(length, device=q.device, dtype=torch.float32)
    angles = times[:, None] * rope_frequencies(dim, max_period, q.device)
    return apply_rotary(q, angles, interleaved=True), apply_rotary(k, angles, interleaved=True)


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch: ``scale * x`` on [..., C]."""

    def __init__(self, channels: int, init: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE and a context window, fed past keys/values when streaming.

    Args:
        config: width, heads, context and RoPE period.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.in_proj = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, offset: int = 0,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attention of frames ``offset .. offset + T - 1``.

        Args:
            x: [B, T, C].
            offset: position of x's first frame.
            past: keys and values [B, H, P, D] of the P frames just before x (None: none).
        Returns:
            the output [B, T, C], and the keys and values [B, H, P + T, D] of the past and x.
        """
        batch, length, _ = x.shape
        heads = self.config.num_heads
        q, k, v = self.in_proj(x).view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, k, offset, self.config.max_period)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        start = offset - (k.shape[2] - length)  # position of the first key
        pos_q = torch.arange(offset, offset + length, device=x.device).view(-1, 1)
        pos_k = torch.arange(start, offset + length, device=x.device).view(1, -1)
        delta = pos_q - pos_k
        mask = delta >= 0
        if self.config.context is not None:
            mask = mask & (delta < self.config.context)
        out = F.scaled_dot_product_attention(q, k, v, mask[None, None].expand(batch, 1, -1, -1))
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(out), (k, v)


class TransformerLayer(nn.Module):
    """Pre-norm block: ``x + ls1(attn(norm1(x)))``, then ``x + ls2(linear2(gelu(linear1(norm2(x)))))``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.self_attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.linear1 = nn.Linear(config.d_model, config.dim_feedforward, bias=False)
        self.linear2 = nn.Linear(config.dim_feedforward, config.d_model, bias=False)
        scale = config.layer_scale
        self.layer_scale_1 = nn.Identity() if scale is None else LayerScale(config.d_model, scale)
        self.layer_scale_2 = nn.Identity() if scale is None else LayerScale(config.d_model, scale)

    def forward(self, x: torch.Tensor, offset: int = 0,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, T, C] → ([B, T, C], keys and values as ``CausalSelfAttention``)."""
        update, cache = self.self_attn(self.norm1(x), offset, past)
        x = x + self.layer_scale_1(update)
        x = x + self.layer_scale_2(self.linear2(F.gelu(self.linear1(self.norm2(x)))))
        return x, cache


class CausalTransformer(StreamingModule):
    """Causal transformer on latent frames in conv layout, streamable chunk by chunk.

    Args:
        dimension: channels of the latent frames; linear projections (no bias) map them to and from
            ``config.d_model`` when the two differ.
        config: the architecture.

    Shapes: input [B, dimension, T], output [B, dimension, T].
    """

    def __init__(self, dimension: int, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        same = dimension == config.d_model
        self.input_proj = None if same else nn.Linear(dimension, config.d_model, bias=False)
        self.output_proj = None if same else nn.Linear(config.d_model, dimension, bias=False)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))

    def _new_state(self) -> dict:
        return {"offset": 0, "past": [None] * len(self.layers)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 0:
            return x
        state = self._state
        offset = 0 if state is None else state["offset"]
        h = x.transpose(1, 2)
        if self.input_proj is not None:
            h = self.input_proj(h)
        keep = None if self.config.context is None else self.config.context - 1
        for index, layer in enumerate(self.layers):
            h, cache = layer(h, offset, None if state is None else state["past"][index])
            if state is not None:
                k, v = cache
                if keep is not None:
                    k, v = k[:, :, max(0, k.shape[2] - keep):], v[:, :, max(0, v.shape[2] - keep):]
                state["past"][index] = (k, v)
        if state is not None:
            state["offset"] += x.shape[-1]
        if self.output_proj is not None:
            h = self.output_proj(h)
        return h.transpose(1, 2)

    def flush(self) -> None:
        """Nothing is held back (each frame's output is final when it arrives); resets the stream."""
        self._state = self._new_state()
        return None
