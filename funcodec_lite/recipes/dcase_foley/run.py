"""One Foley run as a typed object: its config (parsed once), its directories, its data keys (hashed once).

Every stage is ``stage_x(run: FoleyRun)``; the command line (`funcodec_lite.recipes.dcase_foley.command`)
builds the run once and nothing below it sees an ``argparse.Namespace``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from funcodec_lite.codec.model import Codec
from funcodec_lite.foley.data import FoleyFeatures, read_foley_data_dir
from funcodec_lite.recipes.dcase_foley.codec_tokens import CodecTokensConfig
from funcodec_lite.recipes.dcase_foley.config import FoleyRunConfig, settings_digest
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.torch_files import file_sha256
from funcodec_lite.utils.weights import read_provenance


@dataclass
class DataSource:
    """Stage 0's input: the challenge's folders and the train/valid split.

    Args:
        dev_root: DCASEFoleySoundSynthesisDevSet folder (``<Class>/*.wav``).
        eval_root: evaluation set folder, or None.
        valid_fraction: part of each dev class held out as ``valid``.
        seed: the split's seed.
    """

    dev_root: Path | None = None
    eval_root: Path | None = None
    valid_fraction: float = 0.1
    seed: int = 0


@dataclass
class OfficialVocoder:
    """An official HiFi-GAN generator checkpoint imported at stage 5 instead of training one.

    Args:
        checkpoint: ``g_XXXXXXXX``.
        config: its ``config.json``; None: the run's vocoder preset.
    """

    checkpoint: Path
    config: Path | None = None

    def key(self) -> str:
        """8 hex digits over the checkpoint's and its config's bytes."""
        files = [self.checkpoint, *([self.config] if self.config else [])]
        return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()[:8]


@dataclass
class FoleyRun:
    """A run of the recipe: where its data, features and outputs are, and its settings.

    Args:
        config_path: ``conf/<run>.yaml`` (None for stages 0-1, which need none).
        exp: ``exp/<run>``; shared models (vocoder, classifier, codec) go beside it.
        data: the Kaldi data dirs (``data/{train,valid,eval}``).
        features: the log-mel files of stage 1.
        source: stage 0's input.
        resume: training stages continue from their newest checkpoint.
        official: an official HiFi-GAN generator to import at stage 5.
        vggish: VGGish weights for challenge-style FAD at stage 7.
        vocoder_override, classifier_override: explicit vocoder / classifier experiment dirs (default: the
            keyed dirs, `vocoder_exp` and `classifier_exp`).
    """

    config_path: Path | None = None
    exp: Path | None = None
    data: Path = Path("data")
    features: Path = Path("exp/features")
    source: DataSource | None = None
    resume: bool = False
    official: OfficialVocoder | None = None
    vggish: str | None = None
    vocoder_override: Path | None = None
    classifier_override: Path | None = None

    @cached_property
    def config(self) -> FoleyRunConfig:
        """The run's settings, parsed once.

        Raises:
            ValueError: no ``--config``.
        """
        if self.config_path is None or self.exp is None:
            raise ValueError("give --config and --exp (the model directories are keyed by the run's "
                             "settings)")
        return FoleyRunConfig.from_yaml(self.config_path)

    @property
    def tokens(self) -> CodecTokensConfig:
        """The ``codec_tokens`` section.

        Raises:
            ConfigError: a mel-path run (no such section).
        """
        self.require_codec_path()
        return self.config.codec_tokens

    def require_codec_path(self) -> None:
        """Raises ConfigError for a mel-path run (one without ``codec_tokens``)."""
        if self.config.codec_tokens is None:
            raise ConfigError(f"{self.config_path}: no codec_tokens section (a mel-path run)")

    def load_features(self, split: str) -> FoleyFeatures:
        """The stage-1 log-mels of a split.

        Raises:
            FileNotFoundError: stage 1 has not run.
        """
        path = self.features / f"{split}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing, run stage 1 first")
        return FoleyFeatures.load(path)

    @cached_property
    def features_key(self) -> str:
        """`FoleyFeatures.digest` of the training features: the data key of the vocoder and classifier."""
        return self.load_features("train").digest()

    @cached_property
    def clips_key(self) -> str:
        """sha256 over the training clips' ids, classes and audio bytes (not their paths): the data key of
        the codec."""
        digest = hashlib.sha256()
        for clip in sorted(read_foley_data_dir(self.data / "train"), key=lambda c: c.utt_id):
            digest.update(f"{clip.utt_id} {clip.class_name} {file_sha256(clip.path)}\n".encode())
        return digest.hexdigest()

    @cached_property
    def vocoder_exp(self) -> Path:
        """``exp/vocoder_<preset>_<hash>`` (settings and training features), or for an imported official
        generator ``exp/vocoder_official_<hash of its files>``, unless given explicitly; a run directory with
        its own ``vocoder/model`` (``codec convert --from dcase-baseline`` writes one) uses that."""
        if self.vocoder_override is not None:
            return self.vocoder_override
        if self.exp is not None and (self.exp / "vocoder" / "model" / "model.safetensors").is_file():
            return self.exp / "vocoder"
        if self.official is not None:
            return self._root / f"vocoder_official_{self.official.key()}"
        return self._root / self.config.vocoder_name(self.features_key)

    @cached_property
    def classifier_exp(self) -> Path:
        """``exp/classifier_<hash>`` (settings and training features), unless given explicitly."""
        if self.classifier_override is not None:
            return self.classifier_override
        return self._root / self.config.classifier_name(self.features_key)

    @cached_property
    def codec_exp(self) -> Path:
        """``exp/codec_<hash>`` beside the run: the codec and tokens of every run with these codec settings
        and training clips."""
        return self._root / f"codec_{settings_digest(self.tokens.codec.to_dict(), self.clips_key)}"

    @property
    def prior_dir(self) -> Path:
        """The prior to sample: the best held-out one (``prior/best``) when the run kept one, else the
        last."""
        best = self.exp / "prior" / "best"
        return best if (best / "model.safetensors").is_file() else self.exp / "prior" / "model"

    @property
    def class_names(self) -> list[str]:
        """The prior's classes in label order: those of the stage-3 code maps, or (a converted release, which
        has none) those its provenance records.

        Raises:
            FileNotFoundError: neither is there.
        """
        codes = self.exp / "codes" / "train.npz"
        if codes.is_file():
            with np.load(codes, allow_pickle=False) as archive:
                return archive["class_names"].tolist()
        names = read_provenance(self.exp / "prior" / "model").get("class_names") \
            if (self.exp / "prior" / "model" / "provenance.json").is_file() else None
        if not names:
            raise FileNotFoundError(f"{codes}: missing, run stage 3 first")
        return list(names)

    def load_codec(self) -> Codec:
        """The codec-token path's codec (eval mode, CPU).

        Raises:
            FileNotFoundError: the codec stage has not run.
        """
        return Codec.from_pretrained(require_model(self.codec_exp / "model", "codec"))

    @property
    def _root(self) -> Path:
        if self.exp is None:
            raise ValueError("give --exp")
        return self.exp.parent


def require_model(path: Path, stage: str) -> Path:
    """``path`` when it holds a model directory.

    Raises:
        FileNotFoundError: it does not (the message names the stage that writes it).
    """
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: no model, run the {stage} stage first")
    return path
