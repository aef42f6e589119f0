"""``Tokenizer``: the audio ↔ token interface for downstream code (TTS and audio language models)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import torch

from funcodec_lite.audio.io import resample
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import DEFAULT_MODEL, load_model, model_id, resolve_dtype
from funcodec_lite.codec.model import Codec
from funcodec_lite.inference.chunking import (
    ChunkConfig,
    check_codable,
    decode_chunked,
    encode_chunked,
    frames_for_length,
)

Lengths = torch.Tensor | Sequence[int] | None


class EncodedBatch(NamedTuple):
    """Codes of a batch; unpacks as ``codes, lengths``.

    Attributes:
        codes: long [B, n_q, N], N the longest item's frames; ``pad_value`` past each item's length.
        lengths: long [B], code frames of each item.
    """

    codes: torch.Tensor
    lengths: torch.Tensor


class DecodedBatch(NamedTuple):
    """Audio of a batch; unpacks as ``wav, lengths``.

    Attributes:
        wav: float32 [B, C, T] at the model's rate, zero past each item's length.
        lengths: long [B], samples of each item (its frames × samples per frame).
    """

    wav: torch.Tensor
    lengths: torch.Tensor


class Tokenizer:
    """Turns waveforms into discrete codes and back, without gradients and deterministically.

    Args:
        codec: any codec (``CompressionModel``: our ``Codec`` without semantic augmentation, or a converted
            family such as DAC, Mimi or SNAC); put in eval mode.
        num_codebooks: codebooks ``encode`` returns (default the model's ``num_codebooks``: all unless
            set on the model).
        chunk: chunk sizes for long items (see ``funcodec_lite.inference.chunking``).

    Batches are exact: an item's codes do not depend on what else is in the batch or on padding.
    ``encode`` groups items of equal length and runs one forward pass per group, so a padded batch
    gives the codes of encoding each item alone, within its length (batched kernels can round the
    latent differently in the last bits, which can only flip a code at an exact tie).
    """

    def __init__(self, codec: CompressionModel, num_codebooks: int | None = None,
                 chunk: ChunkConfig | None = None) -> None:
        if not isinstance(codec, CompressionModel):
            raise TypeError(f"Tokenizer needs a CompressionModel, got {type(codec).__name__}")
        check_codable(codec)
        self.codec = codec.eval()
        self.chunk = chunk or ChunkConfig()
        self._n_q = codec.num_codebooks
        if num_codebooks is not None:
            self.set_num_codebooks(num_codebooks)
        model_id(codec)  # compute (and cache) the id from the weights as given

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype = "float32") -> Tokenizer:
        """Loads a model directory (``"default"``: the model shipped with the package)."""
        return cls(load_model(path, device, dtype))

    def to(self, device: str | torch.device | None = None,
           dtype: str | torch.dtype | None = None) -> Tokenizer:
        """Moves the model (and casts it to ``float32`` / ``bfloat16``); returns ``self``."""
        self.codec.to(device=torch.device(device) if device is not None else None,
                      dtype=resolve_dtype(dtype) if dtype is not None else None)
        return self

    # ----------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.codec.channels

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.codec.frame_rate

    @property
    def samples_per_frame(self) -> int:
        return self.codec.samples_per_frame

    @property
    def codebook_size(self) -> int:
        """Codes per codebook (the largest codebook's when they differ: a vocabulary for every codebook)."""
        return self.codec.codebook_size

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Codes of each of the model's codebooks."""
        return tuple(self.codec.codebook_sizes)

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        """Code frames one token of each codebook spans (1 for single-rate models; see
        ``CompressionModel.split_codes``)."""
        return tuple(self.codec.codebook_strides)

    @property
    def num_codebooks(self) -> int:
        """Codebooks ``encode`` returns (see ``set_num_codebooks``)."""
        return self._n_q

    @property
    def total_codebooks(self) -> int:
        """Codebooks the model has."""
        return self.codec.n_q

    @property
    def embedding_dim(self) -> int:
        """Width D of ``embed``'s vectors (our ``Codec`` only: its quantizer's dimension)."""
        return self._own_codec("embedding_dim").config.quantizer.dim

    @property
    def model_id(self) -> str:
        return model_id(self.codec)

    @property
    def device(self) -> torch.device:
        return next(self.codec.parameters()).device

    def set_num_codebooks(self, n: int) -> None:
        """Makes ``encode`` return the first ``n`` codebooks (1 ≤ n ≤ total_codebooks); the model's own
        ``num_codebooks`` is left as it is."""
        if not 1 <= int(n) <= self.codec.n_q:
            raise ValueError(f"num_codebooks must be in 1..{self.codec.n_q}, got {n}")
        self._n_q = int(n)

    def num_frames(self, num_samples: int, sample_rate: int | None = None) -> int:
        """Code frames for ``num_samples`` samples at ``sample_rate`` (default the model's rate)."""
        rate = sample_rate or self.sample_rate
        length = num_samples if rate == self.sample_rate else -(-self.sample_rate * num_samples // rate)
        return frames_for_length(self.codec, length)

    # ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wavs: torch.Tensor | Sequence[torch.Tensor], sample_rate: int, lengths: Lengths = None,
               exact: bool = True, pad_value: int = 0) -> EncodedBatch:
        """Waveforms → codes.

        Args:
            wavs: a padded batch [B, T] (mono models) or [B, C, T], or a list of B tensors [T] or [C, T].
            sample_rate: rate of ``wavs``; each item is resampled to the model's rate on its own.
            lengths: valid samples of each item (default: the whole tensor / each list item).
            exact: group equal lengths (codes independent of padding and batch). False runs one padded
                pass: faster for many different lengths, but the last frames of shorter items (all of
                them for models with GroupNorm) can differ from encoding them alone.
            pad_value: code written past each item's length.

        Returns:
            ``EncodedBatch(codes [B, num_codebooks, N], lengths [B])``.
        """
        items = [self._to_model_rate(item, sample_rate) for item in self._items(wavs, lengths)]
        frames = [frames_for_length(self.codec, item.shape[-1]) for item in items]
        codes = torch.full((len(items), self._n_q, max(frames, default=0)), pad_value, dtype=torch.long)
        for group in self._groups([item.shape[-1] for item in items], exact):
            longest = max(items[i].shape[-1] for i in group)
            batch = torch.stack([nn_pad(items[i], longest) for i in group])
            out = encode_chunked(self.codec, batch, self._n_q, self.chunk)
            for row, i in enumerate(group):
                codes[i, :, : frames[i]] = out[row, :, : frames[i]]
        return EncodedBatch(codes, torch.tensor(frames, dtype=torch.long))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, lengths: Lengths = None, exact: bool = True) -> DecodedBatch:
        """Codes → waveforms at the model's rate.

        Args:
            codes: [B, n, N] with n ≤ total_codebooks (the first n codebooks).
            lengths: code frames of each item (default N for all).
            exact: decode equal lengths together (as ``encode``); False: one padded pass.

        Returns:
            ``DecodedBatch(wav [B, C, T], lengths [B])`` with T = max(lengths) · samples_per_frame.
        """
        codes, frames = self._check_codes(codes, lengths)
        spf = self.samples_per_frame
        wav = torch.zeros(codes.shape[0], self.channels, max(frames, default=0) * spf)
        for group in self._groups(frames, exact):
            longest = max(frames[i] for i in group)
            out = decode_chunked(self.codec, codes[group][..., :longest], config=self.chunk)
            for row, i in enumerate(group):
                wav[i, :, : frames[i] * spf] = out[row, :, : frames[i] * spf]
        return DecodedBatch(wav, torch.tensor(frames, dtype=torch.long) * spf)

    @torch.no_grad()
    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Continuous inputs for a language model: the sum of each frame's codebook vectors.

        Args:
            codes: [B, n, N] (the first n codebooks); negative codes add nothing.

        Returns:
            float32 [B, N, D], D = ``embedding_dim``.
        """
        codec = self._own_codec("embed")
        codes, _ = self._check_codes(codes, None, allow_negative=True)
        return codec.quantizer.decode(codes.to(self.device)).transpose(1, 2).float().cpu()

    def _own_codec(self, what: str) -> Codec:
        """The model, when it is our ``Codec`` (whose quantizer's vectors ``embed`` sums)."""
        if not isinstance(self.codec, Codec):
            raise ValueError(f"Tokenizer.{what} needs a funcodec_lite Codec (its quantizer's vectors); this "
                             f"model is a {type(self.codec).model_kind!r} codec")
        return self.codec

    # ----------------------------------------------------------------------------------------------
    def _items(self, wavs: torch.Tensor | Sequence[torch.Tensor], lengths: Lengths) -> list[torch.Tensor]:
        if isinstance(wavs, torch.Tensor):
            if wavs.dim() == 2:
                wavs = wavs[:, None]
            if wavs.dim() != 3:
                raise ValueError(f"expected wavs [B, T] or [B, C, T], got {tuple(wavs.shape)}")
            items = list(wavs)
        else:
            items = [w[None] if w.dim() == 1 else w for w in wavs]
            if any(w.dim() != 2 for w in items):
                raise ValueError("expected a list of tensors [T] or [C, T]")
        if lengths is not None:
            lengths = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
            if len(lengths) != len(items):
                raise ValueError(f"{len(lengths)} lengths for {len(items)} items")
            if any(not 0 <= n <= w.shape[-1] for n, w in zip(lengths, items)):
                raise ValueError("every length must lie in 0..T")
            items = [w[..., :n] for w, n in zip(items, lengths)]
        for w in items:
            if w.shape[0] != self.channels:
                raise ValueError(f"the model codes {self.channels}-channel audio, "
                                 f"got {w.shape[0]} channel(s)")
            if not w.is_floating_point() or not bool(torch.isfinite(w).all()):
                raise ValueError("audio must be floating point without NaN or Inf samples")
        return items

    def _to_model_rate(self, item: torch.Tensor, sample_rate: int) -> torch.Tensor:
        item = item.detach().float().cpu()
        if sample_rate == self.sample_rate or item.shape[-1] == 0:
            return item
        return resample(item, sample_rate, self.sample_rate)

    @staticmethod
    def _groups(lengths: list[int], exact: bool) -> list[list[int]]:
        """Index groups to run together: equal lengths (exact) or everything; empty items are skipped."""
        if not exact:
            nonempty = [i for i, n in enumerate(lengths) if n > 0]
            return [nonempty] if nonempty else []
        groups: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(lengths):
            if n > 0:
                groups[n].append(i)
        return list(groups.values())

    def _check_codes(self, codes: torch.Tensor, lengths: Lengths,
                     allow_negative: bool = False) -> tuple[torch.Tensor, list[int]]:
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.total_codebooks:
            raise ValueError(f"expected codes [B, 1..{self.total_codebooks}, N], got {tuple(codes.shape)}")
        if codes.is_floating_point():
            raise ValueError("codes must be integers")
        codes = codes.long().cpu()
        if lengths is None:
            frames = [codes.shape[-1]] * codes.shape[0]
        else:
            frames = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
            if len(frames) != codes.shape[0] or any(not 0 <= n <= codes.shape[-1] for n in frames):
                raise ValueError(f"lengths must be {codes.shape[0]} frame counts in 0..{codes.shape[-1]}")
        sizes = torch.tensor(self.codebook_sizes[: codes.shape[1]])[:, None]
        for i, n in enumerate(frames):
            valid = codes[i, :, :n]
            if valid.numel() and (bool((valid >= sizes).any())
                                  or (not allow_negative and int(valid.min()) < 0)):
                if len(set(self.codebook_sizes)) == 1:
                    raise ValueError(f"codes of item {i} out of range 0..{self.codebook_size - 1}")
                raise ValueError(f"codes of item {i} out of range for codebook sizes "
                                 f"{list(self.codebook_sizes[: codes.shape[1]])}")
        return codes, frames


def nn_pad(item: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pads [C, t] on the right to [C, length]."""
    return torch.nn.functional.pad(item, (0, length - item.shape[-1]))
