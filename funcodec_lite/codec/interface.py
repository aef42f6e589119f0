"""``CompressionModel``: the one interface every codec of the toolkit implements.

Our own ``Codec`` and each family converted from released checkpoints (DAC, Mimi, SNAC, FunCodec's
FreqCodec, ...) are ``CompressionModel`` subclasses; the command line, the ``Tokenizer``, the dataset jobs
and the token models use only what is declared here (as audiocraft's ``CompressionModel`` does for its
codecs).

Codes are always ``long [B, K, N]``: K codebooks on one time axis of N frames at ``frame_rate``.  A family
whose codebooks run at several temporal resolutions (SNAC) keeps that layout visible through
``codebook_strides``: codebook k holds one token per ``codebook_strides[k]`` frames, and in the
``[B, K, N]`` tensor each of its tokens is repeated over the frames it spans (``codes[:, k, ::stride]``
are its own tokens; ``split_codes`` / ``join_codes`` convert to and from the native per-codebook list).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import torch
from torch import nn

from funcodec_lite.modules.conv import fold_weight_norm
from funcodec_lite.utils.weights import load_model_as, save_model_dir


class CompressionModel(nn.Module, ABC):
    """Waveform ↔ discrete codes, whatever the architecture.

    Shapes: waveforms [B, C, T] at ``sample_rate``; codes long [B, K, N] with N = ``num_frames(T)``
    (ceil(T / samples_per_frame) unless a family pads further, as SNAC does), 1 ≤ K ≤ ``n_q``.

    Subclasses set ``model_kind`` (the ``kind`` of their model directory: ``config.yaml`` with that kind,
    ``model.safetensors``, ``provenance.json``) and ``config_class``, and implement the abstract members.
    """

    model_kind: ClassVar[str]
    config_class: ClassVar[type]
    config: Any

    # ---------------------------------------------------------------------------------------------
    # What the model is
    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Audio samples per second."""

    @property
    @abstractmethod
    def channels(self) -> int:
        """Audio channels (1: mono)."""

    @property
    @abstractmethod
    def samples_per_frame(self) -> int:
        """Audio samples per step of the codes' time axis."""

    @property
    @abstractmethod
    def n_q(self) -> int:
        """Codebooks the model has (``total_codebooks``)."""

    @property
    @abstractmethod
    def codebook_sizes(self) -> tuple[int, ...]:
        """Entries of each codebook (length ``n_q``)."""

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        """Frames of the codes' time axis that one token of each codebook spans (1 for single-rate models)."""
        return (1,) * self.n_q

    @property
    def is_causal(self) -> bool:
        """True when the model streams (``streaming_encoder`` / ``streaming_decoder`` work)."""
        return False

    @property
    def frame_rate(self) -> float:
        """Steps of the codes' time axis per second."""
        return self.sample_rate / self.samples_per_frame

    @property
    def codebook_size(self) -> int:
        """Entries of the largest codebook (a vocabulary that holds every codebook's tokens)."""
        return max(self.codebook_sizes)

    @property
    def total_codebooks(self) -> int:
        return self.n_q

    @property
    def num_codebooks(self) -> int:
        """Codebooks ``encode`` returns when not told (``set_num_codebooks``; default all)."""
        return getattr(self, "_num_codebooks", None) or self.n_q

    @property
    def min_samples(self) -> int:
        """Fewest samples ``encode`` accepts (callers zero-pad shorter windows and cut the extra frames)."""
        return 1

    def num_frames(self, num_samples: int) -> int:
        """Frames N of the codes ``encode`` gives for ``num_samples`` samples (0 for an empty signal)."""
        return -(-num_samples // self.samples_per_frame) if num_samples > 0 else 0

    @property
    def frame_alignment(self) -> int:
        """Frames a window of the codes' time axis must start on to keep every codebook's token grid
        (the least common multiple of ``codebook_strides``; 1 for single-rate models)."""
        return math.lcm(*self.codebook_strides)

    def set_num_codebooks(self, n: int) -> None:
        """Makes ``encode`` return the first ``n`` codebooks by default (1 ≤ n ≤ ``n_q``)."""
        if not 1 <= int(n) <= self.n_q:
            raise ValueError(f"num_codebooks must be in 1..{self.n_q}, got {n}")
        object.__setattr__(self, "_num_codebooks", int(n))

    def bandwidth(self, n_q: int | None = None) -> float:
        """Bit rate in kbps of the first ``n_q`` codebooks (default ``num_codebooks``)."""
        n_q = self.num_codebooks if n_q is None else n_q
        bits = sum(math.log2(size) / stride for size, stride in
                   zip(self.codebook_sizes[:n_q], self.codebook_strides[:n_q]))
        return bits * self.frame_rate / 1000

    def n_q_for_bandwidth(self, kbps: float) -> int:
        """The most codebooks whose bit rate fits in ``kbps`` (at least 1)."""
        fitting = [n for n in range(1, self.n_q + 1) if self.bandwidth(n) <= kbps + 1e-9]
        return max(fitting, default=1)

    # ---------------------------------------------------------------------------------------------
    # What the model does
    @abstractmethod
    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform [B, C, T] → codes long [B, n_q, N] (default ``num_codebooks``)."""

    @abstractmethod
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes [B, K, N] (K ≤ ``n_q``) → waveform [B, C, length] (default N · samples_per_frame)."""

    def streaming_encoder(self, n_q: int | None = None) -> Any:
        """An object with ``push(chunk [B, C, t]) -> codes [B, K, t']`` and ``flush() -> codes`` whose
        concatenated codes equal ``encode`` of the whole signal (causal models only; K = ``n_q``, default
        ``num_codebooks``).  ``close()`` (also a context manager) ends the stream without flushing."""
        raise ValueError(f"{type(self).__name__} models do not stream (not causal)")

    def streaming_decoder(self) -> Any:
        """An object with ``push(codes [B, K, n]) -> wav`` and ``flush() -> wav`` whose concatenated audio
        equals ``decode`` of all codes at once (causal models only); ``close()`` as the encoder's."""
        raise ValueError(f"{type(self).__name__} models do not stream (not causal)")

    def set_noise_seed(self, seed: int | None) -> None:
        """Makes ``decode`` reproducible for models that draw random numbers while decoding (SNAC's noise
        blocks): their noise then comes from a generator seeded with ``seed`` at each call (None: torch's
        global RNG, as the reference package draws it). Models without decoder noise ignore it."""

    def fold_weight_norm(self) -> int:
        """Folds weight normalisation into plain weights for inference; returns the number folded."""
        return fold_weight_norm(self)

    # ---------------------------------------------------------------------------------------------
    # Multi-rate code layouts
    def split_codes(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """[B, K, N] → the native layout: one long [B, N / stride_k] tensor per codebook."""
        return [codes[:, k, ::stride] for k, stride in enumerate(self.codebook_strides[:codes.shape[1]])]

    def join_codes(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """The native per-codebook layout → [B, K, N] (each token repeated over the frames it spans)."""
        strides = self.codebook_strides
        n = max(level.shape[-1] * strides[k] for k, level in enumerate(levels))
        return torch.stack([level.repeat_interleave(strides[k], dim=-1)[..., :n]
                            for k, level in enumerate(levels)], dim=1)

    def check_codes(self, codes: torch.Tensor) -> None:
        """Raises ValueError (one line) unless ``codes`` is [B, 1..n_q, N] within each codebook's range."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"expected codes [B, 1..{self.n_q}, N], got {tuple(codes.shape)}")
        if codes.numel():
            sizes = torch.tensor(self.codebook_sizes[:codes.shape[1]], device=codes.device)
            if codes.min() < 0 or bool((codes.amax(dim=(0, 2)) >= sizes).any()):
                sizes_text = self.codebook_sizes[:codes.shape[1]]
                raise ValueError(f"codes out of range for codebook sizes {sizes_text}")

    # ---------------------------------------------------------------------------------------------
    # Model directories (``utils/weights``: config.yaml with the class's ``model_kind``, weights, provenance)
    def save_pretrained(self, directory: str | os.PathLike, provenance: dict | None = None) -> None:
        """Writes a model directory (``config.yaml`` with ``kind: <model_kind>``, weights, provenance)."""
        save_model_dir(directory, self, provenance)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> Self:
        """The model of a model directory of this class's kind, in eval mode (weights as saved)."""
        return load_model_as(directory, cls, map_location)
