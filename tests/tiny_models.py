"""Tiny randomly initialised codecs for the CLI, tokenizer and chunking tests (built in a second)."""

from __future__ import annotations

from pathlib import Path

import torch

from funcodec_lite import Codec, CodecConfig


def tiny_config(sample_rate: int = 16000, causal: bool = False, lstm: int = 0, norm: str = "weight_norm",
                channels: int = 1, ratios: tuple[int, ...] = (4, 4), n_q: int = 4) -> CodecConfig:
    """SEANet with 4 filters, hop prod(ratios), 8-d latent, ``n_q`` codebooks of 32."""
    return CodecConfig.from_dict({
        "sample_rate": sample_rate, "channels": channels, "arch": "seanet", "domain": "time",
        "model": {"n_filters": 4, "ratios": list(ratios), "dimension": 8, "lstm": lstm, "causal": causal,
                  "norm": norm},
        "quantizer": {"dim": 8, "n_q": n_q, "codebook_size": 32, "kmeans_iters": 4},
    })


def tiny_freq_config(sample_rate: int = 16000) -> CodecConfig:
    """A FreqCodec with a 64-point STFT (hop 16, 32 samples per code frame)."""
    return CodecConfig.from_dict({
        "sample_rate": sample_rate, "arch": "freqcodec", "domain": "mag_phase",
        "stft": {"n_fft": 64, "hop_length": 16},
        "model": {"in_channels": 3, "n_freq": 33, "base_channels": 4, "max_channels": 16,
                  "freq_strides": [4, 4, 2], "time_strides": [1, 2, 1], "lstm_layers": 0, "dimension": 8},
        "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 32, "kmeans_iters": 4},
    })


def make_codec(config: CodecConfig | None = None, seed: int = 0) -> Codec:
    """A codec whose codebooks are k-means-fitted to its own latents of noise (codes well spread)."""
    torch.manual_seed(seed)
    codec = Codec(config or tiny_config())
    data = torch.randn(4, codec.channels, 8000, generator=torch.Generator().manual_seed(seed)) * 0.3
    with torch.no_grad():
        if codec.config.arch == "seanet":
            # a random encoder's latents sit on a constant offset: remove it so codes are not ties
            codec.encoder.layers[-1].conv.bias -= codec.encode_latent(data).mean(dim=(0, 2))
        codec.train()(data)
    return codec.eval()


def save_codec(directory: Path, config: CodecConfig | None = None, seed: int = 0) -> Path:
    """Builds ``make_codec(config, seed)`` and saves it to ``directory``; returns the directory."""
    make_codec(config, seed).save_pretrained(directory)
    return directory


def speechlike(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """A harmonic tone with vibrato and noise, [channels, T] in [-0.6, 0.6]."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 20 * torch.sin(2 * torch.pi * 3 * t)
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 6)) * 0.3
    noise = 0.02 * torch.randn(channels, t.numel(), generator=generator)
    return (voiced * torch.linspace(1.0, 0.5, channels)[:, None] + noise).clamp(-0.6, 0.6)


def overfit_losses(codec: Codec, steps: int, lr: float) -> list[float]:
    """Per-step L1 errors while ``codec`` trains (Adam, L1 + commitment) on one tone batch [2, 1, 2000]."""
    t = torch.arange(2000) / 8000
    wav = 0.5 * torch.sin(2 * torch.pi * 220 * t) * torch.ones(2, 1, 1)
    optimizer = torch.optim.Adam(codec.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = codec(wav, n_q=4)
        loss = (out.wav - wav).abs().mean() + out.commit_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append((out.wav - wav).abs().mean().item())
    return losses


def counting_codes(n: int, frames: int, card: int, generator: torch.Generator, n_q: int = 4) -> torch.Tensor:
    """[n, n_q, frames] codes whose codebook k at frame t is (start + t + k) mod card, start random per
    item: a token process a language model can learn exactly."""
    start = torch.randint(0, card, (n, 1, 1), generator=generator)
    return (start + torch.arange(frames)[None, None] + torch.arange(n_q)[None, :, None]) % card


def learns_and_continues_counting(model, sampler) -> None:
    """Trains an AR token LM (``loss(LMBatch)``) 150 steps on `counting_codes` (10 frames, 8 codes) and
    checks the loss falls below a tenth and ``sampler(model, 4, 12, config, prompt=..., generator=...)``
    continues 2-frame prompts exactly, stopping after the trained length."""
    from funcodec_lite.lm.codec_lm import LMBatch
    from funcodec_lite.lm.generate import SamplingConfig

    optimizer = torch.optim.Adam(model.train().parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        codes = counting_codes(16, 10, 8, generator)
        loss = model.loss(LMBatch(codes, torch.full((16,), 10), torch.zeros(16, dtype=torch.long)))
        optimizer.zero_grad()
        loss.loss.backward()
        optimizer.step()
        losses.append(loss.loss.item())
    assert losses[-1] < 0.1 * losses[0]
    prompt = counting_codes(4, 2, 8, generator)
    out = sampler(model, 4, 12, SamplingConfig(temperature=0.5), prompt=prompt,
                  generator=torch.Generator().manual_seed(2))
    expected = (prompt[:, :, -1:] + 1 + torch.arange(12)[None, None]) % 8
    frames = out.frames.tolist()
    assert min(frames) >= 8  # learnt to stop around 10 frames: the prompt's 2 + at least 8 more
    for i, n in enumerate(frames):
        assert torch.equal(out.codes[i, :, :n], expected[i, :, :n])
