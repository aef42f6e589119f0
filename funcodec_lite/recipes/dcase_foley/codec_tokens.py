"""The ``codec_tokens`` section of a Foley run (the codec-token path,
`funcodec_lite.recipes.dcase_foley.codec_path`): the codec's training, the token prior's, the sampler's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from funcodec_lite.audio.mel_frontend import recipe_front_end
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.lm.generate import SamplingConfig
from funcodec_lite.lm.maskgit import MaskGITConfig
from funcodec_lite.lm.token_sampling import CLASS_PRIOR_KINDS
from funcodec_lite.lm.training import LMTrainConfig
from funcodec_lite.utils.config import ConfigError

SECTIONS = ("codec", "prior", "sampling")


@dataclass
class CodecTokensConfig:
    """The ``codec_tokens`` section of a Foley run.

    Args:
        codec: the codec's training run (`TrainConfig`, the format of ``egs/speech_codec/conf/*.yaml``); its
            sample rate must be the challenge's (the mel front end's, 22,050 Hz) and its audio mono.
        prior: the token model's training run (`LMTrainConfig`: ``model`` with ``kind: masked_lm`` or
            ``codec_lm``, ``train``, ``data``); ``n_q``, ``card`` and ``n_classes`` come from the codec and
            the data. ``data.n_q`` codebooks are modelled (at most the codec's).
        sampling: the sampler's settings: `MaskGITConfig` (masked model) or `SamplingConfig` (autoregressive
            model; its ``min_frames`` is the clip's length, always).
    """

    codec: TrainConfig
    prior: LMTrainConfig
    sampling: MaskGITConfig | SamplingConfig

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
        if prior.kind not in CLASS_PRIOR_KINDS:
            raise ConfigError(f"codec_tokens.prior.model.kind must be one of {CLASS_PRIOR_KINDS}, got "
                              f"{prior.kind!r}")
        config = cls(codec, prior, _sampler(prior.kind, dict(raw.get("sampling") or {})))
        config.check()
        return config

    def check(self) -> None:
        """Raises ConfigError when the parts do not fit together (see the class docstring)."""
        rate = recipe_front_end().config.sample_rate
        codec = self.codec.codec
        if codec.sample_rate != rate or codec.channels != 1:
            raise ConfigError(f"codec_tokens.codec: the codec must be mono at the challenge's {rate} Hz, got "
                              f"{codec.channels} channel(s) at {codec.sample_rate} Hz")
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

    @property
    def n_q(self) -> int:
        """Codebooks the prior models (the first of the codec's)."""
        return self.prior.data.n_q

    def fixed(self, n_classes: int) -> dict:
        """The prior's config fields set by the codec and the data."""
        return {"n_q": self.n_q, "card": self.codec.codec.quantizer.codebook_size, "n_classes": n_classes}

    def sampling_settings(self, frames: int) -> dict:
        """The sampler's settings as plain data for the generator (`funcodec_lite.lm.token_sampling`), with
        ``frames``, the code frames of one clip."""
        settings = dataclasses.asdict(self.sampling)
        settings.pop("min_frames", None)  # the clip's length, set by the sampler
        return {**settings, "frames": frames}


def _sampler(kind: str, fields: dict) -> MaskGITConfig | SamplingConfig:
    """The sampler's settings of a prior ``kind`` from the ``sampling`` fields.

    Raises:
        ConfigError: unknown fields or bad values.
    """
    if "min_frames" in fields:
        raise ConfigError("codec_tokens.sampling: min_frames is set by the clip length")
    sampler = MaskGITConfig if kind == "masked_lm" else SamplingConfig
    try:
        return sampler(**fields)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"codec_tokens.sampling ({sampler.__name__}): {error}") from error
