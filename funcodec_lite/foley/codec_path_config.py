"""Settings and places of the Foley recipe's codec-token path (`funcodec_lite.foley.codec_path`): the
``codec_tokens`` section of a run's YAML, the shared codec directory and the run's prior."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

from funcodec_lite.codec.model import Codec
from funcodec_lite.foley.data import read_foley_data_dir
from funcodec_lite.foley.mel import recipe_front_end
from funcodec_lite.foley.recipe_config import FoleyRunConfig, settings_digest
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.lm.maskgit import MaskGITConfig
from funcodec_lite.lm.training import LMTrainConfig
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.utils.config import ConfigError

SECTIONS = ("codec", "prior", "sampling")
PRIOR_KINDS = ("masked_lm", "codec_lm")


@dataclass
class CodecTokensConfig:
    """The ``codec_tokens`` section of a Foley run.

    Args:
        codec: the codec's training run (`TrainConfig`, the format of ``egs/speech_codec/conf/*.yaml``); its
            sample rate must be the challenge's (the mel front end's, 22,050 Hz) and its audio mono.
        prior: the token model's training run (`LMTrainConfig`: ``model`` with ``kind: masked_lm`` or
            ``codec_lm``, ``train``, ``data``); ``n_q``, ``card`` and ``n_classes`` come from the codec and
            the data. ``data.n_q`` codebooks are modelled (at most the codec's).
        sampling: `MaskGITConfig` fields (masked model) or `SamplingConfig` fields (autoregressive model;
            ``min_frames`` is the clip's length, always).
    """

    codec: TrainConfig
    prior: LMTrainConfig
    sampling: dict

    @classmethod
    def from_dict(cls, raw: dict | None) -> CodecTokensConfig:
        """Parses and checks the section.

        Raises:
            ConfigError: unknown or missing keys, wrong values, a codec not at the challenge's rate.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"codec_tokens: expected a mapping with {', '.join(SECTIONS)}, got {raw!r}")
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"codec_tokens: unknown key(s) {unknown}; known: {list(SECTIONS)}")
        missing = [name for name in ("codec", "prior") if name not in raw]
        if missing:
            raise ConfigError(f"codec_tokens: missing {missing}")
        try:
            codec = TrainConfig.from_dict(dict(raw["codec"] or {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"codec_tokens.codec: {error}") from error
        try:
            prior = LMTrainConfig.from_dict(dict(raw["prior"] or {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"codec_tokens.prior: {error}") from error
        config = cls(codec, prior, dict(raw.get("sampling") or {}))
        config.check()
        return config

    def check(self) -> None:
        """Raises ConfigError when the parts do not fit together (see the class docstring)."""
        rate = recipe_front_end().config.sample_rate
        codec = self.codec.codec
        if codec.sample_rate != rate or codec.channels != 1:
            raise ConfigError(f"codec_tokens.codec: the codec must be mono at the challenge's {rate} Hz, got "
                              f"{codec.channels} channel(s) at {codec.sample_rate} Hz")
        if self.prior.kind not in PRIOR_KINDS:
            raise ConfigError(f"codec_tokens.prior.model.kind must be one of {PRIOR_KINDS}, got "
                              f"{self.prior.kind!r}")
        if not 1 <= self.n_q <= codec.quantizer.n_q:
            raise ConfigError(f"codec_tokens.prior.data.n_q must be in 1..{codec.quantizer.n_q} (the codec's "
                              f"codebooks), got {self.n_q}")
        try:
            model = self.prior.model_config(**self.fixed(n_classes=1))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"codec_tokens.prior.model: {error}") from error
        if getattr(model, "n_conditioning", 0):
            raise ConfigError("codec_tokens.prior.model: n_conditioning must be 0 (clips are generated from "
                              "nothing but their class)")
        self.sampling_config()

    @property
    def n_q(self) -> int:
        """Codebooks the prior models (the first of the codec's)."""
        return self.prior.data.n_q

    def fixed(self, n_classes: int) -> dict:
        """The prior's config fields set by the codec and the data."""
        return {"n_q": self.n_q, "card": self.codec.codec.quantizer.codebook_size, "n_classes": n_classes}

    def sampling_config(self) -> MaskGITConfig | SamplingConfig:
        """The sampler's settings of the prior's kind.

        Raises:
            ConfigError: unknown fields or bad values.
        """
        if "min_frames" in self.sampling:
            raise ConfigError("codec_tokens.sampling: min_frames is set by the clip length")
        kind = MaskGITConfig if self.prior.kind == "masked_lm" else SamplingConfig
        try:
            return kind(**self.sampling)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"codec_tokens.sampling ({kind.__name__}): {error}") from error


def load_config(args: argparse.Namespace) -> CodecTokensConfig:
    """The ``codec_tokens`` section of ``args.config``.

    Raises:
        ConfigError: the run has no such section, or it is invalid.
    """
    run = FoleyRunConfig.from_yaml(args.config)
    if run.path != "codec":
        raise ConfigError(f"{args.config}: no codec_tokens section (a mel-path run)")
    return CodecTokensConfig.from_dict(run.codec_tokens)


def data_digest(data_dir: Path) -> str:
    """sha256 over a Foley data dir's clips: ids, classes and audio bytes (not their paths)."""
    from funcodec_lite.foley.recipe import file_digest

    digest = hashlib.sha256()
    for clip in sorted(read_foley_data_dir(data_dir), key=lambda c: c.utt_id):
        digest.update(f"{clip.utt_id} {clip.class_name} {file_digest(clip.path)}\n".encode())
    return digest.hexdigest()


def codec_exp(args: argparse.Namespace, config: CodecTokensConfig | None = None) -> Path:
    """``exp/codec_<hash>`` beside ``--exp``: the codec and tokens of every run with these codec settings
    and training clips."""
    config = config or load_config(args)
    key = settings_digest(config.codec.to_dict(), data_digest(args.data / "train"))
    return args.exp.parent / f"codec_{key}"


def codec_dir(args: argparse.Namespace, config: CodecTokensConfig | None = None) -> Path:
    """The run's codec model directory."""
    return codec_exp(args, config) / "model"


def prior_dir(args: argparse.Namespace) -> Path:
    """The prior to sample: the best held-out one (``prior/best``) when the run kept one, else the last."""
    best = args.exp / "prior" / "best"
    return best if (best / "model.safetensors").is_file() else args.exp / "prior" / "model"


def require_model(path: Path, stage: str) -> Path:
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: no model, run the {stage} stage first")
    return path


def load_codec(args: argparse.Namespace, config: CodecTokensConfig | None = None) -> Codec:
    """The run's codec (eval mode, CPU)."""
    return Codec.from_pretrained(require_model(codec_dir(args, config), "codec"))


def codec_model_id(codec: Codec) -> str:
    """The codec's id (what token files record)."""
    from funcodec_lite.codec.loading import model_id

    return model_id(codec)
