"""Mel-image VQ-VAE of the DCASE 2023 Task 7 baseline, and Lee's (2024) RVQ-VAE variant, in one model.

Baseline (``MelVQVAEConfig()``): 80 x 344 log-mel -> 4 summed conv branches (total stride 4) -> 1x1
conv to 64 dims -> one EMA codebook of 512 -> a 20 x 86 code map -> decoder back to 80 x 344.

RVQ-VAE (``MelVQVAEConfig.rvq()``): total stride 8 -> 10 x 43 latent -> 4 residual EMA codebooks.
The four 10 x 43 index maps are stacked along frequency, level 0 on top, into one 40 x 43 map: the
same 1,720 tokens as the baseline's map, for the same PixelSNAIL prior.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from funcodec_lite.foley.vqvae_layers import MelDecoder, MultiBranchEncoder
from funcodec_lite.quantization import ResidualVectorQuantizer, RVQConfig
from funcodec_lite.utils.weights import load_model_dir, save_model_dir

QUANTIZERS = ("vq", "rvq")
COMMITMENTS = ("final", "per_layer")


@dataclass
class MelVQVAEConfig:
    """Settings of `MelVQVAE`; the defaults are the DCASE baseline's VQ-VAE.

    Args:
        quantizer: "vq" (one codebook; ``n_q`` must be 1) or "rvq" (``n_q`` residual codebooks).
        n_q: number of codebooks.
        codebook_size: codes per codebook K.
        embed_dim: latent dimension D.
        channel: encoder/decoder width C.
        n_res_block: residual blocks per encoder branch and in the decoder.
        n_res_channel: hidden width of the residual blocks.
        strides: stride of each strided conv of a branch, first to last. (2, 2) is the baseline's
            stride 4; Lee's stride-8 variants are (4, 2) and (2, 4).
        time_strides: the strided convs' strides along time, where they differ from ``strides`` (which
            then stride the mel bands only); None: ``strides`` on both axes. E.g. strides (2, 2) with
            time_strides (4, 2) keep 20 of 80 bands but 43 of 344 frames.
        branch_kernels: each branch's kernel for a stride-2 conv (scaled by stride / 2 for others).
        decay: EMA decay of the codebooks.
        epsilon: Laplace smoothing of the EMA cluster sizes.
        commitment_weight: beta in ``mse(mel_hat, mel) + beta * commitment``.
        commitment: "final": mean (z - sg[q])² with q the summed quantized latent (the baseline's);
            "per_layer": the toolkit RVQ's loss, which adds each layer's residual error.
        kmeans_init: k-means initialisation of the codebooks on the first batch (the baseline draws
            random N(0, 1) codewords).
        threshold_ema_dead_code: revive codes whose EMA count falls below this (the baseline: never, 0).
        n_mels: mel bands of the input image H.
        n_frames: frames of the input image W.
    """

    quantizer: str = "vq"
    n_q: int = 1
    codebook_size: int = 512
    embed_dim: int = 64
    channel: int = 128
    n_res_block: int = 2
    n_res_channel: int = 32
    strides: tuple[int, ...] = (2, 2)
    time_strides: tuple[int, ...] | None = None
    branch_kernels: tuple[int, ...] = (4, 2, 6, 8)
    decay: float = 0.99
    epsilon: float = 1e-5
    commitment_weight: float = 0.25
    commitment: str = "final"
    kmeans_init: bool = False
    threshold_ema_dead_code: float = 0.0
    n_mels: int = 80
    n_frames: int = 344

    def __post_init__(self) -> None:
        self.strides = tuple(int(s) for s in self.strides)
        if self.time_strides is not None:
            self.time_strides = tuple(int(s) for s in self.time_strides)
            if len(self.time_strides) != len(self.strides):
                raise ValueError(f"need one time stride per stride: {self.time_strides}, {self.strides}")
        self.branch_kernels = tuple(int(k) for k in self.branch_kernels)
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.commitment not in COMMITMENTS:
            raise ValueError(f"commitment must be one of {COMMITMENTS}, got {self.commitment!r}")
        if self.n_q < 1 or (self.quantizer == "vq" and self.n_q != 1):
            raise ValueError(f"n_q must be 1 for 'vq' and >= 1 for 'rvq', got {self.n_q}")
        if not self.strides or not self.branch_kernels:
            raise ValueError("need at least one stride and one branch")
        if self.n_mels % self.total_stride or self.n_frames % self.total_time_stride:
            raise ValueError(f"{self.n_mels} x {self.n_frames} is not divisible by the total strides "
                             f"{self.total_stride} x {self.total_time_stride}")

    @classmethod
    def rvq(cls, strides: tuple[int, ...] = (4, 2), n_q: int = 4, **overrides) -> MelVQVAEConfig:
        """Lee's RVQ-VAE: stride 8 (10 x 43 per level), 4 residual EMA codebooks, one residual block
        per branch ("3 conv2d + 1 residual block"); everything else as the baseline."""
        return cls(quantizer="rvq", n_q=n_q, strides=strides, n_res_block=overrides.pop("n_res_block", 1),
                   **overrides)

    @property
    def total_stride(self) -> int:
        """Downsampling of the mel bands (and of time, unless ``time_strides`` is set)."""
        return math.prod(self.strides)

    @property
    def total_time_stride(self) -> int:
        return math.prod(self.strides if self.time_strides is None else self.time_strides)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the latent and of each codebook's index map."""
        return self.n_mels // self.total_stride, self.n_frames // self.total_time_stride

    @property
    def code_map_shape(self) -> tuple[int, int]:
        """(n_q · h, w): the stacked index map (20 x 86 for the baseline, 40 x 43 for the RVQ-VAE)."""
        h, w = self.latent_shape
        return self.n_q * h, w

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["strides"], data["branch_kernels"] = list(self.strides), list(self.branch_kernels)
        if self.time_strides is not None:
            data["time_strides"] = list(self.time_strides)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MelVQVAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MelVQVAEConfig keys: {unknown}")
        return cls(**data)


class MelVQVAEOutput(NamedTuple):
    """Result of `MelVQVAE.forward`; unpacks as ``mel_hat, commit_loss, codes, metrics``.

    Attributes:
        mel (torch.Tensor): reconstruction, same shape as the input.
        commit_loss (torch.Tensor): scalar commitment term (multiply by ``commitment_weight``).
        codes (torch.Tensor): long stacked code map [B, n_q · h, w].
        metrics (dict[str, torch.Tensor]): per-codebook statistics from the quantizer.
    """

    mel: torch.Tensor
    commit_loss: torch.Tensor
    codes: torch.Tensor
    metrics: dict[str, torch.Tensor]


class MelVQVAELoss(NamedTuple):
    """``total = recon + commitment_weight * commit`` and the forward output it came from."""

    total: torch.Tensor
    recon: torch.Tensor
    commit: torch.Tensor
    output: MelVQVAEOutput


class MelVQVAE(nn.Module):
    """VQ-VAE over log-mel images with EMA codebooks (the toolkit's `ResidualVectorQuantizer`).

    Training mode updates the codebooks by EMA on every forward; no gradient reaches them. Mel
    images are [B, 1, n_mels, n_frames] (or [B, n_mels, n_frames]); code maps are long
    [B, n_q · h, n_frames / S] with level i in rows i·h .. (i+1)·h - 1.

    Args:
        config: settings; None means the baseline's.
    """

    model_kind = "mel_vqvae"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = MelVQVAEConfig

    def __init__(self, config: MelVQVAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or MelVQVAEConfig()
        self.encoder = MultiBranchEncoder(1, cfg.channel, cfg.branch_kernels, cfg.strides, cfg.n_res_block,
                                          cfg.n_res_channel, cfg.time_strides)
        self.pre_quant = nn.Conv2d(cfg.channel, cfg.embed_dim, 1)
        self.quantizer = ResidualVectorQuantizer(RVQConfig(
            dim=cfg.embed_dim, n_q=cfg.n_q, codebook_size=cfg.codebook_size, decay=cfg.decay,
            epsilon=cfg.epsilon, kmeans_init=cfg.kmeans_init,
            threshold_ema_dead_code=cfg.threshold_ema_dead_code, dead_code_ratio=0.0,
        ))
        self.decoder = MelDecoder(cfg.embed_dim, 1, cfg.channel, cfg.strides, cfg.n_res_block,
                                  cfg.n_res_channel, cfg.time_strides)

    @property
    def code_map_shape(self) -> tuple[int, int]:
        """(n_q · h, w) of the code maps `encode` returns."""
        return self.config.code_map_shape

    def _image(self, mel: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if mel.dim() == 3:
            mel = mel[:, None]
        if mel.dim() != 4 or mel.shape[1:] != (1, cfg.n_mels, cfg.n_frames):
            raise ValueError(f"expected mel [B, 1, {cfg.n_mels}, {cfg.n_frames}] or [B, {cfg.n_mels}, "
                             f"{cfg.n_frames}], got {tuple(mel.shape)}")
        return mel

    def encode_latent(self, mel: torch.Tensor) -> torch.Tensor:
        """Continuous latent z [B, D, h, w] of a mel [B, 1, H, W] or [B, H, W]."""
        return self.pre_quant(self.encoder(self._image(mel)))

    def stack_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantizer codes [B, n_q, h·w] -> stacked code map [B, n_q · h, w]."""
        return codes.reshape(codes.shape[0], -1, self.config.latent_shape[1])

    def unstack_codes(self, code_map: torch.Tensor) -> torch.Tensor:
        """Stacked code map [B, n_q · h, w] -> quantizer codes [B, n_q, h·w]."""
        if code_map.dim() != 3 or tuple(code_map.shape[1:]) != self.code_map_shape:
            raise ValueError(f"expected a code map [B, {self.code_map_shape[0]}, {self.code_map_shape[1]}], "
                             f"got {tuple(code_map.shape)}")
        h, w = self.config.latent_shape
        return code_map.reshape(code_map.shape[0], self.config.n_q, h * w)

    def decode_latent(self, quantized: torch.Tensor) -> torch.Tensor:
        """Decoder: quantized latent [B, D, h, w] -> mel [B, 1, H, W]."""
        return self.decoder(quantized)

    @torch.no_grad()
    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel -> stacked code map (codebooks are not updated, whatever the mode).

        Args:
            mel (torch.Tensor): [B, 1, n_mels, n_frames] or [B, n_mels, n_frames].

        Returns:
            torch.Tensor: long code map [B, n_q · h, w] (``code_map_shape``).
        """
        z = self.encode_latent(mel)
        return self.stack_codes(self.quantizer.encode(z.flatten(2)))

    def decode_codes(self, code_map: torch.Tensor) -> torch.Tensor:
        """Stacked code map [B, n_q · h, w] -> mel [B, 1, n_mels, n_frames]."""
        h, w = self.config.latent_shape
        latent = self.quantizer.decode(self.unstack_codes(code_map))  # [B, D, h·w], a transposed view
        return self.decode_latent(latent.reshape(latent.shape[0], -1, h, w).contiguous())

    def forward(self, mel: torch.Tensor) -> MelVQVAEOutput:
        """Encode, quantize (EMA codebook update in training), decode.

        Args:
            mel (torch.Tensor): [B, 1, n_mels, n_frames] or [B, n_mels, n_frames].

        Returns:
            MelVQVAEOutput: reconstruction shaped like ``mel``, commitment loss, code map
            [B, n_q · h, w], quantizer metrics.
        """
        z = self.encode_latent(mel)
        batch, dim, h, w = z.shape
        result = self.quantizer(z.flatten(2))
        if self.config.commitment == "final":
            commit = (z.flatten(2) - result.quantized.detach()).pow(2).mean()
        else:
            commit = result.commit_loss
        mel_hat = self.decode_latent(result.quantized.reshape(batch, dim, h, w).contiguous())
        return MelVQVAEOutput(mel_hat.reshape(mel.shape), commit, self.stack_codes(result.codes),
                              result.metrics)

    def loss(self, mel: torch.Tensor) -> MelVQVAELoss:
        """The baseline's training loss ``mse(mel_hat, mel) + 0.25 * commitment`` for a batch ``mel``."""
        return self.objective(self(mel), mel)

    def objective(self, out: MelVQVAEOutput, mel: torch.Tensor) -> MelVQVAELoss:
        """``mse(out.mel, mel) + commitment_weight * out.commit_loss`` for the forward pass ``out`` of mel."""
        recon = F.mse_loss(out.mel, mel)
        total = recon + self.config.commitment_weight * out.commit_loss
        return MelVQVAELoss(total, recon, out.commit_loss, out)

    def save_pretrained(self, directory: str | Path, provenance: dict | None = None) -> None:
        """Writes the model directory (``config.yaml``, ``model.safetensors``, ``provenance.json``)."""
        save_model_dir(directory, self, provenance)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> MelVQVAE:
        """Loads a model directory of kind ``mel_vqvae``, in eval mode."""
        return load_model_dir(directory, cls.model_kind, map_location)
