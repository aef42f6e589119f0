"""The transformer core shared by every token model: pre-norm blocks, rotary positions, SDPA, a KV cache.

One stack serves the causal (autoregressive) and the bidirectional (masked) models. Attention runs through
``torch.nn.functional.scaled_dot_product_attention``; positions are rotary (RoPE), given per item so that
padded prefixes do not shift them. ``KVCache`` keeps every layer's keys and values for incremental decoding:
feeding a sequence in pieces through the cache gives the outputs of feeding it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.modules.rotary import apply_rotary, rope_frequencies


@dataclass
class TransformerConfig:
    """Size and behaviour of a transformer stack.

    Args:
        dim: model width D.
        n_layers: blocks.
        n_heads: attention heads (``dim`` must be divisible by it; the head width must be even for RoPE).
        ff_mult: hidden width of the feed-forward layer, as a multiple of ``dim``.
        dropout: dropout on the residual branches (training only; not on the attention weights).
        causal: each position attends to itself and the past (plus any prefix, see `attention_mask`).
        rope_base: the rotary embedding's base.
    """

    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: float = 4.0
    dropout: float = 0.0
    causal: bool = True
    rope_base: float = 10_000.0

    def __post_init__(self) -> None:
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.n_heads} heads of even width")
        if self.n_layers < 1 or not 0 <= self.dropout < 1:
            raise ValueError("need n_layers >= 1 and 0 <= dropout < 1")


class KVCache:
    """Keys and values of every layer seen so far: ``keys[i]`` is [B, H, L, Dh]; ``mask`` [B, L] marks
    the real (non-padding) positions; ``length`` is L."""

    def __init__(self, n_layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.mask: torch.Tensor | None = None
        self.prefix: torch.Tensor | None = None  # [B] prefix lengths (bidirectional part), if any

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def select(self, index: torch.Tensor) -> None:
        """Keeps the batch items ``index`` [B'] (e.g. to drop finished items)."""
        self.keys = [k.index_select(0, index) if k is not None else None for k in self.keys]
        self.values = [v.index_select(0, index) if v is not None else None for v in self.values]
        self.mask = self.mask.index_select(0, index) if self.mask is not None else None
        self.prefix = self.prefix.index_select(0, index) if self.prefix is not None else None


def attention_mask(query_positions: torch.Tensor, key_positions: torch.Tensor, key_mask: torch.Tensor | None,
                   causal: bool, prefix: torch.Tensor | None = None) -> torch.Tensor | None:
    """Boolean mask [B, 1, Sq, Sk] (True = may attend), or None when everything may attend everything.

    Args:
        query_positions: [B, Sq] sequence indices of the queries.
        key_positions: [B, Sk] sequence indices of the keys.
        key_mask: [B, Sk] True for real keys (False: padding), or None.
        causal: a query sees keys at its index or before.
        prefix: [B] length of a prefix every query may see whole (prefix-LM: bidirectional over a
            condition, causal over the target), or None.
    """
    allowed = None
    if causal:
        allowed = key_positions[:, None, :] <= query_positions[:, :, None]  # [B, Sq, Sk]
        if prefix is not None:
            allowed = allowed | (key_positions[:, None, :] < prefix[:, None, None])
    if key_mask is not None:
        keys = key_mask[:, None, :].expand(-1, query_positions.shape[1], -1)
        allowed = keys if allowed is None else allowed & keys
    if allowed is None:
        return None
    # every query sees at least itself: a row with nothing to attend to would give NaN, which would
    # reach real positions through the padding's values in later layers
    allowed = allowed | (key_positions[:, None, :] == query_positions[:, :, None])
    return allowed[:, None]


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions and an optional KV cache."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.base = config.n_heads, config.rope_base
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        """x [B, S, D], positions [B, S], mask [B, 1, S, L + S] or None -> [B, S, D]."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        frequencies = rope_frequencies(d // self.n_heads, self.base, x.device)
        angles = positions[:, None, :, None].float() * frequencies  # [B, 1, S, Dh / 2]
        q, k = apply_rotary(q, angles), apply_rotary(k, angles)
        if cache is not None:
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        # no dropout on the attention weights: on CPU it sends SDPA to its slow path (3x the time of the
        # attention, measured at 8 x 4 heads x 460 positions); the residual branches are dropped instead
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + feed-forward(norm(x)) (GELU)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        hidden = int(config.dim * config.ff_mult)
        self.norm1, self.norm2 = nn.LayerNorm(config.dim), nn.LayerNorm(config.dim)
        self.attention = Attention(config)
        self.ff = nn.Sequential(nn.Linear(config.dim, hidden), nn.GELU(), nn.Linear(hidden, config.dim))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), positions, mask, cache, layer))
        return x + self.drop(self.ff(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of pre-norm blocks with a final LayerNorm, over embedded inputs.

    Call it on a whole sequence, or piece by piece with a `KVCache` (``new_cache()``): the outputs are the
    same. Positions default to ``cache.length + arange(S)``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.dim)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layers)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, prefix: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """Args:
            x: [B, S, D] embedded inputs.
            key_mask: [B, S] True for real positions (False: padding); with a cache, for the new positions.
            positions: [B, S] rotary positions (default: sequence indices).
            prefix: [B] prefix lengths for prefix-LM attention (causal stacks); kept in the cache.
            cache: keys and values of the earlier positions; extended in place.

        Returns:
            [B, S, D] outputs.
        """
        b, s, _ = x.shape
        past = cache.length if cache is not None else 0
        index = torch.arange(past, past + s, device=x.device).expand(b, s)
        positions = index if positions is None else positions
        if cache is not None:
            if prefix is not None:
                cache.prefix = prefix
            prefix = cache.prefix
            if key_mask is not None or cache.mask is not None:
                ones = torch.ones(b, past + s, dtype=torch.bool, device=x.device)
                new = key_mask if key_mask is not None else ones[:, :s]
                old = cache.mask if cache.mask is not None else ones[:, :past]
                cache.mask = torch.cat([old, new], dim=1)
            key_mask = cache.mask
        key_index = torch.arange(past + s, device=x.device).expand(b, past + s)
        mask = attention_mask(index, key_index, key_mask, self.config.causal, prefix)
        if mask is not None and s == 1 and bool(mask.all()):
            mask = None  # one new query that may see everything: no mask needed
        for layer, block in enumerate(self.blocks):
            x = block(x, positions, mask, cache, layer)
        return self.norm(x)
