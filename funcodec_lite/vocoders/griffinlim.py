"""Griffin-Lim from a log-mel spectrogram: the vocoder that needs no training (the baseline of the family).

The mel is inverted to a linear magnitude by non-negative least squares against the front end's own Slaney
filters (torchaudio's `InverseMelScale`, its filter bank replaced by ours), then phases are estimated by
torchaudio's fast Griffin-Lim (momentum 0.99, Perraudin et al. 2013).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

from funcodec_lite.foley.mel import slaney_mel_filters


@dataclass
class GriffinLimConfig:
    """Args:
        sample_rate, n_fft, hop_length, win_length, num_mels, fmin, fmax: the mel front end's settings
            (the defaults are the Foley recipe's, `funcodec_lite.foley.mel.FoleyMelConfig`).
        n_iter: Griffin-Lim iterations.
        momentum: the fast Griffin-Lim momentum (0: the original algorithm).
        power: the mel's magnitude exponent (1: magnitude, as the recipe's front end).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    num_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    n_iter: int = 32
    momentum: float = 0.99
    power: float = 1.0


class GriffinLimVocoder(nn.Module):
    """Log-mel [B, num_mels, F] -> audio [B, 1, F · hop]; no parameters (its model directory holds none)."""

    model_kind = "griffinlim"  # its kind in model directories (funcodec_lite.utils.weights)
    config_class = GriffinLimConfig

    def __init__(self, config: GriffinLimConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GriffinLimConfig()
        fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            cfg.n_fft // 2 + 1, cfg.num_mels, cfg.sample_rate, cfg.fmin, fmax, driver="gelsd")
        fbank = slaney_mel_filters(cfg.sample_rate, cfg.n_fft, cfg.num_mels, cfg.fmin, fmax).float()
        del self.inverse_mel.fb
        self.inverse_mel.register_buffer("fb", fbank, persistent=False)  # [n_fft // 2 + 1, num_mels]
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            cfg.n_fft, cfg.n_iter, cfg.win_length, cfg.hop_length, power=cfg.power, momentum=cfg.momentum)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(mel)

    def synthesize(self, mel: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Args:
            mel: natural-log magnitude mel [B, num_mels, F].
            temperature: unused.
            generator: draws the random initial phases (torchaudio's global generator when None).

        Returns:
            [B, 1, F · hop] audio. The front end's frame k is centred on sample k·hop + hop/2
            (``center=False`` after (n_fft - hop)/2 reflect padding), torchaudio's on k·hop: the output is
            shifted by hop/2 to line up.
        """
        cfg = self.config
        frames = mel.shape[-1]
        magnitude = self.inverse_mel(mel.float().exp()).clamp_min(0.0)  # [B, n_fft // 2 + 1, F]
        if generator is not None:
            state = torch.get_rng_state()
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        try:
            wav = self.griffin_lim(magnitude.pow(cfg.power))  # [B, (F - 1) · hop]
        finally:
            if generator is not None:
                torch.set_rng_state(state)
        shift = cfg.hop_length // 2
        wav = F.pad(wav, (shift, frames * cfg.hop_length - wav.shape[-1] - shift))
        return wav.clamp(-1.0, 1.0)[:, None]


PRESETS = {
    "default": GriffinLimConfig,  # the Foley front end's settings, 32 fast Griffin-Lim iterations
    "fine": lambda: GriffinLimConfig(n_iter=100),
}
