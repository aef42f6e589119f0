"""Every shipped YAML loads, and every training section becomes the engine's one `LoopConfig`."""

from __future__ import annotations

from pathlib import Path

import pytest

from funcodec_lite.codec.config import CodecConfig
from funcodec_lite.codec.training.config import TrainConfig
from funcodec_lite.lm.training import LMTrainConfig
from funcodec_lite.train.engine_config import LoopConfig
from funcodec_lite.utils.config import ConfigError, load_yaml
from funcodec_lite.vocoders.training import loop_config

ROOT = Path(__file__).resolve().parents[1]
CODEC_CONFS = sorted((ROOT / "egs" / "speech_codec" / "conf").glob("*.yaml"))
LM_CONFS = sorted((ROOT / "egs" / "tts_lm" / "conf").glob("*.yaml")) + sorted(
    (ROOT / "egs" / "vampnet" / "conf").glob("*.yaml"))
FOLEY_CONFS = sorted((ROOT / "egs" / "dcase_foley" / "conf").glob("*.yaml"))
PRESETS = sorted((ROOT / "funcodec_lite").glob("**/presets/*.yaml"))


def test_every_conf_is_covered():
    confs = {p.parent.parent.name for p in (ROOT / "egs").glob("*/conf/*.yaml")}
    assert confs == {"speech_codec", "tts_lm", "vampnet", "dcase_foley"}
    assert len(CODEC_CONFS) >= 9 and len(LM_CONFS) >= 4 and len(FOLEY_CONFS) >= 7 and len(PRESETS) >= 6


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_presets_load(path):
    assert CodecConfig.from_yaml(path).sample_rate > 0


@pytest.mark.parametrize("path", CODEC_CONFS, ids=lambda p: p.stem)
def test_codec_confs_map_onto_the_loop_config(path):
    config = TrainConfig.from_yaml(path)
    loop = config.loop()
    assert isinstance(loop, LoopConfig)
    assert (loop.steps, loop.batch_size, loop.lr, loop.keep_last) == (
        config.schedule.max_steps, config.data.batch_size, config.optim.lr, config.schedule.keep_last)
    assert loop.lr_schedule == ("cosine" if config.optim.scheduler == "cosine" else "step")


@pytest.mark.parametrize("path", LM_CONFS, ids=lambda p: p.stem)
def test_lm_confs_load(path):
    config = LMTrainConfig.from_yaml(path)
    data = load_yaml(path.read_text(encoding="utf-8"))
    assert config.train.valid_every == data["data"]["valid_every"]  # the key's first place still counts
    assert config.train.steps == data["train"]["steps"]


@pytest.mark.parametrize("path", FOLEY_CONFS, ids=lambda p: p.stem)
def test_foley_confs_training_sections_load(path):
    data = load_yaml(path.read_text(encoding="utf-8"))
    for section in ("vqvae_train", "prior_train"):
        assert LoopConfig.from_dict(data.get(section)).steps >= 1
    train = loop_config(data.get("vocoder_kind", "hifigan"), data.get("vocoder_train", {}))
    assert train is None or train.segment_frames >= 1
    tokens = data.get("codec_tokens")
    if tokens:
        codec = TrainConfig.from_dict(tokens["codec"]).loop()
        assert codec.max_minutes == tokens["codec"]["schedule"]["max_minutes"]
        assert LMTrainConfig.from_dict(tokens["prior"]).train.best_metric == "nll"
    if (ROOT / "funcodec_lite" / "recipes" / "dcase_foley" / "config.py").exists():  # the recipe's run config
        from funcodec_lite.recipes.dcase_foley.config import FoleyRunConfig

        FoleyRunConfig.from_yaml(path)


def test_one_set_of_defaults():
    """The tasks' sections start from the same defaults; a task's preset changes only its model's
    optimisation, and the codec's layout changes only the codec's own settings."""
    default = LoopConfig()
    assert (default.keep_last, default.checkpoint_every, default.mixed_precision) == (3, 1000, "no")
    hifigan, wavenet = loop_config("hifigan", {}), loop_config("wavenet", {"lr_half_every": 100})
    assert (hifigan.loop.optimizer, hifigan.loop.betas) == ("adamw", (0.8, 0.99))
    assert hifigan.loop.weight_decay == 0.01  # torch's AdamW default, which HiFi-GAN trained with
    assert (hifigan.loop.lr_decay, hifigan.loop.lr_decay_every) == (0.999, 1000)
    assert (hifigan.segment_frames, wavenet.segment_frames) == (32, 16)
    assert (wavenet.loop.lr_decay, wavenet.loop.lr_decay_every, wavenet.loop.grad_clip) == (0.5, 100, 1.0)
    codec = TrainConfig().loop()
    for loop in (hifigan.loop, wavenet.loop, LMTrainConfig().train, codec):
        assert (loop.keep_last, loop.checkpoint_every, loop.log_every, loop.seed) == (3, 1000, 50, 0)


@pytest.mark.parametrize("section, message", [
    ({"mixed_precision": "fp64"}, "mixed_precision"), ({"ema_decay": 1.0}, "ema_decay"),
    ({"optimizer": "sgd"}, "optimizer"), ({"lr_schedule": "linear"}, "lr_schedule"), ({"stepz": 3}, "stepz")])
def test_bad_sections_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        LoopConfig.from_dict(section)
    with pytest.raises(ConfigError, match=message):
        loop_config("hifigan", section)


def test_precision_is_checked_once_for_the_codec():
    config = TrainConfig.from_dict({"schedule": {"mixed_precision": False}})  # YAML's bare `no`
    assert config.schedule.mixed_precision == "no" and config.loop().mixed_precision == "no"
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig.from_dict({"schedule": {"ema_decay": 1.5}})
    with pytest.raises(ConfigError, match="valid_every"):
        LMTrainConfig.from_dict({"train": {"valid_every": 5}, "data": {"valid_every": 6}})
