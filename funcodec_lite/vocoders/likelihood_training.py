"""Training of the vocoders with one loss of their own (WaveNet, WaveGlow, FloWaveNet, the flow student).

Every such model has the interface of `funcodec_lite.vocoders`: ``training_loss(mel, wav) -> dict`` with a
``"loss"`` entry (the value to minimise; the other entries are logged), ``synthesize(mel, ...)``,
``hop_length``, ``model_kind`` and a dataclass ``config``. One engine task trains them all on aligned
random segments (`SegmentDataset`, the crops HiFi-GAN trains on), with Adam and gradient clipping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from funcodec_lite.train.engine import Engine, LoopConfig, TrainTask
from funcodec_lite.vocoders.hifigan_training import SegmentDataset

# the loop config a likelihood vocoder's `vocoder_train` section starts from (Adam 1e-3, clipping at 1;
# WaveGlow and FloWaveNet halve the rate on a schedule: lr_decay 0.5 every lr_decay_every steps)
LIKELIHOOD_LOOP = {"steps": 2000, "lr": 1e-3, "grad_clip": 1.0}
LIKELIHOOD_SEGMENT_FRAMES = 16  # mel frames per training segment (16 frames = 4,096 samples at hop 256)


class LikelihoodVocoderTask(TrainTask):
    """One optimizer, one loss: ``model.training_loss(mel, wav)["loss"]`` per step.

    Args:
        build_model: makes the model (called after the engine has seeded torch).
        mels: [N, n_mels, F] log-mels of ``wavs``.
        wavs: [N, T] audio with T >= F·hop.
        loop: the run's settings (its optimizer: ``loop.make_optimizer``).
        provenance: extra entries for the exported model's ``provenance.json``.
        segment_frames: mel frames per training segment.
    """

    name = "vocoder"

    def __init__(self, build_model: Callable[[], nn.Module], mels: torch.Tensor, wavs: torch.Tensor,
                 loop: LoopConfig, provenance: dict | None = None,
                 segment_frames: int = LIKELIHOOD_SEGMENT_FRAMES) -> None:
        self.build_model, self.loop, self.segment_frames = build_model, loop, segment_frames
        self.mels, self.wavs = mels, wavs
        self.provenance = provenance or {}
        self._segments: SegmentDataset | None = None

    def build(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        model = self.build_model()
        trainable = [p for p in model.parameters() if p.requires_grad]
        self._segments = SegmentDataset(self.mels, self.wavs, self.segment_frames, model.hop_length,
                                        self.loop.seed)
        return {"vocoder": TrainingLoss(model)}, {"vocoder": self.loop.make_optimizer(trainable)}

    def dataset(self) -> SegmentDataset:
        assert self._segments is not None, "build() first"
        return self._segments

    def step(self, batch: list[torch.Tensor], engine: Engine) -> dict[str, torch.Tensor]:
        mel, wav = batch
        with engine.autocast():
            terms = engine.modules["vocoder"](mel, wav)  # through DDP when distributed
        engine.update("vocoder", terms["loss"])
        return {k: v.detach() for k, v in terms.items()}

    def export(self, engine: Engine, directory: Path) -> None:
        from funcodec_lite.utils.weights import save_model_dir

        save_model_dir(directory, engine.unwrap("vocoder").model,
                       {**self.provenance, "steps": engine.step,
                        "train_minutes": round(engine.train_seconds / 60, 3)})


class TrainingLoss(nn.Module):
    """``forward(mel, wav)`` is ``model.training_loss(mel, wav)``, so DDP sees the loss computation as the
    wrapped module's forward and all-reduces its gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.training_loss(mel, wav)


def train_likelihood_vocoder(build_model: Callable[[], nn.Module], mels: torch.Tensor, wavs: torch.Tensor,
                             loop: LoopConfig, exp_dir: str | Path | None, resume: bool = False,
                             provenance: dict | None = None,
                             segment_frames: int = LIKELIHOOD_SEGMENT_FRAMES) -> nn.Module:
    """Trains ``build_model()`` on whole-clip mels [N, n_mels, F] and audio [N, T] (random segments of
    ``segment_frames`` frames; ``loop``: e.g. ``LoopConfig.from_dict(section, LIKELIHOOD_LOOP)``); saves
    ``exp_dir/model``.

    Returns the trained model in eval mode.
    """
    task = LikelihoodVocoderTask(build_model, mels, wavs, loop, provenance, segment_frames)
    engine = Engine(task, loop, exp_dir)
    engine.fit(resume=resume)
    return engine.unwrap("vocoder").model.eval()
