"""VALL-E's non-autoregressive stage: codebooks 1..K-1, one per pass, frame-aligned and bidirectional.

Given codebook 0 of every frame (from the autoregressive model) and the conditions, pass j predicts
codebook j of all target frames at once from the sum of the embeddings of codebooks 0..j-1 and a stage
embedding. The acoustic prompt's frames enter with all K codebooks. Training draws the stage j of each
example uniformly from 1..K-1 (as VALL-E). VALL-E feeds the stage through adaptive LayerNorm; here the stage
embedding is added to every frame's input, which serves the same purpose with the shared transformer core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.lm.codec_lm import LMBatch, LMLoss, init_embeddings
from funcodec_lite.lm.conditioning import Conditioner
from funcodec_lite.lm.transformer import Transformer, TransformerConfig
from funcodec_lite.utils.config import build_dataclass


@dataclass
class NARConfig:
    """Settings of a `NARCodecLM` (``transformer.causal`` must be False)."""

    n_q: int = 8
    card: int = 1024
    transformer: TransformerConfig = field(default_factory=lambda: TransformerConfig(causal=False))
    n_classes: int = 0
    n_phonemes: int = 0
    cond_dropout: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.n_q < 2:
            raise ValueError("the non-autoregressive stage needs n_q >= 2 (codebooks 1..K-1)")
        if self.transformer.causal:
            raise ValueError("the non-autoregressive stage is bidirectional: set transformer.causal false")

    @classmethod
    def from_dict(cls, data: dict) -> NARConfig:
        return build_dataclass(cls, dict(data), "nar")


class NARCodecLM(nn.Module):
    """Predicts codebook j in [1, K) of every frame from codebooks 0..j-1 (VALL-E's NAR decoder)."""

    model_kind = "nar_lm"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = NARConfig

    def __init__(self, config: NARConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.transformer.dim
        self.embeddings = nn.ModuleList(nn.Embedding(config.card + 1, dim) for _ in range(config.n_q))
        self.stage_embedding = nn.Embedding(config.n_q, dim)
        self.heads = nn.ModuleList(nn.Linear(dim, config.card) for _ in range(config.n_q - 1))
        self.conditioner = Conditioner(dim, config.n_classes, config.n_phonemes)
        self.transformer = Transformer(config.transformer)

    def init_from_codebooks(self, codebooks: torch.Tensor) -> None:
        """Sets the code rows of the embedding tables from the codec's codebooks [K', card, D'] (K' >= K)."""
        init_embeddings(self.embeddings, codebooks, self.config.card)

    def forward(self, codes: torch.Tensor, frames: torch.Tensor, prompt_frames: torch.Tensor,
                stage: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Logits [B, T, card] of codebook ``stage`` [B] (values in 1..K-1) at every frame.

        Args:
            codes: [B, K, T]; codebooks >= stage of target frames are ignored.
            frames: [B] real frames (prompt included); prompt_frames: [B] leading prompt frames.
            prefix: the `Conditioner`'s (embeddings, key mask, positions).
        """
        b, k, t = codes.shape
        index = torch.arange(t, device=codes.device)
        in_prompt = index[None] < prompt_frames[:, None]  # [B, T]
        books = torch.arange(k, device=codes.device)
        use = (books[None, :, None] < stage[:, None, None]) | in_prompt[:, None]  # [B, K, T]
        x = sum(table(codes[:, q].clamp(0, self.config.card - 1)) * use[:, q, :, None]
                for q, table in enumerate(self.embeddings))
        x = x + self.stage_embedding(stage)[:, None]
        embedded, mask, positions = prefix
        real = index[None] < frames[:, None]
        hidden = self.transformer(torch.cat([embedded, x], dim=1), torch.cat([mask, real], dim=1),
                                  torch.cat([positions, mask.sum(dim=1, keepdim=True) + index[None]], dim=1))
        hidden = hidden[:, embedded.shape[1]:]
        logits = torch.stack([head(hidden) for head in self.heads], dim=1)  # [B, K-1, T, card]
        return logits[torch.arange(b, device=codes.device), stage - 1]

    def loss(self, batch: LMBatch, stage: torch.Tensor | None = None,
             drop: torch.Tensor | None = None) -> LMLoss:
        """Cross-entropy of codebook ``stage`` (default: uniform in 1..K-1 per example), target frames."""
        codes = batch.codes
        b, k, t = codes.shape
        device = codes.device
        if stage is None:
            stage = torch.randint(1, k, (b,), device=device)
        if drop is None and self.training and self.config.cond_dropout > 0:
            drop = torch.rand(b, device=device) < self.config.cond_dropout
        prefix = self.conditioner(b, device, batch.labels, batch.phonemes, batch.phoneme_lengths, drop)
        logits = self(codes, batch.frames, batch.prompt_frames, stage, prefix)
        targets = codes[torch.arange(b, device=device), stage]  # [B, T]
        index = torch.arange(t, device=device)[None]
        weight = (index >= batch.prompt_frames[:, None]) & (index < batch.frames[:, None])
        w = weight.float()
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none",
                              label_smoothing=self.config.label_smoothing).view(b, t)
        plain = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view(b, t)
        per_item = (plain * w).sum(dim=1)
        per_codebook = torch.zeros(k, device=device).index_add(0, stage, per_item)
        counts = torch.zeros(k, device=device).index_add(0, stage, w.sum(dim=1))
        correct = ((logits.argmax(-1) == targets) & weight).sum()
        return LMLoss((nll * w).sum() / w.sum().clamp_min(1), (per_codebook / counts.clamp_min(1)).detach(),
                      correct.float() / w.sum().clamp_min(1), w.sum())

    @torch.no_grad()
    def fill(self, codes: torch.Tensor, frames: torch.Tensor, prompt_frames: torch.Tensor,
             labels: torch.Tensor | None = None, phonemes: torch.Tensor | None = None,
             phoneme_lengths: torch.Tensor | None = None, temperature: float = 0.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Codebooks 1..K-1 of the target frames from codebook 0 (and the prompt's full codes), in K-1
        passes. ``temperature`` 0 takes the arg-max (as VALL-E); > 0 samples. Returns codes [B, K, T]."""
        self.eval()
        codes = codes.clone()
        b, k, t = codes.shape
        prefix = self.conditioner(b, codes.device, labels, phonemes, phoneme_lengths)
        index = torch.arange(t, device=codes.device)[None]
        target = (index >= prompt_frames[:, None]) & (index < frames[:, None])
        for j in range(1, k):
            stage = torch.full((b,), j, dtype=torch.long, device=codes.device)
            logits = self(codes, frames, prompt_frames, stage, prefix).float()
            if temperature > 0:
                probs = F.softmax(logits / temperature, dim=-1).flatten(0, 1).cpu()
                drawn = torch.multinomial(probs, 1, generator=generator).view(b, t).to(codes.device)
            else:
                drawn = logits.argmax(dim=-1)
            codes[:, j] = torch.where(target, drawn, codes[:, j])
        return codes

    @torch.no_grad()
    def continue_prompt(self, first: torch.Tensor, prompt: torch.Tensor | None = None,
                        labels: torch.Tensor | None = None, phonemes: torch.Tensor | None = None,
                        phoneme_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """All K codebooks of generated frames from their codebook 0 ``first`` [B, T] (the AR stage's
        output), reading the acoustic prompt's full codes ``prompt`` [B, >= K, Tp]. Returns [B, K, T]."""
        b, t = first.shape
        k, device = self.config.n_q, first.device
        tp = 0 if prompt is None else prompt.shape[-1]
        if prompt is not None and prompt.shape[1] < k:
            raise ValueError(f"the NAR model reads {k} codebooks of the prompt, it has {prompt.shape[1]}")
        codes = torch.zeros(b, k, tp + t, dtype=torch.long, device=device)
        if prompt is not None:
            codes[:, :, :tp] = prompt[:, :k]
        codes[:, 0, tp:] = first
        frames = torch.full((b,), tp + t, device=device)
        prompt_frames = torch.full((b,), tp, device=device)
        filled = self.fill(codes, frames, prompt_frames, labels, phonemes, phoneme_lengths)
        return filled[:, :, tp:]
