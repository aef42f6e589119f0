"""The Foley recipe's codec-token path (`funcodec_lite.recipes.dcase_foley.codec_path`): its config section,
and every stage end to end on a tiny synthetic corpus (a hum class and a hiss class) with a masked and an
autoregressive prior sharing one codec."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from funcodec_lite.audio.io import save_audio
from funcodec_lite.foley.data import FoleyClip, write_foley_data_dir
from funcodec_lite.inference.tokens import load_tokens
from funcodec_lite.lm.token_sampling import sample_class_tokens
from funcodec_lite.recipes.dcase_foley.codec_path import reconstruct_clips
from funcodec_lite.recipes.dcase_foley.codec_tokens import CodecTokensConfig
from funcodec_lite.recipes.dcase_foley.command import main
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.weights import load_model_dir

RATE, SAMPLES = 22050, 88200
CONF = Path(__file__).resolve().parents[1] / "egs" / "dcase_foley" / "conf"
CARD = 16

TINY = {
    "codec": {
        "codec": {"sample_rate": RATE, "arch": "seanet", "domain": "time", "input_gain": 4.0,
                  "model": {"n_filters": 4, "ratios": [8, 8, 8, 4], "dimension": 8, "lstm": 0},
                  "quantizer": {"dim": 8, "n_q": 2, "codebook_size": CARD, "kmeans_iters": 2}},
        "discriminator": {"kinds": ["msstft"], "msstft": {"filters": 2}},
        "optim": {"lr": 3.0e-3},
        "data": {"segment_seconds": 0.5, "batch_size": 4, "valid_utterances": 1},
        "schedule": {"max_steps": 12, "disc_start_step": 10**9, "log_every": 6, "valid_every": 0,
                     "checkpoint_every": 0, "valid_n_q": [2]},
    },
    "prior": {
        "model": {"kind": "masked_lm",
                  "transformer": {"dim": 32, "n_layers": 2, "n_heads": 2, "causal": False}},
        "train": {"steps": 60, "batch_size": 4, "lr": 3.0e-3, "log_every": 20, "checkpoint_every": 0,
                  "best_metric": "nll"},
        "data": {"n_q": 2, "segment_frames": 0, "valid_examples": 4, "valid_every": 20},
    },
    "sampling": {"steps": 3},
}
AR_PRIOR = {"model": {"kind": "codec_lm", "pattern": "delay",
                      "transformer": {"dim": 32, "n_layers": 2, "n_heads": 2}},
            "train": TINY["prior"]["train"], "data": TINY["prior"]["data"]}


def _with(path: str, value) -> dict:
    """TINY with one nested key (``a.b.c``) set."""
    raw = copy.deepcopy(TINY)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


# -------------------------------------------------------------------------------------------- config
def test_config_parses_the_recipe_configs_and_the_tiny_one():
    for name, kind, sampler in (("tiny_codec", "masked_lm", "MaskGITConfig"),
                                ("tiny_codec_ar", "codec_lm", "SamplingConfig")):
        raw = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        config = CodecTokensConfig.from_dict(raw["codec_tokens"])
        assert (config.prior.kind, type(config.sampling).__name__) == (kind, sampler)
        assert config.codec.codec.sample_rate == RATE and config.n_q == 4
        shared = yaml.safe_load((CONF / "tiny_vq.yaml").read_text())
        for key in ("guidance", "temperature"):  # the PixelSNAIL prior's; token priors sample by their own
            shared["generate"].pop(key, None)
        assert (raw["classifier"], raw["generate"]) == (shared["classifier"], shared["generate"])
    config = CodecTokensConfig.from_dict(TINY)
    assert config.fixed(7) == {"n_q": 2, "card": CARD, "n_classes": 7}


@pytest.mark.parametrize("raw, message", [
    ({**TINY, "vocoder": "v1"}, "codec_tokens: unknown key(s) ['vocoder']"),
    (_with("codec.schedule.max_stepz", 3), "max_stepz"),
    (_with("prior.model.n_layerz", 3), "n_layerz"),
    (_with("prior.data.n_q", 3), "n_q must be in 1..2"),
    (_with("prior.model.kind", "nar_lm"), "kind must be one of"),
    (_with("codec.codec.sample_rate", 16000), "22050 Hz"),
    (_with("sampling", {"top_k": 5}), "MaskGITConfig"),
    (_with("sampling", {"steps": 0}), "steps >= 1"),
    ({"prior": TINY["prior"]}, "missing ['codec']"),
    (None, "expected a mapping"),
])
def test_config_rejects_bad_sections_in_one_clear_line(raw, message):
    with pytest.raises(ConfigError) as error:
        CodecTokensConfig.from_dict(raw)
    assert message in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------ end to end
def _clip(kind: str, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / RATE
    if kind == "hum":
        wav = 0.3 * np.sin(2 * np.pi * (200 + 20 * rng.random()) * t)
    else:
        wav = 0.1 * rng.standard_normal(SAMPLES)
    return torch.from_numpy(wav).float()[None]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A masked and an autoregressive run of every stage on 12 clips (classes DogBark = hum, Rain = hiss)."""
    root = tmp_path_factory.mktemp("codec_path")
    clips = {"train": [], "valid": []}
    seed = 0
    for split, count in (("train", 4), ("valid", 2)):
        for name, kind in (("DogBark", "hum"), ("Rain", "hiss")):
            for i in range(count):
                path = root / "audio" / split / f"{name}-{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                seed += 1
                save_audio(path, _clip(kind, seed), RATE, "PCM_16")
                clips[split].append(FoleyClip(f"{name}-{split}{i}", str(path), name))
    for split, items in clips.items():
        write_foley_data_dir(root / "data" / split, items)
    base = {"classifier": {"embed_dim": 16, "epochs": 15},
            "generate": {"clips_per_class": 2, "batch_size": 2}}
    configs = {"masked": {**base, "codec_tokens": TINY},
               "ar": {**base, "codec_tokens": {**TINY, "prior": AR_PRIOR, "sampling": {"temperature": 1.0}}}}
    out = {}
    torch.manual_seed(0)
    for name, config in configs.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        common = ["--config", str(root / f"{name}.yaml"), "--exp", str(root / "exp" / name),
                  "--data", str(root / "data")]
        for stage in ("codec", "tokens", "token_prior", "generate_codec"):
            assert main([stage, *common]) == 0, stage
        out[name] = FoleyRun(config_path=root / f"{name}.yaml", exp=root / "exp" / name, data=root / "data",
                             features=root / "features")
    return out


@pytest.mark.parametrize("name", ["masked", "ar"])
def test_every_stage_writes_clips_in_the_challenge_format(runs, name):
    args = runs[name]
    for folder in ("dog_bark", "rain"):
        files = sorted((args.exp / "generated" / folder).glob("*.wav"))
        assert [f.name for f in files] == ["000.wav", "001.wav"]
        for path in files:
            info = sf.info(path)
            assert (info.samplerate, info.frames, info.channels, info.subtype) == (RATE, SAMPLES, 1, "PCM_16")
    timing = json.loads((args.exp / "generated" / "timing.json").read_text())
    assert timing["clips"] == 4 and timing["sample"] > 0
    assert (args.exp / "generator" / "model.safetensors").is_file()


def test_the_runs_share_one_codec_and_its_tokens(runs):
    codecs = sorted(runs["masked"].exp.parent.glob("codec_*"))
    assert codecs == [runs["masked"].codec_exp] == [runs["ar"].codec_exp]
    assert len(list((codecs[0] / "tokens" / "train").glob("*.npz"))) == 8
    assert (codecs[0] / "tokens" / "valid" / "utt2class").read_text().count(" Rain\n") == 2
    report = json.loads((codecs[0] / "valid.json").read_text())
    assert report["steps"] == 12 and set(report["valid_mel_l1"]) == {"DogBark", "Rain", "all"}


@pytest.mark.parametrize("name", ["masked", "ar"])
def test_the_prior_learns_the_toy_tokens(runs, name):
    """Held-out NLL well under the uniform log(card), and below the training run's first logged loss."""
    report = json.loads((runs[name].exp / "prior" / "valid.json").read_text())
    first = json.loads((runs[name].exp / "prior" / "train.jsonl").read_text().splitlines()[0])
    assert report["valid"]["nll"] < 0.6 * math.log(CARD)
    assert report["valid"]["nll"] < first["loss"]


def test_sampled_tokens_follow_the_class(runs):
    """The masked prior's tokens of each class are nearer (in code histogram) to that class's real tokens."""
    args = runs["masked"]
    prior = load_model_dir(args.prior_dir)
    codes = sample_class_tokens(prior, torch.tensor([0] * 4 + [1] * 4), {"frames": 44, "steps": 4},
                                torch.Generator().manual_seed(0))
    assert codes.shape == (8, 2, 44) and int(codes.max()) < CARD
    real = {}
    for label, name in enumerate(("DogBark", "Rain")):
        files = sorted((args.codec_exp / "tokens" / "train").glob(f"{name}-*.npz"))
        real[label] = torch.cat([torch.from_numpy(load_tokens(f).codes[0, 0].astype(np.int64))
                                 for f in files])

    def histogram(x):
        return torch.bincount(x.flatten(), minlength=CARD).float() / x.numel()

    for label in (0, 1):
        mine = histogram(codes[4 * label : 4 * label + 4, 0])
        own = (mine - histogram(real[label])).abs().sum()
        other = (mine - histogram(real[1 - label])).abs().sum()
        assert own < other


def test_reconstruct_clips_keeps_the_shape(runs):
    wavs = torch.cat([_clip("hum", 1), _clip("hiss", 2), _clip("hum", 3)])
    out = reconstruct_clips(runs["masked"], wavs)
    assert out.shape == (3, SAMPLES) and out.dtype == torch.float32 and bool(torch.isfinite(out).all())


def test_a_mel_path_run_is_refused_in_one_line(tmp_path, capsys):
    code = main(["tokens", "--config", str(CONF / "tiny_vq.yaml"), "--exp", str(tmp_path / "exp")])
    assert code == 2 and "no codec_tokens section" in capsys.readouterr().err
