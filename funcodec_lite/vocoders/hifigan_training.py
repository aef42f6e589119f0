"""HiFi-GAN vocoder training on random mel/audio segments (accelerate: one CPU, one GPU or many)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from funcodec_lite.foley.training import endless_batches, loop_config_from_dict
from funcodec_lite.utils.weights import save_model_dir
from funcodec_lite.vocoders.hifigan import HiFiGANConfig, HiFiGANGenerator
from funcodec_lite.vocoders.hifigan_loss import (
    HiFiGANLossConfig,
    build_discriminator,
    build_loss_mel,
    hifigan_discriminator_loss,
    hifigan_generator_loss,
)


@dataclass
class VocoderLoopConfig:
    """HiFi-GAN's optimisation (AdamW 2e-4, betas 0.8/0.99, lr decay 0.999 per 1,000 steps here).

    Args:
        steps: generator (and discriminator) updates.
        batch_size: segments per update and process (16 in HiFi-GAN).
        segment_frames: mel frames per segment (32 frames = 8,192 samples at hop 256, as HiFi-GAN).
        lr, betas, lr_decay: AdamW settings; the rate is multiplied by ``lr_decay`` every 1,000 steps.
        log_every: steps between log lines (console and ``train.jsonl``).
        seed: initialisation and segment choice.
        mixed_precision: accelerate's setting (GPU).
    """

    steps: int = 2000
    batch_size: int = 16
    segment_frames: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999
    log_every: int = 50
    seed: int = 0
    mixed_precision: str = "no"

    @classmethod
    def from_dict(cls, data: dict) -> VocoderLoopConfig:
        return loop_config_from_dict(cls, data)


def random_segments(mels: torch.Tensor, wavs: torch.Tensor, frames: int, hop: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned crops: mel frames [f, f + frames) and samples [f * hop, (f + frames) * hop).

    Args:
        mels: [B, n_mels, N] log-mels of ``wavs`` (frame k covers samples k * hop ...).
        wavs: [B, T] audio with T >= N * hop.

    Returns:
        mel segments [B, n_mels, frames] and audio segments [B, 1, frames * hop].
    """
    starts = torch.randint(0, mels.shape[-1] - frames + 1, (mels.shape[0],), generator=generator)
    mel = torch.stack([m[:, s:s + frames] for m, s in zip(mels, starts.tolist())])
    wav = torch.stack([w[s * hop:(s + frames) * hop] for w, s in zip(wavs, starts.tolist())])
    return mel, wav[:, None]


def train_vocoder(config: HiFiGANConfig, mels: torch.Tensor, wavs: torch.Tensor, loop: VocoderLoopConfig,
                  exp_dir: str | Path, loss_config: HiFiGANLossConfig | None = None) -> HiFiGANGenerator:
    """Trains HiFi-GAN on whole-clip mels [N, n_mels, F] and their audio [N, T]; saves ``exp_dir/model``.

    Each step: one discriminator update (LSGAN) and one generator update (LSGAN + 2 x feature matching
    + 45 x mel L1), as HiFi-GAN.
    """
    exp_dir = Path(exp_dir)
    loss_config = loss_config or HiFiGANLossConfig()
    accelerator = Accelerator(mixed_precision=loop.mixed_precision)
    torch.manual_seed(loop.seed)
    generator, discriminator = HiFiGANGenerator(config), build_discriminator(loss_config)
    loss_mel = build_loss_mel(loss_config).to(accelerator.device)
    opt_g = torch.optim.AdamW(generator.parameters(), lr=loop.lr, betas=loop.betas)
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=loop.lr, betas=loop.betas)
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    index = torch.arange(len(mels))
    batches = endless_batches((index,), loop.batch_size, loop.seed, accelerator)
    crop = torch.Generator().manual_seed(loop.seed + accelerator.process_index)
    exp_dir.mkdir(parents=True, exist_ok=True)
    log_path = exp_dir / "train.jsonl"
    if accelerator.is_main_process:
        log_path.write_text("")
    sums: dict[str, float] = {}
    start = time.perf_counter()
    for step in tqdm(range(1, loop.steps + 1), desc="vocoder", disable=not accelerator.is_main_process,
                     dynamic_ncols=True):
        for group in (*opt_g.param_groups, *opt_d.param_groups):
            group["lr"] = loop.lr * loop.lr_decay ** (step // 1000)
        (chosen,) = next(batches)
        mel, wav = random_segments(mels[chosen.cpu()], wavs[chosen.cpu()], loop.segment_frames,
                                   config.hop_length, crop)
        mel, wav = mel.to(accelerator.device), wav.to(accelerator.device)
        with accelerator.autocast():
            wav_hat = generator(mel)
            d_loss = hifigan_discriminator_loss(discriminator, wav, wav_hat)
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss)
        opt_d.step()
        with accelerator.autocast():
            g_loss = hifigan_generator_loss(discriminator, wav, wav_hat, loss_mel, loss_config)
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(g_loss.total)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # the generator loss left gradients in the discriminator
        terms = {"d_loss": d_loss, "g_total": g_loss.total, "g_adv": g_loss.adversarial,
                 "g_feat": g_loss.feature, "mel_l1": g_loss.mel}
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
        if step % loop.log_every == 0 or step == loop.steps:
            count = loop.log_every if step % loop.log_every == 0 else step % loop.log_every
            means = {k: v / count for k, v in sums.items()}
            if accelerator.is_main_process:
                tqdm.write(f"vocoder step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": step, "seconds": round(time.perf_counter() - start, 2),
                                             **means}) + "\n")
            sums = {}
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(generator).eval()
    if accelerator.is_main_process:
        save_model_dir(exp_dir / "model", model, asdict(config))
    return model


def load_vocoder(directory: str | Path, map_location: str | torch.device = "cpu") -> HiFiGANGenerator:
    """A generator saved by `train_vocoder`, weight norm folded, in eval mode."""
    from funcodec_lite.utils.weights import load_model_dir

    state, config = load_model_dir(directory, map_location)
    model = HiFiGANGenerator(HiFiGANConfig(**config))
    model.load_state_dict(state, strict=True)
    model.remove_weight_norm()
    return model.to(map_location).eval()
