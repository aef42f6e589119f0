"""One YAML file per Foley run, parsed once into typed sections: the mel autoencoder, the prior, the vocoder,
the classifier, generation and (the codec-token path) ``codec_tokens``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funcodec_lite.foley.classifier import ClassifierConfig
from funcodec_lite.foley.vqvae import MelVQVAEConfig
from funcodec_lite.lm.pixelsnail import PixelSNAILConfig
from funcodec_lite.recipes.dcase_foley.codec_tokens import CodecTokensConfig
from funcodec_lite.train.engine import LoopConfig
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml
from funcodec_lite.vocoders.hifigan_loss import HiFiGANLossConfig
from funcodec_lite.vocoders.training import loop_config, loop_settings, vocoder_config

SECTIONS = ("vqvae", "vqvae_train", "prior", "prior_train", "vocoder", "vocoder_kind", "vocoder_train",
            "vocoder_teacher", "vocoder_loss", "classifier", "generate", "codec_tokens")
# PixelSNAIL fields the autoencoder and the data set, never the ``prior`` section
PRIOR_FIXED = ("height", "width", "n_codes", "n_classes")


@dataclass
class GenerateConfig:
    """Stage 6: ``clips_per_class`` maps per class drawn with the incremental sampler, in batches, at the
    softmax ``temperature``, with classifier-free ``guidance`` (0: none; it needs ``prior.label_dropout``)."""

    clips_per_class: int = 100
    temperature: float = 1.0
    guidance: float = 0.0
    batch_size: int = 50
    seed: int = 0


@dataclass
class VocoderSection:
    """The run's vocoder: the YAML keys ``vocoder_kind``, ``vocoder``, ``vocoder_train``, ``vocoder_teacher``
    and ``vocoder_loss``, parsed.

    Args:
        kind: hifigan (default), wavenet, waveglow, flowavenet, student or griffinlim
            (`funcodec_lite.vocoders.training`).
        preset: the preset ``vocoder`` names (e.g. HiFi-GAN's v1, v2, v3, tiny); None for explicit fields.
        config: the vocoder's config (the kind's dataclass).
        train: its training section (`VocoderTrainConfig`: the engine's LoopConfig and segment_frames;
            Griffin-Lim: None).
        loss: HiFi-GAN's discriminator sizes and loss weights.
        teacher_preset: the student's WaveNet teacher preset (None for explicit fields or no teacher).
        teacher: the student's WaveNet teacher config (None for other kinds).
    """

    kind: str = "hifigan"
    preset: str | None = "v1"
    config: Any = None
    train: Any = None
    loss: HiFiGANLossConfig = field(default_factory=HiFiGANLossConfig)
    teacher_preset: str | None = None
    teacher: Any = None

    @classmethod
    def from_dict(cls, data: dict) -> VocoderSection:
        """The vocoder keys of a run's YAML (``data``: the whole file's mapping)."""
        kind, spec = data.get("vocoder_kind", "hifigan"), data.get("vocoder", "v1")
        teacher_spec = data.get("vocoder_teacher")
        if teacher_spec is not None and kind != "student":
            raise ConfigError("vocoder_teacher belongs to the student vocoder kind")
        if kind == "student" and teacher_spec is None:
            raise ConfigError("a student vocoder needs vocoder_teacher: a WaveNet preset or its fields")
        train = loop_config(kind, data.get("vocoder_train", {}))
        return cls(
            kind=kind, preset=spec if isinstance(spec, str) else None, config=vocoder_config(kind, spec),
            train=train,
            loss=build_dataclass(HiFiGANLossConfig, data.get("vocoder_loss", {}), "vocoder_loss"),
            teacher_preset=teacher_spec if isinstance(teacher_spec, str) else None,
            teacher=vocoder_config("wavenet", teacher_spec) if teacher_spec is not None else None,
        )

    def key_settings(self) -> dict:
        """What the shared vocoder directory's name hashes: the generator (its preset name, or its fields),
        the training loop, HiFi-GAN's loss or the kind, the student's teacher."""
        settings: dict[str, Any] = {"vocoder": self.preset or _plain(self.config),
                                    "train": loop_settings(self.train)}
        if self.kind == "hifigan":
            settings["loss"] = dataclasses.asdict(self.loss)
        else:
            settings["kind"] = self.kind
        if self.teacher is not None:
            settings["teacher"] = self.teacher_preset or _plain(self.teacher)
        return settings


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
    (PixelSNAILConfig fields except height, width, n_codes and n_classes: the first three come from the
    autoencoder, ``n_classes`` from the data, see `prior_config`), ``prior_train`` (LoopConfig), the
    vocoder keys (`VocoderSection`), ``classifier`` (ClassifierConfig fields), ``generate``
    (GenerateConfig), ``codec_tokens`` (the codec-token path: `CodecTokensConfig`; with it the run trains
    a codec and a token prior instead of the mel autoencoder, PixelSNAIL and the vocoder).
    """

    vqvae: MelVQVAEConfig = field(default_factory=MelVQVAEConfig)
    vqvae_train: LoopConfig = field(default_factory=lambda: LoopConfig(steps=200_000, batch_size=16))
    prior: PixelSNAILConfig = field(default_factory=PixelSNAILConfig)
    prior_train: LoopConfig = field(default_factory=lambda: LoopConfig(steps=500_000, batch_size=16))
    vocoder: VocoderSection = field(default_factory=lambda: VocoderSection.from_dict({}))
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    codec_tokens: CodecTokensConfig | None = None

    @property
    def path(self) -> str:
        """"codec" when the run generates codec tokens (a ``codec_tokens`` section), else "mel"."""
        return "codec" if self.codec_tokens is not None else "mel"

    @classmethod
    def from_yaml(cls, path: str | Path) -> FoleyRunConfig:
        """Parses and checks every section of ``path``.

        Raises:
            ConfigError: unknown sections or keys, bad values (the message names the file).
        """
        data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as error:  # ConfigError is a ValueError
            raise ConfigError(f"{path}: {error}") from error

    @classmethod
    def from_dict(cls, data: dict) -> FoleyRunConfig:
        """The sections of a run's YAML mapping (see `from_yaml`)."""
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown sections {unknown}")
        vqvae = MelVQVAEConfig.from_dict(data.get("vqvae", {}))
        tokens = data.get("codec_tokens")
        return cls(
            vqvae=vqvae,
            vqvae_train=LoopConfig.from_dict(data.get("vqvae_train", {})),
            prior=_prior(vqvae, dict(data.get("prior") or {})),
            prior_train=LoopConfig.from_dict(data.get("prior_train", {})),
            vocoder=VocoderSection.from_dict(data),
            classifier=build_dataclass(ClassifierConfig, data.get("classifier", {}), "classifier"),
            generate=build_dataclass(GenerateConfig, data.get("generate", {}), "generate"),
            codec_tokens=CodecTokensConfig.from_dict(tokens) if tokens is not None else None,
        )

    def __post_init__(self) -> None:
        if self.generate.guidance and self.codec_tokens is not None:
            raise ConfigError("generate.guidance is the PixelSNAIL prior's; a codec_tokens run samples with "
                              "its own sampling section")
        if self.generate.guidance and self.codec_tokens is None and not self.prior.label_dropout:
            raise ConfigError(f"generate.guidance {self.generate.guidance} needs a prior trained with "
                              "prior.label_dropout > 0 (it samples the no-class label)")

    def prior_config(self, n_classes: int) -> PixelSNAILConfig:
        """The prior's settings for the data's ``n_classes`` classes."""
        return dataclasses.replace(self.prior, n_classes=n_classes)

    def vocoder_name(self, data_key: str) -> str:
        """Directory name of the vocoder experiment: runs share a trained vocoder exactly when its kind,
        generator, training (and, for HiFi-GAN, loss; for the student, teacher) settings and its training
        data (``data_key``, e.g. `FoleyFeatures.digest` of the training features) are the same.

        ``vocoder_<preset>_<hash>`` for HiFi-GAN (the name it had before there were other kinds),
        ``vocoder_<kind>_<preset>_<hash>`` for the others.
        """
        section = self.vocoder
        kind = "" if section.kind == "hifigan" else f"{section.kind}_"
        digest = settings_digest(section.key_settings(), data_key)
        return f"vocoder_{kind}{section.preset or 'custom'}_{digest}"

    def classifier_name(self, data_key: str) -> str:
        """Directory name of the evaluation classifier, ``classifier_<hash>``: runs share one exactly when
        its settings and its training data (``data_key``) are the same."""
        return f"classifier_{settings_digest(dataclasses.asdict(self.classifier), data_key)}"


def _prior(vqvae: MelVQVAEConfig, fields: dict) -> PixelSNAILConfig:
    """The ``prior`` section over ``vqvae``'s code maps (``n_classes`` is set by `prior_config`)."""
    clash = sorted(set(fields) & set(PRIOR_FIXED))
    if clash:
        raise ConfigError(f"prior: {clash} are set by the autoencoder and the data, not the config")
    height, width = vqvae.code_map_shape
    fixed = {"height": height, "width": width, "n_codes": vqvae.codebook_size}
    return build_dataclass(PixelSNAILConfig, {**fields, **fixed}, "prior")


def _plain(config: Any) -> dict:
    """A config dataclass as JSON data (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def settings_digest(settings: dict, data_key: str) -> str:
    """8 hex digits of sha256 over JSON ``settings`` and a training-data key."""
    text = json.dumps({"settings": settings, "data": data_key}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]
