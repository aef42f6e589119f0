"""One entry point for every vocoder kind: its presets, its config, its training loop, its training.

Kinds (`funcodec_lite.vocoders.VOCODER_KINDS`): ``hifigan`` (GAN, `hifigan_training`), ``wavenet``,
``waveglow``, ``flowavenet`` (likelihood, `likelihood_training`), ``student`` (a flow distilled from a trained
WaveNet teacher, also through `likelihood_training`) and ``griffinlim`` (nothing to train). Each module keeps
a ``PRESETS`` dict of named configs (``tiny`` for CPU runs).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from funcodec_lite.train.engine_config import LoopConfig
from funcodec_lite.utils.config import ConfigError, build_dataclass
from funcodec_lite.utils.weights import save_model_dir
from funcodec_lite.vocoders import VOCODER_KINDS, VOCODERS

LIKELIHOOD_KINDS = ("wavenet", "waveglow", "flowavenet", "student")


def _check_kind(kind: str) -> None:
    if kind not in VOCODER_KINDS:
        raise ConfigError(f"vocoder_kind must be one of {list(VOCODER_KINDS)}, got {kind!r}")


def vocoder_class(kind: str) -> type:
    """The model class of a vocoder kind (its module imported now)."""
    _check_kind(kind)
    module, name = VOCODERS[kind]
    return getattr(importlib.import_module(module), name)


def vocoder_presets(kind: str) -> dict[str, Any]:
    """Preset name -> a function returning that config, for a vocoder kind."""
    _check_kind(kind)
    return importlib.import_module(VOCODERS[kind][0]).PRESETS


def vocoder_config(kind: str, spec: str | dict) -> Any:
    """The config of a vocoder ``kind`` from a preset name or a dict of config fields."""
    config_class = vocoder_class(kind).config_class
    if isinstance(spec, str):
        presets = vocoder_presets(kind)
        if spec not in presets:
            raise ConfigError(f"{kind} vocoder preset must be one of {sorted(presets)}, got {spec!r}")
        return presets[spec]()
    return build_dataclass(config_class, dict(spec), "vocoder")


@dataclasses.dataclass
class VocoderTrainConfig:
    """A vocoder kind's training section (``vocoder_train``, ``codec vocoder train --train-config``).

    Args:
        loop: the engine's loop config (its keys), from the kind's preset: HiFi-GAN's `HIFIGAN_LOOP`,
            the likelihood kinds' `LIKELIHOOD_LOOP`.
        segment_frames: mel frames per training segment (HiFi-GAN 32, the likelihood kinds 16).
    """

    loop: LoopConfig
    segment_frames: int


def loop_config(kind: str, data: dict | None) -> VocoderTrainConfig | None:
    """The training section of a kind: the engine's loop keys plus ``segment_frames`` (and ``lr_half_every``
    N, short for ``lr_decay: 0.5`` every N steps); None for Griffin-Lim (which refuses settings: it trains
    nothing)."""
    _check_kind(kind)
    data = dict(data or {})
    if kind == "griffinlim":
        if data:
            raise ConfigError("vocoder_train: Griffin-Lim trains nothing; remove the section")
        return None
    if kind == "hifigan":
        from funcodec_lite.vocoders.hifigan_training import HIFIGAN_LOOP as preset
        from funcodec_lite.vocoders.hifigan_training import HIFIGAN_SEGMENT_FRAMES as frames
    else:
        from funcodec_lite.vocoders.likelihood_training import LIKELIHOOD_LOOP as preset
        from funcodec_lite.vocoders.likelihood_training import LIKELIHOOD_SEGMENT_FRAMES as frames
    frames = data.pop("segment_frames", frames)
    half_every = data.pop("lr_half_every", 0)
    if half_every:
        data = {"lr_decay": 0.5, "lr_decay_every": half_every, **data}
    return VocoderTrainConfig(LoopConfig.from_dict(data, preset, "vocoder_train"), int(frames))


def loop_settings(train: VocoderTrainConfig | None) -> dict:
    """Plain data of a training section (for keys and logs); {} for None."""
    return dataclasses.asdict(train) if train is not None else {}


def build_vocoder(kind: str, config: Any) -> nn.Module:
    """An untrained vocoder of ``kind``."""
    return vocoder_class(kind)(config)


def train_any_vocoder(kind: str, config: Any, mels: torch.Tensor, wavs: torch.Tensor,
                      train: VocoderTrainConfig | None,
                      exp_dir: str | Path, loss_config: Any = None, resume: bool = False,
                      provenance: dict | None = None, teacher: nn.Module | None = None) -> nn.Module:
    """Trains (or, for Griffin-Lim, just writes, fitting its band above fmax where it has one) a vocoder
    of ``kind`` on whole-clip mels [N, n_mels, F] and their audio [N, T]; the model directory is
    ``exp_dir/model``.

    Args:
        train: the kind's training section (`loop_config`; None for Griffin-Lim).
        loss_config: HiFi-GAN's `HiFiGANLossConfig` (other kinds: unused).
        teacher: the trained WaveNet a ``student`` is distilled from (required for that kind only).
    """
    _check_kind(kind)
    provenance = dict(provenance or {})
    if kind == "hifigan":
        from funcodec_lite.vocoders.hifigan_training import train_vocoder

        return train_vocoder(config, mels, wavs, train.loop, exp_dir, loss_config, resume=resume,
                             provenance=provenance, segment_frames=train.segment_frames)
    if kind == "griffinlim":
        model = build_vocoder(kind, config)
        if config.high_band:
            from funcodec_lite.vocoders.griffinlim import fit_griffinlim_high_band

            fit_griffinlim_high_band(model, mels, wavs)
        save_model_dir(Path(exp_dir) / "model", model, {**provenance, "steps": 0, "train_minutes": 0.0})
        return model.eval()
    from funcodec_lite.vocoders.likelihood_training import train_likelihood_vocoder

    if kind == "student":
        if teacher is None:
            raise ValueError("a student vocoder is distilled from a trained WaveNet teacher: give one")

        def build() -> nn.Module:
            student = build_vocoder(kind, config)
            student.attach_teacher(teacher)
            return student
    else:
        def build() -> nn.Module:
            return build_vocoder(kind, config)
    return train_likelihood_vocoder(build, mels, wavs, train.loop, exp_dir, resume=resume,
                                    provenance=provenance, segment_frames=train.segment_frames)


def load_any_vocoder(directory: str | Path, for_inference: bool = False) -> nn.Module:
    """The vocoder of a model directory, whatever its kind, in eval mode.

    Args:
        for_inference: fold weight norm where the model has it (HiFi-GAN); else the weights stay as saved.

    Raises:
        ValueError: the directory holds another kind of model (the message lists the vocoder kinds).
    """
    from funcodec_lite.utils.weights import load_model_as, read_model_config

    kind, _ = read_model_config(directory)
    if kind not in VOCODER_KINDS:
        raise ValueError(f"{directory}: a {kind} model directory, not a vocoder ({', '.join(VOCODER_KINDS)})")
    model = load_model_as(directory, vocoder_class(kind)).eval()
    if for_inference and hasattr(model, "remove_weight_norm"):
        model.remove_weight_norm()
    return model
