"""UniAudio's multi-scale (MegaByte-style) transformer over codec tokens, and its frame-by-frame sampler.

A **global** causal transformer runs over frames: the input of a frame is the concatenation of one learned
embedding per codebook (width ``D_g / K`` each), after the condition prefix (prefix-LM attention). Its
output at a frame position sees the frames before it; a linear map (``g2l``) turns it into one context
vector per codebook of the next frame. A small **local** causal transformer then runs over the K tokens of
that frame: the input at codebook k is the embedding of the frame's code k - 1 (nothing for k = 0) + the
global context + a learned local position, and head k predicts code k.

Token ids, EOS and the loss follow `funcodec_lite.lm.codec_lm`: ``0 .. card-1`` codes, ``card`` special
(start, padding), ``card + 1`` EOS in inputs; the heads predict ``card + 1`` classes with EOS = class
``card``, emitted only by codebook 0 at the frame after the last; prompt frames and padding are not
targets. Sampling with or without KV caches draws the same random numbers in the same order, so a seed
gives the same tokens either way (`tests/test_lm_multiscale.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.lm.codec_lm import LMBatch, LMLoss
from funcodec_lite.lm.conditioning import Conditioner
from funcodec_lite.lm.sampling import Generation, SamplingConfig, SamplingRun
from funcodec_lite.lm.transformer import KVCache, Transformer, TransformerConfig
from funcodec_lite.utils.config import build_dataclass

Prefix = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # Conditioner output: embeddings, mask, positions


def _local_default() -> TransformerConfig:
    return TransformerConfig(n_layers=2)


@dataclass
class MultiScaleConfig:
    """Settings of a `MultiScaleLM`.

    Args:
        n_q: codebooks modelled (K); ``global_transformer.dim`` must be divisible by it.
        card: codebook size.
        global_transformer: the causal stack over frames (width D_g).
        local_transformer: the causal stack over the K codes of a frame (width D_l; usually fewer layers).
        n_classes: class labels for conditioning (0: none).
        n_phonemes: phoneme vocabulary size for a phoneme prefix (0: none).
        cond_dropout: probability of dropping the conditions of an example in training (for guidance).
        label_smoothing: of the cross-entropy.
    """

    n_q: int = 4
    card: int = 1024
    global_transformer: TransformerConfig = field(default_factory=TransformerConfig)
    local_transformer: TransformerConfig = field(default_factory=_local_default)
    n_classes: int = 0
    n_phonemes: int = 0
    cond_dropout: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.n_q < 1 or self.card < 1:
            raise ValueError("need n_q >= 1 and card >= 1")
        if self.global_transformer.dim % self.n_q:
            raise ValueError(f"global dim {self.global_transformer.dim} must be divisible by n_q {self.n_q}")
        if not (self.global_transformer.causal and self.local_transformer.causal):
            raise ValueError("the global and local transformers must be causal")

    @classmethod
    def from_dict(cls, data: dict) -> MultiScaleConfig:
        return build_dataclass(cls, dict(data), "lm")

    @property
    def special(self) -> int:
        return self.card

    @property
    def eos(self) -> int:
        return self.card + 1


class MultiScaleLM(nn.Module):
    """A global transformer over frames (concatenated codebook embeddings), a local one within a frame."""

    model_kind = "multiscale_lm"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = MultiScaleConfig

    def __init__(self, config: MultiScaleConfig) -> None:
        super().__init__()
        self.config = config
        k, dim_g, dim_l = config.n_q, config.global_transformer.dim, config.local_transformer.dim
        self.embeddings = nn.ModuleList(nn.Embedding(config.card + 2, dim_g // k) for _ in range(k))
        self.conditioner = Conditioner(dim_g, config.n_classes, config.n_phonemes)
        self.global_transformer = Transformer(config.global_transformer)
        self.g2l = nn.Linear(dim_g, k * dim_l)
        # local input of codebook q > 0: the frame's code q - 1 (table q - 1); codebook 0 starts from the
        # global context and its learned position alone (UniAudio's local start token)
        self.local_embeddings = nn.ModuleList(nn.Embedding(config.card + 2, dim_l) for _ in range(k - 1))
        self.local_position = nn.Parameter(torch.randn(k, dim_l) * 0.02)
        self.local_transformer = Transformer(config.local_transformer)
        self.heads = nn.ModuleList(nn.Linear(dim_l, config.card + 1) for _ in range(k))

    @property
    def n_q(self) -> int:
        return self.config.n_q

    # --------------------------------------------------------------------------------------------
    def condition(self, labels: torch.Tensor | None, phonemes: torch.Tensor | None,
                  phoneme_lengths: torch.Tensor | None, batch: int, device: torch.device,
                  drop: torch.Tensor | None = None) -> Prefix:
        """The condition prefix of the global stack (see `Conditioner`)."""
        return self.conditioner(batch, device, labels, phonemes, phoneme_lengths, drop)

    def start_frame(self, batch: int, device: torch.device) -> torch.Tensor:
        """The global start frame [B, K, 1]: every codebook the special token."""
        return torch.full((batch, self.n_q, 1), self.config.special, dtype=torch.long, device=device)

    def global_hidden(self, frames: torch.Tensor, prefix: Prefix, cache: KVCache | None = None,
                      start: torch.Tensor | None = None) -> torch.Tensor:
        """Global outputs [B, S, D_g] over input frames [B, K, S] (ids < card + 2); output s sees frames <= s.

        ``prefix`` is `condition`'s output (fed only on the first call with a cache); ``start`` [B] is the
        rotary position of the first frame (default: the number of real prefix tokens).
        """
        embedded, mask, positions = prefix
        b, _, s = frames.shape
        x = torch.cat([table(frames[:, q]) for q, table in enumerate(self.embeddings)], dim=-1)
        start = mask.sum(dim=1) if start is None else start
        steps = start[:, None] + torch.arange(s, device=frames.device)[None]
        if (cache is None or cache.length == 0) and embedded.shape[1]:
            p = embedded.shape[1]
            key_mask = torch.cat([mask, torch.ones(b, s, dtype=torch.bool, device=x.device)], dim=1)
            hidden = self.global_transformer(torch.cat([embedded, x], dim=1), key_mask,
                                             torch.cat([positions, steps], dim=1),
                                             prefix=torch.full((b,), p, device=x.device), cache=cache)
            return hidden[:, p:]
        return self.global_transformer(x, None, steps, cache=cache)

    def to_local(self, hidden: torch.Tensor) -> torch.Tensor:
        """Global outputs [..., D_g] -> the K local contexts [..., K, D_l] of the next frame."""
        return self.g2l(hidden).unflatten(-1, (self.n_q, self.config.local_transformer.dim))

    def local_logits(self, context: torch.Tensor, codes: torch.Tensor, first: int = 0,
                     stop: int | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """Logits [N, stop - first, card + 1] of codebooks ``first .. stop - 1`` of a frame.

        Args:
            context: [N, K, D_l] the frame's local contexts (`to_local`).
            codes: [N, >= stop - 1] the frame's codes from codebook 0 (ids < card + 2); codebook q's input is
                code q - 1.
            first, stop: the codebooks fed (default: all); with a cache, ``first`` is its length.
            cache: the local stack's cache of this frame's earlier codebooks; extended in place.
        """
        stop = self.n_q if stop is None else stop
        x = context[:, first:stop] + self.local_position[first:stop]
        inputs = [self.local_embeddings[q - 1](codes[:, q - 1]) if q else torch.zeros_like(x[:, 0])
                  for q in range(first, stop)]
        x = x + torch.stack(inputs, dim=1)
        positions = torch.arange(first, stop, device=x.device).expand(x.shape[0], -1)
        out = self.local_transformer(x, positions=positions, cache=cache)
        return torch.stack([self.heads[q](out[:, i]) for i, q in enumerate(range(first, stop))], dim=1)

    def forward(self, codes: torch.Tensor, prefix: Prefix) -> torch.Tensor:
        """Teacher-forced logits [B, K, T, card + 1] of every code of ``codes`` [B, K, T] (ids < card + 2),
        each from the frames before it and the codes of its frame before it."""
        b, k, t = codes.shape
        inputs = torch.cat([self.start_frame(b, codes.device), codes[:, :, :-1]], dim=-1)
        context = self.to_local(self.global_hidden(inputs, prefix))  # [B, T, K, D_l]
        frames = codes.transpose(1, 2).reshape(b * t, k)
        logits = self.local_logits(context.flatten(0, 1), frames)  # [B * T, K, V]
        return logits.view(b, t, k, -1).transpose(1, 2)

    # --------------------------------------------------------------------------------------------
    def training_codes(self, batch: LMBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's codes [B, K, T + 1] with EOS at codebook 0 of each item's frame ``frames`` and the
        special token past it, and the target weight [B, K, T + 1] (codes after the prompt, and EOS)."""
        codes, frames, config = batch.codes, batch.frames, self.config
        b, k, t = codes.shape
        index = torch.arange(t + 1, device=codes.device)
        extended = F.pad(codes, (0, 1), value=config.special)
        real = index[None] < frames[:, None]  # [B, T + 1]
        extended = torch.where(real[:, None], extended, torch.full_like(extended, config.special))
        is_eos = index[None] == frames[:, None]
        extended[:, 0] = torch.where(is_eos, torch.full_like(extended[:, 0], config.eos), extended[:, 0])
        target = (real & (index[None] >= batch.prompt_frames[:, None]))[:, None].expand(b, k, t + 1).clone()
        target[:, 0] |= is_eos
        return extended, target

    def loss(self, batch: LMBatch, drop: torch.Tensor | None = None) -> LMLoss:
        """Cross-entropy of the batch's target codes (and EOS), prompt and padding excluded."""
        codes, weight = self.training_codes(batch)
        b = codes.shape[0]
        if drop is None and self.training and self.config.cond_dropout > 0:
            drop = torch.rand(b, device=codes.device) < self.config.cond_dropout
        prefix = self.condition(batch.labels, batch.phonemes, batch.phoneme_lengths, b, codes.device, drop)
        logits = self(codes, prefix).float()  # [B, K, T + 1, V]
        card = self.config.card
        targets = torch.where(codes == self.config.eos, torch.full_like(codes, card), codes)
        targets = torch.where(weight, targets, torch.zeros_like(targets))
        nll = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none",
                              label_smoothing=self.config.label_smoothing).view_as(targets)
        plain = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none").view_as(targets)
        w = weight.float()
        tokens = w.sum()
        per_codebook = (plain * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp_min(1)
        correct = ((logits.argmax(-1) == targets) & weight).sum()
        return LMLoss((nll * w).sum() / tokens.clamp_min(1), per_codebook.detach(),
                      correct.float() / tokens.clamp_min(1), tokens)


@torch.no_grad()
def generate_multiscale(model: MultiScaleLM, batch_size: int, max_frames: int | torch.Tensor,
                        config: SamplingConfig | None = None, prompt: torch.Tensor | None = None,
                        labels: torch.Tensor | None = None, phonemes: torch.Tensor | None = None,
                        phoneme_lengths: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> Generation:
    """Samples frames after an optional prompt: per frame one global step, then K local steps.

    With ``config.use_cache`` the global stack keeps a KV cache across frames (the prompt enters in one
    call) and the local stack one within each frame; without it, every step recomputes from the start.
    ``Generation.steps`` counts the model calls: one global and K local per generated frame.

    Args:
        model: the LM (eval mode is set here).
        batch_size: B.
        max_frames: frames to generate at most, one number or one per item [B].
        config: sampling settings (temperature, top-k/p, guidance, min_frames, use_cache).
        prompt: [B, K, Tp] codes that the generated frames continue, or None.
        labels, phonemes, phoneme_lengths: the conditions, as in training.
        generator: the random source (CPU), for reproducible draws.
    """
    run = SamplingRun(model, batch_size, max_frames, config, prompt, labels, phonemes, phoneme_lengths,
                      generator)
    b, k, tp, prefix = batch_size, run.lm.n_q, run.prompt_frames, run.prefix
    sequence = torch.full((b, k, run.total), run.lm.special, dtype=torch.long, device=run.device)
    if tp:
        sequence[:, :, :tp] = prompt.to(run.device)
    first = prefix[1].sum(dim=1)  # rotary position of the start frame
    start = model.start_frame(b, run.device)
    global_cache = model.global_transformer.new_cache() if run.config.use_cache else None
    for t in range(tp, run.total):
        if global_cache is None:
            hidden = model.global_hidden(run.expand(torch.cat([start, sequence[:, :, :t]], dim=-1)), prefix)
        elif t == tp:  # the start frame and the whole prompt at once
            hidden = model.global_hidden(run.expand(torch.cat([start, sequence[:, :, :t]], dim=-1)), prefix,
                                         global_cache, first)
        else:
            previous = run.expand(sequence[:, :, t - 1 : t])
            hidden = model.global_hidden(previous, prefix, global_cache, first + t)
        context = model.to_local(hidden[:, -1])  # [rows, K, D_l]
        local_cache = model.local_transformer.new_cache() if run.config.use_cache else None
        for q in range(k):
            frame = run.expand(sequence[:, :, t])
            if local_cache is None:
                logits = model.local_logits(context, frame, 0, q + 1)[:, -1:]
            else:
                logits = model.local_logits(context, frame, q, q + 1, local_cache)
            value = run.draw(run.guide(logits), [q], [t])[:, 0]
            sequence[:, q, t] = run.accept(q, t, value)
        run.calls += 1 + k
        if bool((run.end <= t + 1).all()):
            break
    return run.result(sequence[:, :, tp:])
