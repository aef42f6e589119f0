"""One YAML file per Foley run: the mel autoencoder, the prior, the vocoder, the classifier, generation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funcodec_lite.foley.classifier import ClassifierConfig
from funcodec_lite.foley.vqvae import MelVQVAEConfig
from funcodec_lite.lm import PixelSNAILConfig
from funcodec_lite.train.engine import LoopConfig
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml
from funcodec_lite.vocoders.hifigan_loss import HiFiGANLossConfig
from funcodec_lite.vocoders.training import loop_config, loop_settings, vocoder_config


@dataclass
class GenerateConfig:
    """Stage 6: ``clips_per_class`` maps per class drawn with the incremental sampler, in batches."""

    clips_per_class: int = 100
    temperature: float = 1.0
    batch_size: int = 50
    seed: int = 0


@dataclass
class FoleyRunConfig:
    """A run of the recipe (``conf/<run>.yaml``); every section is optional.

    A missing section takes the defaults below. Those of the models are the baseline's (its VQ-VAE,
    its PixelSNAIL, HiFi-GAN V1 with MPD + MSD), but the training lengths are not: 200,000 VQ-VAE
    steps (the baseline's 800 epochs are 242,500), 500,000 prior steps (baseline 454,000) and 2,000
    vocoder steps (``conf/baseline_vq.yaml``: 500,000); the classifier (the recipe's own, not the
    baseline's) has a 128-d embedding (the baseline configs use 64). ``conf/baseline_vq.yaml`` spells
    out the baseline's settings.

    Sections: ``vqvae`` (MelVQVAEConfig fields), ``vqvae_train`` (LoopConfig), ``prior``
    (PixelSNAILConfig fields except height, width, n_codes and n_classes, which come from the
    autoencoder and the data), ``prior_train`` (LoopConfig), ``vocoder_kind`` (hifigan (default),
    wavenet, waveglow, flowavenet, student or griffinlim: `funcodec_lite.vocoders.training`), ``vocoder``
    (a preset name of that kind, e.g. HiFi-GAN's v1, v2, v3, tiny, or its config fields), ``vocoder_train``
    (`VocoderTrainConfig`: the engine's LoopConfig and segment_frames; Griffin-Lim: none),
    ``vocoder_teacher`` (the student's WaveNet teacher: a preset or fields), ``vocoder_loss``
    (HiFiGANLossConfig: discriminator sizes, loss weights), ``classifier``
    (ClassifierConfig fields), ``generate`` (GenerateConfig), ``codec_tokens`` (the codec-token path:
    `funcodec_lite.foley.codec_path.CodecTokensConfig`; with it the run trains a codec and a token prior
    instead of the mel autoencoder, PixelSNAIL and the vocoder).
    """

    vqvae: MelVQVAEConfig = field(default_factory=MelVQVAEConfig)
    vqvae_train: LoopConfig = field(default_factory=lambda: LoopConfig(steps=200_000, batch_size=16))
    prior: dict = field(default_factory=dict)
    prior_train: LoopConfig = field(default_factory=lambda: LoopConfig(steps=500_000, batch_size=16))
    vocoder: str | dict = "v1"
    vocoder_kind: str = "hifigan"
    vocoder_train: Any = field(default_factory=lambda: loop_config("hifigan", {}))
    vocoder_teacher: str | dict | None = None
    vocoder_loss: HiFiGANLossConfig = field(default_factory=HiFiGANLossConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    codec_tokens: dict | None = None

    @property
    def path(self) -> str:
        """"codec" when the run generates codec tokens (a ``codec_tokens`` section), else "mel"."""
        return "codec" if self.codec_tokens is not None else "mel"

    @classmethod
    def from_yaml(cls, path: str | Path) -> FoleyRunConfig:
        data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"{path}: unknown sections {unknown}")
        try:
            return cls(
                vqvae=MelVQVAEConfig.from_dict(data.get("vqvae", {})),
                vqvae_train=LoopConfig.from_dict(data.get("vqvae_train", {})),
                prior=dict(data.get("prior", {})),
                prior_train=LoopConfig.from_dict(data.get("prior_train", {})),
                vocoder=data.get("vocoder", "v1"),
                vocoder_kind=data.get("vocoder_kind", "hifigan"),
                vocoder_train=loop_config(data.get("vocoder_kind", "hifigan"), data.get("vocoder_train", {})),
                vocoder_teacher=data.get("vocoder_teacher"),
                vocoder_loss=build_dataclass(HiFiGANLossConfig, data.get("vocoder_loss", {}), "vocoder_loss"),
                classifier=ClassifierConfig(**_tuples(data.get("classifier", {}))),
                generate=GenerateConfig(**data.get("generate", {})),
                codec_tokens=data.get("codec_tokens"),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{path}: {error}") from error

    def prior_config(self, n_classes: int) -> PixelSNAILConfig:
        """The prior's settings for this autoencoder's code maps and ``n_classes`` classes."""
        height, width = self.vqvae.code_map_shape
        fixed = {
            "height": height,
            "width": width,
            "n_codes": self.vqvae.codebook_size,
            "n_classes": n_classes,
        }
        clash = sorted(set(self.prior) & set(fixed))
        if clash:
            raise ConfigError(f"prior: {clash} are set by the autoencoder and the data, not the config")
        return PixelSNAILConfig(**self.prior, **fixed)

    def vocoder_config(self) -> Any:
        """The vocoder's settings (``vocoder``: a preset name of its kind or explicit fields)."""
        return vocoder_config(self.vocoder_kind, self.vocoder)

    def teacher_config(self) -> Any:
        """The WaveNet teacher of a ``student`` vocoder (``vocoder_teacher``: a WaveNet preset or fields)."""
        if self.vocoder_kind != "student":
            raise ConfigError("vocoder_teacher belongs to the student vocoder kind")
        if self.vocoder_teacher is None:
            raise ConfigError("a student vocoder needs vocoder_teacher: a WaveNet preset or its fields")
        return vocoder_config("wavenet", self.vocoder_teacher)

    def vocoder_name(self, data_key: str) -> str:
        """Directory name of the vocoder experiment: runs share a trained vocoder exactly when its kind,
        generator, training (and, for HiFi-GAN, loss; for the student, teacher) settings and its training
        data (``data_key``, e.g. `FoleyFeatures.digest` of the training features) are the same.

        ``vocoder_<preset>_<hash>`` for HiFi-GAN (the name it had before there were other kinds),
        ``vocoder_<kind>_<preset>_<hash>`` for the others.
        """
        settings = {"vocoder": self.vocoder, "train": loop_settings(self.vocoder_train)}
        if self.vocoder_kind == "hifigan":
            settings["loss"] = dataclasses.asdict(self.vocoder_loss)
        else:
            settings["kind"] = self.vocoder_kind
        if self.vocoder_teacher is not None:
            settings["teacher"] = self.vocoder_teacher
        preset = self.vocoder if isinstance(self.vocoder, str) else "custom"
        kind = "" if self.vocoder_kind == "hifigan" else f"{self.vocoder_kind}_"
        return f"vocoder_{kind}{preset}_{settings_digest(settings, data_key)}"

    def classifier_name(self, data_key: str) -> str:
        """Directory name of the evaluation classifier, ``classifier_<hash>``: runs share one exactly when
        its settings and its training data (``data_key``) are the same."""
        return f"classifier_{settings_digest(dataclasses.asdict(self.classifier), data_key)}"


def settings_digest(settings: dict, data_key: str) -> str:
    """8 hex digits of sha256 over JSON ``settings`` and a training-data key."""
    text = json.dumps({"settings": settings, "data": data_key}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _tuples(data: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
