"""HiFi-GAN training on the engine (`funcodec_lite.train`): random aligned mel/audio segments."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask
from funcodec_lite.utils.weights import load_model_as
from funcodec_lite.vocoders.hifigan import HiFiGANConfig, HiFiGANGenerator
from funcodec_lite.vocoders.hifigan_loss import (
    HiFiGANLossConfig,
    build_discriminator,
    build_loss_mel,
    hifigan_discriminator_loss,
    hifigan_generator_loss,
)

# HiFi-GAN's optimisation (AdamW 2e-4, betas 0.8/0.99, PyTorch's weight decay 0.01; the rate x 0.999 every
# 1,000 steps here): the loop config its `vocoder_train` section starts from (`LoopConfig.from_dict`'s preset)
HIFIGAN_LOOP = {"steps": 2000, "optimizer": "adamw", "lr": 2e-4, "betas": (0.8, 0.99), "weight_decay": 0.01,
                "lr_decay": 0.999, "lr_decay_every": 1000}
HIFIGAN_SEGMENT_FRAMES = 32  # mel frames per segment (32 frames = 8,192 samples at hop 256, as HiFi-GAN)


class SegmentDataset(Dataset):
    """Aligned random crops of whole clips: mel frames [f, f + frames) and samples [f·hop, (f + frames)·hop).

    The crop of example ``index`` in ``epoch`` is fixed by (seed, epoch, index), so a resumed run draws
    the crops the uninterrupted run would have.

    Args:
        mels: [N, n_mels, F] log-mels of ``wavs`` (frame k covers samples k·hop ...).
        wavs: [N, T] audio with T >= F·hop.
        frames, hop: segment length in frames, samples per frame.
        seed: the crops' seed.
    """

    def __init__(self, mels: torch.Tensor, wavs: torch.Tensor, frames: int, hop: int, seed: int) -> None:
        if mels.shape[-1] < frames:
            raise ValueError(f"segments of {frames} frames do not fit clips of {mels.shape[-1]} frames")
        self.mels, self.wavs, self.frames, self.hop, self.seed = mels, wavs, frames, hop, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.mels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mel [n_mels, frames], wav [1, frames·hop])."""
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index)
        start = int(torch.randint(0, self.mels.shape[-1] - self.frames + 1, (1,), generator=generator))
        mel = self.mels[index, :, start:start + self.frames]
        wav = self.wavs[index, start * self.hop:(start + self.frames) * self.hop]
        return mel, wav[None]


class HiFiGANTask(TrainTask):
    """HiFi-GAN's part: per step one discriminator update (LSGAN) and one generator update
    (LSGAN + 2 x feature matching + 45 x mel L1), as HiFi-GAN."""

    name = "vocoder"

    def __init__(self, config: HiFiGANConfig, mels: torch.Tensor, wavs: torch.Tensor, loop: LoopConfig,
                 loss_config: HiFiGANLossConfig | None = None, provenance: dict | None = None,
                 segment_frames: int = HIFIGAN_SEGMENT_FRAMES) -> None:
        self.config, self.loop = config, loop
        self.loss_config = loss_config or HiFiGANLossConfig()
        self.segments = SegmentDataset(mels, wavs, segment_frames, config.hop_length, loop.seed)
        self.loss_mel = build_loss_mel(self.loss_config)
        self.provenance = provenance or {}

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        generator, discriminator = HiFiGANGenerator(self.config), build_discriminator(self.loss_config)
        return ({"generator": generator, "discriminator": discriminator},
                {"generator": self.loop.make_optimizer(generator.parameters()),
                 "discriminator": self.loop.make_optimizer(discriminator.parameters())})

    def dataset(self) -> SegmentDataset:
        return self.segments

    def step(self, batch: list[torch.Tensor], engine: Engine) -> dict[str, torch.Tensor]:
        mel, wav = batch
        generator, discriminator = engine.modules["generator"], engine.modules["discriminator"]
        self.loss_mel = self.loss_mel.to(wav.device)
        with engine.autocast():
            wav_hat = generator(mel)
            d_loss = hifigan_discriminator_loss(discriminator, wav, wav_hat)
        engine.update("discriminator", d_loss)
        with engine.autocast():
            g_loss = hifigan_generator_loss(discriminator, wav, wav_hat, self.loss_mel, self.loss_config)
        engine.update("generator", g_loss.total)
        return {"d_loss": d_loss.detach(), "g_total": g_loss.total.detach(), "g_adv": g_loss.adversarial,
                "g_feat": g_loss.feature, "mel_l1": g_loss.mel}

    def export(self, engine: Engine, directory: Path) -> None:
        from funcodec_lite.utils.weights import save_model_dir

        save_model_dir(directory, engine.unwrap("generator"),
                       {**self.provenance, "steps": engine.step,
                        "train_minutes": round(engine.train_seconds / 60, 3)})


def train_vocoder(config: HiFiGANConfig, mels: torch.Tensor, wavs: torch.Tensor, loop: LoopConfig,
                  exp_dir: str | Path, loss_config: HiFiGANLossConfig | None = None, resume: bool = False,
                  provenance: dict | None = None,
                  segment_frames: int = HIFIGAN_SEGMENT_FRAMES) -> HiFiGANGenerator:
    """Trains HiFi-GAN on whole-clip mels [N, n_mels, F] and their audio [N, T] (random segments of
    ``segment_frames`` frames; ``loop``: e.g. ``LoopConfig.from_dict(section, HIFIGAN_LOOP)``); saves
    ``exp_dir/model``."""
    task = HiFiGANTask(config, mels, wavs, loop, loss_config, provenance, segment_frames)
    engine = Engine(task, loop, exp_dir)
    engine.fit(resume=resume)
    return engine.unwrap("generator").eval()


def load_vocoder(directory: str | Path, map_location: str | torch.device = "cpu") -> HiFiGANGenerator:
    """A HiFi-GAN model directory's generator, weight norm folded, in eval mode."""
    model = load_model_as(directory, HiFiGANGenerator, map_location)
    model.remove_weight_norm()
    return model.eval()
