"""An autoregressive language model over codec tokens laid out by a codebook pattern (MusicGen, VALL-E AR).

The input at each pattern step is the sum of one learned embedding per codebook (a table per codebook,
optionally initialised from the codec's own codebooks); K output heads predict the codebooks of the next
step. Conditions come first as a prefix that every position sees (prefix-LM): a class label, a sequence
of phonemes, or both; either can be dropped in training for classifier-free guidance. An acoustic prompt
is simply the first frames of the token sequence, excluded from the loss.

Token ids inside the model: ``0 .. card-1`` codes, ``card`` the special (start, padding, empty) token,
``card + 1`` end-of-sequence. The heads predict ``card + 1`` classes: the codes and EOS (class ``card``),
which only codebook 0 may emit, at the frame after the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.lm.conditioning import Conditioner
from funcodec_lite.lm.patterns import Pattern, make_pattern
from funcodec_lite.lm.transformer import KVCache, Transformer, TransformerConfig
from funcodec_lite.utils.config import build_dataclass


@dataclass
class CodecLMConfig:
    """Settings of a `CodecLM`.

    Args:
        n_q: codebooks modelled (K).
        card: codebook size.
        pattern: ``parallel``, ``delay`` or ``flatten`` (see `funcodec_lite.lm.patterns`).
        pattern_options: extra arguments of the pattern (e.g. ``delays``).
        transformer: the causal stack.
        n_classes: class labels for conditioning (0: none).
        n_phonemes: phoneme vocabulary size for a phoneme prefix (0: none).
        cond_dropout: probability of dropping the conditions of an example in training (classifier-free
            guidance learns the unconditional model from these).
        label_smoothing: of the cross-entropy.
    """

    n_q: int = 4
    card: int = 1024
    pattern: str = "delay"
    pattern_options: dict = field(default_factory=dict)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    n_classes: int = 0
    n_phonemes: int = 0
    cond_dropout: float = 0.0
    label_smoothing: float = 0.0

    @classmethod
    def from_dict(cls, data: dict) -> CodecLMConfig:
        return build_dataclass(cls, dict(data), "lm")

    @property
    def special(self) -> int:
        return self.card

    @property
    def eos(self) -> int:
        return self.card + 1


class LMBatch(NamedTuple):
    """A training batch: codes [B, K, T] (padded), frames [B] (target length incl. the prompt),
    prompt_frames [B] (leading frames excluded from the loss), phonemes [B, P] and phoneme_lengths [B]
    (or None), labels [B] (or None)."""

    codes: torch.Tensor
    frames: torch.Tensor
    prompt_frames: torch.Tensor
    phonemes: torch.Tensor | None = None
    phoneme_lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class LMLoss(NamedTuple):
    loss: torch.Tensor
    nll_per_codebook: torch.Tensor  # [K] mean NLL (nats) of the code targets of each codebook
    accuracy: torch.Tensor
    tokens: torch.Tensor  # number of code targets


def frame_index(pattern: Pattern, frames: int, device: torch.device | None = None) -> torch.Tensor:
    """[K, S] frame of each pattern position for ``frames`` frames, -1 where no code sits."""
    index = torch.arange(frames, device=device).expand(1, pattern.n_q, frames)
    sequence, valid = pattern.build(index, special=-1)
    return torch.where(valid.to(sequence.device), sequence[0], torch.full_like(sequence[0], -1))


def init_embeddings(tables: nn.ModuleList, codebooks: torch.Tensor, card: int) -> None:
    """Sets rows 0..card-1 of each embedding table [>= card, D] from codebook k of [K', card, D'] (K' >= K):
    the codec's own code vectors, mapped to width D by a fixed random projection when D' != D and scaled to
    the table's initial spread, so that codes close in the codec start close in the LM."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for k, table in enumerate(tables):
            book = codebooks[k].float().to(table.weight.device)
            dim = table.weight.shape[1]
            if book.shape[1] != dim:
                projection = torch.randn(book.shape[1], dim, generator=generator) / book.shape[1] ** 0.5
                book = book @ projection.to(book.device)
            table.weight[:card] = book / book.std().clamp_min(1e-8) * table.weight.std()


class CodecLM(nn.Module):
    """Autoregressive codec-token LM: per-codebook embeddings summed, a causal transformer, K heads."""

    model_kind = "codec_lm"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = CodecLMConfig

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__()
        self.config = config
        self.pattern = make_pattern(config.pattern, config.n_q, **config.pattern_options)
        dim = config.transformer.dim
        self.embeddings = nn.ModuleList(nn.Embedding(config.card + 2, dim) for _ in range(config.n_q))
        self.heads = nn.ModuleList(nn.Linear(dim, config.card + 1) for _ in range(config.n_q))
        self.conditioner = Conditioner(dim, config.n_classes, config.n_phonemes)
        self.transformer = Transformer(config.transformer)

    @property
    def n_q(self) -> int:
        return self.config.n_q

    def init_from_codebooks(self, codebooks: torch.Tensor) -> None:
        """Sets the code rows of the embedding tables from the codec's codebooks [K', card, D'] (K' >= K)."""
        init_embeddings(self.embeddings, codebooks, self.config.card)

    # --------------------------------------------------------------------------------------------
    def condition(self, labels: torch.Tensor | None, phonemes: torch.Tensor | None,
                  phoneme_lengths: torch.Tensor | None, batch: int, device: torch.device,
                  drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The condition prefix (see `Conditioner`)."""
        return self.conditioner(batch, device, labels, phonemes, phoneme_lengths, drop)

    def embed(self, sequence: torch.Tensor) -> torch.Tensor:
        """Pattern steps [B, K, S] (ids < card + 2) -> [B, S, D], the sum over codebooks."""
        return sum(table(sequence[:, k]) for k, table in enumerate(self.embeddings))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, S, D] -> [B, K, S, card + 1]."""
        return torch.stack([head(hidden) for head in self.heads], dim=1)

    def forward(self, sequence: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                cache: KVCache | None = None, start: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, K, S, card + 1] of the steps after each of ``sequence`` [B, K, S].

        ``prefix`` is `condition`'s output (fed only on the first call with a cache); ``start`` [B] is the
        rotary position of the sequence's first step (default: the number of real prefix tokens).
        """
        embedded, mask, positions = prefix
        b, _, s = sequence.shape
        first = cache is None or cache.length == 0
        if start is None:
            start = mask.sum(dim=1)
        steps = start[:, None] + torch.arange(s, device=sequence.device)[None]
        x = self.embed(sequence)
        if first and embedded.shape[1]:
            x = torch.cat([embedded, x], dim=1)
            key_mask = torch.cat([mask, torch.ones(b, s, dtype=torch.bool, device=x.device)], dim=1)
            hidden = self.transformer(x, key_mask, torch.cat([positions, steps], dim=1),
                                      prefix=torch.full((b,), embedded.shape[1], device=x.device),
                                      cache=cache)
            hidden = hidden[:, embedded.shape[1]:]
        else:
            hidden = self.transformer(x, None, steps, cache=cache)
        return self.logits(hidden)

    # --------------------------------------------------------------------------------------------
    def training_sequence(self, batch: LMBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The pattern sequence [B, K, S] of the batch (EOS after each item's last frame) and the target
        weight [B, K, S] (1 where a code or EOS is to be predicted, 0 for prompt, padding, empty)."""
        config = self.config
        codes, frames = batch.codes, batch.frames
        b, k, t = codes.shape
        device = codes.device
        index = torch.arange(t + 1, device=device)
        extended = torch.full((b, k, t + 1), config.special, dtype=torch.long, device=device)
        extended[:, :, :t] = codes
        real = index[None, :] < frames[:, None]  # [B, T + 1]
        extended = torch.where(real[:, None], extended, torch.full_like(extended, config.special))
        is_eos = index[None, :] == frames[:, None]
        extended[:, 0] = torch.where(is_eos, torch.full_like(extended[:, 0], config.eos), extended[:, 0])
        sequence, _ = self.pattern.build(extended, config.special)
        where = frame_index(self.pattern, t + 1, device)  # [K, S]
        frame = where[None].expand(b, -1, -1)
        target = (frame >= batch.prompt_frames[:, None, None]) & (frame < frames[:, None, None])
        eos_target = torch.zeros_like(target)
        eos_target[:, 0] = frame[:, 0] == frames[:, None]
        return sequence, target | eos_target

    def loss(self, batch: LMBatch, drop: torch.Tensor | None = None) -> LMLoss:
        """Cross-entropy of the batch's target codes (and EOS), prompt and padding excluded."""
        sequence, weight = self.training_sequence(batch)
        b = sequence.shape[0]
        if drop is None and self.training and self.config.cond_dropout > 0:
            drop = torch.rand(b, device=sequence.device) < self.config.cond_dropout
        prefix = self.condition(batch.labels, batch.phonemes, batch.phoneme_lengths, b, sequence.device, drop)
        logits = self(sequence[:, :, :-1], prefix)  # [B, K, S - 1, V]
        targets = sequence[:, :, 1:]
        weight = weight[:, :, 1:]
        targets = torch.where(targets == self.config.eos, torch.full_like(targets, self.config.card), targets)
        targets = torch.where(weight, targets, torch.zeros_like(targets))
        nll = F.cross_entropy(logits.flatten(0, 2).float(), targets.flatten(), reduction="none",
                              label_smoothing=self.config.label_smoothing).view_as(targets)
        w = weight.float()
        loss = (nll * w).sum() / w.sum().clamp_min(1)
        plain = F.cross_entropy(logits.flatten(0, 2).float(), targets.flatten(),
                                reduction="none").view_as(targets)
        per_codebook = (plain * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp_min(1)
        correct = ((logits.argmax(-1) == targets) & weight).sum()
        return LMLoss(loss, per_codebook.detach(), correct.float() / w.sum().clamp_min(1), w.sum())
