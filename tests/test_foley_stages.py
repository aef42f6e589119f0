"""Foley recipe stages run in-process on a two-class set: eval folder names, clip format, keyed models."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.foley.data import (
    CHALLENGE_FOLDERS,
    FoleyClip,
    FoleyDataError,
    FoleyFeatures,
    extract_features,
    match_class_names,
    read_foley_data_dir,
)
from funcodec_lite.recipes.dcase_foley import generation
from funcodec_lite.recipes.dcase_foley.command import main
from funcodec_lite.recipes.dcase_foley.config import FoleyRunConfig
from funcodec_lite.recipes.dcase_foley.run import FoleyRun
from funcodec_lite.utils.config import ConfigError
from funcodec_lite.utils.weights import load_model_dir, save_model_dir

RATE = 22050
MICRO = {
    "vqvae": {"quantizer": "vq", "strides": [4, 2], "codebook_size": 8, "embed_dim": 4, "channel": 4,
              "n_res_block": 1, "n_res_channel": 4, "kmeans_init": True},
    "vqvae_train": {"steps": 2, "batch_size": 4, "log_every": 1},
    "prior": {"channel": 8, "n_block": 1, "n_res_block": 1, "res_channel": 8, "n_head": 2, "class_dim": 8},
    "prior_train": {"steps": 2, "batch_size": 4, "log_every": 1},
    "vocoder": "tiny",
    "vocoder_train": {"steps": 1, "batch_size": 2, "segment_frames": 16, "log_every": 1},
    "vocoder_loss": {"discriminator": {
        "kinds": ["mpd"], "mpd": {"periods": [2], "channels": [4, 4, 4, 4, 4]}}},
    "classifier": {"embed_dim": 4, "epochs": 2, "channels": [4, 8]},
    "generate": {"clips_per_class": 2, "batch_size": 2},
}


def _clip(kind: str, seed: int) -> np.ndarray:
    """Half a second: a decaying tone (a "bark") or white noise ("rain")."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE // 2) / RATE
    if kind == "tone":
        wav = np.sin(2 * np.pi * rng.uniform(300, 800) * t) * np.exp(-6 * t)
    else:
        wav = rng.standard_normal(len(t)) * 0.3
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


def _write_set(root: Path, folders: dict[str, str], clips: int, seed: int) -> None:
    for n, (folder, kind) in enumerate(folders.items()):
        (root / folder).mkdir(parents=True)
        for i in range(clips):
            sf.write(root / folder / f"{i:04d}.wav", _clip(kind, seed + 100 * n + i), RATE, "PCM_16")


def _run(*argv: str) -> None:
    assert main(list(argv)) == 0


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """Stages 0-5 on 2 x 6 dev clips (CamelCase folders) and 2 x 2 eval clips (snake_case folders)."""
    root = tmp_path_factory.mktemp("foley")
    _write_set(root / "dev", {"DogBark": "tone", "Rain": "noise"}, clips=6, seed=0)
    _write_set(root / "eval", {"dog_bark": "tone", "rain": "noise"}, clips=2, seed=50)
    (root / "micro.yaml").write_text(yaml.safe_dump(MICRO))
    paths = ["--data", str(root / "data"), "--features", str(root / "features")]
    run = ["--config", str(root / "micro.yaml"), "--exp", str(root / "exp" / "micro"), *paths]
    _run("data", "--dev-root", str(root / "dev"), "--eval-root", str(root / "eval"),
         "--valid-fraction", "0.34", *paths)
    _run("features", *paths)
    for stage in ("vqvae", "codes", "prior", "vocoder"):
        _run(stage, *run)  # the vocoder goes to its keyed default directory
    return root


def _args(root: Path, features: str = "features", config: str = "micro.yaml") -> list[str]:
    return ["--config", str(root / config), "--exp", str(root / "exp" / "micro"),
            "--data", str(root / "data"), "--features", str(root / features)]


def _dirs(root: Path, capsys, *argv: str) -> list[str]:
    capsys.readouterr()
    _run("dirs", *argv)
    vocoder, classifier, path = capsys.readouterr().out.split()
    assert path == "mel"
    return [vocoder, classifier]


def test_snake_case_eval_folders_get_the_training_class_names(recipe):
    utt2class = (recipe / "data" / "eval" / "utt2class").read_text().split()
    assert utt2class[1::2] == ["DogBark", "DogBark", "Rain", "Rain"]
    train, evaluation = (FoleyFeatures.load(recipe / "features" / f"{s}.npz") for s in ("train", "eval"))
    assert evaluation.class_names == train.class_names == ["DogBark", "Rain"]
    assert evaluation.utt_ids == ["dog_bark-0000", "dog_bark-0001", "rain-0000", "rain-0001"]
    assert evaluation.labels.tolist() == [0, 0, 1, 1]


def test_features_of_a_data_dir_with_challenge_folder_names_get_training_labels(recipe):
    clips = [FoleyClip(c.utt_id, c.path, CHALLENGE_FOLDERS[c.class_name])
             for c in read_foley_data_dir(recipe / "data" / "eval")]
    assert [c.class_name for c in clips] == ["dog_bark", "dog_bark", "rain", "rain"]
    features = extract_features(clips, ["DogBark", "Rain"], FoleyMel())
    assert features.labels.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(features.mels, FoleyFeatures.load(recipe / "features" / "eval.npz").mels)
    dcase = sorted(CHALLENGE_FOLDERS)
    assert match_class_names(["sneeze_cough", "gunshot", "Moving-Motor Vehicle", "Rain"], dcase) == {
        "sneeze_cough": "Sneeze_Cough", "gunshot": "GunShot", "Moving-Motor Vehicle": "MovingMotorVehicle",
        "Rain": "Rain"}
    with pytest.raises(FoleyDataError, match="'dog'"):
        match_class_names(["dog"], dcase)


def test_an_eval_class_the_dev_set_lacks_is_one_line_at_stage_0(recipe, tmp_path, capsys):
    _write_set(tmp_path / "eval", {"dog_bark": "tone", "gun_shot": "noise"}, clips=1, seed=70)
    code = main(["data", "--dev-root", str(recipe / "dev"), "--eval-root", str(tmp_path / "eval"),
                 "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "['gun_shot']" in err


def test_model_dirs_are_keyed_by_settings_and_training_data(recipe, capsys):
    vocoder, classifier = _dirs(recipe, capsys, *_args(recipe))
    exp = recipe / "exp"
    assert re.fullmatch(r"vocoder_tiny_[0-9a-f]{8}", Path(vocoder).name) and Path(vocoder).parent == exp
    assert re.fullmatch(r"classifier_[0-9a-f]{8}", Path(classifier).name) and Path(classifier).parent == exp
    assert (Path(vocoder) / "model" / "model.safetensors").is_file()  # stage 5 trained into the keyed dir

    # the same data written again (a new .npz file, new zip times): the same directories
    FoleyFeatures.load(recipe / "features" / "train.npz").save(recipe / "same" / "train.npz")
    assert _dirs(recipe, capsys, *_args(recipe, "same")) == [vocoder, classifier]
    # one clip's features changed: other data, other directories for both models
    other = FoleyFeatures.load(recipe / "features" / "train.npz")
    other.mels[0, 0, 0] += 0.5
    other.save(recipe / "other" / "train.npz")
    other_vocoder, other_classifier = _dirs(recipe, capsys, *_args(recipe, "other"))
    assert other_vocoder != vocoder and other_classifier != classifier
    # another classifier setting: another classifier, the same vocoder
    (recipe / "wider.yaml").write_text(yaml.safe_dump({**MICRO, "classifier": {**MICRO["classifier"],
                                                                               "embed_dim": 8}}))
    wider_vocoder, wider_classifier = _dirs(recipe, capsys, *_args(recipe, config="wider.yaml"))
    assert wider_vocoder == vocoder and wider_classifier != classifier
    # another vocoder setting: another vocoder, the same classifier
    (recipe / "longer.yaml").write_text(yaml.safe_dump({**MICRO, "vocoder_train": {
        **MICRO["vocoder_train"], "steps": 2}}))
    longer_vocoder, longer_classifier = _dirs(recipe, capsys, *_args(recipe, config="longer.yaml"))
    assert longer_vocoder != vocoder and longer_classifier == classifier


def test_generated_clips_take_rate_and_length_from_the_mel_front_end(recipe, monkeypatch, tmp_path):
    shutil.copytree(recipe / "exp" / "micro", tmp_path / "micro")
    front_end = FoleyMelConfig(sample_rate=16000, num_samples=88_000)
    monkeypatch.setattr(generation, "recipe_front_end", lambda: FoleyMel(front_end))
    args = _args(recipe)
    args[args.index("--exp") + 1] = str(tmp_path / "micro")
    vocoder = next((recipe / "exp").glob("vocoder_tiny_*"))
    _run("generate", *args, "--vocoder-exp", str(vocoder))
    for folder in ("dog_bark", "rain"):
        clips = sorted((tmp_path / "micro" / "generated" / folder).glob("*.wav"))
        assert len(clips) == 2
        info = sf.info(clips[0])
        assert (info.samplerate, info.frames, info.subtype) == (16000, 88_000, "PCM_16")


def test_stage_6_samples_the_prior_that_prior_dir_picks(recipe, tmp_path):
    """One place decides which prior is sampled: `FoleyRun.prior_dir` (``prior/best`` when a run kept one)."""
    shutil.copytree(recipe / "exp" / "micro", tmp_path / "micro")
    vocoder = next((recipe / "exp").glob("vocoder_tiny_*"))
    run = FoleyRun(config_path=recipe / "micro.yaml", exp=tmp_path / "micro", data=recipe / "data",
                   features=recipe / "features", vocoder_override=vocoder)
    last = load_model_dir(run.prior_dir)
    assert run.prior_dir == tmp_path / "micro" / "prior" / "model"
    with torch.no_grad():
        for p in last.parameters():
            p.add_(0.5)
    save_model_dir(tmp_path / "micro" / "prior" / "best", last, {"steps": 1})
    assert run.prior_dir == tmp_path / "micro" / "prior" / "best"
    sampled = generation.build_generator(run).parts["prior"].state_dict()
    for name, value in last.state_dict().items():
        assert torch.equal(sampled[name], value)
    report = json.loads((recipe / "exp" / "micro" / "prior" / "valid.json").read_text())
    assert report["sampled_model"].endswith("prior/model")  # stage 4 names what stage 6 samples


def test_generation_refuses_a_vocoder_with_another_hop(recipe, monkeypatch, tmp_path, capsys):
    front_end = FoleyMelConfig(n_fft=1024, hop_length=128, win_length=1024)
    monkeypatch.setattr(generation, "recipe_front_end", lambda: FoleyMel(front_end))
    args = _args(recipe)
    args[args.index("--exp") + 1] = str(shutil.copytree(recipe / "exp" / "micro", tmp_path / "micro"))
    vocoder = next((recipe / "exp").glob("vocoder_tiny_*"))
    code = main(["generate", *args, "--vocoder-exp", str(vocoder)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "hop_length 256" in err and "mel front end's hop 128" in err
    assert not (tmp_path / "micro" / "generated").exists()


def test_evaluate_without_an_eval_split_says_it_uses_the_valid_split(recipe, tmp_path, capsys):
    exp = Path(shutil.copytree(recipe / "exp" / "micro", tmp_path / "micro"))
    (tmp_path / "features").mkdir()
    for split in ("train", "valid"):  # no eval.npz: run without --eval-root
        shutil.copy(recipe / "features" / f"{split}.npz", tmp_path / "features")
    vocoder = next((recipe / "exp").glob("vocoder_tiny_*"))
    args = ["--config", str(recipe / "micro.yaml"), "--exp", str(exp), "--data", str(recipe / "data"),
            "--features", str(tmp_path / "features"), "--vocoder-exp", str(vocoder),
            "--classifier-exp", str(tmp_path / "classifier")]
    _run("generate", *args)
    capsys.readouterr()
    _run("evaluate", *args)
    out = capsys.readouterr().out
    assert "evaluate: no eval split" in out and "use the valid split" in out
    report = json.loads((exp / "fad.json").read_text())
    assert report["reference"] == "valid" and "no eval split" in report["reference_note"]
    table = (exp / "fad.md").read_text().splitlines()
    assert table[0].endswith("reference: real valid clips.") and table[1].startswith("Note: no eval split")


def test_a_griffin_lim_run_gets_its_own_keyed_vocoder_and_generates(recipe, tmp_path, capsys):
    config = {**MICRO, "vocoder_kind": "griffinlim", "vocoder": "default"}
    del config["vocoder_train"]
    (recipe / "gl.yaml").write_text(yaml.safe_dump(config))
    args = _args(recipe, config="gl.yaml")
    args[args.index("--exp") + 1] = str(shutil.copytree(recipe / "exp" / "micro", tmp_path / "gl"))
    vocoder, _ = _dirs(recipe, capsys, *args)
    assert re.fullmatch(r"vocoder_griffinlim_default_[0-9a-f]{8}", Path(vocoder).name)
    hifigan, _ = _dirs(recipe, capsys, *_args(recipe))
    assert Path(hifigan).name.startswith("vocoder_tiny_")  # HiFi-GAN dirs keep their old names
    _run("vocoder", *args)
    assert json.loads((Path(vocoder) / "info.json").read_text()) == {"kind": "griffinlim", "parameters": 0}
    _run("generate", *args)
    clips = sorted((tmp_path / "gl" / "generated" / "rain").glob("*.wav"))
    assert len(clips) == 2 and sf.info(clips[0]).frames == 88_200
    parts = yaml.safe_load((tmp_path / "gl" / "generator" / "config.yaml").read_text())["parts"]
    assert parts["vocoder"]["kind"] == "griffinlim"


def test_vocoder_settings_are_checked_against_the_kind(recipe, capsys):
    bad = {**MICRO, "vocoder_kind": "griffinlim", "vocoder": "default"}  # keeps HiFi-GAN's vocoder_train
    (recipe / "bad_gl.yaml").write_text(yaml.safe_dump(bad))
    assert main(["dirs", *_args(recipe, config="bad_gl.yaml")]) == 2
    assert "Griffin-Lim trains nothing" in capsys.readouterr().err
    (recipe / "bad_kind.yaml").write_text(yaml.safe_dump({**MICRO, "vocoder_kind": "melgan"}))
    assert main(["dirs", *_args(recipe, config="bad_kind.yaml")]) == 2
    assert "vocoder_kind must be one of" in capsys.readouterr().err


MICRO_VOCODERS = {  # one training step each; the tiny presets' layouts at the smallest widths
    "wavenet": ({"output": "gaussian", "residual_channels": 4, "gate_channels": 8, "skip_channels": 4,
                 "layers_per_cycle": 2, "dilation_cycles": 1}, None),
    "waveglow": ({"upsample_rates": [16, 16], "upsampler": "conv2d", "n_flows": 2, "n_early_every": 2,
                  "wn_channels": 4, "wn_layers": 1}, None),
    "flowavenet": ({"n_blocks": 2, "n_flows": 1, "wn_channels": 4, "wn_layers": 1}, None),
    "student": ({"upsample_depthwise": True, "flow_layers": [1], "residual_channels": 4, "gate_channels": 8,
                 "skip_channels": 4},
                {"output": "gaussian", "upsample_depthwise": True, "residual_channels": 4, "gate_channels": 8,
                 "skip_channels": 4, "layers_per_cycle": 1, "dilation_cycles": 1}),
}


@pytest.mark.parametrize("kind", list(MICRO_VOCODERS))
def test_every_vocoder_kind_trains_in_the_recipe(recipe, tmp_path, capsys, kind):
    fields, teacher = MICRO_VOCODERS[kind]
    config = {**MICRO, "vocoder_kind": kind, "vocoder": fields,
              "vocoder_train": {"steps": 1, "batch_size": 2, "segment_frames": 4, "log_every": 1},
              **({"vocoder_teacher": teacher} if teacher else {})}
    (recipe / f"{kind}.yaml").write_text(yaml.safe_dump(config))
    args = _args(recipe, config=f"{kind}.yaml")
    args[args.index("--exp") + 1] = str(shutil.copytree(recipe / "exp" / "micro", tmp_path / kind))
    vocoder, _ = _dirs(recipe, capsys, *args)
    assert re.fullmatch(rf"vocoder_{kind}_custom_[0-9a-f]{{8}}", Path(vocoder).name)
    _run("vocoder", *args)
    info = json.loads((Path(vocoder) / "info.json").read_text())
    assert info["kind"] == kind and info["parameters"] > 0
    assert yaml.safe_load((Path(vocoder) / "model" / "config.yaml").read_text())["kind"] == kind
    if kind == "student":  # its teacher was trained first, in the student's directory
        assert yaml.safe_load((Path(vocoder) / "teacher" / "model" / "config.yaml").read_text())["kind"] == \
            "wavenet"
    if kind != "wavenet":  # one pass per clip; WaveNet's 88,200 sequential steps are too slow for a test
        _run("generate", *args)
        clip = sorted((tmp_path / kind / "generated" / "dog_bark").glob("*.wav"))[0]
        audio, rate = sf.read(clip)
        assert rate == 22050 and len(audio) == 88_200 and np.isfinite(audio).all()


def test_guidance_needs_a_prior_with_label_dropout_and_the_mel_path():
    conf = Path(__file__).resolve().parents[1] / "egs" / "dcase_foley" / "conf"
    shipped = FoleyRunConfig.from_yaml(conf / "tiny_vq.yaml")
    prior, guidance = shipped.prior, shipped.generate.guidance
    assert (prior.raster, prior.label_dropout, guidance) == ("column", 0.1, 3.0)
    with pytest.raises(ConfigError, match="label_dropout"):
        FoleyRunConfig.from_dict({"generate": {"guidance": 2.0}})
    guided = FoleyRunConfig.from_dict({"prior": {"label_dropout": 0.2}, "generate": {"guidance": 2.0}})
    assert guided.prior_config(7).n_labels == 8  # the seven classes and "no class"
    codec = yaml.safe_load((conf / "tiny_codec.yaml").read_text())
    with pytest.raises(ConfigError, match="codec_tokens"):
        FoleyRunConfig.from_dict({**codec, "generate": {**codec["generate"], "guidance": 1.0}})
