"""Codec configuration: dataclasses loaded from and saved to YAML, with strict key checking."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from funcodec_lite.audio.spectral import STFTConfig
from funcodec_lite.modules.frame_codec import VocosConfig
from funcodec_lite.modules.freqcodec import FreqCodecConfig
from funcodec_lite.modules.seanet import SEANetConfig
from funcodec_lite.quantization import RVQConfig, SemanticConfig
from funcodec_lite.utils.config import ConfigError, build_dataclass, load_yaml

ARCHITECTURES: dict[str, type] = {"seanet": SEANetConfig, "freqcodec": FreqCodecConfig, "vocos": VocosConfig}
DOMAINS = ("time", "mag_angle", "mag_phase")
PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class CodecConfig:
    """Everything needed to build a ``Codec``.

    ``model`` holds the encoder/decoder architecture: a ``SEANetConfig`` when ``arch == "seanet"``,
    a ``FreqCodecConfig`` when ``arch == "freqcodec"``, a ``VocosConfig`` when ``arch == "vocos"``
    (STFT front end and ConvNeXt blocks at the frame rate, iSTFT head).

    ``input_gain`` (> 0) multiplies the waveform before the encoder (and the STFT of frequency-domain
    models) and divides the decoder's output, so the networks work on audio near unit level while
    callers see their own: speech at RMS ≈ 0.05 with ``input_gain: 20``.  EnCodec-converted models and
    the presets use 1.0.
    """

    sample_rate: int = 16000
    channels: int = 1
    domain: str = "time"
    stft: STFTConfig | None = None
    arch: str = "seanet"
    model: Any = field(default_factory=SEANetConfig)
    quantizer: RVQConfig = field(default_factory=RVQConfig)
    semantic: SemanticConfig | None = None
    input_gain: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.domain not in DOMAINS:
            raise ConfigError(f"unknown domain {self.domain!r}; choose one of {DOMAINS}")
        if not isinstance(self.model, ARCHITECTURES[self.arch]):
            raise ConfigError(f"arch {self.arch!r} needs a {ARCHITECTURES[self.arch].__name__} model config")
        if self.arch in ("seanet", "vocos") and self.domain != "time":
            raise ConfigError(f"the {self.arch} architecture works in the time domain (domain: time)")
        if self.arch == "freqcodec" and self.domain == "time":
            raise ConfigError("the freqcodec architecture needs domain mag_phase or mag_angle")
        if self.domain != "time" and self.stft is None:
            self.stft = STFTConfig()
        if self.sample_rate <= 0 or self.channels <= 0:
            raise ConfigError("sample_rate and channels must be positive")
        if (isinstance(self.input_gain, bool) or not isinstance(self.input_gain, (int, float))
                or not 0 < self.input_gain < math.inf):
            raise ConfigError(f"input_gain must be a finite number > 0, got {self.input_gain!r}")
        self.input_gain = float(self.input_gain)

    @classmethod
    def from_dict(cls, data: dict) -> CodecConfig:
        """Builds a config from plain data (as read from YAML); unknown keys are errors."""
        data = dict(data)
        arch = data.get("arch", "seanet")
        if arch not in ARCHITECTURES:
            raise ConfigError(f"unknown arch {arch!r}; choose one of {sorted(ARCHITECTURES)}")
        model_cls = ARCHITECTURES[arch]
        model_data = data.get("model") or {}
        if hasattr(model_cls, "from_dict"):
            try:
                data["model"] = model_cls.from_dict(model_data)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"model: {error}") from error
        else:
            data["model"] = build_dataclass(model_cls, model_data, "model")
        return build_dataclass(cls, data, "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CodecConfig:
        path = Path(path)
        if not path.exists() and not path.suffix and (PRESET_DIR / f"{path}.yaml").exists():
            path = PRESET_DIR / f"{path}.yaml"  # a preset name such as "encodec_24khz"
        with open(path, encoding="utf-8") as handle:
            data = load_yaml(handle)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.to_dict(), handle, sort_keys=False)


def list_presets() -> list[str]:
    """Names of the configs shipped in ``funcodec_lite/codec/presets``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
