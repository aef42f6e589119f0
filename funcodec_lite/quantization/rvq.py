"""Residual vector quantizer (SoundStream/EnCodec/FunCodec) with variable-bitrate quantizer dropout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .codebook import EuclideanCodebook
from .distributed import global_rows
from .search import DEFAULT_MAX_ROWS

# Odd 64-bit constants used to derive independent RNG streams from (step, stream id).
_STEP_MIX = 0x9E3779B97F4A7C15
_STREAM_MIX = 0xBF58476D1CE4E5B9
_DROPOUT_STREAM = 0
QUANTIZER_KINDS = ("rvq", "fsq")


@dataclass
class RVQConfig:
    """Quantizer settings (field names are the YAML keys): residual VQ, or residual FSQ (`fsq.py`).

    Attributes:
        kind: ``rvq`` (residual VQ with EMA codebooks) or ``fsq`` (residual finite scalar quantization;
            it uses ``levels``, ``dim``, ``n_q`` and the dropout fields, and ignores the codebook ones).
        dim: latent dimension D.
        n_q: number of layers (codebooks).
        codebook_size: codes per layer K. Left out (None): 1024 for ``rvq``, prod(levels) for ``fsq``
            (where a value given must equal that product).
        levels: FSQ only: quantization levels per projected channel, each >= 3 (e.g. [8, 5, 5, 5]:
            1000 codes, comparable with 1024-code RVQ).
        decay: EMA decay of the codebook statistics.
        epsilon: Laplace smoothing of cluster sizes.
        kmeans_init: initialise each codebook by k-means on the first training batch.
        kmeans_iters: k-means iterations.
        threshold_ema_dead_code: absolute EMA cluster size below which a code is revived (EnCodec's
            rule, 2.0 there; 0: off). At small batches it marks nearly every code dead.
        dead_code_ratio: relative threshold: a code is revived when its EMA cluster size falls below
            this fraction of the uniform share (EMA vectors per step / codebook_size); 0: off. The
            larger of the two thresholds applies.
        revival_grace: steps a revived code survives unused before it can be revived again.
        quantizer_dropout: in training, when the caller gives no n_q, use a random number of layers.
        dropout_choices: values n_q is drawn from (e.g. FunCodec's [1, 2, 4, 8, 16, 32]);
            None: uniform over 1..n_q.
        dropout_per_item: 0: one n_q per batch; p > 0: each batch item independently, with
            probability p, gets its own random n_q, the others use all n_q layers.
    """

    kind: str = "rvq"
    dim: int = 128
    n_q: int = 32
    codebook_size: int | None = None
    levels: list[int] | None = None
    decay: float = 0.99
    epsilon: float = 1e-5
    kmeans_init: bool = True
    kmeans_iters: int = 50
    threshold_ema_dead_code: float = 0.0
    dead_code_ratio: float = 0.1
    revival_grace: int = 100
    quantizer_dropout: bool = False
    dropout_choices: list[int] | None = None
    dropout_per_item: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in QUANTIZER_KINDS:
            raise ValueError(f"quantizer kind must be one of {QUANTIZER_KINDS}, got {self.kind!r}")
        if self.kind == "rvq":
            if self.levels is not None:
                raise ValueError("levels is an FSQ setting (kind: fsq)")
            self.codebook_size = 1024 if self.codebook_size is None else self.codebook_size
            return
        if not self.levels or any(type(n) is not int or n < 3 for n in self.levels):
            raise ValueError(f"kind fsq needs levels: a list of integers >= 3, got {self.levels!r}")
        self.levels = list(self.levels)
        size = math.prod(self.levels)
        if self.codebook_size not in (None, size):
            raise ValueError(f"codebook_size ({self.codebook_size}) must equal prod(levels) = {size} for "
                             "kind fsq (or be left out)")
        self.codebook_size = size


class QuantizerOutput(NamedTuple):
    """Result of `ResidualVectorQuantizer.forward`.

    Attributes:
        quantized (torch.Tensor): [B, D, T]; in training a straight-through estimate (value of the
            quantized latent, gradient of the input).
        codes (torch.Tensor): long [B, n_q, T]; -1 where an item's layer was dropped.
        commit_loss (torch.Tensor): scalar commitment loss (FunCodec Eq. 6).
        metrics (dict[str, torch.Tensor]): per layer i, scalars ``layer{i}/entropy`` (bits) and
            ``layer{i}/perplexity`` of the batch's codes, ``layer{i}/commit`` (that layer's
            commitment term, still attached to the graph: detach before logging) and, in training,
            ``layer{i}/revived`` (codes revived this step).
        n_q (int): number of layers used (the largest over items with per-item dropout).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    n_q: int


def _flatten(x: torch.Tensor) -> torch.Tensor:
    """[B, D, T] -> [B*T, D] with EnCodec's layout (a strided view for B = 1, a copy otherwise).

    The layout decides how BLAS and the row reductions round, so it is kept identical to EnCodec's
    for bit-identical codes. The result never aliases ``x``.
    """
    flat = x.transpose(1, 2).reshape(-1, x.shape[1])
    return flat.clone() if flat.data_ptr() == x.data_ptr() else flat


def _unflatten(flat: torch.Tensor, batch: int) -> torch.Tensor:
    """[B*T, D] -> [B, D, T]."""
    return flat.reshape(batch, -1, flat.shape[1]).transpose(1, 2)


def _code_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (bits) and perplexity of a code histogram [K]."""
    p = counts / counts.sum().clamp(min=1.0)
    entropy = -(p * torch.log2(p.clamp(min=1e-12))).sum()
    return entropy, torch.exp2(entropy)


def check_dropout(config: RVQConfig) -> None:
    """Raises ValueError unless ``dropout_choices`` lie in 1..n_q and ``dropout_per_item`` in [0, 1]."""
    if config.dropout_choices is not None:
        bad = [c for c in config.dropout_choices if not 1 <= c <= config.n_q]
        if bad or not config.dropout_choices:
            raise ValueError(f"dropout_choices must lie in 1..{config.n_q}, got {config.dropout_choices}")
    if not 0.0 <= config.dropout_per_item <= 1.0:
        raise ValueError(f"dropout_per_item must be in [0, 1], got {config.dropout_per_item}")


def step_generator(step: torch.Tensor, stream: int) -> torch.Generator:
    """A CPU generator seeded from a quantizer's training-step counter and a stream id."""
    seed = (int(step.item()) * _STEP_MIX + stream * _STREAM_MIX) % (2**63)
    return torch.Generator().manual_seed(seed)


def draw_dropout_n_q(
    config: RVQConfig, batch: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Quantizer dropout: per-item number of layers, long [B] (CPU), and its maximum over processes.

    Per-item draws are made for the whole batch concatenated over processes (in rank order) and
    each process keeps its own items, so a distributed batch gets the same draws as one process.
    """
    choices = torch.tensor(config.dropout_choices or list(range(1, config.n_q + 1)), dtype=torch.long)
    if config.dropout_per_item <= 0:
        n = int(choices[torch.randint(0, len(choices), (1,), generator=generator)].item())
        return torch.full((batch,), n, dtype=torch.long), n
    offset, total = global_rows(batch, device)
    own = torch.rand(total, generator=generator) < config.dropout_per_item
    pick = choices[torch.randint(0, len(choices), (total,), generator=generator)]
    drawn = torch.where(own, pick, torch.full_like(pick, config.n_q))
    return drawn[offset : offset + batch].clone(), int(drawn.max().item())


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantizer: layer i quantizes what layers 0..i-1 left over.

    Training (``module.train()``) initialises the codebooks by k-means on the first batch, updates
    them by EMA and revives dead codes; gradients reach the input through a straight-through
    estimator and through the commitment loss of every layer.

    Buffers: ``step`` (training forward count, seeds the random draws) and, per layer,
    ``layers.{i}.{inited, cluster_size, embed, embed_avg}``. A state dict without ``step`` (e.g.
    converted from EnCodec) loads; ``step`` then keeps its current value.

    Randomness and distributed training: quantizer dropout, k-means seeds and revived vectors are
    drawn from ``torch.Generator`` objects seeded from ``step`` (and the layer index), never from
    the global RNG, whose state differs between processes. Every process runs the same number of
    training forwards, so every process draws the same numbers without communication (and a
    resumed run continues the sequence, since ``step`` is saved). Per-item dropout draws for the
    whole batch concatenated over processes and each process keeps its own items; k-means seeds
    and revived vectors are picked by index in that concatenated batch (see `distributed.py`).
    With the all-reduced codebook statistics, the codebooks stay identical on every process and
    equal to those of one process given the whole batch (up to float summation order). This
    assumes every process calls ``forward`` in training the same number of times.

    Args:
        config (RVQConfig): settings.
    """

    def __init__(self, config: RVQConfig):
        super().__init__()
        if config.kind != "rvq":
            raise ValueError(f"ResidualVectorQuantizer needs kind rvq, got {config.kind!r}")
        check_dropout(config)
        self.config = config
        self.layers = nn.ModuleList(
            EuclideanCodebook(
                config.dim,
                config.codebook_size,
                decay=config.decay,
                epsilon=config.epsilon,
                kmeans_init=config.kmeans_init,
                kmeans_iters=config.kmeans_iters,
                threshold_ema_dead_code=config.threshold_ema_dead_code,
                dead_code_ratio=config.dead_code_ratio,
                revival_grace=config.revival_grace,
            )
            for _ in range(config.n_q)
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def n_q(self) -> int:
        return self.config.n_q

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.config.codebook_size)

    def n_q_for_bandwidth(self, kbps: float, frame_rate: float) -> int:
        """Layers that fit a bitrate: floor(kbps * 1000 / (log2(K) * frame_rate)), clamped to 1..n_q."""
        n = math.floor(kbps * 1000.0 / (self.bits_per_code * frame_rate) + 1e-9)
        return max(1, min(self.n_q, n))

    def _generator(self, stream: int) -> torch.Generator:
        return step_generator(self.step, stream)

    def _check_n_q(self, n_q: int | None) -> int:
        if n_q is None:
            return self.n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    def _draw_n_q(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        """Quantizer dropout: per-item number of layers (see `draw_dropout_n_q`)."""
        return draw_dropout_n_q(self.config, batch, generator, device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes of a latent; bit-identical to EnCodec's quantizer with the same codebooks.

        The search runs in float32 (or float64) whatever the latent's and codebooks' dtype, so a
        bfloat16 model gets codes from float32 distances.

        Args:
            x (torch.Tensor): latent of shape [B, D, T].
            n_q (int, optional): layers to use (default all).

        Returns:
            torch.Tensor: long codes of shape [B, n_q, T].
        """
        n_q = self._check_n_q(n_q)
        batch, _, frames = x.shape
        residual = _flatten(x.to(torch.promote_types(x.dtype, torch.float32)))
        codes = torch.empty(batch, n_q, frames, dtype=torch.long, device=x.device)
        rows = min(residual.shape[0], DEFAULT_MAX_ROWS)
        scratch = torch.empty(rows * self.config.codebook_size, dtype=residual.dtype, device=x.device)
        for i, layer in enumerate(self.layers[:n_q]):
            layer_codes = layer.encode(residual, scratch=scratch)
            layer.subtract_(residual, layer_codes)
            codes[:, i] = layer_codes.view(batch, frames)
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the codewords of each layer; negative codes (dropped layers) add nothing.

        Args:
            codes (torch.Tensor): long codes of shape [B, n, T], n <= n_q.

        Returns:
            torch.Tensor: quantized latent of shape [B, D, T], summed in float32 (or float64).
        """
        batch, n, frames = codes.shape
        if n > self.n_q:
            raise ValueError(f"got {n} code layers, the quantizer has {self.n_q}")
        dtype = torch.promote_types(self.layers[0].embed.dtype, torch.float32)
        out = torch.zeros(batch, frames, self.config.dim, device=codes.device, dtype=dtype)
        for i in range(n):
            layer_codes = codes[:, i]
            dropped = layer_codes < 0
            if bool(dropped.any()):
                out.add_(self.layers[i].decode(layer_codes.clamp(min=0)) * (~dropped).unsqueeze(-1))
            else:
                out.add_(self.layers[i].decode(layer_codes))
        return out.transpose(1, 2)

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize a latent; in training also update the codebooks.

        ``n_q`` given by the caller is honoured in training and evaluation alike; quantizer
        dropout applies only in training when ``n_q`` is None.

        Commitment loss (FunCodec Eq. 6), per item b with n_b layers, averaged over items:
        ``mse(V, RVQ(V)) + (1 / n_b) * sum_i mse(Q_{i-1}, VQ_i(Q_{i-1}))``, where Q_0 = V and
        Q_i = V minus the (detached) codewords of layers < i. Its gradient reaches V through every
        layer and never reaches the codebooks.

        Args:
            x (torch.Tensor): latent V of shape [B, D, T].
            n_q (int, optional): layers to use.

        The search, the statistics and the commitment loss run in float32 with autocast off, so
        training under bf16/fp16 mixed precision picks the same codes as `encode` (a half-precision
        distance matrix rounds near-ties differently and would train codes inference never picks).

        Returns:
            QuantizerOutput: quantized [B, D, T] (float32 or float64), codes [B, n_q, T],
            commit_loss, metrics, n_q.
        """
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._quantize(x, n_q)

    def _quantize(self, x: torch.Tensor, n_q: int | None) -> QuantizerOutput:
        batch, dim, frames = x.shape
        training = self.training
        used = self._check_n_q(n_q)
        item_n_q = torch.full((batch,), used, dtype=torch.long)
        if training and n_q is None and self.config.quantizer_dropout:
            # `used` is the same on every process, so all of them update the same layers
            item_n_q, used = self._draw_n_q(batch, self._generator(_DROPOUT_STREAM), x.device)
        item_n_q = item_n_q.to(x.device)
        row_n_q = item_n_q.repeat_interleave(frames)  # rows are (b, t) in b-major order

        x_rows = x.transpose(1, 2).reshape(-1, dim)  # differentiable view/copy of V as [B*T, D]
        residual = _flatten(x.detach())
        total = torch.zeros_like(residual)
        item_sq_err = x.new_zeros(batch)
        codes = torch.full((batch, used, frames), -1, dtype=torch.long, device=x.device)
        metrics: dict[str, torch.Tensor] = {}
        rows = min(residual.shape[0], DEFAULT_MAX_ROWS)
        scratch = torch.empty(rows * self.config.codebook_size, dtype=residual.dtype, device=x.device)
        for i, layer in enumerate(self.layers[:used]):
            active = row_n_q > i
            all_active = bool(active.all())
            if training and not layer.is_initialised:
                layer.initialise(residual if all_active else residual[active], self._generator(1 + 2 * i))
            layer_codes = layer.encode(residual, scratch=scratch)
            quantized = layer.decode(layer_codes)
            # Q_{i-1} with gradient to V: V minus the detached codewords of earlier layers.
            err = (x_rows - total - quantized).pow(2).reshape(batch, frames * dim).mean(1)
            item_active = item_n_q > i
            item_sq_err = item_sq_err + err * item_active / item_n_q
            metrics[f"layer{i}/commit"] = (err * item_active).sum() / item_active.sum().clamp(min=1)
            if not all_active:
                quantized = quantized * active.unsqueeze(1)
                layer_codes = layer_codes.masked_fill(~active, -1)
            counts = None
            if training:
                update = layer.update(
                    residual if all_active else residual[active],
                    layer_codes if all_active else layer_codes[active],
                    self._generator(2 + 2 * i),
                )
                counts = update.counts
                metrics[f"layer{i}/revived"] = torch.tensor(float(update.revived))
            residual.sub_(quantized)
            total.add_(quantized)
            codes[:, i] = layer_codes.view(batch, frames)
            if counts is None:
                valid = layer_codes[layer_codes >= 0]
                counts = torch.bincount(valid, minlength=layer.codebook_size).float()
            metrics[f"layer{i}/entropy"], metrics[f"layer{i}/perplexity"] = _code_stats(counts)
        final_err = (x_rows - total).pow(2).reshape(batch, frames * dim).mean(1)
        commit_loss = (final_err + item_sq_err).mean()
        total_bdt = _unflatten(total, batch)
        quantized_out = x + (total_bdt - x).detach() if x.requires_grad else total_bdt.contiguous()
        if training:
            self.step.add_(1)
        return QuantizerOutput(quantized_out, codes, commit_loss, metrics, used)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, *args):
        # Checkpoints converted from EnCodec have no step counter: keep ours.
        state_dict.setdefault(prefix + "step", self.step.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, *args)
