"""Class-conditional PixelSNAIL prior over 2-D code maps (the DCASE 2023 Task 7 baseline's prior)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .pixelsnail_layers import CausalAttention, CausalConv2d, GatedResBlock, StepCache

RASTERS = ("row", "column")


@dataclass
class PixelSNAILConfig:
    """PixelSNAIL settings (field names are the YAML keys); the defaults are the DCASE baseline's sizes.

    Attributes:
        height, width: code map shape H x W (20 x 86 for the baseline's mel VQ-VAE).
        n_codes: codebook size, also the number of logits per position.
        n_classes: number of class labels.
        channel: width C of the residual stream.
        kernel_size: k of the causal convolutions (odd).
        n_block: PixelBlocks.
        n_res_block: causal gated residual blocks per PixelBlock.
        res_channel: hidden width of those blocks.
        attention: causal self-attention at the end of every PixelBlock.
        n_head: attention heads (the attention width is C // 2).
        dropout: dropout in the residual blocks (and on the attention weights, see ``attention_dropout``).
        attention_dropout: dropout on the attention weights; None: ``dropout`` (the baseline's). On a CPU,
            PyTorch's attention with dropout takes the unfused path: a training step of a 20 x 86 map
            (channel 32, 2 blocks, batch 8) took 3.34 s with 0.1 and 0.77 s with 0.0.
        n_out_res_block: 1 x 1 gated residual blocks before the output layer.
        n_cond_res_block: residual blocks over a spatial condition; must be 0 (the baseline builds
            them but conditions on the class only, and so does this model).
        class_dim: width of the class embedding projected into every causal residual block; 0: none.
        class_map: also learn a per-class H x W map added (through a 1 x 1 convolution) in those blocks,
            like the baseline's only class conditioning.
        shifted_stems: the baseline's stems, which shift their output (bias included) down one row /
            right one column: row 0 gets nothing from the stem above, column 0 nothing from the stem to
            the left, not even its bias. False: both biases everywhere (the toolkit's own priors).
        raster: the order codes are generated in. ``row``: the baseline's, row by row (for a mel code
            map, each frequency row across all of time); ``column``: column by column (each time step's H
            rows together, time-major). A column-raster model runs on the transposed W x H map; its
            ``forward`` still takes and returns H x W maps (`to_raster` / `from_raster`).
        label_dropout: in training, the fraction of labels replaced by the "no class" label ``n_classes``
            (which then has its own class embedding and map): the model also learns p(codes), for
            classifier-free guidance at sampling (`funcodec_lite.lm.pixelsnail_sampling`). 0: no such label.

    The baseline's released prior is ``class_dim=0, class_map=True, shifted_stems=True``
    (`funcodec_lite.convert.dcase_baseline`): its class map is its ``embedNet`` evaluated per class.
    """

    height: int = 20
    width: int = 86
    n_codes: int = 512
    n_classes: int = 7
    channel: int = 256
    kernel_size: int = 5
    n_block: int = 4
    n_res_block: int = 4
    res_channel: int = 256
    attention: bool = True
    n_head: int = 8
    dropout: float = 0.1
    attention_dropout: float | None = None
    n_out_res_block: int = 0
    n_cond_res_block: int = 0
    class_dim: int = 256
    class_map: bool = True
    shifted_stems: bool = False
    raster: str = "row"
    label_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.raster not in RASTERS:
            raise ValueError(f"raster must be one of {RASTERS}, got {self.raster!r}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {self.kernel_size}")
        if self.n_cond_res_block != 0:
            raise ValueError("n_cond_res_block must be 0: only class conditioning is supported")
        if self.attention and (self.channel // 2) % self.n_head:
            raise ValueError(f"channel // 2 = {self.channel // 2} is not a multiple of n_head={self.n_head}")


    @property
    def n_labels(self) -> int:
        """Labels the model knows: the classes, and the "no class" label ``n_classes`` with label dropout."""
        return self.n_classes + (self.label_dropout > 0)

    @property
    def raster_shape(self) -> tuple[int, int]:
        """(rows, columns) of the map the model runs on: (H, W), or (W, H) for the column raster."""
        return (self.height, self.width) if self.raster == "row" else (self.width, self.height)


class PriorLoss(NamedTuple):
    """Result of `PixelSNAIL.loss`.

    Attributes:
        loss (torch.Tensor): mean cross-entropy per code (nats), a scalar.
        accuracy (torch.Tensor): fraction of positions whose most likely code is the true one, a scalar.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor


class PixelBlock(nn.Module):
    """Causal gated residual blocks, then (optionally) causal attention mixed back in by a gated block.

    Keys and values are read from [block input, res-block output, background], queries from
    [res-block output, background]; without attention a 1 x 1 convolution mixes in the background.
    """

    def __init__(self, config: PixelSNAILConfig) -> None:
        super().__init__()
        c = config.channel
        self.res_blocks = nn.ModuleList(
            GatedResBlock(c, config.res_channel, config.kernel_size, class_dim=config.class_dim,
                          class_map=config.class_map, dropout=config.dropout)
            for _ in range(config.n_res_block)
        )
        self.attention: CausalAttention | None = None
        if config.attention:
            self.key_block = GatedResBlock(2 * c + 2, c, 1, dropout=config.dropout)
            self.query_block = GatedResBlock(c + 2, c, 1, dropout=config.dropout)
            weights_dropout = config.dropout if config.attention_dropout is None else config.attention_dropout
            self.attention = CausalAttention(c + 2, 2 * c + 2, c // 2, config.n_head, weights_dropout)
            self.out_block = GatedResBlock(c, c, 1, aux_channels=c // 2, dropout=config.dropout)
        else:
            self.out_conv = CausalConv2d(c + 2, c)

    def forward(self, x: torch.Tensor, background: torch.Tensor, class_vec: torch.Tensor | None,
                class_map: torch.Tensor | None) -> torch.Tensor:
        """x [B, C, H, W], background [B, 2, H, W], class_vec [B, class_dim], class_map [B, 1, H, W]
        -> [B, C, H, W]."""
        out = x
        for block in self.res_blocks:
            out = block(out, class_vec=class_vec, class_map=class_map)
        if self.attention is None:
            return self.out_conv(torch.cat([out, background], 1))
        key = self.key_block(torch.cat([x, out, background], 1))
        query = self.query_block(torch.cat([out, background], 1))
        return self.out_block(out, self.attention(query, key))

    def step(self, cache: StepCache, x: torch.Tensor, background: torch.Tensor,
             class_vec: torch.Tensor | None, class_map: torch.Tensor | None, i: int, j: int) -> torch.Tensor:
        """``forward`` at (i, j): x [B, C], background [B, 2], class_vec [B, class_dim], class_map [B, 1]
        -> [B, C]."""
        out = x
        for block in self.res_blocks:
            out = block.step(cache, out, i, j, class_vec=class_vec, class_map=class_map)
        if self.attention is None:
            return self.out_conv.step(cache, torch.cat([out, background], 1), i, j)
        key = self.key_block.step(cache, torch.cat([x, out, background], 1), i, j)
        query = self.query_block.step(cache, torch.cat([out, background], 1), i, j)
        return self.out_block.step(cache, out, i, j, aux=self.attention.step(cache, query, key, i, j))


class PixelSNAIL(nn.Module):
    """Autoregressive prior p(codes | class) over H x W code maps in raster order (row-major, or column-major
    with ``raster="column"``: then it runs on the transposed map, see `to_raster`; rows and columns below
    are those of the map it runs on).

    The logits at position (i, j) depend only on the codes before it in raster order and on the class.
    Two stems start the causal stream: one reads the k // 2 rows above (columns j - k // 2 .. j + k // 2),
    the other rows i - k // 2 .. i, columns strictly left of j. Then ``n_block`` PixelBlocks (causal
    gated residual blocks conditioned on the class, causal attention over the raster order with the
    two coordinate maps as background), 1 x 1 output blocks and a 1 x 1 convolution to the logits.

    ``forward`` computes every position at once; ``start``/``step``/``feed`` compute one position at a
    time from cached activations (see ``funcodec_lite.lm.pixelsnail_sampling``).
    """

    model_kind = "pixelsnail"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = PixelSNAILConfig

    def __init__(self, config: PixelSNAILConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.channel, config.kernel_size
        self.stem_above = CausalConv2d(config.n_codes, c, (k // 2, k), top=k // 2, left=k // 2)
        self.stem_left = CausalConv2d(config.n_codes, c, ((k + 1) // 2, k // 2), top=(k + 1) // 2 - 1,
                                      left=k // 2)
        self.class_embed = nn.Embedding(config.n_labels, config.class_dim) if config.class_dim else None
        rows, cols = config.raster_shape
        self.class_map = (nn.Parameter(torch.zeros(config.n_labels, rows, cols))
                          if config.class_map else None)
        self.blocks = nn.ModuleList(PixelBlock(config) for _ in range(config.n_block))
        self.out_blocks = nn.ModuleList(
            GatedResBlock(c, config.res_channel, 1, dropout=config.dropout)
            for _ in range(config.n_out_res_block)
        )
        self.head = CausalConv2d(c, config.n_codes)
        row_pos = (torch.arange(rows) - rows / 2) / rows
        col_pos = (torch.arange(cols) - cols / 2) / cols
        background = torch.stack([row_pos[:, None].expand(-1, cols), col_pos[None].expand(rows, -1)])
        self.register_buffer("background", background[None], persistent=False)  # [1, 2, H, W]

    def to_raster(self, maps: torch.Tensor) -> torch.Tensor:
        """Maps [..., H, W] -> the map the model runs on, [..., rows, cols] (transposed for the column
        raster); also from logits [B, n_codes, H, W]."""
        return maps if self.config.raster == "row" else maps.transpose(-2, -1).contiguous()

    def from_raster(self, maps: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_raster`: [..., rows, cols] -> [..., H, W]."""
        return self.to_raster(maps)  # a transposition is its own inverse

    def forward(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits of every position.

        Args:
            codes: [B, H, W] long in [0, n_codes) (row raster: also [B, h, W], the h <= H rows from the top).
            labels: [B] long class ids (``n_classes``: no class, with ``label_dropout``); in training mode a
                random ``label_dropout`` of them are replaced by ``n_classes``.
        Returns:
            [B, n_codes, H, W] (or h, W).
        """
        if self.training and self.config.label_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.config.label_dropout
            labels = labels.masked_fill(drop, self.config.n_classes)
        return self.from_raster(self.raster_forward(self.to_raster(codes), labels))

    def raster_forward(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``forward`` on the model's own map: codes [B, r, cols] (r <= rows: the naive sampler passes the
        rows decoded so far) -> logits [B, n_codes, r, cols]."""
        one_hot = F.one_hot(codes, self.config.n_codes).permute(0, 3, 1, 2)
        return self.forward_one_hot(one_hot.to(self.background.dtype), labels)

    def forward_one_hot(self, one_hot: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``raster_forward`` from one-hot (or soft) codes [B, n_codes, r, cols] -> logits
        [B, n_codes, r, cols]."""
        height, width = one_hot.shape[2:]
        rows, cols = self.config.raster_shape
        if width != cols or height > rows:
            raise ValueError(f"a {height} x {width} code map does not fit the {rows} x {cols} map of this "
                             f"model ({self.config.raster} raster)")
        above, left = self.stem_above(one_hot), self.stem_left(one_hot)
        if self.config.shifted_stems:  # row 0 / column 0 read only padding: no bias there either
            above = torch.cat([torch.zeros_like(above[:, :, :1]), above[:, :, 1:]], 2)
            left = torch.cat([torch.zeros_like(left[..., :1]), left[..., 1:]], 3)
        out = above + left
        background = self.background[:, :, :height].expand(one_hot.shape[0], -1, -1, -1)
        class_vec = None if self.class_embed is None else self.class_embed(labels)
        class_map = None if self.class_map is None else self.class_map[labels, None, :height]
        for block in self.blocks:
            out = block(out, background, class_vec, class_map)
        for block in self.out_blocks:
            out = block(out)
        return self.head(F.elu(out))

    def loss(self, codes: torch.Tensor, labels: torch.Tensor) -> PriorLoss:
        """Cross-entropy and accuracy of ``forward`` on codes [B, H, W] with labels [B]."""
        return self.objective(self(codes, labels), codes)

    @staticmethod
    def objective(logits: torch.Tensor, codes: torch.Tensor, reduction: str = "mean") -> PriorLoss:
        """Cross-entropy (nats per code) and top-1 accuracy of logits [B, n_codes, H, W] for codes [B, H, W].

        ``reduction="sum"`` sums both over positions (for averaging over a whole dataset).
        """
        loss = F.cross_entropy(logits, codes, reduction=reduction)
        hits = (logits.argmax(1) == codes).float()
        return PriorLoss(loss, hits.sum() if reduction == "sum" else hits.mean())

    def start(self, labels: torch.Tensor) -> StepCache:
        """An empty cache for generating len(labels) maps one position at a time (evaluation mode only)."""
        if self.training:
            raise RuntimeError("step-by-step evaluation needs eval mode (dropout off): call model.eval()")
        cfg = self.config
        rows, cols = cfg.raster_shape
        cache = StepCache(labels.shape[0], rows, cols, self.background.device, self.background.dtype)
        # Both stems' outputs, accumulated as codes arrive (see ``feed``); output (i, j) at [i, j + k].
        k = cfg.kernel_size
        stem = torch.zeros(cache.batch, rows + k, cols + 2 * k, cfg.channel, device=cache.device,
                           dtype=cache.dtype)
        if cfg.shifted_stems:  # no bias of the stem above in row 0, none of the stem to the left in column 0
            stem[:, 1:] += self.stem_above.bias
            stem[:, :, k + 1 :] += self.stem_left.bias
            cache.buffers[self] = stem
        else:
            cache.buffers[self] = stem + (self.stem_above.bias + self.stem_left.bias)
        embed = self.class_embed
        cache.remember(self, "class_vec", lambda: None if embed is None else embed(labels))
        if self.class_map is not None:
            cache.remember(self, "class_map", lambda: self.class_map[labels])  # [B, H, W]
        return cache

    def step(self, cache: StepCache, i: int, j: int) -> torch.Tensor:
        """Logits at (i, j) of the model's own map (`to_raster`), [B, n_codes], given that ``feed`` stored
        every code before (i, j) in its raster order."""
        class_vec = cache.memo[(self, "class_vec")]
        class_map = None if self.class_map is None else cache.memo[(self, "class_map")][:, i, j, None]
        background = self.background[0, :, i, j].expand(cache.batch, 2)
        out = cache.buffers[self][:, i, j + self.config.kernel_size]
        for block in self.blocks:
            out = block.step(cache, out, background, class_vec, class_map, i, j)
        for block in self.out_blocks:
            out = block.step(cache, out, i, j)
        return self.head.step(cache, F.elu(out), i, j)

    def feed(self, cache: StepCache, codes: torch.Tensor, i: int, j: int) -> None:
        """Stores the codes [B] chosen at (i, j) for the steps after it."""
        stem, k = cache.buffers[self], self.config.kernel_size
        self.stem_above.push_codes(cache, stem, codes, i, j, k)
        self.stem_left.push_codes(cache, stem, codes, i, j, k)
